// Package telegramtest is an in-process fake of the Telegram Bot API, close
// enough to the real one that the real go-telegram-bot-api/v5 client can talk
// to it: every call is POST <URL>/bot<token>/<method> with form-encoded,
// multipart or JSON parameters, and every answer is {"ok":true,"result":…} or
// {"ok":false,"error_code":N,"description":"…"} with the HTTP status equal to
// error_code, the way Telegram answers.
//
// A test plays the people on the other side: SendText, ShareContact,
// PressButton and friends queue updates that the bot receives by long
// polling (getUpdates) or, once it calls setWebhook, by POSTs to its
// webhook. Those go out as Telegram's Bot API server sends them: a chat's
// updates one at a time and in order, each only once the one before was
// answered 2xx, and different chats in parallel, at most max_connections
// POSTs at a time (earliest update first), so a bot behind a load
// balancer sees a burst the way it would in production.
// Everything the bot does is recorded (Calls, Sent, Deleted, Answered…) and
// can be awaited without sleeping (WaitSent, WaitLatest, WaitFor). Failures
// are scripted with FailNext, FailAfter (the call took effect, the answer
// was lost), HangAfter, SetBlocked, SetDown and SetLatency, and Telegram's flood
// limits are enforced when Options.EnforceLimits is set.
//
// For a client running inside a testing/synctest bubble, build the fake
// with NewUnstarted in the bubble and connect through Transport (no
// socket); deliver webhooks over a Listener. Every wait of the fake then
// runs on the bubble's clock. Deletions is an in-memory schedule for the
// adapter's Options.Deletions, and Coordinator the in-memory state several
// Bots share as replicas (Options.Coordinator), with CoordinatorChecks,
// the contract any Coordinator is held to.
//
// Where the fake knowingly differs from Telegram:
//   - an empty getUpdates with timeout=0 is held for Options.ShortPollWait
//     (Telegram answers at once; the fake stands in for the network round
//     trip so a misconfigured poll loop cannot spin), and every long poll is
//     capped at Options.MaxPollWait;
//   - webhooks may be plain http:// (httptest), and a reply body that
//     carries a method call is ignored. A failed delivery (not 2xx, no
//     answer, a timeout) is retried until it succeeds, after the short
//     waits of Options.WebhookBackoff, and holds back only its own queue:
//     the fake queues a callback query with the chat of its message, an
//     update without a chat (an inline query) with the user it is from,
//     and whatever has neither in one queue of its own;
//   - any chat id may be written to: there is no "chat not found" or "bot
//     can't initiate conversation" for chats the fake has not seen, only for
//     getChat; privacy mode is not modelled (inject what the bot would see);
//   - deleteMessage may delete any live message of the chat (admin rights in
//     groups are not modelled) younger than 48 hours;
//   - callback queries never expire; only unknown or answered ids fail;
//   - parse_mode is checked only for the mistakes bots usually make: an
//     unescaped reserved character outside code in MarkdownV2, an unknown or
//     unbalanced tag or a bare '<' in HTML.
//
// A Server is safe for concurrent use. Close releases every held request
// and stops the webhook sender, abandoning the deliveries in flight: no
// goroutine of the fake outlives Close.
package telegramtest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Identity of the fake bot, as getMe reports it unless Options say
// otherwise.
const (
	DefaultBotID       int64 = 7000000001
	DefaultBotUsername       = "otpgate_test_bot"
	DefaultBotName           = "OTPGate Test"
)

// Errors returned by the waiting and posting helpers.
var (
	// ErrClosed is returned by WaitFor and WaitSent when the fake was closed
	// before the condition held.
	ErrClosed = errors.New("telegramtest: closed")
	// ErrNoWebhook is returned by PostUpdateWithSecret when no webhook is set.
	ErrNoWebhook = errors.New("telegramtest: no webhook set")
)

