package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/sessiontest"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
)

func TestSharedSessionsConform(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T, c sessiontest.Config) bot.Sessions {
		return newSharedSessions(c.Retention, c.Now)
	})
}

// sharedSessions stands in for the store every replica shares: it keeps a
// user's state only as the JSON of the last save, so what one engine saved
// is all that another reads, and nothing survives that JSON does not carry.
type sharedSessions struct {
	retention time.Duration
	now       func() time.Time

	mu   sync.Mutex
	rows map[int64]*sharedRow
}

type sharedRow struct {
	lock  chan struct{} // one token while the row is free
	data  []byte        // guarded by sharedSessions.mu, as is saved
	saved time.Time
}

var _ bot.Sessions = (*sharedSessions)(nil)

func newSharedSessions(retention time.Duration, now func() time.Time) *sharedSessions {
	return &sharedSessions{retention: retention, now: now, rows: map[int64]*sharedRow{}}
}

func (s *sharedSessions) Acquire(ctx context.Context, user int64) (bot.SessionState, bot.Release, error) {
	s.mu.Lock()
	r := s.rows[user]
	if r == nil {
		r = &sharedRow{lock: make(chan struct{}, 1)}
		r.lock <- struct{}{}
		s.rows[user] = r
	}
	s.mu.Unlock()
	select {
	case <-r.lock:
	case <-ctx.Done():
		return bot.SessionState{}, nil, fmt.Errorf("shared sessions: %w", ctx.Err())
	}
	var st bot.SessionState
	s.mu.Lock()
	data, fresh := r.data, s.now().Sub(r.saved) <= s.retention
	s.mu.Unlock()
	if data != nil && fresh {
		if err := json.Unmarshal(data, &st); err != nil {
			r.lock <- struct{}{}
			return bot.SessionState{}, nil, err
		}
	}
	var done atomic.Bool
	release := func(_ context.Context, next *bot.SessionState) error {
		if !done.CompareAndSwap(false, true) {
			return errors.New("shared sessions: released twice")
		}
		defer func() { r.lock <- struct{}{} }()
		if next == nil {
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		s.mu.Lock()
		r.data, r.saved = b, s.now()
		s.mu.Unlock()
		return nil
	}
	return st, release, nil
}

// dump is every stored row, as the storage would hold it.
func (s *sharedSessions) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for id, r := range s.rows {
		fmt.Fprintf(&b, "%d: %s\n", id, r.data)
	}
	return b.String()
}

