package otp

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/otpgate/otpgate/store"
)

// metrics of the code service, in two sets. No label carries a mobile, an
// id or a chat.
//
// The public set (anyone who can reach /metrics) holds only series that
// move the same way whether or not a looked-up number is registered:
// requests received, and verifications as verified or rejected. Codes sent,
// codes not sent and why, the detailed verification outcomes, SMS errors
// and the send caps would each tell a scraper, right after a /lookup of
// theirs, whether it matched a record — so they go to the operator's set,
// which the ops server serves only with the ops token. The operator holds
// the master key and the audit log anyway: the reasons tell them nothing
// they could not read there.
type metrics struct {
	requested prometheus.Counter     // public
	verified  *prometheus.CounterVec // public: result (verified, rejected)

	sent      prometheus.Counter     // operator
	notSent   *prometheus.CounterVec // operator: reason
	outcomes  *prometheus.CounterVec // operator: outcome
	smsErrors *prometheus.CounterVec // operator: kind

	nSent, nVerified atomic.Uint64 // for the ratio
}

func newMetrics(public, ops prometheus.Registerer, caps func(context.Context) ([]store.SendWindow, error)) *metrics {
	p := promauto.With(public) // nil: metrics work but are not exported
	o := promauto.With(ops)
	m := &metrics{
		requested: p.NewCounter(prometheus.CounterOpts{Name: "otpgate_codes_requested_total",
			Help: "Code requests received, whatever became of them."}),
		verified: p.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_verifications_total",
			Help: "Code submissions: verified or rejected (the reasons are on the operator's endpoint)."}, []string{"result"}),
		sent: o.NewCounter(prometheus.CounterOpts{Name: "otpgate_codes_sent_total",
			Help: "Codes the SMS provider accepted."}),
		notSent: o.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_codes_not_sent_total",
			Help: "Code requests that sent no SMS (a decoy was stored), by reason: a limit, a lockout, no such record, the country."}, []string{"reason"}),
		outcomes: o.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_verification_outcomes_total",
			Help: "Code submissions by outcome."}, []string{"outcome"}),
		smsErrors: o.NewCounterVec(prometheus.CounterOpts{Name: "otpgate_sms_errors_total",
			Help: "SMS deliveries that failed, by kind."}, []string{"kind"}),
	}
	// The ratio of verified codes to sent codes: SMS pumping (codes sent to
	// numbers that never use them) drives it towards zero.
	o.NewGaugeFunc(prometheus.GaugeOpts{Name: "otpgate_verify_to_send_ratio",
		Help: "Codes verified divided by codes sent since start; a falling ratio reveals SMS pumping."}, func() float64 {
		sent := m.nSent.Load()
		if sent == 0 {
			return 0
		}
		return float64(m.nVerified.Load()) / float64(sent)
	})
	if ops != nil {
		ops.MustRegister(capsCollector{caps})
	}
	return m
}

// capsCollector reads the shared send windows from the store at each
// scrape: what an operator needs to see a drained cap.
type capsCollector struct {
	caps func(context.Context) ([]store.SendWindow, error)
}

var (
	capRemainingDesc = prometheus.NewDesc("otpgate_sms_cap_remaining",
		"Codes the global send cap still allows in its current hour; 0 means drained (lift with `otpgate limits lift global`).", []string{"cap"}, nil)
	prefixesDrainedDesc = prometheus.NewDesc("otpgate_sms_prefixes_drained",
		"Number ranges whose hourly send cap is drained (list them with `otpgate limits`).", nil, nil)
)

func (c capsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- capRemainingDesc
	ch <- prefixesDrainedDesc
}

func (c capsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ws, err := c.caps(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(capRemainingDesc, err)
		return
	}
	drained := 0
	for _, w := range ws {
		switch w.Cap {
		case store.CapGlobal:
			ch <- prometheus.MustNewConstMetric(capRemainingDesc, prometheus.GaugeValue, float64(max(w.Limit-w.Count, 0)), w.Cap)
		case store.CapPrefix:
			if w.Drained() {
				drained++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(prefixesDrainedDesc, prometheus.GaugeValue, float64(drained))
}
