package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/twilio/twiliotest"
	"github.com/otpgate/otpgate/pii"
)

const (
	testSID     = "AC0123456789abcdef0123456789abcdef"
	testToken   = "f00dfacecafebabe5ec4e7700dd5e1c7"
	testFrom    = "+15005550006"
	testService = "MG0123456789abcdef0123456789abcdef"
	testTo      = pii.Mobile("+919876543210")
	testCode    = "482913"
	testBody    = testCode + " is your otpgate code to view your vaccination record. Valid 3 min. Do not share it."
)

// syncBuffer lets the slog handler and the test share a buffer under -race.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a Sender wired to a fake, with captured logs and recorded sleeps.
type harness struct {
	sender *Sender
	fake   *twiliotest.Server
	logs   *syncBuffer

	mu     sync.Mutex
	sleeps []time.Duration
}

func (h *harness) sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.sleeps = append(h.sleeps, d)
	h.mu.Unlock()
	return ctx.Err()
}

func (h *harness) slept() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.sleeps...)
}

// newHarness starts a fake and a Sender pointed at it; mod adjusts Options
// before New. The fake URL is http://127.0.0.1:port, so every test that
// reaches the fake also exercises the base-URL rewrite.
func newHarness(t *testing.T, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{fake: twiliotest.New(testSID, testToken), logs: &syncBuffer{}}
	t.Cleanup(h.fake.Close)
	opts := Options{
		AccountSID: testSID,
		AuthToken:  testToken,
		From:       testFrom,
		APIURL:     h.fake.URL(),
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:      h.sleep,
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.sender = s
	return h
}

// assertClean fails if text holds the number (in any common spelling), the
// code, the body or the auth token.
func assertClean(t *testing.T, what, text string) {
	t.Helper()
	for _, secret := range []string{testTo.E164(), strings.TrimPrefix(testTo.E164(), "+"), "9876543210", testCode, testBody, testToken} {
		if strings.Contains(text, secret) {
			t.Errorf("%s contains %q:\n%s", what, secret, text)
		}
	}
}

func TestSendSuccess(t *testing.T) {
	tests := []struct {
		name        string
		mod         func(*Options)
		wantFrom    string
		wantService string
	}{
		{name: "from number", mod: nil, wantFrom: testFrom},
		{name: "messaging service", mod: func(o *Options) { o.From, o.MessagingServiceSID = "", testService }, wantService: testService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mod)
			if err := h.sender.Send(context.Background(), testTo, testBody); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := h.fake.Messages()
			if len(msgs) != 1 {
				t.Fatalf("fake got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.AccountSID != testSID {
				t.Errorf("account in path = %q, want %q", m.AccountSID, testSID)
			}
			if m.To != testTo.E164() || m.Body != testBody {
				t.Errorf("To/Body = %q/%q, want %q/%q", m.To, m.Body, testTo.E164(), testBody)
			}
			if m.From != tt.wantFrom || m.MessagingServiceSID != tt.wantService {
				t.Errorf("From/MessagingServiceSid = %q/%q, want %q/%q", m.From, m.MessagingServiceSID, tt.wantFrom, tt.wantService)
			}
			if !strings.HasPrefix(m.SID, "SM") {
				t.Errorf("message sid %q", m.SID)
			}
			if n := len(h.fake.Requests()); n != 1 {
				t.Errorf("fake saw %d requests, want 1", n)
			}
			if len(h.slept()) != 0 {
				t.Errorf("slept %v on success", h.slept())
			}
			logs := h.logs.String()
			if !strings.Contains(logs, m.SID) || !strings.Contains(logs, "+91******3210") || !strings.Contains(logs, "component=twilio") {
				t.Errorf("success log lacks sid, masked number or component:\n%s", logs)
			}
			assertClean(t, "logs", logs)
		})
	}
}

