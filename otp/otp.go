// Package otp issues and checks one-time codes: it decides whether a code
// may be sent (guess limits, anti-pumping caps, destination allowlist),
// sends it through an SMS Sender, and turns a correct code into a grant.
//
// Requests are enumeration-safe: Request returns at once with the same
// result — and a random request tag — whether the identifier exists, has no
// mobile, is limited or is locked; all the work, including the SMS, happens
// on a bounded pool of background workers. Every request stores a
// challenge: a real one, or a decoy that is counted, aged and rejected
// exactly like one but sends nothing. Every window lives in the store and is
// keyed by what the requester named, so nothing a requester can observe —
// its replies, whether its own phone still gets codes, the public metrics —
// depends on whether someone else's number is registered.
package otp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// Errors returned to callers.
var (
	// ErrCodeRejected covers every failed verification: wrong, expired,
	// used, absent or locked. Callers show one reply for all of them.
	ErrCodeRejected = errors.New("otp: code rejected")
	ErrClosed       = errors.New("otp: service closed")
	ErrBadOptions   = errors.New("otp: bad options")
)

// RejectedError tells logs and tests why a code was rejected. Its Outcome
// must not reach the chat user.
type RejectedError struct{ Outcome store.VerifyOutcome }

func (e *RejectedError) Error() string        { return "otp: code rejected: " + string(e.Outcome) }
func (e *RejectedError) Is(target error) bool { return target == ErrCodeRejected }

// Store is the part of the store the service uses.
type Store interface {
	Resolve(ctx context.Context, id pii.Identifier) (store.Target, error)
	LookupKey(id pii.Identifier) string
	Issue(ctx context.Context, p store.IssueParams) (store.Challenge, store.IssueOutcome, error)
	Verify(ctx context.Context, p store.VerifyParams) (store.Grant, store.VerifyOutcome, error)
	CancelChallenge(ctx context.Context, requester, purpose string) error
	Audit(ctx context.Context, entries ...store.AuditEntry) error
	SendWindows(ctx context.Context, global, prefix store.Limit) ([]store.SendWindow, error)
	LiftSendWindow(ctx context.Context, cap, rng, actor string) (bool, error)
	SubjectKey(label string) string
	RecallTag(ctx context.Context, who, lookup string, keep time.Duration, fresh string) (string, error)
}

var _ Store = (*store.Store)(nil)

// Policy holds every limit; DefaultPolicy gives SPEC §5's values.
type Policy struct {
	CodeLength             int
	CodeTTL                time.Duration
	MaxAttempts            int           // wrong codes per code
	ResendCooldown         time.Duration // per (mobile, requester)
	SendsPerMobileHour     int
	SendsPerMobileDay      int
	OwnerSendsPerHour      int         // reserved for a requester who proved the mobile (Telegram contact)
	WrongPerMobile         store.Limit // across all codes of a mobile
	WrongPerRequester      store.Limit // every rejected code of a chat user
	RequestsPerRequesterHr int
	StaffRequestsPerHour   int // a helpdesk agent looks up many callers
	SendsPerPrefixHour     int // velocity per number prefix (country + 5 digits)
	GlobalSendsPerHour     int
	Countries              []string // destination calling codes allowed
	GrantTTL               time.Duration
}

// DefaultPolicy returns the defaults of SPEC §5.
func DefaultPolicy() Policy {
	return Policy{
		CodeLength:             6,
		CodeTTL:                3 * time.Minute,
		MaxAttempts:            3,
		ResendCooldown:         60 * time.Second,
		SendsPerMobileHour:     5,
		SendsPerMobileDay:      10,
		OwnerSendsPerHour:      3,
		WrongPerMobile:         store.Limit{Max: 10, Period: time.Hour},
		WrongPerRequester:      store.Limit{Max: 10, Period: time.Hour},
		RequestsPerRequesterHr: 5,
		StaffRequestsPerHour:   60,
		SendsPerPrefixHour:     30,
		GlobalSendsPerHour:     600,
		Countries:              []string{"91"},
		GrantTTL:               10 * time.Minute,
	}
}

