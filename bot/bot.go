// Package bot is the conversation engine: channel-agnostic, it turns an
// inbound Update (a chat message, a shared contact, a button press) into the
// Replies to send. Channel adapters — bot/telegram, bot/console — translate
// to and from their wire formats and never see a record except as the text
// of a Reply.
//
// The engine holds no record data: it asks the otp Gate for codes and
// grants, and the store's Records for views, presenting the grant each time.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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

// ChatKind says where a message was written.
type ChatKind int

const (
	ChatPrivate ChatKind = iota
	ChatGroup
	ChatChannel
)

// Update is one inbound event. Exactly one of Text, Contact, Callback is
// meaningful; Unsupported marks anything else (stickers, photos, voice…).
type Update struct {
	ChatID    int64
	ChatKind  ChatKind
	UserID    int64
	Lang      string // the client's language code, e.g. "hi" or "en-GB"
	MessageID int
	Text      string
	Contact   *Contact
	Callback  *Callback
	Forwarded bool
	// Unsupported is set for messages the bot cannot read.
	Unsupported bool
	// AddedToGroup is set when the bot was added to the group ChatID.
	AddedToGroup bool
	// Edited marks an edited message: check it for personal data, never act
	// on it as a command or a code.
	Edited bool
	// Caption marks Text as the caption of a photo, document, video or other
	// file: check it for personal data, never act on it as a command or a
	// code.
	Caption bool
}

// Contact is a shared phone contact.
type Contact struct {
	Phone  string
	UserID int64 // the Telegram user the contact belongs to, 0 when unknown
}

// Callback is an inline-button press.
type Callback struct {
	ID   string
	Data string
}

// Reply is one thing to do in a chat.
type Reply struct {
	ChatID int64
	Text   string
	// Buttons is an inline keyboard, rows of buttons.
	Buttons [][]Button
	// ContactButton, when set, shows a one-time keyboard with a button so
	// labelled that shares the user's own phone number.
	ContactButton string
	// RemoveKeyboard hides a reply keyboard shown earlier.
	RemoveKeyboard bool
	// Sensitive marks a message that carries record fields: send it protected
	// from forwarding and saving, and delete it after DeleteAfter.
	Sensitive   bool
	DeleteAfter time.Duration
	// AnswerCallback, when set, is the ID of the callback query this reply
	// answers (every button press must be answered).
	AnswerCallback string
	// DeleteMessage, when non-zero, is an inbound message to delete (a code
	// the user typed).
	DeleteMessage int
	// LeaveChat asks the channel to leave ChatID after sending Text.
	LeaveChat bool
	// DeleteFailed, when set with DeleteMessage, is said in the chat (once
	// per chat) if the channel could not delete the message, e.g. because
	// the bot lacks the right in a group.
	DeleteFailed string
}

// Button is an inline-keyboard button: a callback (Data) or, when Start is
// set, a link that opens a private chat with the bot and sends it
// "/start <Start>" (a Telegram deep link).
type Button struct {
	Text  string
	Data  string // at most 64 bytes
	Start string
}

// Gate issues and checks codes. *otp.Service implements it.
type Gate interface {
	Request(ctx context.Context, r otp.Request) error
	Verify(ctx context.Context, requester string, audience store.Audience, code pii.Code) (store.Grant, error)
	Cancel(ctx context.Context, requester string, audience store.Audience) error
}

// Records releases what a grant allows, and keeps the one-time links that
// move a staff lookup into a private chat. *store.Store implements it.
type Records interface {
	Summaries(ctx context.Context, ref store.GrantRef) ([]store.Summary, error)
	Release(ctx context.Context, ref store.GrantRef, handle string) (store.View, error)
	History(ctx context.Context, ref store.GrantRef, limit int) ([]store.Access, error)
	EndGrant(ctx context.Context, ref store.GrantRef) error
	CreateLink(ctx context.Context, requester string, ttl time.Duration) (string, error)
	RedeemLink(ctx context.Context, token, requester string) error
}

var (
	_ Gate    = (*otp.Service)(nil)
	_ Records = (*store.Store)(nil)
)

// Options configure New.
type Options struct {
	Gate    Gate
	Records Records
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
	StaffUsers []int64
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
	staffUsers map[int64]bool
	staffChats map[int64]bool
	releases   *prometheus.CounterVec
	floods     prometheus.Counter

	mu       sync.Mutex
	sessions map[int64]*session
	swept    time.Time
}

// session is what the engine remembers of one chat user. It holds no record
// data: only where the conversation is and the grant to present.
type session struct {
	mu    sync.Mutex
	lang  string // chosen with /language; "" means follow the client
	state state
	grant store.GrantRef
	// grantAudience is the field set the grant releases, for metrics.
	grantAudience store.Audience
	lastSeen      time.Time
	warned        int64 // the flood window (its reset time) the user was last warned in
}

type state int

