package telegram_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// The tests run the adapter and the fake Bot API inside a testing/synctest
// bubble: both live on the bubble's fake clock and talk over the fake's
// in-memory transport, so pacing, 429 waits, back-off and deletion
// schedules take their full time on that clock and no real time at all. A
// wait for behaviour is a WaitFor on the fake with a deadline on that
// clock; advance is how a test says "later".
//
// The engine, the codes service and the store behind them (the backend)
// run outside the bubble, because bot.New and otp.New each start a
// ulule/limiter memory store whose cleaner goroutine nothing stops but a
// finalizer, and a goroutine that never ends cannot live in a bubble (nor
// may a finalizer touch one). Calls cross over channels made outside the
// bubble, so a bubble goroutine waiting on the backend is not idle and the
// bubble's clock stands still until the backend answers; the backend's
// clock is the bubble's time, published at every crossing. When bot and otp
// own their limiter goroutines, the backend can move into the bubble and
// this bridge can go.

const token = "123456:TEST-token_for-the-fake-bot-api"

// apiURL is any base URL: the in-memory transport ignores the host.
const apiURL = "http://api.telegram.test"

// bubbleEpoch is where a synctest bubble's clock starts (documented).
var bubbleEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// people are the records every backend imports.
var people = []struct{ ref, name, mobile, id string }{
	{"50000000000001", "Lakshmi Nair", "9000000301", "700070007001"},
	{"50000000000002", "Gopal Nair", "9000000301", "700070007002"},
	{"50000000000003", "Ayesha Siddiqui", "9000000302", "700070007003"},
}

type backend struct {
	eng  *bot.Engine
	svc  *otp.Service
	st   *store.Store
	ph   *otptest.Phone
	logs *bytes.Buffer
	log  *slog.Logger

	now   atomic.Int64       // UnixNano: the bubble's time at the latest crossing
	calls chan crossing      // made outside the bubble
	dones chan chan struct{} // reply channels, made outside the bubble
	wg    sync.WaitGroup
}

type crossing struct {
	f    func()
	done chan struct{}
}

