package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
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
// once; a full dispatcher gets 503 so Telegram retries later.
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
	if !h.d.tryDispatch(u, 5*time.Second) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
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
	return err
}