func (p Policy) validate() error {
	var errs []error
	if p.CodeLength < 6 || p.CodeLength > 10 {
		errs = append(errs, errors.New("CodeLength must be 6..10"))
	}
	if p.CodeTTL <= 0 || p.CodeTTL > 10*time.Minute {
		errs = append(errs, errors.New("CodeTTL must be in (0, 10m]"))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, errors.New("MaxAttempts must be ≥ 1"))
	}
	for name, n := range map[string]int{"SendsPerMobileHour": p.SendsPerMobileHour, "SendsPerMobileDay": p.SendsPerMobileDay,
		"OwnerSendsPerHour":  p.OwnerSendsPerHour,
		"WrongPerMobile.Max": p.WrongPerMobile.Max, "WrongPerRequester.Max": p.WrongPerRequester.Max,
		"RequestsPerRequesterHr": p.RequestsPerRequesterHr, "StaffRequestsPerHour": p.StaffRequestsPerHour, "SendsPerPrefixHour": p.SendsPerPrefixHour, "GlobalSendsPerHour": p.GlobalSendsPerHour} {
		if n < 1 {
			errs = append(errs, fmt.Errorf("%s must be ≥ 1", name))
		}
	}
	if p.WrongPerMobile.Period <= 0 || p.WrongPerRequester.Period <= 0 || p.GrantTTL <= 0 || p.ResendCooldown < 0 {
		errs = append(errs, errors.New("periods must be positive"))
	}
	if len(p.Countries) == 0 {
		errs = append(errs, errors.New("Countries is empty"))
	}
	return errors.Join(errs...)
}

// Options configure New.
type Options struct {
	Store     Store
	Sender    Sender
	CodeKey   []byte // HMAC key for codes at rest (internal/keys)
	Policy    Policy
	Templates Templates
	Logger    *slog.Logger
	Now       func() time.Time // clock; nil means time.Now
	// Registerer receives the public metrics: only series that read the
	// same whether or not a looked-up number is registered. Nil keeps them
	// private.
	Registerer prometheus.Registerer
	// OpsRegisterer receives the operator's metrics — codes sent, why codes
	// were not sent, verification outcomes, SMS errors, the send caps — that
	// would tell a scraper which lookups matched a record. Serve them only
	// behind the ops token. Nil keeps them private.
	OpsRegisterer prometheus.Registerer
	Workers       int // background senders; default 4
	Queue         int // pending requests; default 1024
	// Shared says replicas share the store (PostgreSQL): the tags shown
	// are remembered in the store, so that a repeated lookup landing on
	// another replica is shown the tag of the code already on its way, and
	// Request returns only once its code was stored and handed to the SMS
	// provider (or refused), so that a replica that dies leaves its chat
	// update unacknowledged, and Telegram delivers it again to another,
	// rather than a queued SMS lost with the process.
	Shared bool
}

func (o *Options) validate() error {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("Store is nil"))
	}
	if o.Sender == nil {
		errs = append(errs, errors.New("Sender is nil"))
	}
	if len(o.CodeKey) < 32 {
		errs = append(errs, errors.New("CodeKey must be 32 bytes"))
	}
	if o.Templates.t == nil {
		o.Templates = DefaultTemplates()
	}
	if err := o.Policy.validate(); err != nil {
		errs = append(errs, err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return nil
}

// Request asks for a code. Requester is a stable id of the chat user
// ("telegram:123"); Identifier names the records; Audience picks the field
// set and the SMS wording; Agent is the staff label for staff lookups.
type Request struct {
	Requester  string
	Identifier pii.Identifier
	Audience   store.Audience
	Agent      string
	Lang       string
	// ProvedByContact: the chat platform vouched that the mobile in
	// Identifier is the requester's own (Telegram: a shared contact whose
	// user id is the sender's). Such a request draws on a small reserved
	// budget nobody else can spend, and its code replaces the codes other
	// chats hold for the mobile. Only for a beneficiary looking up a mobile.
	ProvedByContact bool
}

// Service is safe for concurrent use. Close it to stop its workers.
type Service struct {
	store  Store
	sender Sender
	key    []byte
	pol    Policy
	tpl    Templates
	log    *slog.Logger
	now    func() time.Time
	m      *metrics
	tags   tagMemo
	shared bool

	mu      sync.RWMutex
	closed  bool
	queue   chan job
	pending counter // requests enqueued and not yet finished
	workers sync.WaitGroup
	stop    context.CancelFunc
	ctx     context.Context
}

type job struct {
	r   Request
	tag string
}

// New builds a service and starts its workers. It does no I/O.
func New(o Options) (*Service, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		store: o.Store, sender: o.Sender, key: o.CodeKey, pol: o.Policy, tpl: o.Templates,
		log:   o.Logger.With("component", "otp"),
		now:   o.Now,
		queue: make(chan job, o.Queue), shared: o.Shared,
		ctx: ctx, stop: cancel,
	}
	s.m = newMetrics(o.Registerer, o.OpsRegisterer, s.Caps)
	for range o.Workers {
		s.workers.Add(1)
		go s.work()
	}
	return s, nil
}

