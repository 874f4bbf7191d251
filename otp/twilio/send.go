package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
)

// Twilio error codes with a meaning of their own for otpgate.
// https://www.twilio.com/docs/api/errors
const (
	codeAuth           = 20003 // bad credentials
	codeTooManyReqs    = 20429 // account-level rate limit
	codeInvalidTo      = 21211 // not a valid phone number
	codeBadUsername    = 21222 // twilio-go's own check: non-alphanumeric SID
	codeBadPassword    = 21224 // twilio-go's own check: non-alphanumeric token
	codeGeoPermission  = 21408 // country not enabled on the account
	codeUnsubscribed   = 21610 // recipient replied STOP
	codeNotReachable   = 21612 // no route from this sender
	codeNotSMSCapable  = 21614 // landline or not a mobile number
	maxErrorBodyLength = 64 << 10
)

// Send delivers body to to, retrying transient failures (rate limits, 5xx,
// network errors) up to MaxAttempts times with jittered exponential
// back-off. It returns when ctx is done, abandoning an attempt in flight.
// Errors wrap the otp sentinels; permanent ones also wrap otp.ErrPermanent.
// Neither errors nor logs contain the full number, the body or the token.
func (s *Sender) Send(ctx context.Context, to pii.Mobile, body string) error {
	if to == "" {
		return fmt.Errorf("twilio: %w: %w (empty number)", otp.ErrPermanent, otp.ErrInvalidTo)
	}
	if body == "" {
		// Twilio would answer 21602; no need to spend a request on it.
		return fmt.Errorf("twilio: %w: empty message body", otp.ErrPermanent)
	}
	scrub := s.scrubber(to, body)

	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("twilio: send abandoned before attempt %d: %w", attempt, err)
		}
		msg, status, err := s.attempt(ctx, to, body)
		f := s.classify(err, status, scrub)
		if f == nil {
			var sid, state string
			if msg != nil {
				sid, state = deref(msg.Sid), deref(msg.Status)
			}
			s.log.LogAttrs(ctx, slog.LevelInfo, "sms queued",
				slog.Any("to", to),
				slog.String("message_sid", sid),
				slog.String("message_status", state),
				slog.Int("attempt", attempt))
			return nil
		}

		cancelled := ctx.Err() != nil
		retry := f.retry && !cancelled && attempt < s.maxAttempts
		s.log.LogAttrs(ctx, slog.LevelWarn, "sms send failed",
			slog.Any("to", to),
			slog.Int("twilio_code", f.code),
			slog.Int("http_status", f.status),
			slog.Int("attempt", attempt),
			slog.Int("max_attempts", s.maxAttempts),
			slog.Bool("will_retry", retry),
			slog.String("error", scrub(f.err.Error())))

		switch {
		case cancelled:
			return fmt.Errorf("twilio: send abandoned after %d attempt(s): %w", attempt, ctx.Err())
		case !f.retry:
			return fmt.Errorf("twilio: %w", f.err)
		case !retry:
			return fmt.Errorf("twilio: giving up after %d attempts: %w", attempt, f.err)
		}
		if err := s.sleep(ctx, s.delay(attempt)); err != nil {
			return fmt.Errorf("twilio: send abandoned after %d attempt(s): %w (last failure: %w)", attempt, err, f.err)
		}
	}
}

// attempt makes one CreateMessage call with the real twilio-go client and
// reports the HTTP status the transport saw (0 if no response came back).
//
// twilio-go builds its requests with context.Background(), so the only way
// to bind one to ctx is from below: each attempt gets its own client whose
// transport swaps the context in. The client structs are cheap; the
// connection pool lives in s.base and is shared.
func (s *Sender) attempt(ctx context.Context, to pii.Mobile, body string) (*twapi.ApiV2010Message, int, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel() // only after CreateMessage has read and closed the body

	tr := &attemptTransport{base: s.base, target: s.target, ctx: actx}
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(s.accountSID, s.authToken),
		HTTPClient: &http.Client{
			Transport: tr,
			// The timeout lives in actx; a Client.Timeout would be a second
			// deadline whose context the transport then overrides.
			// Redirects are not part of the Messages API: following one
			// would send the body somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	// With a custom client twilio-go takes the account from here only; left
	// empty, the path silently becomes /Accounts//Messages.json.
	c.SetAccountSid(s.accountSID)
	// A RequestHandler literal rather than NewRequestHandler, which reads
	// TWILIO_EDGE and TWILIO_REGION from the environment and would reshape
	// the host behind the configuration's back.
	api := twapi.NewApiService(&twclient.RequestHandler{Client: c})

	params := (&twapi.CreateMessageParams{}).SetTo(to.E164()).SetBody(body)
	if s.msgService != "" {
		params.SetMessagingServiceSid(s.msgService)
	} else {
		params.SetFrom(s.from)
	}
	msg, err := api.CreateMessage(params)
	return msg, tr.status, err
}

// attemptTransport sends each request to the configured scheme and host,
// under the attempt's context, and remembers the response status (twilio-go
// reports it only inside a JSON error body, which proxies do not send).
type attemptTransport struct {
	base   http.RoundTripper
	target *url.URL
	ctx    context.Context
	status int
}

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Clone, not mutate: a RoundTripper must leave the caller's request alone.
	r := req.Clone(t.ctx)
	r.URL.Scheme = t.target.Scheme
	r.URL.Host = t.target.Host
	r.URL.User = nil
	r.Host = "" // the Host header follows the rewritten URL
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	if resp.StatusCode >= http.StatusBadRequest {
		// twilio-go decodes error bodies but never closes them, which would
		// pin the connection; buffer a bounded copy and close the original.
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyLength))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	return resp, nil
}

