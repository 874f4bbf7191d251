package telegramtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// SecretHeader carries a webhook's secret_token on every delivery.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// webhookState is the current setWebhook, with its delivery errors.
type webhookState struct {
	url, secret   string
	maxConn       int
	ipAddress     string
	allowed       []string
	lastError     string
	lastErrorTime time.Time
}

// WebhookInfo is the webhook as the bot last set it; URL is empty when no
// webhook is set.
type WebhookInfo struct {
	URL            string
	SecretToken    string
	MaxConnections int
	AllowedUpdates []string // as set by setWebhook or getUpdates; nil for Telegram's default
	PendingUpdates int
	LastError      string // Telegram's last_error_message, "" if none
	LastErrorTime  time.Time
}

// WebhookStats count the fake's deliveries to the webhook. Every attempt
// is one POST of one update; Failures are attempts answered non-2xx or not
// answered at all, each followed by a retry of the same update.
type WebhookStats struct {
	Attempts  int
	Delivered int
	Failures  int
}

// Webhook returns the current webhook setting.
func (s *Server) Webhook() WebhookInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return WebhookInfo{
		URL:            s.webhook.url,
		SecretToken:    s.webhook.secret,
		MaxConnections: s.webhook.maxConn,
		AllowedUpdates: append([]string(nil), s.webhook.allowed...),
		PendingUpdates: len(s.queue),
		LastError:      s.webhook.lastError,
		LastErrorTime:  s.webhook.lastErrorTime,
	}
}

// WebhookDeliveries returns the delivery counters.
func (s *Server) WebhookDeliveries() WebhookStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookStats
}

// startSenderLocked starts the webhook sender once; Close stops it.
func (s *Server) startSenderLocked() {
	if s.senderRunning || s.isClosed {
		return
	}
	s.senderRunning = true
	s.wg.Add(1)
	go s.sendLoop()
}

// sendLoop delivers queued updates to the webhook one at a time, in order,
// retrying the head of the queue with doubling back-off until it is
// answered 2xx, as Telegram does. It pauses while no webhook is set or the
// fake is down, and returns when the fake closes.
func (s *Server) sendLoop() {
	defer s.wg.Done()
	backoff := s.opts.WebhookBackoff
	for {
		s.mu.Lock()
		for !s.isClosed && (s.webhook.url == "" || len(s.queue) == 0 || s.down) {
			wake := s.wake
			s.mu.Unlock()
			select {
			case <-wake:
			case <-s.ctx.Done():
				return
			}
			s.mu.Lock()
		}
		if s.isClosed {
			s.mu.Unlock()
			return
		}
		u := s.queue[0]
		hook, secret := s.webhook.url, s.webhook.secret
		s.mu.Unlock()

		status, err := s.post(s.ctx, hook, secret, u.raw)
		if s.ctx.Err() != nil {
			return
		}
		ok := err == nil && status >= 200 && status < 300

		s.mu.Lock()
		s.hookStats.Attempts++
		if ok {
			s.hookStats.Delivered++
			if len(s.queue) > 0 && s.queue[0].id == u.id {
				s.dropLocked(1)
			}
		} else {
			s.hookStats.Failures++
			if s.webhook.url == hook {
				s.webhook.lastErrorTime = s.now()
				s.webhook.lastError = deliveryError(status, err)
			}
		}
		s.notifyLocked()
		s.mu.Unlock()

		if ok {
			backoff = s.opts.WebhookBackoff
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, s.opts.WebhookMaxBackoff)
	}
}

// deliveryError words a failed delivery like getWebhookInfo's
// last_error_message.
func deliveryError(status int, err error) string {
	if err != nil {
		return "Connection refused"
	}
	return fmt.Sprintf("Wrong response from the webhook: %d %s", status, http.StatusText(status))
}

// post sends one update to a webhook and returns the status answered.
func (s *Server) post(ctx context.Context, hook, secret string, update []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(update))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(SecretHeader, secret)
	}
	resp, err := s.hook.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// PostUpdateWithSecret POSTs update to the current webhook the way the fake
// delivers, but outside the queue and the counters, with secret as the
// secret header (none when empty): a forged or misdirected delivery. It
// returns the HTTP status the webhook answered.
func (s *Server) PostUpdateWithSecret(ctx context.Context, secret string, update json.RawMessage) (int, error) {
	s.mu.Lock()
	hook := s.webhook.url
	s.mu.Unlock()
	if hook == "" {
		return 0, ErrNoWebhook
	}
	status, err := s.post(ctx, hook, secret, update)
	if err != nil {
		return 0, fmt.Errorf("telegramtest: post to webhook: %w", err)
	}
	return status, nil
}