// Policy returns the limits in force.
func (s *Service) Policy() Policy { return s.pol }

// Request queues a code request and returns at once with the request's
// tag, the short label the SMS will carry (e.g. "KX42"), for the chat to
// show. Neither the tag nor the result depends on whether the identifier
// exists: every request gets a fresh random tag (a repeat of the same lookup
// inside the cooldown gets the tag of the code already on its way), and
// errors are returned only when the service is closed or the system's
// random source fails. A full queue drops the request (logged), exactly as
// a limit would.
func (s *Service) Request(ctx context.Context, r Request) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return "", ErrClosed
	}
	tag, err := s.tag(ctx, r)
	if err != nil {
		return "", err
	}
	s.pending.add()
	if s.shared {
		s.handle(job{r, tag})
		return tag, nil
	}
	select {
	case s.queue <- job{r, tag}:
	default:
		s.pending.done()
		s.log.Warn("code request dropped: queue full", "requester", s.subject(r.Requester))
	}
	return tag, nil
}

// tag is the tag to show for r: the one already shown for the same lookup
// inside the cooldown, else a fresh one (see tagMemo).
func (s *Service) tag(ctx context.Context, r Request) (string, error) {
	who, lookup, now := r.Requester+"\x00"+string(r.Audience), s.store.LookupKey(r.Identifier), s.now()
	if !s.shared || s.pol.ResendCooldown <= 0 {
		return s.tags.tag(who, lookup, now, s.pol.ResendCooldown)
	}
	fresh, err := newTag()
	if err != nil {
		return "", err
	}
	return s.store.RecallTag(ctx, who, lookup, s.pol.ResendCooldown+memoSlack, fresh)
}

// Idle blocks until every queued request has been handled (or ctx ends).
// Tests and the demo use it to wait for the SMS.
func (s *Service) Idle(ctx context.Context) error {
	select {
	case <-s.pending.zero():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// counter counts work in progress and tells when it is none. Unlike a
// WaitGroup it may be waited on while work is being added.
type counter struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0
}

func (c *counter) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.idle = make(chan struct{})
	}
	c.n++
}

func (c *counter) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.n == 0 {
		close(c.idle)
	}
}

// zero returns a channel that is closed when nothing is in progress.
func (c *counter) zero() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	return c.idle
}

// Close stops taking requests, lets the workers finish what is queued until
// ctx ends, then abandons the rest.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
		s.stop()
		return nil
	case <-ctx.Done():
		s.stop() // cancels in-flight sends
		<-done
		return ctx.Err()
	}
}

func (s *Service) work() {
	defer s.workers.Done()
	for j := range s.queue {
		s.handle(j)
	}
}

// handle runs one request to its end. A panic is contained: one bad request
// must not take the service down.
func (s *Service) handle(j job) {
	defer s.pending.done()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("code request panicked", "panic", fmt.Sprint(p))
		}
	}()
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	r := j.r
	log := s.log.With("requester", s.subject(r.Requester), "audience", r.Audience, "identifier", r.Identifier.Kind)
	if err := s.issueAndSend(ctx, r, j.tag, log); err != nil {
		log.Error("code request failed", "err", err)
	}
}

// Reasons a request gets a decoy whatever the limits say.
const (
	decoyNoTarget = "no_target"
	decoyCountry  = "country_not_allowed"
)

