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
	// With a Coordinator.
	claims      *prometheus.CounterVec // by outcome
	coordErrors *prometheus.CounterVec // by call
	late        prometheus.Counter
	leading     prometheus.Gauge
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
		claims: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_telegram_update_claims_total",
			Help: "Updates claimed from the replicas' coordinator, by outcome (new, done: handled already, busy: another replica has it)."},
			[]string{"outcome"}),
		coordErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_telegram_coordinator_errors_total",
			Help: "Calls to the replicas' coordinator that failed, by call."}, []string{"call"}),
		late: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_telegram_updates_late_total",
			Help: "Claimed updates marked done before all their replies were sent, past the 45 s bound."}),
		leading: f.NewGauge(prometheus.GaugeOpts{Name: "otpgate_telegram_polling_leader",
			Help: "1 while this replica holds the polling lease (polling with a coordinator)."}),
	}
}
