package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/otp/twilio/twiliotest"
)

// Several `otpgate serve` processes in webhook mode on one PostgreSQL,
// behind a load balancer that sends each update to the next replica, as
// an operator runs them. The fakes are Telegram's Bot API (enforcing its
// limits) and Twilio's Messages API.

const hookSecret = "replica-test-secret"

// cluster is the replicas with their database, fakes and balancer.
type cluster struct {
	t    *testing.T
	pg   *pgtest.Server
	tg   *tf.Server
	tw   *twiliotest.Server
	env  []string
	lb   *balancer
	reps []*replica
	ctx  context.Context
}

type replica struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	hook string // host:port of its webhook listener
	ops  string // host:port of its ops listener
	dead atomic.Bool
}

// balancer sends each request to the next live replica, like a round-robin
// proxy that moves on when a replica refuses the connection. dup, when set
// for an update id, sends that update to two replicas at once.
type balancer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reps []*replica
	next int
	dup  map[int64]bool
	// served counts the requests sent to each replica.
	served []atomic.Int64
}

func newBalancer(reps []*replica) *balancer {
	b := &balancer{reps: reps, dup: map[int64]bool{}, served: make([]atomic.Int64, len(reps))}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	return b
}

func (b *balancer) pick() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	order := make([]int, 0, len(b.reps))
	for i := range b.reps {
		order = append(order, (b.next+i)%len(b.reps))
	}
	b.next = (b.next + 1) % len(b.reps)
	return order
}