const (
	stateIdle state = iota
	stateAwaitMobile
	stateAwaitCode
	stateAwaitStaffCode // a staff member opened their one-time link
)

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
		staffUsers: map[int64]bool{}, staffChats: map[int64]bool{},
		releases: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_releases_total",
			Help: "Messages that carried record fields, by audience and kind (list, record, history)."}, []string{"audience", "kind"}),
		floods: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_inbound_flood_total",
			Help: "Messages ignored because their sender exceeded the per-user rate."}),
	}
	for _, id := range o.StaffUsers {
		e.staffUsers[id] = true
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
// answered (Telegram requires it), silently.
func (c *conv) flooding() bool {
	if c.u.UserID == 0 {
		return false
	}
	lc, err := c.e.flood.Get(c.ctx, strconv.FormatInt(c.u.UserID, 10))
	if err != nil || !lc.Reached {
		return false
	}
	c.e.floods.Inc()
	if c.s.warned != lc.Reset {
		c.s.warned = lc.Reset
		c.say(msgSlowDown)
	}
	if cb := c.u.Callback; cb != nil {
		if len(c.out) == 0 {
			c.out = append(c.out, Reply{ChatID: c.u.ChatID})
		}
		c.out[0].AnswerCallback = cb.ID
	}
	return true
}

func callbackID(u Update) string {
	if u.Callback != nil {
		return u.Callback.ID
	}
	return ""
}

func (e *Engine) session(user int64) *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.o.Now()
	if now.Sub(e.swept) > time.Minute {
		for id, s := range e.sessions {
			if s.mu.TryLock() {
				if now.Sub(s.lastSeen) > e.o.IdleTTL {
					delete(e.sessions, id)
				}
				s.mu.Unlock()
			}
		}
		e.swept = now
	}
	s := e.sessions[user]
	if s == nil {
		s = &session{}
		e.sessions[user] = s
	}
	s.lastSeen = now
	return s
}

func (s *session) language(client string) string {
	if s.lang != "" {
		return s.lang
	}
	base, _, _ := strings.Cut(strings.ToLower(client), "-")
	if _, ok := catalogue[base]; ok {
		return base
	}
	return "en"
}

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
	case u.Contact != nil:
		c.contact()
	case u.Unsupported:
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
func (c *conv) command() {
	name, arg, _ := strings.Cut(strings.TrimSpace(c.u.Text), " ")
	name, _, _ = strings.Cut(strings.ToLower(name), "@")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/start":
		if arg != "" {
			c.redeemLink(arg)
			return
		}
		c.say(msgStart)
	case "/history":
		c.history()
	case "/help":
		c.say(msgHelp)
	case "/privacy":
		c.say(msgPrivacy, minutes(c.e.o.CodeTTL), minutes(c.e.o.ReleaseTTL))
	case "/lookup":
		if arg == "" {
			c.s.state = stateAwaitMobile
			c.say(msgAskMobile).ContactButton = text(c.lang, msgShareButton)
			return
		}
		c.lookupMobile(arg)
	case "/cancel":
		if c.s.state == stateIdle {
			c.say(msgNothingToCancel)
			return
		}
		aud := store.AudienceBeneficiary
		if c.s.state == stateAwaitStaffCode {
			aud = store.AudienceStaff
		}
		if err := c.e.o.Gate.Cancel(c.ctx, c.requester(), aud); err != nil {
			c.e.log.Warn("cancel", "err", err)
		}
		c.s.state = stateIdle
		c.say(msgCancelled).RemoveKeyboard = true
	case "/logout":
		c.logout()
	case "/language":
		c.language(arg)
	default:
		c.say(msgUnknownCommand)
	}
}

// text handles a plain message: a code, a mobile, or neither.
func (c *conv) text() {
	t := c.u.Text
	if code, ok := pii.ParseCode(t, c.e.o.CodeLength); ok {
		aud := store.AudienceBeneficiary
		if c.s.state == stateAwaitStaffCode {
			aud = store.AudienceStaff
		}
		c.verify(code, aud)
		return
	}
	switch c.s.state {
	case stateAwaitMobile:
		c.lookupMobile(t)
	case stateAwaitCode, stateAwaitStaffCode:
		c.say(msgNotCode, c.e.o.CodeLength)
	default:
		if _, err := pii.ParseMobile(t); err == nil {
			c.lookupMobile(t)
			return
		}
		c.say(msgHelp)
	}
}

func (c *conv) contact() {
	ct := c.u.Contact
	// A user can attach anyone's contact card; only their own counts.
	if ct.UserID == 0 || ct.UserID != c.u.UserID {
		c.say(msgNotYourContact)
		return
	}
	c.lookupMobile(ct.Phone)
}