// issueAndSend stores a challenge for every request — a decoy when nothing
// is registered, the destination is not allowed or a limit refuses — and
// sends the SMS only for a real one. Every window is keyed by what the
// requester named (for a mobile, the same key whether or not it is
// registered), so the decoy is counted exactly as a real code would be.
func (s *Service) issueAndSend(ctx context.Context, r Request, tag string, log *slog.Logger) error {
	s.m.requested.Inc()
	lookup := s.store.LookupKey(r.Identifier)
	t, err := s.store.Resolve(ctx, r.Identifier)
	decoy := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		decoy = decoyNoTarget
		t = store.Target{MobileKey: lookup}
	case err != nil:
		return err
	}
	if decoy == "" && !slices.Contains(s.pol.Countries, pii.CountryCode(t.Mobile)) {
		// Counted like any other decoy: the destination of a lookup by
		// reference or ID number must not decide what reaches the shared
		// windows.
		decoy = decoyCountry
	}
	// The prefix window bounds what a pumping attack can direct at a number
	// range; it applies to numbers the requester typed. A lookup by
	// reference or ID number cannot choose its destination, and counting it
	// against the destination's range would tell the requester which range
	// the record's mobile is in.
	rng := ""
	if r.Identifier.Kind == pii.KindMobile {
		rng = prefix(r.Identifier.Mobile)
	}
	byOwner := r.ProvedByContact && r.Identifier.Kind == pii.KindMobile && r.Audience == store.AudienceBeneficiary
	log = log.With("mobile_key", t.MobileKey[:12])
	if decoy == "" {
		log = log.With("mobile", t.Mobile)
	}
	code, err := newCode(s.pol.CodeLength)
	if err != nil {
		return err
	}
	c := store.Challenge{
		ID: store.NewID(), Requester: r.Requester, Purpose: string(r.Audience), Audience: r.Audience,
		Agent: r.Agent, MobileKey: t.MobileKey, Records: t.Records, Lookup: lookup, Tag: tag,
		ExpiresAt: s.now().Add(s.pol.CodeTTL), MaxAttempts: s.pol.MaxAttempts,
	}
	c.MAC = s.codeMAC(c, code)
	requests := s.pol.RequestsPerRequesterHr
	if r.Audience == store.AudienceStaff {
		requests = s.pol.StaffRequestsPerHour
	}
	hour := func(n int) store.Limit { return store.Limit{Max: n, Period: time.Hour} }
	c, outcome, err := s.store.Issue(ctx, store.IssueParams{Challenge: c, Decoy: decoy, ByOwner: byOwner, Prefix: rng,
		Requests: hour(requests), Cooldown: s.pol.ResendCooldown,
		MobileHour: hour(s.pol.SendsPerMobileHour), MobileDay: store.Limit{Max: s.pol.SendsPerMobileDay, Period: 24 * time.Hour},
		OwnerSends: hour(s.pol.OwnerSendsPerHour), PrefixHour: hour(s.pol.SendsPerPrefixHour), Global: hour(s.pol.GlobalSendsPerHour),
		MobileWrong: s.pol.WrongPerMobile, RequesterWrong: s.pol.WrongPerRequester})
	if err != nil {
		return err
	}
	if outcome != store.IssueStored || c.Decoy {
		reason := string(outcome)
		if outcome == store.IssueStored {
			reason = decoy
		}
		log.Info("code not sent", "reason", reason, "by_owner", byOwner)
		s.m.notSent.WithLabelValues(reason).Inc()
		return nil
	}
	body, err := s.tpl.Render(r.Audience, r.Lang, SMSData{Code: string(code), Minutes: int(s.pol.CodeTTL.Round(time.Minute) / time.Minute), Agent: r.Agent, Tag: tag})
	if err != nil {
		return err
	}
	sent := store.AuditEntry{Requester: r.Requester, Agent: r.Agent, Audience: r.Audience, MobileKey: t.MobileKey, Records: t.Records}
	if err := s.sender.Send(ctx, t.Mobile, body); err != nil {
		log.Warn("code delivery failed", "err", err)
		sent.Event, sent.Outcome = store.EventDeliveryFailed, deliveryOutcome(err)
		s.m.smsErrors.WithLabelValues(sent.Outcome).Inc()
		return s.store.Audit(ctx, sent)
	}
	log.Info("code sent", "by_owner", byOwner)
	s.m.sent.Inc()
	s.m.nSent.Add(1)
	sent.Event = store.EventCodeSent
	return s.store.Audit(ctx, sent)
}

func deliveryOutcome(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrInvalidTo, "invalid_number"}, {ErrUnsubscribed, "unsubscribed"}, {ErrUnroutable, "unroutable"},
		{ErrAuth, "provider_auth"}, {ErrRateLimited, "provider_rate_limited"}, {ErrProvider, "provider_error"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "timeout"
	}
	return "error"
}

// prefix is the number range a pumping attack walks: the country code and
// the first five national digits.
func prefix(m pii.Mobile) string {
	e := m.E164()
	n := 1 + len(pii.CountryCode(m)) + 5
	if len(e) < n {
		return e
	}
	return e[:n]
}