// state reads user's state as the next handler would.
func (s *sharedSessions) state(t *testing.T, user int64) bot.SessionState {
	t.Helper()
	st, release, err := s.Acquire(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if err := release(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// floodCount is how many updates of user the shared FloodStore counted in
// the window running now (the engine keys it by the user's id).
func floodCount(t *testing.T, flood limiter.Store, user int64) int64 {
	t.Helper()
	const huge = 1 << 40 // a limit never reached: Remaining tells the count
	lc, err := flood.Peek(context.Background(), strconv.FormatInt(user, 10), limiter.Rate{Period: time.Minute, Limit: huge})
	if err != nil {
		t.Fatal(err)
	}
	return huge - lc.Remaining
}

// replicas are two engines over one store, one code service, one shared
// Sessions and one FloodStore: two `otpgate serve` processes behind a load
// balancer, as far as the conversation engine can tell. The FloodStore is
// ulule's memory store, shared by the two engines, standing in for the
// store's shared one (which internal/app tests over the real store): it
// runs on the wall clock, not clk.
type replicas struct {
	a      *apptest.App
	eng    [2]*bot.Engine
	shared *sharedSessions
	flood  limiter.Store
	clk    *apptest.Clock
}

func newReplicas(t *testing.T, flood int, sessions func(bot.Sessions) bot.Sessions) *replicas {
	t.Helper()
	return newReplicasFlood(t, flood, sessions, memory.NewStore())
}

// newReplicasFlood is newReplicas with floodStore as the engines' FloodStore.
func newReplicasFlood(t *testing.T, flood int, sessions func(bot.Sessions) bot.Sessions, floodStore limiter.Store) *replicas {
	t.Helper()
	clk := apptest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	a := apptest.New(t, apptest.Options{Lenient: true, Deps: app.Deps{Now: clk.Now}, Config: func(c *config.Config) {
		c.StaffUsers, c.StaffChats = config.StaffUsers{{ID: agent, Label: "desk 7"}}, []int64{helpdesk}
	}})
	a.Import(t, people...)
	r := &replicas{a: a, shared: newSharedSessions(time.Hour, clk.Now), flood: floodStore, clk: clk}
	var s bot.Sessions = r.shared
	if sessions != nil {
		s = sessions(s)
	}
	for i := range r.eng {
		var err error
		r.eng[i], err = bot.New(bot.Options{Gate: a.OTP, Records: a.Store, Channel: string(app.ChannelConsole), Logger: a.Log, Now: clk.Now,
			CodeLength: a.OTP.Policy().CodeLength, CodeTTL: a.Config.OTPTTL, ReleaseTTL: a.Config.ReleaseDeleteAfter,
			FloodPerMinute: flood, StaffUsers: a.Config.StaffUsers.Labels(), StaffChats: a.Config.StaffChats, Sessions: s, FloodStore: r.flood})
		if err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// on handles u (a private message from user when ChatID is unset) on
// replica i and waits for the SMS it queued.
func (r *replicas) on(t *testing.T, i int, user int64, u bot.Update) []bot.Reply {
	t.Helper()
	if u.ChatID == 0 {
		u.ChatID, u.ChatKind = user, bot.ChatPrivate
	}
	u.UserID, u.MessageID = user, 7
	out := r.eng[i].Handle(context.Background(), u)
	r.a.Idle(t)
	return out
}

func (r *replicas) say(t *testing.T, i int, user int64, text string) string {
	t.Helper()
	return joined(r.on(t, i, user, bot.Update{Text: text}))
}

func (r *replicas) press(t *testing.T, i int, user int64, data string) []bot.Reply {
	t.Helper()
	return r.on(t, i, user, bot.Update{Callback: &bot.Callback{ID: "cb", Data: data}})
}

// noPII fails the test if the shared store holds anything the user typed
// or any record field.
func (r *replicas) noPII(t *testing.T, secrets ...string) {
	t.Helper()
	rows := r.shared.dump()
	for _, p := range people {
		secrets = append(secrets, p.Name, p.Ref, p.ID, p.Mobile)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(rows, s) {
			t.Fatalf("the shared sessions hold %q:\n%s", s, rows)
		}
	}
}

// TestReplicasShareAFlow: a beneficiary whose every message lands on the
// other replica goes from /lookup to the record and out again; each step
// is one only the state saved by the other replica explains.
func TestReplicasShareAFlow(t *testing.T) {
	r := newReplicas(t, 1000, nil)
	const user = 1
	if out := r.on(t, 0, user, bot.Update{Text: "/lookup"}); len(out) != 1 || out[0].ContactButton == "" {
		t.Fatalf("/lookup: %+v", out)
	}
	// Awaiting a mobile (replica 0's step): not help, but a hint.
	if out := r.say(t, 1, user, "call me maybe"); !strings.Contains(out, "doesn't look like a mobile") {
		t.Fatalf("replica 1 did not know a mobile was awaited: %q", out)
	}
	if out := r.say(t, 0, user, "९०००० ००२०१"); !strings.Contains(out, "code has been sent") {
		t.Fatalf("the mobile: %q", out)
	}
	code := r.a.Phone.Code("9000000201")
	if code == "" {
		t.Fatal("no SMS")
	}
	r.noPII(t, code, "९०००० ००२०१")
	// Awaiting a code (replica 0's step): not help, but a reminder.
	if out := r.say(t, 1, user, "hello"); !strings.Contains(out, "reply with the 6-digit code") {
		t.Fatalf("replica 1 did not know a code was awaited: %q", out)
	}
	out := r.on(t, 1, user, bot.Update{Text: code})
	if len(out) != 1 || len(out[0].Buttons) != 2 {
		t.Fatalf("the code on replica 1: want a chooser of 2, got %s", joined(out))
	}
	if st := r.shared.state(t, user); st.Grant.ID == "" || st.State != bot.ConvIdle {
		t.Fatalf("after the code the shared state is %+v, want a grant", st)
	}
	// The grant replica 1 saved releases the record on replica 0.
	rel := r.press(t, 0, user, out[0].Buttons[1][0].Data)
	if len(rel) != 1 || !rel[0].Sensitive || !strings.Contains(rel[0].Text, "Raju Prasad") || rel[0].AnswerCallback != "cb" {
		t.Fatalf("the button on replica 0: %+v", rel)
	}
	if out := r.say(t, 1, user, "/history"); !strings.Contains(out, "Who has seen") {
		t.Fatalf("/history on replica 1: %q", out)
	}
	r.noPII(t, code)
	if out := r.say(t, 0, user, "/logout"); !strings.Contains(out, "signed out") {
		t.Fatalf("/logout on replica 0: %q", out)
	}
	// Signed out on replica 0 is signed out on replica 1.
	if out := joined(r.press(t, 1, user, out[0].Buttons[0][0].Data)); strings.Contains(out, "Sunita") || !strings.Contains(out, "expired") {
		t.Fatalf("a button after /logout elsewhere: %q", out)
	}
	r.noPII(t, code)
}

// TestReplicasShareAStaffLookup: the lookup in the group on one replica,
// the one-time link on the other, the code back on the first.
func TestReplicasShareAStaffLookup(t *testing.T) {
	r := newReplicas(t, 1000, nil)
	out := r.on(t, 0, agent, bot.Update{ChatID: helpdesk, ChatKind: bot.ChatGroup, Text: "/lookup 9000000202"})
	token := ""
	for _, rep := range out {
		for _, row := range rep.Buttons {
			for _, b := range row {
				token = b.Start
			}
		}
	}
	if token == "" {
		t.Fatalf("no link: %+v", out)
	}
	if out := r.say(t, 1, agent, "/start "+token); !strings.Contains(out, "code the person read out") {
		t.Fatalf("the link on replica 1: %q", out)
	}
	if out := r.say(t, 0, agent, r.a.Phone.Code("9000000202")); !strings.Contains(out, "Farah Khan") {
		t.Fatalf("the staff code on replica 0: %q", out)
	}
	if st := r.shared.state(t, agent); st.GrantAudience != "staff" {
		t.Fatalf("shared state %+v, want a staff grant", st)
	}
}

// TestReplicasShareTheFloodLimit: FloodPerMinute counts a user's messages
// on every replica together, in the one FloodStore; the warning comes once
// per window, wherever the user is, because it is kept in the shared
// session.
func TestReplicasShareTheFloodLimit(t *testing.T) {
	r := newReplicas(t, 5, nil)
	for i := range 9 {
		out := r.say(t, i%2, 1, "/help")
		switch {
		case i < 5 && !strings.Contains(out, "Commands:"):
			t.Fatalf("message %d within the cap: %q", i, out)
		case i == 5 && !strings.Contains(out, "too fast"):
			t.Fatalf("first message past the cap should be told to slow down: %q", out)
		case i > 5 && out != "":
			t.Fatalf("message %d past the cap should get silence: %q", i, out)
		}
	}
	if out := r.press(t, 1, 1, "lang:hi"); len(out) != 1 || out[0].AnswerCallback != "cb" || out[0].Text != "" {
		t.Fatalf("callback past the cap: %+v", out)
	}
	if n := floodCount(t, r.flood, 1); n != 10 {
		t.Fatalf("the shared FloodStore counted %d updates of 10 (ignored ones count too)", n)
	}
	if st := r.shared.state(t, 1); st.FloodWarned == 0 {
		t.Fatalf("shared state %+v: the warning is not remembered", st)
	}
	if out := r.say(t, 0, 2, "/help"); !strings.Contains(out, "Commands:") {
		t.Fatalf("another user: %q", out)
	}
	// The window ends (ulule's memory store runs on the wall clock, so a
	// reset stands in for the minute passing): both replicas answer again.
	if _, err := r.flood.Reset(context.Background(), "1", limiter.Rate{Period: time.Minute, Limit: 5}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if out := r.say(t, i, 1, "/help"); !strings.Contains(out, "Commands:") {
			t.Fatalf("replica %d after the window: %q", i, out)
		}
	}
}

// downFlood is a FloodStore whose storage is unreachable.
type downFlood struct{ limiter.Store }

func (downFlood) Get(context.Context, string, limiter.Rate) (limiter.Context, error) {
	return limiter.Context{}, errDown
}

// TestFloodStoreUnavailable: when the FloodStore fails, the user is not
// limited (the limit is a courtesy; codes have the store's own), and the
// failure is logged.
func TestFloodStoreUnavailable(t *testing.T) {
	r := newReplicasFlood(t, 2, nil, downFlood{})
	for i := range 4 {
		if out := r.say(t, i%2, 1, "/help"); !strings.Contains(out, "Commands:") {
			t.Fatalf("message %d with the FloodStore down: %q", i, out)
		}
	}
	if !strings.Contains(r.a.Logs.String(), "flood limit unavailable") {
		t.Error("no log line")
	}
}

// TestReplicasShareTheLanguage: /language on one replica, answers in it
// on the other, whatever the client says.
func TestReplicasShareTheLanguage(t *testing.T) {
	r := newReplicas(t, 1000, nil)
	devanagari := regexp.MustCompile(`\p{Devanagari}`)
	r.on(t, 0, 5, bot.Update{Lang: "en", Text: "/language hi"})
	if out := joined(r.on(t, 1, 5, bot.Update{Lang: "en", Text: "/start"})); !devanagari.MatchString(out) {
		t.Fatalf("/language hi on replica 0, /start on replica 1: %q", out)
	}
	r.on(t, 1, 5, bot.Update{Lang: "hi", Callback: &bot.Callback{ID: "cb", Data: "lang:en"}})
	if out := joined(r.on(t, 0, 5, bot.Update{Lang: "hi", Text: "/start"})); !strings.Contains(out, "Hello") {
		t.Fatalf("English chosen on replica 1, /start on replica 0: %q", out)
	}
}

// TestReplicasHandleAUserOneAtATime: one user's updates arriving on both
// replicas at once are handled one at a time, each counted once against
// the flood limit while its handler holds the session — so that the
// count and the warning it decides on never race.
func TestReplicasHandleAUserOneAtATime(t *testing.T) {
	var h *holdCheck
	r := newReplicas(t, 1000, func(s bot.Sessions) bot.Sessions { h = &holdCheck{Sessions: s}; return h })
	h.t, h.flood = t, r.flood
	const perReplica = 20
	var wg sync.WaitGroup
	for i := range r.eng {
		for range perReplica {
			wg.Go(func() { r.eng[i].Handle(context.Background(), bot.Update{ChatID: 3, UserID: 3, Text: "/privacy"}) })
		}
	}
	wg.Wait()
	if n := floodCount(t, r.flood, 3); n != 2*perReplica {
		t.Fatalf("%d messages counted of %d", n, 2*perReplica)
	}
	if n := h.holds.Load(); n != 2*perReplica {
		t.Fatalf("%d holds for %d updates", n, 2*perReplica)
	}
}

// holdCheck fails the test when a hold overlaps another, or when its
// holder counted anything but exactly one update against the flood limit
// while it held the session.
type holdCheck struct {
	bot.Sessions
	t      *testing.T
	flood  limiter.Store
	inside atomic.Int32
	holds  atomic.Int32
}

func (h *holdCheck) Acquire(ctx context.Context, user int64) (bot.SessionState, bot.Release, error) {
	st, release, err := h.Sessions.Acquire(ctx, user)
	if err != nil {
		return st, release, err
	}
	if h.inside.Add(1) > 1 {
		h.t.Error("two handlers held one user's session")
	}
	h.holds.Add(1)
	before := floodCount(h.t, h.flood, user)
	return st, func(ctx context.Context, next *bot.SessionState) error {
		if n := floodCount(h.t, h.flood, user) - before; n != 1 {
			h.t.Errorf("%d updates counted during one hold, want 1", n)
		}
		h.inside.Add(-1)
		return release(ctx, next)
	}, nil
}

// faultySessions fails on demand: Acquire, or the save (the hold still
// ends, nothing is saved).
type faultySessions struct {
	bot.Sessions
	acquire, save atomic.Bool
}

var errDown = errors.New("sessions: storage unreachable")

func (f *faultySessions) Acquire(ctx context.Context, user int64) (bot.SessionState, bot.Release, error) {
	if f.acquire.Load() {
		return bot.SessionState{}, nil, errDown
	}
	st, release, err := f.Sessions.Acquire(ctx, user)
	if err != nil {
		return st, release, err
	}
	return st, func(ctx context.Context, next *bot.SessionState) error {
		if f.save.Load() {
			if err := release(ctx, nil); err != nil {
				return err
			}
			return errDown
		}
		return release(ctx, next)
	}, nil
}

// TestSessionsUnavailable: without its session the engine asks the user to
// try later and does nothing else — no SMS, no state — but still answers
// buttons and cleans up a helpdesk group.
func TestSessionsUnavailable(t *testing.T) {
	var f *faultySessions
	r := newReplicas(t, 1000, func(s bot.Sessions) bot.Sessions { f = &faultySessions{Sessions: s}; return f })
	r.say(t, 0, 1, "/lookup")
	f.acquire.Store(true)
	if out := r.say(t, 1, 1, "9000000201"); !strings.Contains(out, "try again") {
		t.Fatalf("a mobile without a session: %q", out)
	}
	if n := r.a.Phone.Count(); n != 0 {
		t.Fatalf("%d SMS sent without a session", n)
	}
	if out := r.press(t, 0, 1, "lang:hi"); len(out) != 1 || out[0].AnswerCallback != "cb" || !strings.Contains(out[0].Text, "try again") {
		t.Fatalf("a button without a session: %+v", out)
	}
	out := r.on(t, 1, 9, bot.Update{ChatID: helpdesk, ChatKind: bot.ChatGroup, Text: "her number is 98765 43210"})
	if len(out) != 1 || out[0].DeleteMessage != 7 {
		t.Fatalf("a mobile typed into the helpdesk group without a session: %+v", out)
	}
	if out := r.on(t, 0, 9, bot.Update{ChatID: helpdesk, ChatKind: bot.ChatGroup, Text: "thanks all"}); len(out) != 0 {
		t.Fatalf("chatter in the group without a session: %+v", out)
	}
	if out := r.on(t, 0, 1, bot.Update{Text: "9000000201", Edited: true}); len(out) != 0 {
		t.Fatalf("an edit without a session: %+v", out)
	}
	if !strings.Contains(r.a.Logs.String(), "session unavailable") {
		t.Error("no log line")
	}
	// Back: the state is as the outage found it (awaiting a mobile), the
	// button press not remembered.
	f.acquire.Store(false)
	if out := r.say(t, 0, 1, "call me maybe"); !strings.Contains(out, "doesn't look like a mobile") {
		t.Fatalf("after the outage: %q", out)
	}
	if st := r.shared.state(t, 1); st.Lang != "" {
		t.Fatalf("after the outage the state is %+v: the outage changed it", st)
	}
	if n := floodCount(t, r.flood, 1); n != 2 {
		t.Fatalf("%d updates counted against the flood limit, want 2: the outage's were counted", n)
	}
}

// TestSessionNotSaved: when the save fails the replies still go — the code
// was checked and the release audited — and the next update finds the
// state before: the grant not remembered, the user verifies again.
func TestSessionNotSaved(t *testing.T) {
	var f *faultySessions
	r := newReplicas(t, 1000, func(s bot.Sessions) bot.Sessions { f = &faultySessions{Sessions: s}; return f })
	r.say(t, 0, 1, "/lookup 9000000202")
	f.save.Store(true)
	if out := r.say(t, 1, 1, r.a.Phone.Code("9000000202")); !strings.Contains(out, "Farah Khan") {
		t.Fatalf("the code, not saved: %q", out)
	}
	if !strings.Contains(r.a.Logs.String(), "session not saved") {
		t.Error("no log line")
	}
	f.save.Store(false)
	if st := r.shared.state(t, 1); st.Grant.ID != "" {
		t.Fatalf("state %+v: a save that failed was kept", st)
	}
	if out := r.say(t, 0, 1, "/history"); !strings.Contains(out, "/lookup") || strings.Contains(out, "Who has seen") {
		t.Fatalf("/history after the unsaved grant: %q", out)
	}
	r.say(t, 0, 1, "/lookup 9000000202")
	if out := r.say(t, 1, 1, r.a.Phone.Code("9000000202")); !strings.Contains(out, "Farah Khan") {
		t.Fatalf("verifying again: %q", out)
	}
	if out := r.say(t, 0, 1, "/history"); !strings.Contains(out, "Who has seen") {
		t.Fatalf("/history after verifying again: %q", out)
	}
}

// TestIdleConversationStartsOver: with the in-process sessions, a
// conversation idle past IdleTTL (an hour) is forgotten, and one within it
// is not.
func TestIdleConversationStartsOver(t *testing.T) {
	clk := apptest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	a := apptest.New(t, apptest.Options{Lenient: true, Deps: app.Deps{Now: clk.Now}})
	send := func(text string) string {
		return joined(a.Engine.Handle(context.Background(), bot.Update{ChatID: 1, UserID: 1, ChatKind: bot.ChatPrivate, Text: text}))
	}
	send("/language hi")
	send("/lookup")
	clk.Add(time.Hour)
	if out := send("call me maybe"); !regexp.MustCompile(`\p{Devanagari}`).MatchString(out) {
		t.Fatalf("an hour later: %q", out)
	}
	clk.Add(time.Hour + time.Second)
	if out := send("call me maybe"); !strings.Contains(out, "Commands:") {
		t.Fatalf("idle past the hour, want help in English: %q", out)
	}
}
