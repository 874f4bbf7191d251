// Package bot is the conversation engine: channel-agnostic, it turns an
// inbound Update (a chat message, a shared contact, a button press) into the
// Replies to send. Channel adapters — bot/telegram, bot/console — translate
// to and from their wire formats and never see a record except as the text
// of a Reply.
//
// The engine holds no record data: it asks the otp Gate for codes and
// grants, and the store's Records for views, presenting the grant each time.
//
// Files by concept: protocol.go (what adapters exchange with the engine),
// engine.go (options, the engine and its dependencies), session.go (what it
// remembers of a user, flood control), commands.go (the one command table),
// private.go (the beneficiary's flow), group.go (helpdesk groups and
// staff), history.go, messages*.go (catalogues).
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// Gate issues and checks codes. *otp.Service implements it.
type Gate interface {
	// Request queues a code request and returns the request tag to show.
	Request(ctx context.Context, r otp.Request) (string, error)
	// VerifyFor checks code; a non-empty tag accepts only the code of the
	// request with that tag (see otp.Service.VerifyFor).
	VerifyFor(ctx context.Context, requester string, audience store.Audience, code pii.Code, tag string) (store.Grant, error)
	Cancel(ctx context.Context, requester string, audience store.Audience) error
}

// Records releases what a grant allows, and keeps the one-time links that
// move a staff lookup into a private chat. *store.Store implements it.
type Records interface {
	Summaries(ctx context.Context, ref store.GrantRef) ([]store.Summary, error)
	Release(ctx context.Context, ref store.GrantRef, handle string) (store.View, error)
	History(ctx context.Context, ref store.GrantRef, limit int) ([]store.Access, error)
	EndGrant(ctx context.Context, ref store.GrantRef) error
	CreateLink(ctx context.Context, requester, tag string, ttl time.Duration) (string, error)
	RedeemLink(ctx context.Context, token, requester string) (tag string, err error)
}

var (
	_ Gate    = (*otp.Service)(nil)
	_ Records = (*store.Store)(nil)
)

// Certifier issues a signed vaccination proof for a record the grant
// covers. It must go through the store's grant-taking call (store.Certify),
// so there is no proof without a grant and none unaudited.
type Certifier interface {
	Certify(ctx context.Context, ref store.GrantRef, handle string) (Certificate, error)
}

// Certificate is an issued proof: its QR code and what the caption says.
type Certificate struct {
	PNG     []byte // the QR code
	Text    string // the proof text the QR code holds
	Status  store.Status
	Doses   int
	Expires time.Time
}

// Options configure New.
type Options struct {
	Gate    Gate
	Records Records
	// Certifier issues vaccination proofs; nil turns /certificate off.
	Certifier Certifier
	// Channel names the front end ("telegram", "console"); requester ids are
	// Channel + ":" + user id, so grants never cross channels.
	Channel string
	Logger  *slog.Logger
	Now     func() time.Time
	// CodeLength and CodeTTL are quoted in replies.
	CodeLength int
	CodeTTL    time.Duration
	// ReleaseTTL is how long a message with record fields stays in the chat.
	ReleaseTTL time.Duration
	// IdleTTL forgets a conversation after this long without messages.
	IdleTTL time.Duration
	// FloodPerMinute caps the messages one user may send per minute; past
	// it the user is told once to slow down and then ignored until the
	// minute is over. Default 20.
	FloodPerMinute int
	// StaffUsers may look records up on a caller's behalf, in StaffChats
	// (group chats) only, and always with the owner's code.
	StaffUsers map[int64]string // Telegram user id → the label beneficiaries see
	StaffChats []int64
	// Registerer receives the engine's metrics; nil keeps them private.
	Registerer prometheus.Registerer
}

func (o *Options) validate() error {
	var errs []error
	if o.Gate == nil {
		errs = append(errs, errors.New("Gate is nil"))
	}
	if o.Records == nil {
		errs = append(errs, errors.New("Records is nil"))
	}
	if o.Channel == "" || strings.Contains(o.Channel, ":") {
		errs = append(errs, errors.New("Channel must be a name without ':'"))
	}
	if o.CodeLength <= 0 || o.CodeTTL <= 0 || o.ReleaseTTL <= 0 {
		errs = append(errs, errors.New("CodeLength, CodeTTL and ReleaseTTL must be positive"))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = time.Hour
	}
	if o.FloodPerMinute <= 0 {
		o.FloodPerMinute = 20
	}
	return errors.Join(errs...)
}

