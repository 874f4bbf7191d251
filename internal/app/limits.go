package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

// OpsToken is the bearer token for the operator's endpoints of the ops
// server: /metrics/ops (the metrics that tell a registered number from an
// unregistered one), /limits and /limits/lift. Like BackupToken it is an
// HMAC keyed with a key derived from the master key, so whoever holds the
// master key computes it and nobody else can; it is a different token, so
// one cannot stand in for the other. Prometheus sends it with
// `authorization: {credentials_file: …}` in the scrape config.
func OpsToken(ks keys.Set) string {
	m := hmac.New(sha256.New, ks.Backup)
	m.Write([]byte("otpgate/v1/ops-token"))
	return hex.EncodeToString(m.Sum(nil))
}

// requireOpsToken answers 401 to a request without the ops token.
func requireOpsToken(ks keys.Set, log *slog.Logger, h http.Handler) http.Handler {
	want := []byte("Bearer " + OpsToken(ks))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			log.Warn("ops request refused: missing or wrong token", "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="otpgate ops"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// OpsMetricsHandler serves the operator's metrics registry (otp's codes
// sent, reasons for codes not sent, verification outcomes, SMS errors, send
// caps) to a request carrying the ops token.
func OpsMetricsHandler(reg *prometheus.Registry, ks keys.Set, log *slog.Logger) http.Handler {
	return requireOpsToken(ks, log.With("component", "ops"), promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// Limits is what the operator's endpoints use of the code service.
// *otp.Service implements it.
type Limits interface {
	Caps(ctx context.Context) ([]store.SendWindow, error)
	LiftCap(ctx context.Context, cap, rng, actor string) (bool, error)
}

// maxListedRanges bounds the number ranges GET /limits lists.
const maxListedRanges = 50

// LimitsHandler serves, with the ops token, GET /limits — the shared send
// caps as text, one line each, the global cap first and then the fullest
// number ranges — and POST /limits/lift with cap=global, or cap=prefix and
// range=+9190000, which empties that window at once (audited).
func LimitsHandler(l Limits, ks keys.Set, log *slog.Logger) http.Handler {
	log = log.With("component", "ops")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /limits", func(w http.ResponseWriter, r *http.Request) {
		ws, err := l.Caps(r.Context())
		if err != nil {
			log.Error("limits", "err", err)
			http.Error(w, "the store did not answer", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		writeLimits(w, ws, time.Now())
	})
	mux.HandleFunc("POST /limits/lift", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		cap, rng := r.PostForm.Get("cap"), r.PostForm.Get("range")
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		lifted, err := l.LiftCap(r.Context(), cap, rng, "operator@"+host)
		switch {
		case errors.Is(err, store.ErrUnknownCap):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case err != nil:
			log.Error("lift limit", "err", err)
			http.Error(w, "the store did not answer", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		name := strings.TrimSpace(cap + " " + rng)
		if lifted {
			fmt.Fprintf(w, "lifted %s: its window is empty again\n", name)
		} else {
			fmt.Fprintf(w, "%s had no live window: nothing to lift\n", name)
		}
	})
	return requireOpsToken(ks, log, mux)
}

func writeLimits(w io.Writer, ws []store.SendWindow, now time.Time) {
	ranges, drained := 0, 0
	for _, sw := range ws {
		state := ""
		if sw.Drained() {
			state = "  DRAINED"
		}
		line := fmt.Sprintf("%-16s %5d/%-5d resets in %s%s\n", strings.TrimSpace(sw.Cap+" "+sw.Range), sw.Count, sw.Limit,
			sw.Resets.Sub(now).Round(time.Second), state)
		if sw.Cap == store.CapPrefix {
			ranges++
			if sw.Drained() {
				drained++
			}
			if ranges > maxListedRanges {
				continue
			}
		}
		io.WriteString(w, line)
	}
	if ranges > maxListedRanges {
		fmt.Fprintf(w, "… and %d more number ranges\n", ranges-maxListedRanges)
	}
	fmt.Fprintf(w, "%d number ranges with codes this hour, %d drained\n", ranges, drained)
}

// FetchLimits asks a running otpgate for its send caps through its ops
// server at opsAddr and writes them to w.
func FetchLimits(ctx context.Context, opsAddr string, ks keys.Set, w io.Writer) error {
	return opsCall(ctx, opsAddr, ks, http.MethodGet, "/limits", nil, w)
}

// LiftLimit asks a running otpgate to empty a send window now: cap is
// "global", or "prefix" with rng a number range as FetchLimits shows it.
func LiftLimit(ctx context.Context, opsAddr string, ks keys.Set, cap, rng string, w io.Writer) error {
	return opsCall(ctx, opsAddr, ks, http.MethodPost, "/limits/lift", url.Values{"cap": {cap}, "range": {rng}}, w)
}

// ErrOpsForbidden: the ops server refused the ops token (another master key).
var ErrOpsForbidden = errors.New("the running otpgate refused the ops token: it runs with another OTPGATE_MASTER_KEY")

func opsCall(ctx context.Context, opsAddr string, ks keys.Set, method, path string, form url.Values, w io.Writer) error {
	u, err := opsURL(opsAddr, path)
	if err != nil {
		return err
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("ops request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+OpsToken(ks))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy:       nil, // the ops port is local; never route the token through a proxy
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s: %w", ErrOpsUnreachable, opsAddr, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		_, err := io.Copy(w, io.LimitReader(resp.Body, 1<<20))
		return err
	case http.StatusUnauthorized:
		return ErrOpsForbidden
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s has no %s (is it an otpgate ops server of this version?)", ErrOpsUnreachable, opsAddr, path)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s from %s: %s: %s", path, opsAddr, resp.Status, strings.TrimSpace(string(msg)))
	}
}
