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
// remembers of a user, the Sessions contract that keeps it, flood control),
// memsessions.go (Sessions within one process), commands.go (the one
// command table),
// private.go (the beneficiary's flow), group.go (helpdesk groups and
// staff), history.go, messages*.go (catalogues).
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	// IdleTTL forgets a conversation after this long without messages
	// (default an hour): an update whose session was last seen longer ago,
	// on Now, starts over.
	IdleTTL time.Duration
	// FloodPerMinute caps the messages one user may send per minute; past
	// it the user is told once to slow down and then ignored until the
	// minute is over. Default 20. Every update counts, ignored or not, in
	// a ulule/limiter fixed window (limiter.Rate{Period: time.Minute,
	// Limit: FloodPerMinute}) kept in FloodStore; the "told once" is kept
	// in the session (SessionState.FloodWarned).
	FloodPerMinute int
	// FloodStore counts FloodPerMinute's windows, keyed by the user's id
	// in decimal; share one between replicas, with Sessions, and the
	// limit holds across them. Nil is ulule's memory store: per process,
	// on the wall clock (not Now). When it fails, the update is not
	// limited (and the failure is logged).
	FloodStore limiter.Store
	// Sessions keeps each user's session and serialises their updates;
	// share one between replicas. Nil keeps sessions in this process,
	// retained for IdleTTL (at least a minute). What the engine does when
	// it fails is in Handle's documentation.
	Sessions Sessions
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

// Engine is safe for concurrent use. Updates of one user are handled one at
// a time across every engine that shares its Sessions, in the order the
// Sessions grants its hold (the in-process one: the order Handle is called).
type Engine struct {
	o          Options
	log        *slog.Logger
	sessions   Sessions
	flood      *limiter.Limiter
	staffUsers map[int64]string
	staffChats map[int64]bool
	releases   *prometheus.CounterVec
	floods     prometheus.Counter
}

// maxText bounds what the engine reads of a message; Telegram's own limit
// is 4096 characters.
const maxText = 4096

// New builds an engine. It does no I/O.
func New(o Options) (*Engine, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("bot: %w", err)
	}
	sessions := o.Sessions
	if sessions == nil {
		sessions = newMemSessions(max(o.IdleTTL, floodWindow), o.Now)
	}
	floodStore := o.FloodStore
	if floodStore == nil {
		floodStore = memory.NewStore()
	}
	f := promauto.With(o.Registerer)
	e := &Engine{o: o, log: o.Logger.With("component", "bot"), sessions: sessions,
		flood:      limiter.New(floodStore, limiter.Rate{Period: floodWindow, Limit: int64(o.FloodPerMinute)}),
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
//
// It holds the user's session (Sessions.Acquire) while it handles u and
// saves the new state as it lets go. When the session cannot be had (the
// storage fails, or ctx ends while another update of the user is being
// handled), the user is asked to try later: a button press is answered,
// a helpdesk group still has numbers typed into it deleted, and nothing
// else happens — no code is asked for or checked, nothing is remembered,
// the message is not counted against the flood limit.
//
// When the new state cannot be saved, the error is logged and the replies
// are still returned. They report what has already happened — a code sent,
// a grant minted and its release audited — and withholding them would undo
// none of it, only keep from the user what their code entitles them to.
// What is lost is the step: the user's next update finds the state before
// this one, so, for one, after a code whose grant was not remembered the
// record buttons say they have expired and the user asks for a new code.
// An unremembered grant is no leak: only its reference presents it, nobody
// else holds that, and it expires on its own. When a handler panics, the
// state saved is the one before it ran, with the update counted.
func (e *Engine) Handle(ctx context.Context, u Update) []Reply {
	st, release, err := e.acquire(ctx, u.UserID)
	if err != nil {
		e.log.Error("session unavailable", "err", err)
		return e.unavailable(ctx, u)
	}
	next, out := e.converse(ctx, u, st)
	// Save even when ctx is done: the update was handled.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := e.release(sctx, release, &next); err != nil {
		e.log.Error("session not saved", "err", err)
	}
	return out
}

// saveTimeout bounds the save at the end of an update.
const saveTimeout = 10 * time.Second

// converse handles u in the session st and returns the state to save and
// the replies.
func (e *Engine) converse(ctx context.Context, u Update, st SessionState) (next SessionState, out []Reply) {
	now := e.o.Now()
	st.normalize()
	if now.Sub(st.LastSeen) > e.o.IdleTTL {
		st = st.afterIdle()
	}
	st.LastSeen = now
	lang := st.language(u.Lang)
	c := &conv{e: e, s: &st, u: u, lang: lang, ctx: ctx}
	if c.flooding() {
		return st, c.out
	}
	counted := st
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("handler panicked", "panic", fmt.Sprint(p))
			next, out = counted, []Reply{{ChatID: u.ChatID, Text: text(lang, msgTryLater), AnswerCallback: callbackID(u)}}
		}
	}()
	c.handle()
	return st, c.out
}

// acquire is Sessions.Acquire with a panic of the implementation made an
// error, so that Handle keeps its promise never to panic out.
func (e *Engine) acquire(ctx context.Context, user int64) (st SessionState, release Release, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bot: sessions panicked: %v", p)
		}
	}()
	st, release, err = e.sessions.Acquire(ctx, user)
	if err == nil && release == nil {
		err = errors.New("bot: sessions returned no release")
	}
	return st, release, err
}

// release calls release, with a panic made an error.
func (e *Engine) release(ctx context.Context, release Release, next *SessionState) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bot: session release panicked: %v", p)
		}
	}()
	return release(ctx, next)
}

// unavailable answers u when its session cannot be had. It reads no state,
// asks neither the Gate nor the Records anything, and remembers nothing.
func (e *Engine) unavailable(ctx context.Context, u Update) []Reply {
	st := SessionState{}
	c := &conv{e: e, s: &st, u: u, lang: st.language(u.Lang), ctx: ctx}
	switch {
	case u.Callback != nil:
		c.say(msgTryLater).AnswerCallback = u.Callback.ID
	case u.ChatKind == ChatPrivate && !u.Edited:
		c.say(msgTryLater)
	case u.ChatKind == ChatGroup && e.staffChats[u.ChatID]:
		if _, _, isCmd := findCommand(u.Text); isCmd && !u.Edited && !u.Caption && !u.AddedToGroup {
			c.say(msgTryLater)
		}
		c.hygiene()
	}
	return c.out
}

// conv is one update being handled.
type conv struct {
	e    *Engine
	s    *SessionState
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