// Options configure a Server. The zero value is a fake with Telegram's
// defaults, limits not enforced and real time.
type Options struct {
	// BotID, BotUsername and BotName are what getMe reports; zero values
	// mean DefaultBotID, DefaultBotUsername and DefaultBotName.
	BotID       int64
	BotUsername string
	BotName     string

	// EnforceLimits makes the fake answer 429 to sends that break
	// Telegram's flood limits: 30 messages per second overall, one per
	// second to a private chat, 20 per minute to a group. Only message
	// sends count (send* except sendChatAction, forwardMessage,
	// copyMessage); edits, deletions and callback answers do not.
	EnforceLimits bool
	// Slack shortens every limit window so that a client pacing itself
	// exactly at the limit is not failed by scheduler jitter. Zero means
	// 50 ms; use a negative value for none.
	Slack time.Duration
	// Now is the clock for flood limits, message dates and message age.
	// Nil means time.Now. Waits (long polls, latency, webhook back-off)
	// always use real time.
	Now func() time.Time

	// MaxPollWait caps how long an empty getUpdates is held whatever its
	// timeout; zero means 1 s. ShortPollWait is how long an empty
	// getUpdates with timeout=0 is held; zero means 10 ms.
	MaxPollWait   time.Duration
	ShortPollWait time.Duration

	// WebhookClient delivers updates to the webhook; nil means a client of
	// the fake's own with a 5 s timeout that does not follow redirects
	// (Telegram counts a redirect as a failed delivery). Give
	// httptest.NewTLSServer(…).Client() to deliver to a TLS test server.
	WebhookClient *http.Client
	// WebhookBackoff is the wait before the first retry of a failed
	// delivery, doubled on every further failure in the same chat up to
	// WebhookMaxBackoff; other chats are not held back. Zero values mean
	// 10 ms and 500 ms: Telegram waits far longer, tests should not.
	WebhookBackoff    time.Duration
	WebhookMaxBackoff time.Duration

	// MaxCalls bounds the call log that Calls returns to the most recent
	// MaxCalls entries, for long benchmarks; zero keeps every call.
	// Messages, deletions and the other views are always kept in full.
	MaxCalls int
}

