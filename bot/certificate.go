package bot

import (
	"errors"

	"github.com/otpgate/otpgate/store"
)

// certificate is /certificate: after a verified code, a signed proof of
// vaccination status for a record the grant covers (a chooser when there
// are several). Beneficiaries only: a staff grant never yields a proof.
func (c *conv) certificate() {
	if c.e.o.Certifier == nil || c.s.Grant.ID == "" || c.s.GrantAudience != store.AudienceBeneficiary {
		c.say(msgCertificateNeedsCode)
		return
	}
	sums, err := c.e.o.Records.Summaries(c.ctx, c.s.Grant)
	switch {
	case errors.Is(err, store.ErrNoGrant):
		c.s.Grant = store.GrantRef{}
		c.say(msgCertificateNeedsCode)
		return
	case err != nil:
		c.e.log.Error("summaries", "err", err)
		c.say(msgTryLater)
		return
	case len(sums) == 0:
		c.say(msgNoRecords)
		return
	case len(sums) == 1:
		c.certify(sums[0].Handle)
		return
	}
	c.e.releases.WithLabelValues(string(c.s.GrantAudience), "list").Inc()
	r := c.say(msgCertificateChoose)
	r.Sensitive, r.DeleteAfter = true, c.e.o.ReleaseTTL // names are record fields
	for _, s := range sums {
		r.Buttons = append(r.Buttons, []Button{{Text: s.Name + " · …" + s.RefLast4, Data: "c:" + s.Handle}})
	}
}

// certify issues the proof for handle and sends its QR code.
func (c *conv) certify(handle string) {
	if c.e.o.Certifier == nil || c.s.Grant.ID == "" || c.s.GrantAudience != store.AudienceBeneficiary {
		c.say(msgCertificateNeedsCode)
		return
	}
	cert, err := c.e.o.Certifier.Certify(c.ctx, c.s.Grant, handle)
	switch {
	case errors.Is(err, store.ErrNoGrant), errors.Is(err, store.ErrNotBeneficiary):
		c.s.Grant = store.GrantRef{}
		c.say(msgCertificateNeedsCode)
		return
	case err != nil:
		c.e.log.Error("certificate", "err", err)
		c.say(msgCertificateFailed)
		return
	}
	c.e.releases.WithLabelValues(string(c.s.GrantAudience), "proof").Inc()
	r := c.say(msgCertificateCaption, statusName(c.lang, cert.Status), cert.Doses, cert.Expires.In(ist).Format("2006-01-02"))
	r.Photo, r.PhotoText = cert.PNG, cert.Text
}