func (c *conv) lookupMobile(input string) {
	m, err := pii.ParseMobile(input)
	if err != nil {
		c.s.state = stateAwaitMobile
		c.say(msgNotMobile)
		return
	}
	err = c.e.o.Gate.Request(c.ctx, otp.Request{
		Requester:  c.requester(),
		Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: m},
		Audience:   store.AudienceBeneficiary,
		Lang:       c.lang,
	})
	if err != nil {
		c.e.log.Error("code request", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.state = stateAwaitCode
	r := c.say(msgCodeSent, c.e.o.CodeLength, minutes(c.e.o.CodeTTL))
	r.RemoveKeyboard = true
}

func (c *conv) verify(code pii.Code, aud store.Audience) {
	g, err := c.e.o.Gate.Verify(c.ctx, c.requester(), aud, code)
	switch {
	case errors.Is(err, otp.ErrCodeRejected):
		c.say(msgCodeRejected).DeleteMessage = c.u.MessageID
		return
	case err != nil:
		c.e.log.Error("verify", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.state = stateIdle
	c.s.grant, c.s.grantAudience = g.Ref(), g.Audience
	sums, err := c.e.o.Records.Summaries(c.ctx, c.s.grant)
	if err != nil {
		c.e.log.Error("summaries", "err", err)
		c.say(msgTryLater).DeleteMessage = c.u.MessageID
		return
	}
	switch len(sums) {
	case 0:
		c.say(msgNoRecords).DeleteMessage = c.u.MessageID
	case 1:
		c.release(sums[0].Handle)
		c.out[0].DeleteMessage = c.u.MessageID
	default:
		c.e.releases.WithLabelValues(string(g.Audience), "list").Inc()
		r := c.say(msgChoose)
		r.DeleteMessage = c.u.MessageID
		r.Sensitive, r.DeleteAfter = true, c.e.o.ReleaseTTL // names are record fields
		for _, s := range sums {
			r.Buttons = append(r.Buttons, []Button{{Text: s.Name + " · …" + s.RefLast4, Data: "r:" + s.Handle}})
		}
	}
}

func (c *conv) release(handle string) {
	v, err := c.e.o.Records.Release(c.ctx, c.s.grant, handle)
	switch {
	case errors.Is(err, store.ErrNoGrant):
		c.s.grant = store.GrantRef{}
		c.say(msgSessionEnded)
		return
	case err != nil:
		c.e.log.Error("release", "err", err)
		c.say(msgTryLater)
		return
	}
	c.e.releases.WithLabelValues(string(c.s.grantAudience), "record").Inc()
	c.out = append(c.out, Reply{
		ChatID: c.u.ChatID, Text: renderView(c.lang, v, minutes(c.e.o.ReleaseTTL)),
		Sensitive: true, DeleteAfter: c.e.o.ReleaseTTL,
	})
}

func (c *conv) callback() {
	cb := c.u.Callback
	data := cb.Data
	n := len(c.out)
	switch {
	case strings.HasPrefix(data, "r:") && c.u.ChatKind == ChatPrivate:
		if c.s.grant.ID == "" {
			c.say(msgStaleButton)
			break
		}
		c.release(strings.TrimPrefix(data, "r:"))
	case strings.HasPrefix(data, "lang:"):
		c.setLanguage(strings.TrimPrefix(data, "lang:"))
	default:
		c.say(msgStaleButton)
	}
	if len(c.out) == n {
		c.out = append(c.out, Reply{ChatID: c.u.ChatID})
	}
	c.out[n].AnswerCallback = cb.ID
}

func (c *conv) logout() {
	if c.s.grant.ID == "" {
		c.say(msgNoSession)
		return
	}
	if err := c.e.o.Records.EndGrant(c.ctx, c.s.grant); err != nil {
		c.e.log.Error("end grant", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.grant = store.GrantRef{}
	c.s.state = stateIdle
	c.say(msgLoggedOut)
}

func (c *conv) language(arg string) {
	if arg != "" {
		c.setLanguage(strings.ToLower(arg))
		return
	}
	r := c.say(msgLanguageAsk)
	for _, l := range languages {
		r.Buttons = append(r.Buttons, []Button{{Text: l.Name, Data: "lang:" + l.Code}})
	}
}

func (c *conv) setLanguage(code string) {
	for _, l := range languages {
		if l.Code == code || strings.EqualFold(l.Name, code) {
			c.s.lang, c.lang = l.Code, l.Code
			c.say(msgLanguageSet)
			return
		}
	}
	c.language("")
}

func minutes(d time.Duration) int { return int((d + 30*time.Second) / time.Minute) }

// Command is an entry of the chat's command menu.
type Command struct {
	Name        string // without the slash
	Description string
}

// Commands returns the command menu in lang, for the channel to register.
func Commands(lang string) []Command {
	return []Command{
		{"lookup", text(lang, msgMenuLookup)},
		{"history", text(lang, msgMenuHistory)},
		{"logout", text(lang, msgMenuLogout)},
		{"cancel", text(lang, msgMenuCancel)},
		{"language", text(lang, msgMenuLanguage)},
		{"privacy", text(lang, msgMenuPrivacy)},
		{"help", text(lang, msgMenuHelp)},
	}
}

// Languages returns the language codes the bot speaks.
func Languages() []string {
	out := make([]string, len(languages))
	for i, l := range languages {
		out[i] = l.Code
	}
	return out
}