// validate reports options that cannot mean anything.
func (o Options) validate() error {
	var errs []error
	if o.BotID < 0 {
		errs = append(errs, fmt.Errorf("BotID %d is negative", o.BotID))
	}
	for name, d := range map[string]time.Duration{
		"MaxPollWait": o.MaxPollWait, "ShortPollWait": o.ShortPollWait,
		"WebhookBackoff": o.WebhookBackoff, "WebhookMaxBackoff": o.WebhookMaxBackoff,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if o.MaxCalls < 0 {
		errs = append(errs, fmt.Errorf("MaxCalls %d is negative", o.MaxCalls))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.BotID == 0 {
		o.BotID = DefaultBotID
	}
	if o.BotUsername == "" {
		o.BotUsername = DefaultBotUsername
	}
	if o.BotName == "" {
		o.BotName = DefaultBotName
	}
	switch {
	case o.Slack == 0:
		o.Slack = 50 * time.Millisecond
	case o.Slack < 0:
		o.Slack = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPollWait == 0 {
		o.MaxPollWait = time.Second
	}
	if o.ShortPollWait == 0 {
		o.ShortPollWait = 10 * time.Millisecond
	}
	if o.WebhookBackoff == 0 {
		o.WebhookBackoff = 10 * time.Millisecond
	}
	if o.WebhookMaxBackoff == 0 {
		o.WebhookMaxBackoff = 500 * time.Millisecond
	}
	o.WebhookMaxBackoff = max(o.WebhookMaxBackoff, o.WebhookBackoff)
	return o
}

// Server is the fake Bot API. Build it with New (listening on loopback) or
// NewUnstarted (a bare http.Handler).
type Server struct {
	token string
	opts  Options
	bot   wireUser

	hs        *httptest.Server // nil for NewUnstarted
	closed    chan struct{}
	closeOnce sync.Once
	ctx       context.Context // cancelled by Close; bounds webhook deliveries
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the webhook sender
	hook      *http.Client
	transport *http.Transport // the webhook client's, when the fake built it

	inFlight atomic.Int64

	mu       sync.Mutex
	isClosed bool
	changed  chan struct{} // closed and replaced on every recorded change
	wake     chan struct{} // closed and replaced when pollers or the sender should look again

	down      bool
	latency   time.Duration
	failNext  map[string][]failure // by lower-case method, "*" for any
	failAfter map[string][]failure // answers lost after the call took effect
	blocked   map[int64]bool

	calls []Call
	stats Stats

	lastUpdateID int
	queue        []pendingUpdate
	allowed      map[string]bool // nil: Telegram's default set
	poller       *poller         // the getUpdates being held, if any

	chats     map[int64]*chatState
	users     map[int64]wireUser
	sent      []SentMessage
	answers   []Answer
	callbacks map[string]bool // callback query id → still unanswered
	cbSeq     int64
	commands  []CommandSet
	cmdByKey  map[string][]BotCommand
	left      []int64

	webhook       webhookState
	hookStats     WebhookStats
	senderRunning bool

	globalSends []time.Time // sends inside the last global window
}

// New starts a fake on a random 127.0.0.1 port that accepts the given bot
// token. Close it when done. New panics on invalid Options, like
// httptest.NewServer on a listener error: it is a test helper.
func New(token string, opts Options) *Server {
	s := NewUnstarted(token, opts)
	s.hs = httptest.NewServer(s)
	return s
}

// NewUnstarted returns a fake that does not listen: serve it with your own
// http.Server (a standalone fake process, say). URL returns "" for it;
// Close still releases held requests and stops the webhook sender.
func NewUnstarted(token string, opts Options) *Server {
	if token == "" {
		panic("telegramtest: empty bot token")
	}
	if err := opts.validate(); err != nil {
		panic("telegramtest: invalid Options: " + err.Error())
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		token:     token,
		opts:      opts,
		bot:       wireUser{ID: opts.BotID, IsBot: true, FirstName: opts.BotName, Username: opts.BotUsername},
		closed:    make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		changed:   make(chan struct{}),
		wake:      make(chan struct{}),
		failNext:  make(map[string][]failure),
		failAfter: make(map[string][]failure),
		blocked:   make(map[int64]bool),
		chats:     make(map[int64]*chatState),
		users:     make(map[int64]wireUser),
		callbacks: make(map[string]bool),
		cmdByKey:  make(map[string][]BotCommand),
	}
	s.hook = opts.WebhookClient
	if s.hook == nil {
		s.transport = http.DefaultTransport.(*http.Transport).Clone()
		s.hook = &http.Client{
			Transport: s.transport,
			Timeout:   5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return s
}

// URL is the base URL to give the client in place of
// https://api.telegram.org (OTPGATE_TELEGRAM_API_URL); the client's
// endpoint format is URL()+"/bot%s/%s".
func (s *Server) URL() string {
	if s.hs == nil {
		return ""
	}
	return s.hs.URL
}

// Close answers held getUpdates calls with an empty result, drops requests
// waiting out SetLatency, stops the webhook sender and, for a fake built by
// New, shuts the listener down and waits for every handler to return. It
// is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.isClosed = true
		s.notifyLocked()
		s.wakeLocked()
		s.mu.Unlock()
		close(s.closed)
		s.cancel()
	})
	if s.hs != nil {
		s.hs.Close()
	}
	s.wg.Wait()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
}

// notifyLocked wakes WaitFor and WaitSent callers.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wakeLocked wakes held getUpdates calls and the webhook sender.
func (s *Server) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// now reads the injected clock.
func (s *Server) now() time.Time { return s.opts.Now() }

// failure is a scripted error answer. For FailAfter, status 0 drops the
// connection and hang holds the answer back.
type failure struct {
	status     int
	retryAfter int
	hang       bool
}

// FailNext makes the next n calls of method (case-insensitive; "*" for any
// method) fail without being performed. Status 429 answers "Too Many
// Requests: retry after N" with parameters.retry_after N (at least 1);
// other statuses answer ok:false with that error_code and Telegram's usual
// description for it (403: "Forbidden: bot was blocked by the user"). Calls
// queue up in order; a method's own failures come before "*" ones.
func (s *Server) FailNext(method string, n int, status int, retryAfter int) {
	if n <= 0 {
		return
	}
	key := strings.ToLower(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext[key] = append(s.failNext[key], failure{status: status, retryAfter: retryAfter})
	}
}

// FailAfter makes the next n calls of method (case-insensitive; "*" for
// any method) take effect as usual and then lose their answer: the
// outcome a client cannot tell from a failure, and must not take for one.
// Status 0 closes the connection without an answer (a network failure
// after the request arrived); any other status answers as FailNext does
// (a 502 from the proxy in front of Telegram after Telegram acted). The
// call is logged with that status, or 0 with the description "connection
// dropped". Calls queue up in order; a method's own come before "*" ones.
func (s *Server) FailAfter(method string, n int, status int) {
	s.scriptAfter(method, n, failure{status: status})
}

// HangAfter makes the next n calls of method take effect and then never
// answer: each is held until its client goes away or the fake is closed,
// as when the process that made it is killed waiting for the answer. The
// call is logged at once, with status 0 and the description "no answer".
func (s *Server) HangAfter(method string, n int) {
	s.scriptAfter(method, n, failure{hang: true})
}

func (s *Server) scriptAfter(method string, n int, f failure) {
	key := strings.ToLower(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failAfter[key] = append(s.failAfter[key], f)
	}
}

// SetBlocked makes every send to chatID fail with 403 "Forbidden: bot was
// blocked by the user", as after the user blocked the bot, until called
// again with false.
func (s *Server) SetBlocked(chatID int64, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if blocked {
		s.blocked[chatID] = true
	} else {
		delete(s.blocked, chatID)
	}
}

// SetDown simulates an outage. While down every request, a held getUpdates
// included, is answered HTTP 502 with an HTML body (what the proxy in front
// of Telegram answers, and not JSON, so the client reports a decode error)
// and webhook deliveries pause.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	s.wakeLocked()
	s.notifyLocked()
}

// SetLatency delays every answer by d, or until the client goes away or
// the fake is closed.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ServeHTTP answers POST|GET /bot<token>/<method>.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	start := s.now()

	s.mu.Lock()
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, int(n))
	latency := s.latency
	s.mu.Unlock()
	if !s.hold(r.Context(), latency) {
		return // client gone or fake closed: nobody reads the answer
	}

	token, method, ok := splitPath(r.URL.Path)
	call := Call{Method: method, Time: start}
	var res any
	var e *apiError
	switch {
	case s.isDown():
		e = errDown
	case !ok:
		e = errNotFound
	case subtle.ConstantTimeCompare([]byte(token), []byte(s.token)) != 1:
		e = &apiError{code: http.StatusUnauthorized, desc: "Unauthorized"}
	default:
		p, err := readParams(r)
		call.Params = p
		if err != nil {
			e = badRequest(err.Error())
			break
		}
		res, e = s.dispatch(r.Context(), method, p)
	}
	if e == errGone {
		return
	}
	if e == nil && ok {
		if f, lost := s.takeFailure(s.failAfter, strings.ToLower(method)); lost {
			s.loseAnswer(r.Context(), w, call, f)
			return
		}
	}
	call.Status = http.StatusOK
	if e != nil {
		call.Status, call.Description = e.code, e.desc
	}
	writeReply(w, res, e)
	s.record(call, e)
}

