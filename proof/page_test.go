package proof

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// inlineScripts returns the contents of the page's executable inline
// scripts (the data blocks have a type and do not count).
func inlineScripts(page string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(page, "<script>")
		if !ok {
			return out
		}
		in, after, _ := strings.Cut(rest, "</script>")
		out = append(out, in)
		page = after
	}
}

func sha256CSP(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// dataBlock returns the text of <script type="application/json" id="id">.
func dataBlock(t *testing.T, page, id string) string {
	t.Helper()
	open := `<script type="application/json" id="` + id + `">`
	_, rest, ok := strings.Cut(page, open)
	if !ok {
		t.Fatalf("page lacks the %s data block", id)
	}
	in, _, _ := strings.Cut(rest, "</script>")
	return in
}

func TestVerifyPageEmbedsKeysAndRevocations(t *testing.T) {
	keys := keySet(t, testSigner(t, 1), testSigner(t, 2))
	revoked, _ := NewRevocations(t0, "0123456789abcdef")
	b, err := VerifyPage(keys, revoked)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)

	wantKeys, _ := json.Marshal(keys)
	if got := dataBlock(t, page, "keys"); got != string(wantKeys) {
		t.Fatalf("embedded keys %s, want %s", got, wantKeys)
	}
	wantRev, _ := json.Marshal(revoked)
	if got := dataBlock(t, page, "revocations"); got != string(wantRev) {
		t.Fatalf("embedded revocations %s, want %s", got, wantRev)
	}
	if strings.Contains(page, "{{") {
		t.Fatal("a placeholder is left in the page")
	}
	// Offline: the page fetches nothing, so it names no URL to load.
	for _, s := range []string{"fetch(", "XMLHttpRequest", "src=", "import("} {
		if strings.Contains(page, s) {
			t.Errorf("page holds %q", s)
		}
	}
}

// The policy in the meta element and in the header must allow exactly the
// inline scripts and the style: a stale hash leaves a dead page.
func TestVerifyPagePolicyMatchesItsScripts(t *testing.T) {
	b, err := VerifyPage(KeySet{}, Revocations{})
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	m := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSP meta element")
	}
	p, _ := NewPublisher(KeySet{}, Revocations{})
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	header := rec.Header().Get("Content-Security-Policy")

	scripts := inlineScripts(page)
	if len(scripts) != 2 {
		t.Fatalf("%d inline scripts, want jsQR and the verifier", len(scripts))
	}
	style, _ := between(page, "<style>", "</style>")
	for _, csp := range []string{m[1], header} {
		for _, s := range scripts {
			if !strings.Contains(csp, sha256CSP(s)) {
				t.Errorf("policy %q does not allow a script", csp)
			}
		}
		if !strings.Contains(csp, "style-src "+sha256CSP(style)) {
			t.Errorf("policy %q does not allow the style", csp)
		}
		for _, d := range []string{"default-src 'none'", "base-uri 'none'", "form-action 'none'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("policy %q lacks %s", csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "connect-src") {
			t.Errorf("policy %q is too loose", csp)
		}
	}
	if !strings.Contains(header, "frame-ancestors 'none'") {
		t.Errorf("header policy %q lacks frame-ancestors", header)
	}
	if !strings.Contains(page, "jsQR 1.4.0") || !strings.Contains(page, "Apache License") {
		t.Error("jsQR's licence notice is missing")
	}
}

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPublisher(t *testing.T) {
	s := testSigner(t, 1)
	keys := keySet(t, s)
	p, err := NewPublisher(keys, Revocations{})
	if err != nil {
		t.Fatal(err)
	}

	r := get(t, p, "GET", "/keys.json")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/jwk-set+json" ||
		r.Header.Get("Cache-Control") != "public, max-age=300" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("keys.json: %d %v", r.StatusCode, r.Header)
	}
	got, err := ParseKeySet([]byte(body(t, r)))
	if err != nil || got.Len() != 1 || got.Keys()[0].ID() != s.KeyID() {
		t.Fatalf("keys.json: %v, %v", got.Keys(), err)
	}

	r = get(t, p, "GET", "/revocations.json")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("revocations.json: %d %v", r.StatusCode, r.Header)
	}
	if b := body(t, r); b != `{"revoked":[]}` {
		t.Fatalf("revocations.json %s", b)
	}

	r = get(t, p, "GET", "/")
	page := body(t, r)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		r.Header.Get("Content-Security-Policy") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" ||
		r.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(page, s.KeyID()) {
		t.Fatalf("page: %d %v", r.StatusCode, r.Header)
	}

	// Revalidation.
	tag := r.Header.Get("ETag")
	if r := get(t, p, "GET", "/", "If-None-Match", tag); r.StatusCode != http.StatusNotModified || body(t, r) != "" {
		t.Fatalf("If-None-Match: %d", r.StatusCode)
	}

	// Compressed when asked, with its own tag.
	r = get(t, p, "GET", "/", "Accept-Encoding", "br, gzip")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("ETag") == tag || r.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip: %v", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); string(unzipped) != page {
		t.Fatal("gzipped page differs")
	}
	if r := get(t, p, "GET", "/", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip sent though refused")
	}

	if r := get(t, p, "HEAD", "/keys.json"); r.StatusCode != 200 || body(t, r) != "" || r.Header.Get("Content-Length") == "" {
		t.Fatalf("HEAD: %d", r.StatusCode)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if r := get(t, p, m, "/revocations.json"); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("%s: %d", m, r.StatusCode)
		}
	}
	for _, path := range []string{"/index.html", "/keys", "/web/verify.js", "/../keys.json"} {
		if r := get(t, p, "GET", path); r.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d", path, r.StatusCode)
		}
	}
}

func TestPublisherUpdatesWhileServing(t *testing.T) {
	old, current := testSigner(t, 1), testSigner(t, 2)
	p, err := NewPublisher(keySet(t, old), Revocations{})
	if err != nil {
		t.Fatal(err)
	}
	before := get(t, p, "GET", "/").Header.Get("ETag")

	// Readers run while the lists change; the race detector watches.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				for _, path := range []string{"/", "/keys.json", "/revocations.json"} {
					if r := get(t, p, "HEAD", path); r.StatusCode != 200 {
						t.Errorf("HEAD %s: %d", path, r.StatusCode)
					}
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	}
	ids := []string{"0123456789abcdef", "2222222222222222"}
	rev := Revocations{}
	for i, id := range ids {
		rev, _ = rev.With(t0.Add(time.Duration(i)*time.Minute), id)
		if err := p.SetRevocations(rev); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SetKeys(keySet(t, current, old)); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	list, err := ParseRevocations([]byte(body(t, get(t, p, "GET", "/revocations.json"))))
	if err != nil || list.Len() != 2 {
		t.Fatalf("revocations after updates: %v, %v", list.IDs(), err)
	}
	keys, _ := ParseKeySet([]byte(body(t, get(t, p, "GET", "/keys.json"))))
	if keys.Len() != 2 {
		t.Fatalf("%d keys after rotation", keys.Len())
	}
	r := get(t, p, "GET", "/")
	page := body(t, r)
	if r.Header.Get("ETag") == before || !strings.Contains(page, "2222222222222222") || !strings.Contains(page, current.KeyID()) {
		t.Fatal("the page does not carry the updates")
	}
	if !bytes.Contains([]byte(page), []byte(old.KeyID())) {
		t.Fatal("the old key fell out of the page")
	}
}
