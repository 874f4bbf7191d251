package proof

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

//go:embed web/verify.html web/verify.js web/jsQR.js
var webFS embed.FS

// staticPage is verify.html with the scripts and the policy filled in, split
// around the two data blocks (parts[0] keys parts[1] revocations parts[2]),
// and the policy to send with it.
type staticPage struct {
	parts     [3]string
	headerCSP string
}

var pageTemplate = sync.OnceValues(func() (staticPage, error) {
	read := func(name string) string {
		b, err := webFS.ReadFile("web/" + name)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		return string(b)
	}
	html, js, jsqr := read("verify.html"), read("verify.js"), read("jsQR.js")
	for name, s := range map[string]string{"verify.js": js, "jsQR.js": jsqr} {
		// Inline, these would end the script element early.
		if strings.Contains(strings.ToLower(s), "</script") || strings.Contains(s, "<!--") {
			return staticPage{}, fmt.Errorf("proof: %s cannot be inlined", name)
		}
	}
	style, ok := between(html, "<style>", "</style>")
	if !ok {
		return staticPage{}, fmt.Errorf("proof: verify.html has no style element")
	}
	scripts := []string{jsqr, js}
	html = strings.NewReplacer("{{csp}}", pageCSP(style, scripts, false), "{{jsqr}}", jsqr, "{{verify}}", js).Replace(html)
	before, rest, ok1 := strings.Cut(html, "{{keys}}")
	middle, after, ok2 := strings.Cut(rest, "{{revocations}}")
	if !ok1 || !ok2 {
		return staticPage{}, fmt.Errorf("proof: verify.html lacks a data placeholder")
	}
	return staticPage{parts: [3]string{before, middle, after}, headerCSP: pageCSP(style, scripts, true)}, nil
})

// pageCSP allows the page's own inline style and scripts, by hash, and
// nothing else: no network access at all, no other script, no form, no base.
// frame-ancestors works only in a header, not in the page's meta element.
func pageCSP(style string, scripts []string, header bool) string {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	var src []string
	for _, s := range scripts {
		src = append(src, hash(s))
	}
	csp := "default-src 'none'; script-src " + strings.Join(src, " ") +
		"; style-src " + hash(style) +
		"; img-src data:; base-uri 'none'; form-action 'none'; require-trusted-types-for 'script'"
	if header {
		csp += "; frame-ancestors 'none'"
	}
	return csp
}

func between(s, open, close string) (string, bool) {
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		return "", false
	}
	in, _, ok := strings.Cut(rest, close)
	return in, ok
}

// VerifyPage renders the verification page, one self-contained HTML file
// with keys and revoked embedded: once loaded (or saved and opened from
// disk) it checks proofs with no network access, with the browser's WebCrypto
// (a secure context: https, localhost or a file). It carries its own
// Content-Security-Policy in a meta element. It fails only if the embedded
// page is broken, which a test rules out.
func VerifyPage(keys KeySet, revoked Revocations) ([]byte, error) {
	static, err := pageTemplate()
	if err != nil {
		return nil, err
	}
	parts := static.parts
	// encoding/json escapes <, > and & (and U+2028, U+2029), so the JSON
	// cannot end the script element it sits in.
	k, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	r, err := json.Marshal(revoked)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(parts[0]) + len(parts[1]) + len(parts[2]) + len(k) + len(r))
	b.WriteString(parts[0])
	b.Write(k)
	b.WriteString(parts[1])
	b.Write(r)
	b.WriteString(parts[2])
	return b.Bytes(), nil
}

// Publisher serves what anyone needs to verify proofs, read-only:
//
//	GET /                  the verification page (VerifyPage), with a
//	                       Content-Security-Policy; gzip when accepted
//	GET /keys.json         the KeySet as a JWKS (application/jwk-set+json)
//	GET /revocations.json  the Revocations (application/json)
//
// HEAD works too; other methods get 405 and other paths 404. Every response
// carries an ETag and answers If-None-Match with 304. The page and the
// revocation list must be revalidated on each use (Cache-Control: no-cache)
// so that a revocation shows at once; keys may be cached for five minutes,
// so publish a new key that long before signing with it. The JSON documents
// allow any origin (CORS), for third-party verifiers.
//
// The set and the list can be replaced while serving; each response is
// rendered once per change (the compressed page on its first request), not
// per request. A Publisher is safe for concurrent use.
type Publisher struct {
	mu   sync.Mutex // serialises updates
	site atomic.Pointer[site]
}

type site struct {
	keys    KeySet
	revoked Revocations
	page    asset
	jwks    asset
	revList asset
	csp     string // of the page
}

type asset struct {
	body        []byte
	etag        string
	contentType string
	cache       string
	// gzipped compresses body on first use, once per version; nil when
	// not worth it.
	gzipped func() (body []byte, etag string)
}

// NewPublisher serves keys and revoked. It fails only if the page cannot be
// rendered.
func NewPublisher(keys KeySet, revoked Revocations) (*Publisher, error) {
	p := &Publisher{}
	s, err := render(keys, revoked)
	if err != nil {
		return nil, err
	}
	p.site.Store(s)
	return p, nil
}

// SetKeys replaces the published key set (after a rotation). On error the
// previous set stays published.
func (p *Publisher) SetKeys(keys KeySet) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := render(keys, p.site.Load().revoked)
	if err != nil {
		return err
	}
	p.site.Store(s)
	return nil
}

// SetRevocations replaces the published revocation list. On error the
// previous list stays published.
func (p *Publisher) SetRevocations(revoked Revocations) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, err := render(p.site.Load().keys, revoked)
	if err != nil {
		return err
	}
	p.site.Store(s)
	return nil
}

func render(keys KeySet, revoked Revocations) (*site, error) {
	static, err := pageTemplate()
	if err != nil {
		return nil, err
	}
	page, err := VerifyPage(keys, revoked)
	if err != nil {
		return nil, err
	}
	k, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	r, err := json.Marshal(revoked)
	if err != nil {
		return nil, err
	}
	return &site{
		keys:    keys,
		revoked: revoked,
		page:    newAsset(page, "text/html; charset=utf-8", "no-cache", true),
		csp:     static.headerCSP,
		jwks:    newAsset(k, "application/jwk-set+json", "public, max-age=300", false),
		revList: newAsset(r, "application/json", "no-cache", false),
	}, nil
}

func newAsset(body []byte, contentType, cache string, compress bool) asset {
	a := asset{body: body, etag: etag(body), contentType: contentType, cache: cache}
	if compress {
		a.gzipped = sync.OnceValues(func() ([]byte, string) {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
			zw.Write(body)
			zw.Close()
			return b.Bytes(), etag(b.Bytes())
		})
	}
	return a
}

func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

// ServeHTTP serves the three documents.
func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.site.Load()
	var a *asset
	switch r.URL.Path {
	case "/":
		a = &s.page
	case "/keys.json":
		a = &s.jwks
	case "/revocations.json":
		a = &s.revList
	default:
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if a == &s.page {
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Vary", "Accept-Encoding")
	} else {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	body, tag := a.body, a.etag
	if a.gzipped != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body, tag = a.gzipped()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Cache-Control", a.cache)
	h.Set("ETag", tag)
	if matchesETag(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func matchesETag(header, tag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == tag || part == "*" {
			return true
		}
	}
	return false
}
