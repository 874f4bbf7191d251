package telegram_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
)

// These tests run several Bots for one token, replicas as separate
// processes would be, over one fake Bot API and, when coordinated, one
// in-memory Coordinator, each Bot through a connection of its own.

const hookSecret = "s3cret-Token_1"

// gate stands between one Bot and the fake: it counts the Bot's calls by
// method, and while a method is held its requests wait before they reach
// Telegram (the Bot cannot tell a held call from a slow one).
type gate struct {
	rt http.RoundTripper

	mu    sync.Mutex
	held  map[string]chan struct{} // closed on release
	calls map[string]int
}

func newGate(rt http.RoundTripper) *gate {
	return &gate{rt: rt, held: map[string]chan struct{}{}, calls: map[string]int{}}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	method := path.Base(r.URL.Path)
	g.mu.Lock()
	g.calls[method]++
	held := g.held[method]
	g.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.rt.RoundTrip(r)
}

// hold makes method's requests wait until release.
func (g *gate) hold(method string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held[method] == nil {
		g.held[method] = make(chan struct{})
	}
}

func (g *gate) release(method string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch := g.held[method]; ch != nil {
		close(ch)
		delete(g.held, method)
	}
}

// count is how many requests of method the Bot has made (held ones too).
func (g *gate) count(method string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[method]
}

// replica is one Bot of a group.
type replica struct {
	gate *gate
	conn *tf.Conn     // nil when not coordinated
	ln   *tf.Listener // webhook mode
	stop func() error
}

// startReplica runs a Bot over fake, with its own connection to co (none
// when co is nil) and, when ln is set, in webhook mode on ln. It returns
// once the Bot is connected and has set its webhook, or deleted it.
func startReplica(t *testing.T, fake *tf.Server, handler bot.Handler, co *tf.Coordinator, ln *tf.Listener, log *slog.Logger,
	tune func(*telegram.Options)) *replica {
	t.Helper()
	r := &replica{gate: newGate(fake.Transport()), ln: ln}
	o := telegram.Options{Token: token, APIURL: apiURL, HTTPTransport: r.gate, Handler: handler, Deletions: &tf.Deletions{},
		Logger: log, PollTimeout: time.Second}
	if co != nil {
		r.conn = co.Conn()
		o.Coordinator = r.conn
	}
	if ln != nil {
		o.WebhookURL, o.WebhookListener, o.WebhookSecret = "http://otpgate.test/tg/hook", ln, hookSecret
	}
	if tune != nil {
		tune(&o)
	}
	b, err := telegram.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { r.stop() })
	ready := "deleteWebhook"
	if ln != nil {
		ready = "setWebhook"
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := fake.WaitFor(wctx, func() bool { return r.gate.count(ready) > 0 }); err != nil {
		t.Fatalf("replica did not start: %v", err)
	}
	return r
}

// balancer is a client that spreads requests over the listeners in turn,
// one connection per request: a load balancer in front of the replicas.
func balancer(lns ...*tf.Listener) *http.Client {
	var next atomic.Int64
	return &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return lns[int(next.Add(1)-1)%len(lns)].DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// post delivers one update to a replica's webhook, as Telegram does, and
// returns the status answered, 0 for none (the connection was closed).
func (r *replica) post(t *testing.T, update []byte) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: r.ln.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequest(http.MethodPost, "http://otpgate.test/tg/hook", bytes.NewReader(update))
	req.Header.Set(tf.SecretHeader, hookSecret)
	resp, err := client.Do(req)
	if err != nil {
		t.Logf("posting an update: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postAsync posts in the background; the status arrives on the channel.
func (r *replica) postAsync(t *testing.T, update []byte) chan int {
	got := make(chan int, 1)
	go func() { got <- r.post(t, update) }()
	return got
}

// textUpdate is an update as Telegram posts it: user writes text in
// their private chat with the bot.
func textUpdate(id int, user int64, text string) []byte {
	b, _ := json.Marshal(map[string]any{"update_id": id, "message": map[string]any{
		"message_id": id, "date": time.Now().Unix(), "text": text,
		"chat": map[string]any{"id": user, "type": "private"}, "from": map[string]any{"id": user, "first_name": "R"}}})
	return b
}

// echoer is an engine that keeps every update and repeats its text.
type echoer struct {
	mu  sync.Mutex
	got []bot.Update
}

func (e *echoer) Handle(_ context.Context, u bot.Update) []bot.Reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, u)
	return []bot.Reply{{ChatID: u.ChatID, Text: "re: " + u.Text}}
}

func (e *echoer) updates() []bot.Update {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

func (e *echoer) count(chat int64) int {
	n := 0
	for _, u := range e.updates() {
		if u.ChatID == chat {
			n++
		}
	}
	return n
}

// testLogger logs at every level into a buffer that may be read while
// Bots write to it.
func testLogger() (*slog.Logger, *lockedBuf) {
	logs := &lockedBuf{b: &bytes.Buffer{}}
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), logs
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