// Verify checks code for the requester's pending challenge of audience. Any
// failure is ErrCodeRejected (as a *RejectedError) — wrong, expired, used,
// absent, a decoy, replaced by the owner's code, or locked — and counts
// against the requester whatever stood behind it; other errors mean the
// store failed and the caller should say "try again later". A nil error
// returns a grant bound to the requester, covering the records on the mobile
// the code went to.
func (s *Service) Verify(ctx context.Context, requester string, audience store.Audience, code pii.Code) (store.Grant, error) {
	return s.VerifyFor(ctx, requester, audience, code, "")
}

// VerifyFor is Verify for one lookup: when tag is set, only the code of
// the request that was given that tag is accepted (a helpdesk agent's
// one-time link carries its lookup's tag, so a later lookup's code cannot
// be entered through an earlier link). Any other code is rejected, and
// counted, like a wrong one.
func (s *Service) VerifyFor(ctx context.Context, requester string, audience store.Audience, code pii.Code, tag string) (store.Grant, error) {
	g, outcome, err := s.store.Verify(ctx, store.VerifyParams{
		Requester: requester, Purpose: string(audience),
		Match: func(c store.Challenge) bool {
			mac := hmac.Equal(s.codeMAC(c, code), c.MAC)
			return mac && (tag == "" || subtle.ConstantTimeCompare([]byte(c.Tag), []byte(tag)) == 1)
		},
		MobileWrong:    s.pol.WrongPerMobile,
		RequesterWrong: s.pol.WrongPerRequester,
		GrantTTL:       s.pol.GrantTTL,
	})
	if err != nil {
		return store.Grant{}, err
	}
	log := s.log.With("requester", s.subject(requester), "audience", audience)
	s.m.outcomes.WithLabelValues(string(outcome)).Inc()
	if outcome != store.VerifyOK {
		s.m.verified.WithLabelValues("rejected").Inc()
		log.Info("code rejected", "outcome", outcome)
		return store.Grant{}, &RejectedError{Outcome: outcome}
	}
	s.m.verified.WithLabelValues("verified").Inc()
	s.m.nVerified.Add(1)
	log.Info("code verified", "records", len(g.Records))
	return g, nil
}

// Caps returns the live shared send windows (the global one first, then
// every number range with codes this hour, fullest first), for operators.
func (s *Service) Caps(ctx context.Context) ([]store.SendWindow, error) {
	return s.store.SendWindows(ctx, store.Limit{Max: s.pol.GlobalSendsPerHour, Period: time.Hour},
		store.Limit{Max: s.pol.SendsPerPrefixHour, Period: time.Hour})
}

// LiftCap empties a shared send window now: store.CapGlobal, or
// store.CapPrefix with a number range as Caps shows it ("+9190000"; spaces
// and a missing "+" are accepted). actor names the operator in the audit
// entry. It reports whether a live window was lifted.
func (s *Service) LiftCap(ctx context.Context, cap, rng, actor string) (bool, error) {
	if cap == store.CapPrefix {
		var ok bool
		if rng, ok = normalRange(rng); !ok {
			return false, fmt.Errorf("%w: %q is not a number range such as +9190000", store.ErrUnknownCap, rng)
		}
	}
	lifted, err := s.store.LiftSendWindow(ctx, cap, rng, actor)
	if err != nil {
		return false, err
	}
	s.log.Warn("send cap lifted by an operator", "cap", cap, "range", rng, "was_live", lifted, "actor", actor)
	return lifted, nil
}

func normalRange(s string) (string, bool) {
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || (r == '+' && b.Len() == 1):
		default:
			return "", false
		}
	}
	n := b.Len() - 1
	return b.String(), n >= 2 && n <= 10
}

// Cancel abandons the requester's pending code for audience.
func (s *Service) Cancel(ctx context.Context, requester string, audience store.Audience) error {
	return s.store.CancelChallenge(ctx, requester, string(audience))
}

// codeMAC binds a code to its flow: the challenge id, requester, purpose and
// mobile are all inside the MAC, so a code is worthless anywhere else.
func (s *Service) codeMAC(c store.Challenge, code pii.Code) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, part := range []string{c.ID, c.Requester, c.Purpose, c.MobileKey, string(code)} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (s *Service) subject(requester string) string {
	k := s.store.SubjectKey(requester)
	if len(k) > 12 {
		return k[:12]
	}
	return k
}

// newCode draws n decimal digits uniformly from crypto/rand.
func newCode(n int) (pii.Code, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", fmt.Errorf("otp: random: %w", err)
	}
	return pii.Code(fmt.Sprintf("%0*d", n, v)), nil
}