type lockedBuf struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// newBackend builds store, codes service and engine. Call it outside the
// bubble, before synctest.Test.
func newBackend(t *testing.T, engine func(*bot.Options)) *backend {
	t.Helper()
	be := &backend{ph: &otptest.Phone{}, logs: &bytes.Buffer{}, calls: make(chan crossing), dones: make(chan chan struct{}, 64)}
	for range cap(be.dones) {
		be.dones <- make(chan struct{}, 1)
	}
	be.now.Store(bubbleEpoch.UnixNano())
	be.log = slog.New(slog.NewTextHandler(&lockedBuf{b: be.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ks, _ := keys.Derive(bytes.Repeat([]byte{4}, 32))
	st, err := store.Open(store.Options{InMemory: true, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit,
		Logger: be.log, Now: be.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be.st = st
	_, err = st.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		for i, p := range people {
			m, _ := pii.ParseMobile(p.mobile)
			id, _ := pii.NormalizeID(p.id)
			r := store.ImportRow{Line: i + 1, ID: id, Record: store.Record{RefID: p.ref, Name: p.name, BirthYear: 1960, Gender: "F",
				Mobile: m, IDType: "aadhaar", IDLast4: id.Last4()}}
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pol := otp.DefaultPolicy()
	pol.ResendCooldown = 0
	pol.RequestsPerRequesterHr, pol.SendsPerMobileHour, pol.SendsPerMobileDay, pol.SendsPerPrefixHour = 100, 100, 100, 100
	be.svc, err = otp.New(otp.Options{Store: st, Sender: be.ph, CodeKey: ks.Code, Policy: pol, Logger: be.log, Now: be.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.svc.Close(context.Background()) })
	eo := bot.Options{Gate: be.svc, Records: st, Channel: "telegram", Logger: be.log, Now: be.clock, CodeLength: 6,
		CodeTTL: 3 * time.Minute, ReleaseTTL: 10 * time.Minute, FloodPerMinute: 1000}
	if engine != nil {
		engine(&eo)
	}
	be.eng, err = bot.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	be.wg.Add(1)
	go be.serve()
	t.Cleanup(func() { close(be.calls); be.wg.Wait() })
	return be
}

// clock is the backend's time: the bubble's, as last published.
func (be *backend) clock() time.Time { return time.Unix(0, be.now.Load()).UTC() }

func (be *backend) serve() {
	defer be.wg.Done()
	for c := range be.calls {
		be.wg.Add(1)
		go func() {
			defer be.wg.Done()
			defer func() { c.done <- struct{}{} }()
			c.f()
		}()
	}
}

// do runs f in the backend and returns when it has. Call it from inside
// the bubble: it publishes the bubble's time first.
func (be *backend) do(f func()) {
	now := time.Now().UnixNano()
	for old := be.now.Load(); now > old && !be.now.CompareAndSwap(old, now); old = be.now.Load() {
	}
	done := <-be.dones
	be.calls <- crossing{f: f, done: done}
	<-done
	be.dones <- done
}

// Handle is the engine, across the bridge.
func (be *backend) Handle(_ context.Context, u bot.Update) (out []bot.Reply) {
	be.do(func() { out = be.eng.Handle(context.Background(), u) })
	return out
}

var _ bot.Handler = (*backend)(nil)

// idle waits until the codes service has sent every queued SMS.
func (be *backend) idle(t *testing.T) {
	t.Helper()
	var err error
	be.do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = be.svc.Idle(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// audit reads the audit trail.
func (be *backend) audit(t *testing.T, keep func(store.AuditEntry) bool) []store.AuditEntry {
	t.Helper()
	var (
		entries []store.AuditEntry
		err     error
	)
	be.do(func() { entries, err = be.st.AuditEntries(context.Background(), keep) })
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

type harness struct {
	*backend
	opts telegram.Options
	fake *tf.Server
	dels *tf.Deletions
	stop func() error
}

// advance moves the bubble's clock on by d and returns once everything due
// by then has run and settled (synctest.Wait). It takes no real time: it
// is how a test says "d later", never a wait for the code under test.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// start runs the fake Bot API and a Telegram adapter over be, inside the
// bubble. webhook selects the receiving mode.
func start(t *testing.T, be *backend, fakeOpts tf.Options, webhook bool) *harness {
	t.Helper()
	return startWith(t, be, be, be.log, fakeOpts, webhook)
}

// startWith runs the fake and an adapter over handler, inside the bubble;
// be may be nil for a handler that needs no backend.
func startWith(t *testing.T, be *backend, handler bot.Handler, log *slog.Logger, fakeOpts tf.Options, webhook bool) *harness {
	t.Helper()
	var ln *tf.Listener
	if webhook {
		ln = tf.NewListener()
		t.Cleanup(func() { ln.Close() })
		fakeOpts.WebhookClient = ln.Client()
	}
	fake := tf.NewUnstarted(token, fakeOpts)
	t.Cleanup(fake.Close)
	h := &harness{backend: be, fake: fake, dels: &tf.Deletions{}}
	h.opts = telegram.Options{Token: token, APIURL: apiURL, HTTPTransport: fake.Transport(),
		Handler: handler, Deletions: h.dels, Logger: log, PollTimeout: time.Second}
	if webhook {
		h.opts.WebhookURL, h.opts.WebhookListener, h.opts.WebhookSecret = "http://otpgate.test/tg/hook", ln, "s3cret-Token_1"
	}
	h.run(t, webhook)
	return h
}

// run starts a Bot over the harness's schedule and engine.
func (h *harness) run(t *testing.T, webhook bool) {
	t.Helper()
	fake := h.fake
	tb, err := telegram.New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { h.stop() })
	waitCtx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := fake.WaitFor(waitCtx, func() bool {
		if webhook {
			return fake.Webhook().URL != ""
		}
		return fake.Polling()
	}); err != nil {
		t.Fatalf("bot did not start receiving: %v", err)
	}
}
