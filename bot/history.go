package bot

import (
	"errors"
	"strings"
	"time"

	"github.com/otpgate/otpgate/store"
)

// history shows the beneficiary every release of their records.
func (c *conv) history() {
	if c.s.Grant.ID == "" {
		c.say(msgHistoryNeedsCode)
		return
	}
	acc, err := c.e.o.Records.History(c.ctx, c.s.Grant, 20)
	switch {
	case errors.Is(err, store.ErrNoGrant):
		c.s.Grant = store.GrantRef{}
		c.say(msgHistoryNeedsCode)
		return
	case err != nil:
		c.e.log.Error("history", "err", err)
		c.say(msgTryLater)
		return
	}
	if len(acc) == 0 {
		c.say(msgHistoryEmpty)
		return
	}
	var b strings.Builder
	b.WriteString(text(c.lang, msgHistoryTitle))
	for _, a := range acc {
		b.WriteString("\n")
		who := text(c.lang, msgHistoryOther)
		switch {
		case a.Agent != "":
			who = text(c.lang, msgHistoryAgent, a.Agent)
		case a.Self:
			who = text(c.lang, msgHistoryYou)
		}
		what := text(c.lang, msgHistoryNames)
		for _, f := range a.Fields {
			if f == "birth_year" {
				what = text(c.lang, msgHistoryRecord)
			}
		}
		if a.IsProof() {
			what = text(c.lang, msgHistoryCertificate)
		}
		b.WriteString(text(c.lang, msgHistoryLine, a.Time.In(ist).Format("2006-01-02 15:04"), who, what))
	}
	c.e.releases.WithLabelValues(string(store.AudienceBeneficiary), "history").Inc()
	r := c.sayText(b.String())
	r.Sensitive, r.DeleteAfter = true, c.e.o.ReleaseTTL
}

// ist is India Standard Time, fixed: India keeps no daylight saving.
var ist = time.FixedZone("IST", 5*3600+1800)