func TestSendErrorMapping(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		code      int // 0: the fake answers with a non-JSON body
		want      error
		permanent bool
	}{
		{"invalid number", 400, 21211, otp.ErrInvalidTo, true},
		{"unsubscribed", 400, 21610, otp.ErrUnsubscribed, true},
		{"not reachable", 400, 21612, otp.ErrUnroutable, true},
		{"not sms capable", 400, 21614, otp.ErrUnroutable, true},
		{"geo permission", 400, 21408, otp.ErrUnroutable, true},
		{"auth code", 401, 20003, otp.ErrAuth, true},
		{"auth status without json", 401, 0, otp.ErrAuth, true},
		{"other client error", 400, 21602, otp.ErrProvider, true},
		{"not found", 404, 20404, otp.ErrProvider, true},
		{"rate limit code", 429, 20429, otp.ErrRateLimited, false},
		{"rate limit status without json", 429, 0, otp.ErrRateLimited, false},
		{"server error", 500, 20500, otp.ErrProvider, false},
		{"bad gateway without json", 502, 0, otp.ErrProvider, false},
		{"unavailable without json", 503, 0, otp.ErrProvider, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.fake.FailNext(10, tt.status, tt.code)

			err := h.sender.Send(context.Background(), testTo, testBody)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if got := errors.Is(err, otp.ErrPermanent); got != tt.permanent {
				t.Errorf("errors.Is(err, ErrPermanent) = %v, want %v (err %v)", got, tt.permanent, err)
			}
			wantRequests := DefaultMaxAttempts
			if tt.permanent {
				wantRequests = 1
			}
			if n := len(h.fake.Requests()); n != wantRequests {
				t.Errorf("fake saw %d requests, want %d", n, wantRequests)
			}
			if n := len(h.slept()); n != wantRequests-1 {
				t.Errorf("slept %d times, want %d", n, wantRequests-1)
			}
			if len(h.fake.Messages()) != 0 {
				t.Errorf("fake accepted a message")
			}
			logs := h.logs.String()
			for _, want := range []string{"level=WARN", "component=twilio", "to=+91******3210", fmt.Sprintf("twilio_code=%d", tt.code), fmt.Sprintf("http_status=%d", tt.status), "attempt=1"} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %q:\n%s", want, logs)
				}
			}
			if got := strings.Count(logs, "sms send failed"); got != wantRequests {
				t.Errorf("logged %d failures, want %d", got, wantRequests)
			}
			assertClean(t, "logs", logs)
			assertClean(t, "error", err.Error())
		})
	}
}

// Twilio's own error texts quote the number; the fake does too. Neither the
// returned error nor the log may carry them on.
func TestSendErrorTextWithNumberIsNotPassedOn(t *testing.T) {
	for _, code := range []int{21211, 21612, 21408} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			h := newHarness(t, nil)
			h.fake.FailTo(testTo.E164(), 400, code)
			err := h.sender.Send(context.Background(), testTo, testBody)
			if !errors.Is(err, otp.ErrPermanent) {
				t.Fatalf("err = %v, want permanent", err)
			}
			assertClean(t, "error", err.Error())
			assertClean(t, "logs", h.logs.String())
		})
	}
}

func TestSendRetriesThenSucceeds(t *testing.T) {
	tests := []struct {
		name   string
		fails  int
		status int
		code   int
	}{
		{"rate limited once", 1, 429, 20429},
		{"rate limited twice", 2, 429, 20429},
		{"server error twice", 2, 500, 20500},
		{"gateway error without json", 1, 502, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.fake.FailNext(tt.fails, tt.status, tt.code)
			if err := h.sender.Send(context.Background(), testTo, testBody); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if n := len(h.fake.Requests()); n != tt.fails+1 {
				t.Errorf("fake saw %d requests, want %d", n, tt.fails+1)
			}
			if n := len(h.fake.Messages()); n != 1 {
				t.Errorf("fake accepted %d messages, want 1", n)
			}
			sleeps := h.slept()
			if len(sleeps) != tt.fails {
				t.Fatalf("slept %v, want %d sleeps", sleeps, tt.fails)
			}
			// Exponential with equal jitter: attempt i waits in [b/2, b], b = Backoff·2^(i-1).
			for i, d := range sleeps {
				b := DefaultBackoff << i
				if d < b/2 || d > b {
					t.Errorf("sleep %d = %v, want within [%v, %v]", i+1, d, b/2, b)
				}
			}
			assertClean(t, "logs", h.logs.String())
		})
	}
}

