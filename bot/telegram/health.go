package telegram

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// health remembers how the latest calls to Telegram went.
type health struct {
	clock   Clock
	mu      sync.Mutex
	lastOK  time.Time
	lastErr time.Time
}

func (h *health) ok() {
	now := h.clock.Now()
	h.mu.Lock()
	h.lastOK = now
	h.mu.Unlock()
}

func (h *health) fail() {
	now := h.clock.Now()
	h.mu.Lock()
	h.lastErr = now
	h.mu.Unlock()
}

// reachable: the latest call succeeded, within window.
func (h *health) reachable(window time.Duration) bool {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.lastOK.IsZero() && !h.lastErr.After(h.lastOK) && now.Sub(h.lastOK) < window
}

// quiet: no call has succeeded for longer than d.
func (h *health) quiet(d time.Duration) bool {
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Sub(h.lastOK) > d
}

// Reachable reports whether Telegram answered the bot's latest call, and did
// so recently: the readiness check of the ops endpoint.
func (b *Bot) Reachable() bool { return b.health.reachable(b.o.PollTimeout + 35*time.Second) }

type metrics struct {
	tooMany prometheus.Counter
	updates *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, depth func() float64) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "otpgate_telegram_send_queue_depth",
		Help: "Bot API calls queued or in flight."}, depth)
	return &metrics{
		tooMany: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_telegram_429_total",
			Help: "Bot API calls answered 429 Too Many Requests."}),
		updates: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_telegram_updates_total",
			Help: "Updates received, by kind."}, []string{"kind"}),
	}
}