// Engine is safe for concurrent use; updates of one user are handled one at
// a time, in the order Handle is called.
type Engine struct {
	o          Options
	log        *slog.Logger
	flood      *limiter.Limiter
	staffUsers map[int64]string
	staffChats map[int64]bool
	releases   *prometheus.CounterVec
	floods     prometheus.Counter

	mu       sync.Mutex
	sessions map[int64]*session
	swept    time.Time
}

// session is what the engine remembers of one chat user. It holds no record

// maxText bounds what the engine reads of a message; Telegram's own limit
// is 4096 characters.
const maxText = 4096

// New builds an engine. It does no I/O.
func New(o Options) (*Engine, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	flood := limiter.New(memory.NewStore(), limiter.Rate{Period: time.Minute, Limit: int64(o.FloodPerMinute)})
	f := promauto.With(o.Registerer)
	e := &Engine{o: o, log: o.Logger.With("component", "bot"), flood: flood, sessions: map[int64]*session{},
		staffUsers: map[int64]string{}, staffChats: map[int64]bool{},
		releases: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_releases_total",
			Help: "Messages that carried record fields, by audience and kind (list, record, history)."}, []string{"audience", "kind"}),
		floods: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_inbound_flood_total",
			Help: "Messages ignored because their sender exceeded the per-user rate."}),
	}
	for id, label := range o.StaffUsers {
		e.staffUsers[id] = label
	}
	for _, id := range o.StaffChats {
		e.staffChats[id] = true
	}
	return e, nil
}

// Handle processes one update and returns what to send. It never panics out:
// a failure becomes a polite reply.
func (e *Engine) Handle(ctx context.Context, u Update) (out []Reply) {
	s := e.session(u.UserID)
	s.mu.Lock()
	defer s.mu.Unlock()
	lang := s.language(u.Lang)
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("handler panicked", "panic", fmt.Sprint(p))
			out = []Reply{{ChatID: u.ChatID, Text: text(lang, msgTryLater), AnswerCallback: callbackID(u)}}
		}
	}()
	c := &conv{e: e, s: s, u: u, lang: lang, ctx: ctx}
	if c.flooding() {
		return c.out
	}
	c.handle()
	return c.out
}

// flooding applies the per-user message cap. Button presses are still

// conv is one update being handled.
type conv struct {
	e    *Engine
	s    *session
	u    Update
	lang string
	ctx  context.Context
	out  []Reply
}

func (c *conv) requester() string { return fmt.Sprintf("%s:%d", c.e.o.Channel, c.u.UserID) }

func (c *conv) say(m msg, args ...any) *Reply { return c.sayText(text(c.lang, m, args...)) }

// sayText queues a reply in this chat and returns it for the caller to
// dress (buttons, protection, deletions).
func (c *conv) sayText(s string) *Reply {
	c.out = append(c.out, Reply{ChatID: c.u.ChatID, Text: s})
	return &c.out[len(c.out)-1]
}

func (c *conv) handle() {
	u := c.u
	if u.Callback != nil {
		c.callback()
		return
	}
	switch u.ChatKind {
	case ChatChannel:
		return
	case ChatGroup:
		c.group()
		return
	}
	switch {
	case u.Edited:
		// An edit in a private chat is neither a new lookup nor a code;
		// answering it would only invite guessing by editing.
	case u.Contact != nil:
		c.contact()
	case u.Unsupported || u.Caption:
		c.say(msgTextOnly)
	case utf8.RuneCountInString(u.Text) > maxText || len(u.Text) > 4*maxText:
		c.say(msgTooLong)
	case strings.HasPrefix(strings.TrimSpace(u.Text), "/"):
		c.command()
	default:
		c.text()
	}
}

// command handles "/name args" (and "/name@botname args").

func minutes(d time.Duration) int { return int((d + 30*time.Second) / time.Minute) }