func TestSendStopsAtMaxAttempts(t *testing.T) {
	for _, max := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.MaxAttempts = max })
			h.fake.FailNext(10, 503, 0)
			err := h.sender.Send(context.Background(), testTo, testBody)
			if !errors.Is(err, otp.ErrProvider) || errors.Is(err, otp.ErrPermanent) {
				t.Fatalf("err = %v, want a retryable ErrProvider", err)
			}
			if n := len(h.fake.Requests()); n != max {
				t.Errorf("fake saw %d requests, want %d", n, max)
			}
			if n := len(h.slept()); n != max-1 {
				t.Errorf("slept %d times, want %d", n, max-1)
			}
		})
	}
}

func TestDelayIsCapped(t *testing.T) {
	s := &Sender{backoff: time.Second}
	for attempt := 1; attempt < 80; attempt++ {
		if d := s.delay(attempt); d <= 0 || d > maxBackoff {
			t.Fatalf("delay(%d) = %v, want in (0, %v]", attempt, d, maxBackoff)
		}
	}
}

func TestSendContext(t *testing.T) {
	t.Run("already cancelled", func(t *testing.T) {
		h := newHarness(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := h.sender.Send(ctx, testTo, testBody)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := len(h.fake.Requests()); n != 0 {
			t.Errorf("fake saw %d requests, want 0", n)
		}
	})

	t.Run("deadline during request", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.Timeout = time.Minute })
		h.fake.SetLatency(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := h.sender.Send(ctx, testTo, testBody)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("Send took %v after the deadline", elapsed)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if errors.Is(err, otp.ErrPermanent) {
			t.Errorf("cancellation reported as permanent: %v", err)
		}
		if n := len(h.slept()); n != 0 {
			t.Errorf("slept %d times after cancellation", n)
		}
		assertClean(t, "error", err.Error())
		assertClean(t, "logs", h.logs.String())
	})

	t.Run("cancelled during back-off", func(t *testing.T) {
		h := newHarness(t, nil)
		h.fake.FailNext(10, 500, 20500)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h.sender.sleep = func(ctx context.Context, d time.Duration) error {
			cancel() // the caller gives up while we wait to retry
			<-ctx.Done()
			return ctx.Err()
		}
		err := h.sender.Send(ctx, testTo, testBody)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, otp.ErrProvider) {
			t.Fatalf("err = %v, want context.Canceled and the last failure", err)
		}
		if n := len(h.fake.Requests()); n != 1 {
			t.Errorf("fake saw %d requests, want 1", n)
		}
	})

	t.Run("real sleep honours ctx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("sleepCtx = %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("sleepCtx ignored ctx")
		}
	})
}