func (b *balancer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var u struct {
		ID int64 `json:"update_id"`
	}
	_ = json.Unmarshal(body, &u)
	b.mu.Lock()
	twice := b.dup[u.ID]
	b.mu.Unlock()
	order := b.pick()
	if twice {
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for k := range 2 {
			wg.Go(func() { statuses[k] = b.forward(order[k], r, body) })
		}
		wg.Wait()
		w.WriteHeader(min(statuses[0], statuses[1]))
		return
	}
	for _, i := range order {
		if status := b.forward(i, r, body); status != 0 {
			w.WriteHeader(status)
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

// forward posts body to replica i; 0 means the replica did not answer.
func (b *balancer) forward(i int, r *http.Request, body []byte) int {
	rep := b.reps[i]
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://"+rep.hook+r.URL.Path, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header = r.Header.Clone()
	b.served[i].Add(1)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// replicasServed counts the replicas that answered at least one request.
func (b *balancer) replicasServed() int {
	n := 0
	for i := range b.served {
		if b.served[i].Load() > 0 {
			n++
		}
	}
	return n
}

func listenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startCluster imports records into a fresh database and starts n replicas
// behind the balancer; it returns once every replica is ready.
func startCluster(t *testing.T, n int, records string, extra ...string) *cluster {
	return startClusterMode(t, n, true, records, extra...)
}

// startClusterMode starts the replicas in webhook mode or, with webhook
// false, in long-polling mode (one polls, the others stand by).
func startClusterMode(t *testing.T, n int, webhook bool, records string, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, pg: pgtest.Start(t), tg: tf.New(tgToken, tf.Options{EnforceLimits: true}), tw: twiliotest.New(twSID, twToken)}
	t.Cleanup(c.tg.Close)
	t.Cleanup(c.tw.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	c.ctx = ctx
	for range n {
		c.reps = append(c.reps, &replica{hook: listenAddr(t), ops: listenAddr(t)})
	}
	c.lb = newBalancer(c.reps)
	t.Cleanup(c.lb.srv.Close)
	c.env = append([]string{
		"OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{9}, keyHexLen)),
		"OTPGATE_DATABASE_URL=" + c.pg.NewDatabase(t),
		"OTPGATE_TELEGRAM_TOKEN=" + tgToken, "OTPGATE_TELEGRAM_API_URL=" + c.tg.URL(),
		"OTPGATE_TWILIO_ACCOUNT_SID=" + twSID, "OTPGATE_TWILIO_AUTH_TOKEN=" + twToken,
		"OTPGATE_TWILIO_FROM=" + twFrom, "OTPGATE_TWILIO_API_URL=" + c.tw.URL(),
		"OTPGATE_LOG_LEVEL=debug",
	}, extra...)
	if webhook {
		c.env = append(c.env, "OTPGATE_WEBHOOK_URL="+c.lb.srv.URL+"/telegram", "OTPGATE_WEBHOOK_SECRET="+hookSecret)
	}
	file := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(file, []byte(records), 0o600); err != nil {
		t.Fatal(err)
	}
	imp, out, impErr := otpgateProcess(t, c.env, "import", file)
	if err := imp.Wait(); err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, impErr)
	}
	for i := range c.reps {
		c.start(i)
	}
	for i := range c.reps {
		c.waitReady(i, http.StatusOK)
	}
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	r := c.reps[i]
	env := append(append([]string{}, c.env...), "OTPGATE_WEBHOOK_LISTEN="+r.hook, "OTPGATE_OPS_LISTEN="+r.ops)
	r.cmd, _, r.logs = otpgateProcess(c.t, env, "serve")
	r.dead.Store(false)
}

// kill stops replica i with SIGKILL: no drain, no goodbye.
func (c *cluster) kill(i int) {
	c.t.Helper()
	r := c.reps[i]
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = r.cmd.Process.Wait()
	r.dead.Store(true)
}

func (c *cluster) waitReady(i, want int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + c.reps[i].ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica %d: /readyz never answered %d (last: %v %v)\n%s", i, want, resp, err, c.reps[i].logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) logs() string {
	var b strings.Builder
	for i, r := range c.reps {
		fmt.Fprintf(&b, "--- replica %d\n%s\n", i, r.logs)
	}
	return b.String()
}

var codeRE = regexp.MustCompile(`\b\d{6}\b`)

// poll checks cond every 20 ms until it holds or ctx ends (for fakes
// without a wait of their own).
func poll(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// smsTo waits for the nth SMS (counting from 1) to +91mobile and returns its code.
func (c *cluster) smsTo(mobile string, n int) string {
	c.t.Helper()
	var code string
	err := poll(c.ctx, func() bool {
		seen := 0
		for _, m := range c.tw.Messages() {
			if m.To == "+91"+mobile {
				if seen++; seen == n {
					code = codeRE.FindString(m.Body)
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		c.t.Fatalf("no SMS %d to %s: %v\n%s", n, mobile, err, c.logs())
	}
	return code
}

// released waits until user's chat shows a record with name in it.
func (c *cluster) released(user int64, name string) {
	c.t.Helper()
	err := c.tg.WaitFor(c.ctx, func() bool {
		for _, m := range c.tg.Latest(user) {
			if strings.Contains(m.Text, name) {
				return true
			}
		}
		return false
	})
	if err != nil {
		c.t.Fatalf("user %d never saw %q: %v\n%s", user, name, err, c.logs())
	}
}

func record(ref, name, mobile string) string {
	return fmt.Sprintf(`{"reference_id":"%s","name":"%s","birth_year":1990,"gender":"F","mobile":"%s","id_type":"aadhaar","id_number":"%s"}`+"\n",
		ref, name, mobile, "5"+ref[3:])
}

func user(id int64) (tf.Chat, tf.User) {
	return tf.Private(id), tf.User{ID: id, FirstName: "U", LanguageCode: "en"}
}

// postUpdate posts a raw update to replica i's webhook directly, as
// Telegram's redelivery to another replica would, and returns the status.
func (c *cluster) postUpdate(i int, update string) int {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.reps[i].hook+"/telegram", strings.NewReader(update))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Telegram-Bot-Api-Secret-Token", hookSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("post to replica %d: %v", i, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// outcomes counts the audit entries of event for requester by outcome,
// from a real `otpgate audit export`.
func (c *cluster) outcomes(event, requester string) map[string]int {
	c.t.Helper()
	cmd, out, errb := otpgateProcess(c.t, c.env, "audit", "export")
	if err := cmd.Wait(); err != nil {
		c.t.Fatalf("audit export: %v %s", err, errb)
	}
	got := map[string]int{}
	for _, line := range strings.Split(out.String(), "\n") {
		var e struct{ Event, Requester, Outcome string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Event == event && e.Requester == requester {
			got[e.Outcome]++
		}
	}
	return got
}

func countTo(ms []twiliotest.Message, to string) int {
	n := 0
	for _, m := range ms {
		if m.To == to {
			n++
		}
	}
	return n
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = 10*n + int(r-'0')
	}
	return n
}

func textUpdate(id int64, user int64, msgID int, text string) string {
	return fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"U","language_code":"en"},"chat":{"id":%d,"type":"private","first_name":"U"},"date":%d,"text":%q}}`,
		id, msgID, user, user, time.Now().Unix(), text)
}

func TestReplicasShareOneState(t *testing.T) {
	t.Parallel() // real processes against their own database and fakes
	records := record("70000000000001", "Kavya Nair", "9100000001") + record("70000000000002", "Arjun Das", "9100000002") +
		record("70000000000003", "Leela Rao", "9100000003") + record("70000000000004", "Farah Khan", "9100000004") +
		record("70000000000005", "Gopal Iyer", "9100000005") + record("70000000000006", "Hema Sen", "9100000006") +
		record("70000000000007", "Irfan Ali", "9100000007") + record("70000000000008", "Jaya Pal", "9100000008")
	c := startCluster(t, 3, records)

	t.Run("a flow whose steps land on different replicas", func(t *testing.T) {
		chat, from := user(5001)
		c.tg.SendText(chat, from, "/lookup 9100000001")
		code := c.smsTo("9100000001", 1)
		c.tg.SendText(chat, from, code)
		c.released(5001, "Kavya Nair")
		if served := c.lb.replicasServed(); served < 2 {
			t.Fatalf("the flow's two updates went to %d replica(s): %d %d %d", served, c.lb.served[0].Load(), c.lb.served[1].Load(), c.lb.served[2].Load())
		}
	})

	t.Run("one update delivered to two replicas is handled once", func(t *testing.T) {
		before := len(c.tw.Messages())
		up := textUpdate(880001, 5002, 1, "/lookup 9100000002")
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i := range 2 {
			wg.Go(func() { statuses[i] = c.postUpdate(i, up) })
		}
		wg.Wait()
		// The one that lost the claim answers 503 (Telegram retries), or
		// 200 once the winner has finished.
		_ = c.smsTo("9100000002", 1)
		time.Sleep(2 * time.Second) // let a second handling, if any, show
		if n := len(c.tw.Messages()) - before; n != 1 {
			t.Fatalf("%d SMS for one update, want 1 (statuses %v)", n, statuses)
		}
		// Telegram retries the one answered non-2xx: it is acknowledged now.
		for i := range 3 {
			if s := c.postUpdate(i, up); s != http.StatusOK {
				t.Fatalf("redelivery to replica %d: %d", i, s)
			}
		}
		if n := len(c.tw.Messages()) - before; n != 1 {
			t.Fatalf("%d SMS after redeliveries", n)
		}
		replies := 0
		for _, m := range c.tg.Sent(5002) {
			if strings.Contains(m.Text, "If this number is registered") {
				replies++
			}
		}
		if replies != 1 {
			t.Fatalf("%d replies for one update: %+v", replies, c.tg.Sent(5002))
		}
	})

	t.Run("a lookup repeated on another replica keeps the code on its way", func(t *testing.T) {
		c.postUpdate(0, textUpdate(894001, 5008, 1, "/lookup 9100000008"))
		code := c.smsTo("9100000008", 1)
		c.postUpdate(1, textUpdate(894002, 5008, 2, "/lookup 9100000008"))
		var tags []string
		for _, m := range c.tg.Sent(5008) {
			if i := strings.Index(m.Text, "mentions request "); i >= 0 {
				tags = append(tags, m.Text[i+17:i+21])
			}
		}
		if len(tags) != 2 || tags[0] != tags[1] {
			t.Fatalf("tags shown = %q, want the same twice", tags)
		}
		c.postUpdate(2, textUpdate(894003, 5008, 3, code))
		c.released(5008, "Jaya Pal")
		if n := len(c.tw.Messages()); n == 0 || countTo(c.tw.Messages(), "+919100000008") != 1 {
			t.Fatalf("%d SMS to the mobile, want 1", countTo(c.tw.Messages(), "+919100000008"))
		}
	})

	t.Run("32 concurrent correct submissions over the replicas release once", func(t *testing.T) {
		chat, from := user(5003)
		c.tg.SendText(chat, from, "/lookup 9100000003")
		code := c.smsTo("9100000003", 1)
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() { c.postUpdate(i%3, textUpdate(int64(890000+i), 5003, 100+i, code)) })
		}
		wg.Wait()
		c.released(5003, "Leela Rao")
		time.Sleep(2 * time.Second)
		n := 0
		for _, m := range c.tg.Latest(5003) {
			if strings.Contains(m.Text, "Leela Rao") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the record was released %d times", n)
		}
	})

	t.Run("wrong codes over the replicas meet the per-code cap exactly", func(t *testing.T) {
		chat, from := user(5004)
		c.tg.SendText(chat, from, "/lookup 9100000004")
		code := c.smsTo("9100000004", 1)
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { c.postUpdate(i%3, textUpdate(int64(891000+i), 5004, 200+i, wrong)) })
		}
		wg.Wait()
		got := c.outcomes("code_rejected", "telegram:5004")
		if got["wrong"] != 3 || got["attempts_exhausted"] != 5 {
			t.Fatalf("rejections = %v, want 3 wrong and 5 on the dead code", got)
		}
	})

	t.Run("wrong codes over the replicas meet the per-mobile cap exactly", func(t *testing.T) {
		// Twelve chat users each ask for a code to one mobile (past its
		// hourly sends they get decoys, counted the same) and each types a
		// wrong one, all at once over the replicas: ten count, then the
		// mobile is locked.
		var wg sync.WaitGroup
		for u := range int64(12) {
			wg.Go(func() {
				id := 6000 + u
				c.postUpdate(int(u)%3, textUpdate(892000+u, id, 1, "/lookup 9100000005"))
			})
		}
		wg.Wait()
		for u := range int64(12) {
			wg.Go(func() {
				id := 6000 + u
				c.postUpdate(int(u+1)%3, textUpdate(892100+u, id, 2, "000000"))
			})
		}
		wg.Wait()
		wrong, locked := 0, 0
		all := map[string]int{}
		for u := range 12 {
			got := c.outcomes("code_rejected", fmt.Sprintf("telegram:%d", 6000+u))
			wrong += got["wrong"]
			for k, v := range got {
				all[k] += v
			}
			// A code refused because its mobile is locked is audited as such.
			locked += c.outcomes("locked", fmt.Sprintf("telegram:%d", 6000+u))["mobile_locked"]
		}
		if wrong != 10 || locked != 2 {
			t.Fatalf("over the replicas: %d wrong and %d refused as locked, want 10 and 2 (%v)", wrong, locked, all)
		}
	})

	t.Run("a replica killed mid-flow: the flow finishes on another", func(t *testing.T) {
		chat, from := user(5006)
		c.tg.SendText(chat, from, "/lookup 9100000006")
		code := c.smsTo("9100000006", 1)
		c.kill(0)
		c.tg.SendText(chat, from, code)
		c.released(5006, "Hema Sen")
		c.start(0)
		c.waitReady(0, http.StatusOK)
	})

	t.Run("PostgreSQL killed mid-flow: nothing lost, the replicas recover on their own", func(t *testing.T) {
		chat, from := user(5007)
		c.tg.SendText(chat, from, "/lookup 9100000007")
		code := c.smsTo("9100000007", 1)
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
		c.postUpdate(1, textUpdate(893001, 5007, 50, wrong)) // one wrong guess, counted
		if err := c.pg.Kill(); err != nil {
			t.Fatal(err)
		}
		for i := range c.reps {
			c.waitReady(i, http.StatusServiceUnavailable)
		}
		// Telegram keeps retrying the code while the database is down.
		c.tg.SendText(chat, from, code)
		time.Sleep(2 * time.Second)
		c.pg.Restart(t)
		for i := range c.reps {
			c.waitReady(i, http.StatusOK)
		}
		c.released(5007, "Irfan Ali")
		if got := c.outcomes("code_rejected", "telegram:5007"); got["wrong"] != 1 {
			t.Fatalf("the wrong guess before the crash: %v", got)
		}
		// The consumed code stays consumed: a second try is refused.
		c.postUpdate(2, textUpdate(893002, 5007, 51, code))
		if got := c.outcomes("code_rejected", "telegram:5007"); got["used"] != 1 {
			t.Fatalf("the consumed code after the crash: %v", got)
		}
	})

	t.Run("history shows accesses made through any replica", func(t *testing.T) {
		chat, from := user(5001)
		c.tg.SendText(chat, from, "/history")
		err := c.tg.WaitFor(c.ctx, func() bool {
			for _, m := range c.tg.Latest(5001) {
				if strings.Contains(m.Text, "Who has seen the records") && strings.Contains(m.Text, "you") {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("no history: %v\n%+v", err, c.tg.Latest(5001))
		}
	})

	t.Run("records imported and removed while the replicas serve", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "more.jsonl")
		if err := os.WriteFile(file, []byte(record("70000000000009", "Kiran Roy", "9100000009")), 0o600); err != nil {
			t.Fatal(err)
		}
		imp, out, errb := otpgateProcess(t, c.env, "import", file)
		if err := imp.Wait(); err != nil || !strings.Contains(out.String(), "1 added") {
			t.Fatalf("import while serving: %v\n%s%s", err, out, errb)
		}
		chat, from := user(5009)
		c.tg.SendText(chat, from, "/lookup 9100000009")
		c.tg.SendText(chat, from, c.smsTo("9100000009", 1))
		c.released(5009, "Kiran Roy")
		list := filepath.Join(t.TempDir(), "remove.txt")
		if err := os.WriteFile(list, []byte("70000000000009\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rm, out, errb := otpgateProcess(t, c.env, "import", "--remove", list)
		if err := rm.Wait(); err != nil || !strings.Contains(out.String(), "removed 1 records") {
			t.Fatalf("remove while serving: %v\n%s%s", err, out, errb)
		}
		again, out, _ := otpgateProcess(t, c.env, "import", "--remove", list)
		if err := again.Wait(); err == nil || !strings.Contains(out.String(), "no stored record has it") {
			t.Fatalf("the removed record is still stored: %v %s", err, out)
		}
	})

	t.Run("audit verify sees one chain of every replica's work", func(t *testing.T) {
		cmd, out, errb := otpgateProcess(t, c.env, "audit", "verify")
		if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "intact") {
			t.Fatalf("audit verify: %v\n%s%s", err, out, errb)
		}
		export, out, errb := otpgateProcess(t, c.env, "audit", "export")
		if err := export.Wait(); err != nil {
			t.Fatalf("audit export: %v %s", err, errb)
		}
		verified := strings.Count(out.String(), `"event":"code_verified"`)
		released := strings.Count(out.String(), `"event":"released"`)
		// Six users verified (Kavya, Jaya, Leela, Hema, Irfan, Kiran);
		// every record a chat showed has its release entry.
		shown := 0
		for _, u := range []int64{5001, 5008, 5003, 5006, 5007, 5009} {
			for _, m := range c.tg.Sent(u) {
				for _, name := range []string{"Kavya Nair", "Jaya Pal", "Leela Rao", "Hema Sen", "Irfan Ali", "Kiran Roy"} {
					if strings.Contains(m.Text, name) {
						shown++
					}
				}
			}
		}
		if verified != 6 || released < shown {
			t.Fatalf("audit: %d verified, %d released for %d records shown\n%s", verified, released, shown, out)
		}
	})

	for i, r := range c.reps {
		for _, s := range []string{"Kavya", "9100000001", tgToken, twToken, hookSecret} {
			if strings.Contains(r.logs.String(), s) {
				t.Errorf("replica %d's logs contain %q", i, s)
			}
		}
	}
}

// A burst of 300 users, each looking their record up and typing the code,
// through three replicas and through one: Telegram's limits hold across
// the replicas together (not one 429 from a fake that enforces them), and
// every user gets their record. The times are logged for comparison, not
// asserted: the machine is shared.
func TestBurstThroughReplicas(t *testing.T) {
	t.Parallel()
	const users = 300
	var records strings.Builder
	for i := range users {
		records.WriteString(record(fmt.Sprintf("710000000%05d", i), fmt.Sprintf("Person %03d", i), fmt.Sprintf("92000%05d", i)))
	}
	took := map[int]time.Duration{}
	for _, n := range []int{3, 1} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			c := startCluster(t, n, records.String(), "OTPGATE_SENDS_PER_PREFIX_HOUR=100000", "OTPGATE_GLOBAL_SMS_PER_HOUR=100000")
			start := time.Now()
			for i := range users {
				chat, from := user(int64(70000 + i))
				c.tg.SendText(chat, from, fmt.Sprintf("/lookup 92000%05d", i))
			}
			answered := map[string]bool{}
			err := poll(c.ctx, func() bool {
				for _, m := range c.tw.Messages() {
					if answered[m.To] {
						continue
					}
					answered[m.To] = true
					i := atoi(strings.TrimPrefix(m.To, "+9192000"))
					chat, from := user(int64(70000 + i))
					c.tg.SendText(chat, from, codeRE.FindString(m.Body))
				}
				return len(answered) == users
			})
			if err != nil {
				t.Fatalf("%d of %d SMS: %v\n%s", len(answered), users, err, c.logs())
			}
			err = poll(c.ctx, func() bool {
				for i := range users {
					found := false
					for _, m := range c.tg.Latest(int64(70000 + i)) {
						if strings.Contains(m.Text, fmt.Sprintf("Person %03d", i)) {
							found = true
							break
						}
					}
					if !found {
						return false
					}
				}
				return true
			})
			if err != nil {
				t.Fatalf("not every user got their record: %v", err)
			}
			took[n] = time.Since(start)
			st := c.tg.Stats()
			if st.TooMany429 != 0 {
				t.Fatalf("%d responses 429 (global %d, chat %d, group %d)", st.TooMany429, st.LimitGlobal, st.LimitChat, st.LimitGroup)
			}
			t.Logf("%d users through %d replica(s): %v, %d messages sent, 0 × 429, webhook requests per replica %v",
				users, n, took[n].Round(10*time.Millisecond), st.Sent, c.lb.counts())
		})
	}
}

// counts is the requests each replica was sent.
func (b *balancer) counts() []int64 {
	out := make([]int64, len(b.served))
	for i := range b.served {
		out[i] = b.served[i].Load()
	}
	return out
}

// With the database, replicas in long-polling mode elect one poller; when
// it is killed (SIGKILL: its lease is never given up) a standby takes
// over within the lease, and the flows go on.
func TestPollingStandbyTakesOver(t *testing.T) {
	t.Parallel()
	c := startClusterMode(t, 2, false, record("72000000000001", "Nila Bose", "9300000001")+record("72000000000002", "Om Prakash", "9300000002"))
	chat, from := user(8001)
	c.tg.SendText(chat, from, "/lookup 9300000001")
	c.tg.SendText(chat, from, c.smsTo("9300000001", 1))
	c.released(8001, "Nila Bose")
	leader := -1
	for i, r := range c.reps {
		if strings.Contains(r.logs.String(), "leading: this replica polls") {
			if leader >= 0 {
				t.Fatalf("replicas %d and %d both lead\n%s", leader, i, c.logs())
			}
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("no replica leads\n%s", c.logs())
	}
	c.kill(leader)
	killed := time.Now()
	chat, from = user(8002)
	c.tg.SendText(chat, from, "/lookup 9300000002")
	code := c.smsTo("9300000002", 1)
	t.Logf("the standby answered %v after the leader was killed", time.Since(killed).Round(100*time.Millisecond))
	c.tg.SendText(chat, from, code)
	c.released(8002, "Om Prakash")
	if other := c.reps[1-leader]; !strings.Contains(other.logs.String(), "leading: this replica polls") {
		t.Fatalf("the standby never led\n%s", other.logs)
	}
}
