package otp

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the code service. No label carries a mobile, an id or a chat.
type metrics struct {
	requested prometheus.Counter
	sent      prometheus.Counter
	limited   *prometheus.CounterVec // kind
	verified  *prometheus.CounterVec // outcome
	smsErrors *prometheus.CounterVec // kind

	nSent, nVerified atomic.Uint64 // for the ratio
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg) // nil: metrics work but are not exported
	m := &metrics{
		requested: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_codes_requested_total",
			Help: "Code requests received (whatever became of them)."}),
		sent: f.NewCounter(prometheus.CounterOpts{Name: "otpgate_codes_sent_total",
			Help: "Codes the SMS provider accepted."}),
		limited: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_code_requests_refused_total",
			Help: "Code requests that sent no SMS, by reason (limits, lockouts, no such record, country)."}, []string{"reason"}),
		verified: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_verifications_total",
			Help: "Code submissions by outcome."}, []string{"outcome"}),
		smsErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_sms_errors_total",
			Help: "SMS deliveries that failed, by kind."}, []string{"kind"}),
	}
	// The ratio of verified codes to sent codes: SMS pumping (codes sent to
	// numbers that never use them) drives it towards zero.
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "otpgate_verify_to_send_ratio",
		Help: "Codes verified divided by codes sent since start; a falling ratio reveals SMS pumping."}, func() float64 {
		sent := m.nSent.Load()
		if sent == 0 {
			return 0
		}
		return float64(m.nVerified.Load()) / float64(sent)
	})
	return m
}