// loseAnswer answers a call that took effect as FailAfter or HangAfter
// scripted.
func (s *Server) loseAnswer(ctx context.Context, w http.ResponseWriter, call Call, f failure) {
	if f.status != 0 && !f.hang {
		e := failureError(f)
		call.Status, call.Description = e.code, e.desc
		writeReply(w, nil, e)
		s.record(call, e)
		return
	}
	call.Description = "connection dropped"
	if f.hang {
		call.Description = "no answer"
	}
	s.record(call, nil)
	if f.hang {
		select {
		case <-ctx.Done():
			return // nobody is waiting for the answer
		case <-s.closed:
		}
	}
	panic(http.ErrAbortHandler) // net/http closes the connection unanswered
}

// hold waits out the configured latency. It reports false when the request
// should be dropped instead.
func (s *Server) hold(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closed:
	}
	return false
}

func (s *Server) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// record appends a call to the log and updates the counters.
func (s *Server) record(c Call, e *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Calls++
	if e != nil {
		s.stats.Errors++
		if e.code == http.StatusTooManyRequests {
			s.stats.TooMany429++
		}
	}
	s.calls = append(s.calls, c)
	if m := s.opts.MaxCalls; m > 0 && len(s.calls) >= 2*m {
		s.calls = append([]Call(nil), s.calls[len(s.calls)-m:]...)
	}
	s.notifyLocked()
}