// A slow provider costs one Timeout per attempt, then the send is retried;
// the attempt timeout is not mistaken for the caller's cancellation.
func TestSendAttemptTimeout(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Timeout = 50 * time.Millisecond; o.MaxAttempts = 2 })
	h.fake.SetLatency(time.Minute)
	err := h.sender.Send(context.Background(), testTo, testBody)
	if !errors.Is(err, otp.ErrProvider) || errors.Is(err, otp.ErrPermanent) {
		t.Fatalf("err = %v, want retryable ErrProvider", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if n := len(h.slept()); n != 1 {
		t.Errorf("slept %d times, want 1", n)
	}
	assertClean(t, "error", err.Error())
}

func TestSendWrongCredentialsNotRetried(t *testing.T) {
	var hits atomic.Int32
	counting := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		hits.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	h := newHarness(t, func(o *Options) { o.AuthToken = "0000wrong0000token0000"; o.Transport = counting })
	err := h.sender.Send(context.Background(), testTo, testBody)
	if !errors.Is(err, otp.ErrAuth) || !errors.Is(err, otp.ErrPermanent) {
		t.Fatalf("err = %v, want permanent ErrAuth", err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d HTTP requests, want 1", n)
	}
	for _, text := range []string{err.Error(), h.logs.String()} {
		if strings.Contains(text, "0000wrong0000token0000") {
			t.Errorf("wrong token leaked: %s", text)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The rewrite must reach the configured host:port over plain http, with the
// Host header and path matching, and the credentials in the header only.
func TestAPIURLRewrite(t *testing.T) {
	type seen struct {
		host, path, auth string
		tls              bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		got <- seen{host: r.Host, path: r.URL.Path, auth: user + ":" + pass, tls: r.TLS != nil}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"sid":"SM00000000000000000000000000000001","status":"queued"}`)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)

	for _, apiURL := range []string{srv.URL, srv.URL + "/"} {
		s, err := New(Options{AccountSID: testSID, AuthToken: testToken, From: testFrom, APIURL: apiURL})
		if err != nil {
			t.Fatalf("New(%q): %v", apiURL, err)
		}
		if err := s.Send(context.Background(), testTo, testBody); err != nil {
			t.Fatalf("Send via %q: %v", apiURL, err)
		}
		r := <-got
		if r.host != u.Host || r.tls {
			t.Errorf("request reached host %q (tls %v), want %q over http", r.host, r.tls, u.Host)
		}
		if want := "/2010-04-01/Accounts/" + testSID + "/Messages.json"; r.path != want {
			t.Errorf("path = %q, want %q", r.path, want)
		}
		if r.auth != testSID+":"+testToken {
			t.Errorf("basic auth = %q", r.auth)
		}
	}
}

// Nothing listens on the port: every attempt fails in the dialer. The error
// and the logs still must not carry secrets or the URL's credentials.
func TestSendNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	h := newHarness(t, func(o *Options) { o.APIURL = "http://" + addr })
	err = h.sender.Send(context.Background(), testTo, testBody)
	if !errors.Is(err, otp.ErrProvider) || errors.Is(err, otp.ErrPermanent) {
		t.Fatalf("err = %v, want retryable ErrProvider", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("err = %v, want it to wrap *net.OpError", err)
	}
	if n := len(h.slept()); n != DefaultMaxAttempts-1 {
		t.Errorf("slept %d times, want %d", n, DefaultMaxAttempts-1)
	}
	logs := h.logs.String()
	if got := strings.Count(logs, "sms send failed"); got != DefaultMaxAttempts {
		t.Errorf("logged %d failures, want %d:\n%s", got, DefaultMaxAttempts, logs)
	}
	if !strings.Contains(logs, addr) {
		t.Errorf("logs do not name the address dialled:\n%s", logs)
	}
	for _, text := range []string{err.Error(), logs} {
		assertClean(t, "error/logs", text)
		if strings.Contains(text, "/Accounts/") || strings.Contains(text, "api.twilio.com") {
			t.Errorf("text names the twilio-go URL instead of the target: %s", text)
		}
	}
}

func TestScrubber(t *testing.T) {
	s := &Sender{authToken: testToken}
	scrub := s.scrubber(testTo, testBody)
	in := fmt.Sprintf("Post https://user:%s@proxy.example:8080/x: to %s (%s) body %q token %s",
		testToken, testTo.E164(), strings.TrimPrefix(testTo.E164(), "+"), testBody, testToken)
	out := scrub(in)
	assertClean(t, "scrubbed", out)
	if strings.Contains(out, "user:") || !strings.Contains(out, "https://proxy.example:8080/x") {
		t.Errorf("userinfo not stripped cleanly: %s", out)
	}
}

func TestSendConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			to := pii.Mobile(fmt.Sprintf("+9198765%05d", i))
			if err := h.sender.Send(context.Background(), to, testBody); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := h.fake.WaitMessages(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.To] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct destinations, want %d", len(seen), n)
	}
}

func TestSendRejectsEmptyInput(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.sender.Send(context.Background(), "", testBody); !errors.Is(err, otp.ErrInvalidTo) || !errors.Is(err, otp.ErrPermanent) {
		t.Errorf("empty number: err = %v", err)
	}
	if err := h.sender.Send(context.Background(), testTo, ""); !errors.Is(err, otp.ErrPermanent) {
		t.Errorf("empty body: err = %v", err)
	}
	if n := len(h.fake.Requests()); n != 0 {
		t.Errorf("fake saw %d requests, want 0", n)
	}
}

func TestNewValidation(t *testing.T) {
	valid := Options{AccountSID: testSID, AuthToken: testToken, From: testFrom}
	tests := []struct {
		name string
		mod  func(*Options)
		want []string // substrings of the error; nil means valid
	}{
		{"valid from", func(o *Options) {}, nil},
		{"valid service", func(o *Options) { o.From, o.MessagingServiceSID = "", testService }, nil},
		{"valid https proxy with port", func(o *Options) { o.APIURL = "https://twilio-proxy.internal:8443" }, nil},
		{"everything missing", func(o *Options) { *o = Options{} },
			[]string{"AccountSID is required", "AuthToken is required", "one of From and MessagingServiceSID"}},
		{"both senders", func(o *Options) { o.MessagingServiceSID = testService }, []string{"only one of From and MessagingServiceSID"}},
		{"non-alphanumeric sid", func(o *Options) { o.AccountSID = "AC-123" }, []string{"AccountSID must be letters and digits"}},
		{"api key sid", func(o *Options) { o.AccountSID = "SK0123456789abcdef0123456789abcdef" }, []string{"AccountSID must start with AC"}},
		{"non-alphanumeric token", func(o *Options) { o.AuthToken = "s3cr3t/t0ken+xyz" }, []string{"AuthToken must be letters and digits"}},
		{"bad service sid", func(o *Options) { o.From, o.MessagingServiceSID = "", "PN123" }, []string{"MessagingServiceSID"}},
		{"ftp url", func(o *Options) { o.APIURL = "ftp://example.com" }, []string{"APIURL scheme must be http or https"}},
		{"relative url", func(o *Options) { o.APIURL = "localhost:8080" }, []string{"APIURL"}},
		{"url with path", func(o *Options) { o.APIURL = "https://example.com/twilio" }, []string{"APIURL must not have a path"}},
		{"url with credentials", func(o *Options) { o.APIURL = "https://user:hunter2@example.com" }, []string{"APIURL must not contain credentials"}},
		{"unparsable url", func(o *Options) { o.APIURL = "http://[::1" }, []string{"APIURL is not a valid URL"}},
		{"negative numbers", func(o *Options) { o.Timeout, o.MaxAttempts, o.Backoff = -1, -1, -1 },
			[]string{"Timeout must not be negative", "MaxAttempts must not be negative", "Backoff must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid
			tt.mod(&opts)
			s, err := New(opts)
			if tt.want == nil {
				if err != nil || s == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %v", opts)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, secret := range []string{"s3cr3t/t0ken+xyz", "hunter2", testToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes a secret: %v", err)
				}
			}
		})
	}
}

func TestStringsHideSecrets(t *testing.T) {
	opts := Options{AccountSID: testSID, AuthToken: testToken, MessagingServiceSID: testService, APIURL: "https://proxy.example:8443"}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "twilio", opts, "sender", s)

	texts := map[string]string{
		"Sender.String": s.String(),
		"%v":            fmt.Sprintf("%v", opts),
		"%+v":           fmt.Sprintf("%+v", opts),
		"%#v":           fmt.Sprintf("%#v", opts),
		"slog":          logs.String(),
	}
	for name, text := range texts {
		if strings.Contains(text, testToken) || strings.Contains(text, testSID) {
			t.Errorf("%s shows a secret or the full SID: %s", name, text)
		}
		if !strings.Contains(text, "AC…cdef") {
			t.Errorf("%s lacks the masked SID: %s", name, text)
		}
	}
	if !strings.Contains(s.String(), testService) || !strings.Contains(s.String(), "https://proxy.example:8443") {
		t.Errorf("Sender.String lacks the sender or target: %s", s)
	}
}