// failure is a classified, loggable send error.
type failure struct {
	err    error // safe to log and return
	code   int   // Twilio error code, 0 if none
	status int   // HTTP status, 0 if no response
	retry  bool
}

// classify maps the outcome of one attempt. It never keeps the text of a
// Twilio error: Twilio's messages quote the destination number.
func (s *Sender) classify(err error, status int, scrub func(string) string) *failure {
	var (
		restErr *twclient.TwilioRestError
		v1Err   *twclient.RestErrorV1
		code    int
	)
	switch {
	case errors.As(err, &restErr):
		code = restErr.Code
		if status == 0 {
			status = restErr.Status
		}
	case errors.As(err, &v1Err):
		code = v1Err.Code
		if status == 0 {
			status = v1Err.HttpStatusCode
		}
	case status >= 200 && status < 300:
		// Twilio accepted the message; only its JSON answer was not
		// understood. Retrying would send the code twice.
		if err != nil {
			s.log.Warn("sms accepted but the response was not understood",
				slog.Int("http_status", status), slog.String("error", scrub(err.Error())))
		}
		return nil
	case status >= 300 && status < 400:
		return &failure{err: fmt.Errorf("%w: %w (unexpected redirect, HTTP %d)", otp.ErrPermanent, otp.ErrProvider, status), status: status}
	case err == nil:
		return nil
	case status == 0:
		// No response: a network error or the attempt's timeout.
		return &failure{err: fmt.Errorf("%w: %w", otp.ErrProvider, s.networkError(err, scrub)), retry: true}
	}

	detail := fmt.Sprintf("twilio error %d, HTTP %d", code, status)
	permanent := func(kind error) *failure {
		return &failure{err: fmt.Errorf("%w: %w (%s)", otp.ErrPermanent, kind, detail), code: code, status: status}
	}
	transient := func(kind error) *failure {
		return &failure{err: fmt.Errorf("%w (%s)", kind, detail), code: code, status: status, retry: true}
	}
	switch code {
	case codeInvalidTo:
		return permanent(otp.ErrInvalidTo)
	case codeUnsubscribed:
		return permanent(otp.ErrUnsubscribed)
	case codeNotReachable, codeNotSMSCapable, codeGeoPermission:
		return permanent(otp.ErrUnroutable)
	case codeAuth, codeBadUsername, codeBadPassword:
		return permanent(otp.ErrAuth)
	case codeTooManyReqs:
		return transient(otp.ErrRateLimited)
	}
	switch {
	case status == http.StatusUnauthorized:
		return permanent(otp.ErrAuth)
	case status == http.StatusTooManyRequests:
		return transient(otp.ErrRateLimited)
	case status == http.StatusRequestTimeout || status >= 500:
		return transient(otp.ErrProvider)
	default:
		// Any other 4xx: the request itself is wrong and will stay wrong.
		return permanent(otp.ErrProvider)
	}
}

// safeError carries a redacted message for an error from below (net/http,
// net) while keeping errors.Is/As working on the cause, e.g.
// context.DeadlineExceeded or *net.OpError.
type safeError struct {
	msg string
	err error
}

func (e *safeError) Error() string { return e.msg }
func (e *safeError) Unwrap() error { return e.err }

// networkError rewrites a transport failure. A *url.Error names the URL
// twilio-go built (api.twilio.com, account path), not the one we actually
// dialled, so it is replaced by the configured target, which has no path
// and no credentials; the cause is scrubbed as well.
func (s *Sender) networkError(err error, scrub func(string) string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &safeError{msg: ue.Op + " " + s.target.String() + ": " + scrub(ue.Err.Error()), err: ue.Err}
	}
	return &safeError{msg: scrub(err.Error()), err: err}
}

// scrubber returns a function that removes every secret this send knows of
// from a string, and any userinfo from URLs in it. It is a last line of
// defence: the messages it sees are built to be clean already.
func (s *Sender) scrubber(to pii.Mobile, body string) func(string) string {
	full := to.E164()
	pairs := []string{s.authToken, "<secret>"}
	if body != "" {
		pairs = append(pairs, body, "<body>")
	}
	pairs = append(pairs, full, to.String())
	if digits := strings.TrimPrefix(full, "+"); digits != full && len(digits) >= 6 {
		pairs = append(pairs, digits, to.String())
	}
	r := strings.NewReplacer(pairs...)
	return func(msg string) string { return stripUserinfo(r.Replace(msg)) }
}

// stripUserinfo removes "user:pass@" after every "scheme://" in s.
func stripUserinfo(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/?# \t\n\"'")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndex(s[:end], "@"); at >= 0 {
			s = s[at+1:]
		}
	}
}

// delay is the back-off before attempt+1: Backoff doubled per attempt,
// capped, with equal jitter so a burst of failed sends does not retry in
// lock-step.
func (s *Sender) delay(attempt int) time.Duration {
	d := s.backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
