package proof

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

const (
	chromiumPath = "/usr/bin/chromium"
	insecureHost = "verify.otpgate.test"
)

// needChromium skips without Debian's chromium, except in CI, which
// installs it: there a missing browser is a failure, not a skip.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatalf("CI=%s but %s is missing: CI must install it (apt-get install -y chromium)", ci, chromiumPath)
	}
	t.Skipf("%s not found: apt-get install -y chromium to test the verification page in a browser", chromiumPath)
}

// browser starts headless Chromium on a fresh profile, the whole of it bound
// to the test's deadline.
// The second result reports what the page has logged as errors so far.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second) // a guard against a hang; the test takes about 5 s
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// A name other than localhost, over plain http, is not a secure
		// context: the page must say it cannot check there.
		chromedp.Flag("host-resolver-rules", "MAP "+insecureHost+" 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancelAlloc)
	var mu sync.Mutex
	var problems []string
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception at %d:%d: %s", d.LineNumber, d.ColumnNumber, msg))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				problems = append(problems, fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		}
	}))
	t.Cleanup(cancelBrowser)
	return bctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(problems)
	}
}

func TestVerifyPageInChromium(t *testing.T) {
	needChromium(t)
	start := time.Now()

	s := testSigner(t, 1)
	now := time.Now()
	issueAt := func(s *Signer, f Facts, at time.Time, ttl time.Duration) (Claims, string) {
		c, text, err := s.Issue(f, issuer, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return c, text
	}
	valid, text := issueAt(s, typicalFacts(), now, time.Hour)
	_, unvaccinated := issueAt(s, Facts{Status: StatusNone, BirthYear: 2001, Name: "सीता राम"}, now, time.Hour)
	_, expired := issueAt(s, typicalFacts(), now.Add(-2*time.Hour), time.Hour)
	revokedClaims, revokedText := issueAt(s, typicalFacts(), now, time.Hour)
	_, forged := issueAt(testSigner(t, 2), typicalFacts(), now, time.Hour)
	cose := coseOf(t, text)
	cose[len(cose)-1] ^= 1
	badSignature := rewrap(t, cose)
	mid := len(Prefix) + (len(text)-len(Prefix))/2
	repl := "A"
	if text[mid] == 'A' {
		repl = "B"
	}
	oneCharOff := text[:mid] + repl + text[mid+1:]

	revoked, _ := NewRevocations(now, revokedClaims.ID)
	p, err := NewPublisher(keySet(t, s), revoked)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p) // 127.0.0.1: a secure context for WebCrypto
	defer srv.Close()

	png, err := QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	qrFile := filepath.Join(t.TempDir(), "proof.png")
	if err := os.WriteFile(qrFile, png, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, problems := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("browser console: %q", problems())
		}
	}()

	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	// The scripts ran under the page's policy: jsQR loaded, the verifier
	// read the embedded lists, the style applied, and WebCrypto is there.
	if got := eval(`typeof jsQR + " " + window.isSecureContext + " " + typeof crypto.subtle`); got != "function true object" {
		t.Fatalf("page state %q", got)
	}
	if got := eval(`document.getElementById('lists').textContent`); got != "This page carries 1 issuer key, 1 revoked proof (list of "+revoked.Updated().Format(time.RFC3339)+")." {
		t.Fatalf("lists %q", got)
	}
	if got := eval(`getComputedStyle(document.querySelector('main')).maxWidth`); got != "640px" {
		t.Fatalf("style not applied: max-width %q", got)
	}

	// result waits for the page's answer after act and returns its state,
	// the verdict and the details.
	result := func(act chromedp.Action[chromedp.Void]) (state, verdict string, details map[string]string) {
		t.Helper()
		if err := chromedp.Do(ctx,
			chromedp.Evaluate[chromedp.Void](`document.getElementById('result').dataset.state = ''`),
			act,
		); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		state, err := chromedp.Run(pctx, chromedp.Poll[string](`document.getElementById('result').dataset.state || false`,
			chromedp.WithPollingInterval(20*time.Millisecond)))
		if err != nil {
			t.Fatalf("no result: %v", err)
		}
		verdict = eval(`document.getElementById('verdict').textContent`)
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
			`Object.fromEntries([...document.querySelectorAll('#details dd')].map(d => [d.dataset.field, d.textContent]))`))
		if err != nil {
			t.Fatal(err)
		}
		return state, verdict, rows
	}
	paste := func(text string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#text"), text),
			chromedp.Click(chromedp.CSS("#check")),
		)
	}

	state, verdict, details := result(paste(text))
	want := map[string]string{
		"Status": "full", "Doses": "2", "Last dose": "2021-08", "Initials": "A.V.", "Birth year": "1987",
		"Issued by": issuer, "Proof id": valid.ID,
		"Valid until": valid.Expires.UTC().Format("2006-01-02 15:04") + " UTC",
	}
	if state != "valid" || verdict != "valid" || fmt.Sprint(details) != fmt.Sprint(want) {
		t.Fatalf("valid proof: %s %q %v, want %v", state, verdict, details, want)
	}

	state, verdict, details = result(paste(unvaccinated))
	if state != "valid" || details["Status"] != "none" || details["Doses"] != "0" || details["Last dose"] != "—" ||
		details["Initials"] != "सी.रा." || details["Birth year"] != "2001" {
		t.Fatalf("proof without doses: %s %q %v", state, verdict, details)
	}

	for _, tc := range []struct{ name, text, verdict string }{
		{"one character altered", oneCharOff, "invalid: not a proof"},
		{"signature altered", badSignature, "invalid: bad signature"},
		{"signed by an unknown key", forged, "invalid: unknown key"},
		{"expired", expired, "invalid: expired"},
		{"revoked", revokedText, "invalid: revoked"},
		{"garbage", "hello, world", "invalid: not a proof"},
		{"another prefix", "HC1:" + text[len(Prefix):], "invalid: not a proof"},
	} {
		state, verdict, details := result(paste(tc.text))
		if state != "invalid" || verdict != tc.verdict || len(details) != 0 {
			t.Errorf("%s: %s %q %v, want %q", tc.name, state, verdict, details, tc.verdict)
		}
	}

	// A picture of the QR code through the file input.
	eval(`document.getElementById('text').value = ''`)
	state, verdict, details = result(chromedp.SetUploadFiles(chromedp.CSS("#image"), []string{qrFile}))
	if state != "valid" || verdict != "valid" || details["Initials"] != "A.V." || details["Proof id"] != valid.ID {
		t.Fatalf("QR image: %s %q %v", state, verdict, details)
	}
	if got := eval(`document.getElementById('text').value`); got != text {
		t.Fatalf("the image gave %q", got)
	}

	// Nothing was blocked by the page's policy, nothing threw.
	if p := problems(); len(p) != 0 {
		t.Errorf("the page logged errors: %q", p)
	}

	// The same page from a host that is not a secure context (where
	// Chromium notes that it ignores Cross-Origin-Opener-Policy).
	insecure := strings.Replace(srv.URL, "127.0.0.1", insecureHost, 1) + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(insecure)); err != nil {
		t.Fatal(err)
	}
	if got := eval(`window.isSecureContext + " " + document.getElementById('notice').hidden`); got != "false false" {
		t.Fatalf("insecure context: %q", got)
	}
	if got := eval(`document.getElementById('notice').textContent`); !strings.Contains(got, "secure context") {
		t.Fatalf("notice %q", got)
	}
	state, verdict, _ = result(paste(text))
	if state != "error" || !strings.HasPrefix(verdict, "cannot check here") {
		t.Fatalf("insecure context: %s %q", state, verdict)
	}

	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}