// splitPath extracts token and method from /bot<token>/<method>.
func splitPath(path string) (token, method string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/bot")
	if !ok {
		return "", "", false
	}
	token, method, ok = strings.Cut(rest, "/")
	if !ok || token == "" || method == "" || strings.Contains(method, "/") {
		return "", method, false
	}
	return token, method, true
}

// dispatch runs method after the scripted failures.
func (s *Server) dispatch(ctx context.Context, method string, p params) (any, *apiError) {
	key := strings.ToLower(method)
	h, ok := handlers[key]
	if !ok {
		return nil, errNotFound
	}
	if f, ok := s.takeFailure(s.failNext, key); ok {
		return nil, failureError(f)
	}
	if key == "getupdates" {
		return s.getUpdates(ctx, p)
	}
	return h(s, p)
}

// takeFailure pops the next scripted failure for method from script, if
// any.
func (s *Server) takeFailure(script map[string][]failure, key string) (failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range []string{key, "*"} {
		q := script[k]
		if len(q) == 0 {
			continue
		}
		f := q[0]
		if len(q) == 1 {
			delete(script, k)
		} else {
			script[k] = q[1:]
		}
		s.stats.Injected++
		return f, true
	}
	return failure{}, false
}

// apiError is an ok:false answer. The HTTP status equals code.
type apiError struct {
	code       int
	desc       string
	retryAfter int
}

var (
	errNotFound = &apiError{code: http.StatusNotFound, desc: "Not Found"}
	// errDown is answered as a bare 502 page, not JSON.
	errDown = &apiError{code: http.StatusBadGateway, desc: "Bad Gateway"}
	// errGone means the client went away: write nothing.
	errGone = &apiError{}
)

func badRequest(msg string) *apiError {
	return &apiError{code: http.StatusBadRequest, desc: "Bad Request: " + msg}
}

func forbidden(msg string) *apiError {
	return &apiError{code: http.StatusForbidden, desc: "Forbidden: " + msg}
}

func tooMany(retryAfter int) *apiError {
	retryAfter = max(retryAfter, 1)
	return &apiError{
		code:       http.StatusTooManyRequests,
		desc:       fmt.Sprintf("Too Many Requests: retry after %d", retryAfter),
		retryAfter: retryAfter,
	}
}

func failureError(f failure) *apiError {
	switch f.status {
	case http.StatusTooManyRequests:
		return tooMany(f.retryAfter)
	case http.StatusBadRequest:
		return badRequest("chat not found")
	case http.StatusUnauthorized:
		return &apiError{code: f.status, desc: "Unauthorized"}
	case http.StatusForbidden:
		return forbidden("bot was blocked by the user")
	case http.StatusNotFound:
		return errNotFound
	case http.StatusConflict:
		return errConflictPoll
	}
	desc := http.StatusText(f.status)
	if desc == "" {
		desc = fmt.Sprintf("Error %d", f.status)
	}
	return &apiError{code: f.status, desc: desc}
}

type okReply struct {
	OK          bool   `json:"ok"`
	Result      any    `json:"result"`
	Description string `json:"description,omitempty"`
}

type errReply struct {
	OK          bool        `json:"ok"`
	ErrorCode   int         `json:"error_code"`
	Description string      `json:"description"`
	Parameters  *replyParam `json:"parameters,omitempty"`
}

type replyParam struct {
	RetryAfter int `json:"retry_after,omitempty"`
}

// described lets a handler add Telegram's description to an ok answer
// ("Webhook was set").
type described struct {
	result any
	desc   string
}

func writeReply(w http.ResponseWriter, res any, e *apiError) {
	if e == errDown {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n" +
			"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if e != nil {
		body := errReply{ErrorCode: e.code, Description: e.desc}
		if e.retryAfter > 0 {
			body.Parameters = &replyParam{RetryAfter: e.retryAfter}
		}
		w.WriteHeader(e.code)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	body := okReply{OK: true, Result: res}
	if d, ok := res.(described); ok {
		body.Result, body.Description = d.result, d.desc
	}
	_ = json.NewEncoder(w).Encode(body)
}
