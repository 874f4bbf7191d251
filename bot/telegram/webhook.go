package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// maxUpdateBytes bounds one webhook body; real updates are a few KB.
const maxUpdateBytes = 1 << 20

// webhookHandler receives updates Telegram posts. It checks the secret in
// constant time, decodes, hands the update to the dispatcher and answers at
// once; a full dispatcher gets 503 so Telegram retries later. With a
// Coordinator it claims the update first and answers once its replies are
// sent (serveClaimed).
type webhookHandler struct {
	secret []byte
	d      *dispatcher
	b      *Bot
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	got := []byte(r.Header.Get("X-Telegram-Bot-Api-Secret-Token"))
	if subtle.ConstantTimeCompare(got, h.secret) != 1 {
		h.b.log.Warn("webhook: request with a wrong secret token refused", "remote", r.RemoteAddr)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUpdateBytes+1))
	if err != nil || len(body) > maxUpdateBytes {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var u tgbotapi.Update
	if err := json.Unmarshal(body, &u); err != nil {
		// A body Telegram would never send: retrying cannot help, so 200.
		h.b.log.Warn("webhook: undecodable update ignored")
		w.WriteHeader(http.StatusOK)
		return
	}
	if h.b.o.Coordinator != nil {
		h.serveClaimed(w, u)
		return
	}
	if !h.d.tryDispatch(u, dispatchWait) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// dispatchWait is how long a webhook request waits for room in its chat's
// worker queue before answering 503.
const dispatchWait = 5 * time.Second

// serveClaimed handles u with a Coordinator. It claims u: an update some
// replica has handled is acknowledged (200), one another replica holds is
// refused (503) for Telegram to deliver again, as is any update when the
// Coordinator fails. A new one is handled and answered 200 only once every
// reply is made or refused for good, and then marked done. So a replica
// that dies with an update leaves it unacknowledged, and Telegram delivers
// it again to another once the claim lapses; and a chat's updates are
// handled in order across replicas, since Telegram sends a chat's next
// update only after the previous one was acknowledged. The wait is bound
// by settleWait (45 s, under the 60 s after which Telegram gives up on a
// connection); past it the update is acknowledged and marked done with its
// replies still queued (see settle for why). A shutdown before the replies
// go answers 503.
func (h *webhookHandler) serveClaimed(w http.ResponseWriter, u tgbotapi.Update) {
	b := h.b
	until := b.clock.Now().Add(settleWait)
	if !b.settling.add() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer b.settling.done()
	c, err := b.claim(u.UpdateID)
	switch {
	case err != nil:
		b.log.Warn("webhook: could not claim an update; asked Telegram to retry", "update_id", u.UpdateID, "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	case c == ClaimDone:
		w.WriteHeader(http.StatusOK)
		return
	case c == ClaimBusy:
		b.log.Debug("webhook: update held by another replica; asked Telegram to retry", "update_id", u.UpdateID)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	t := newTracked()
	b.track(u.UpdateID, t)
	if !h.d.tryDispatch(u, dispatchWait) {
		b.untrack(u.UpdateID)
		b.release(u.UpdateID)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if b.settle(u.UpdateID, t, until) == settledAbandoned {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serveWebhook registers the webhook and serves it until ctx ends.
func (b *Bot) serveWebhook(ctx context.Context, api *tgbotapi.BotAPI, d *dispatcher) error {
	u, _ := url.Parse(b.o.WebhookURL) // checked in validate
	path := u.Path
	if path == "" {
		path = "/"
	}
	mux := http.NewServeMux()
	mux.Handle(path, &webhookHandler{secret: []byte(b.o.WebhookSecret), d: d, b: b})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	if b.o.Coordinator != nil {
		srv.WriteTimeout = settleWait + 15*time.Second // the answer waits for the replies
	}
	ln := b.o.WebhookListener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", b.o.WebhookListen); err != nil {
			return fmt.Errorf("telegram: webhook listen on %s: %w", b.o.WebhookListen, err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }() // ends with Shutdown or Close below

	allowed, _ := json.Marshal(allowedUpdates)
	_, err := api.MakeRequest("setWebhook", tgbotapi.Params{
		"url":             b.o.WebhookURL,
		"secret_token":    b.o.WebhookSecret, // not in v5.5.1's WebhookConfig
		"allowed_updates": string(allowed),
		"max_connections": strconv.Itoa(40),
	})
	if err != nil {
		_ = srv.Close()
		<-serveErr
		return fmt.Errorf("telegram: setWebhook: %w", redactErr(err))
	}
	b.log.Info("webhook registered", "listen", ln.Addr().String(), "path", path)

	select {
	case <-ctx.Done():
	case err := <-serveErr: // only Shutdown and Close end Serve without an error
		_ = srv.Close()
		return fmt.Errorf("telegram: webhook server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx) // waits for handlers: their updates are dispatched
	<-serveErr               // ErrServerClosed, as soon as Shutdown began
	if b.o.Coordinator != nil && errors.Is(err, context.DeadlineExceeded) {
		// Requests waiting for their replies: Run settles them once the
		// send queue is flushed, and waits for them.
		b.log.Info("webhook: requests still waiting for their replies at shutdown")
		return nil
	}
	return err
}
