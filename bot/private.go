package bot

import (
	"errors"
	"strings"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// text handles a plain message: a code, a mobile, or neither.
func (c *conv) text() {
	t := c.u.Text
	if code, ok := pii.ParseCode(t, c.e.o.CodeLength); ok {
		aud := store.AudienceBeneficiary
		if c.s.State == ConvAwaitStaffCode {
			aud = store.AudienceStaff
		}
		c.verify(code, aud)
		return
	}
	switch c.s.State {
	case ConvAwaitMobile:
		c.lookupMobile(t)
	case ConvAwaitCode, ConvAwaitStaffCode:
		c.say(msgNotCode, c.e.o.CodeLength)
	default:
		if _, err := pii.ParseMobile(t); err == nil {
			c.lookupMobile(t)
			return
		}
		c.help()
	}
}

func (c *conv) contact() {
	ct := c.u.Contact
	// A user can attach anyone's contact card; only their own counts.
	if ct.UserID == 0 || ct.UserID != c.u.UserID {
		c.say(msgNotYourContact)
		return
	}
	// Telegram vouches that this is the sender's own number: the request
	// draws on the owner's reserved budget.
	c.requestMobile(ct.Phone, true)
}

// lookupMobile asks for a code to the mobile the user typed.
func (c *conv) lookupMobile(input string) { c.requestMobile(input, false) }

// requestMobile asks for a code to input's mobile; provedByContact says the
// chat platform vouched that the number is the sender's own.
func (c *conv) requestMobile(input string, provedByContact bool) {
	m, err := pii.ParseMobile(input)
	if err != nil {
		c.s.State = ConvAwaitMobile
		c.say(msgNotMobile)
		return
	}
	tag, err := c.e.o.Gate.Request(c.ctx, otp.Request{
		Requester:       c.requester(),
		Identifier:      pii.Identifier{Kind: pii.KindMobile, Mobile: m},
		Audience:        store.AudienceBeneficiary,
		Lang:            c.lang,
		ProvedByContact: provedByContact,
	})
	if err != nil {
		c.e.log.Error("code request", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.State = ConvAwaitCode
	r := c.say(msgCodeSentTagged, c.e.o.CodeLength, tag, minutes(c.e.o.CodeTTL))
	r.RemoveKeyboard = true
}

func (c *conv) verify(code pii.Code, aud store.Audience) {
	tag := ""
	if aud == store.AudienceStaff {
		tag = c.s.StaffTag
	}
	g, err := c.e.o.Gate.VerifyFor(c.ctx, c.requester(), aud, code, tag)
	switch {
	case errors.Is(err, otp.ErrCodeRejected):
		c.say(msgCodeRejected).DeleteMessage = c.u.MessageID
		return
	case err != nil:
		c.e.log.Error("verify", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.State = ConvIdle
	c.s.Grant, c.s.GrantAudience = g.Ref(), g.Audience
	sums, err := c.e.o.Records.Summaries(c.ctx, c.s.Grant)
	if err != nil {
		c.e.log.Error("summaries", "err", err)
		c.say(msgTryLater).DeleteMessage = c.u.MessageID
		return
	}
	switch len(sums) {
	case 0:
		c.say(msgNoRecords).DeleteMessage = c.u.MessageID
	case 1:
		c.release(sums[0].Handle)
		c.out[0].DeleteMessage = c.u.MessageID
	default:
		c.e.releases.WithLabelValues(string(g.Audience), "list").Inc()
		r := c.say(msgChoose)
		r.DeleteMessage = c.u.MessageID
		r.Sensitive, r.DeleteAfter = true, c.e.o.ReleaseTTL // names are record fields
		for _, s := range sums {
			r.Buttons = append(r.Buttons, []Button{{Text: s.Name + " · …" + s.RefLast4, Data: "r:" + s.Handle}})
		}
	}
}

func (c *conv) release(handle string) {
	v, err := c.e.o.Records.Release(c.ctx, c.s.Grant, handle)
	switch {
	case errors.Is(err, store.ErrNoGrant):
		c.s.Grant = store.GrantRef{}
		c.say(msgSessionEnded)
		return
	case err != nil:
		c.e.log.Error("release", "err", err)
		c.say(msgTryLater)
		return
	}
	c.e.releases.WithLabelValues(string(c.s.GrantAudience), "record").Inc()
	c.out = append(c.out, Reply{
		ChatID: c.u.ChatID, Text: renderView(c.lang, v, minutes(c.e.o.ReleaseTTL)),
		Sensitive: true, DeleteAfter: c.e.o.ReleaseTTL,
	})
}

func (c *conv) callback() {
	cb := c.u.Callback
	data := cb.Data
	n := len(c.out)
	switch {
	case strings.HasPrefix(data, "r:") && c.u.ChatKind == ChatPrivate:
		if c.s.Grant.ID == "" {
			c.say(msgStaleButton)
			break
		}
		c.release(strings.TrimPrefix(data, "r:"))
	case strings.HasPrefix(data, "c:") && c.u.ChatKind == ChatPrivate:
		c.certify(strings.TrimPrefix(data, "c:"))
	case strings.HasPrefix(data, "lang:"):
		c.setLanguage(strings.TrimPrefix(data, "lang:"))
	default:
		c.say(msgStaleButton)
	}
	if len(c.out) == n {
		c.out = append(c.out, Reply{ChatID: c.u.ChatID})
	}
	c.out[n].AnswerCallback = cb.ID
}

func (c *conv) logout() {
	if c.s.Grant.ID == "" {
		c.say(msgNoSession)
		return
	}
	if err := c.e.o.Records.EndGrant(c.ctx, c.s.Grant); err != nil {
		c.e.log.Error("end grant", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.Grant = store.GrantRef{}
	c.s.State = ConvIdle
	c.say(msgLoggedOut)
}

func (c *conv) language(arg string) {
	if arg != "" {
		c.setLanguage(strings.ToLower(arg))
		return
	}
	r := c.say(msgLanguageAsk)
	for _, l := range languages {
		r.Buttons = append(r.Buttons, []Button{{Text: l.Name, Data: "lang:" + l.Code}})
	}
}

func (c *conv) setLanguage(code string) {
	for _, l := range languages {
		if l.Code == code || strings.EqualFold(l.Name, code) {
			c.s.Lang, c.lang = l.Code, l.Code
			c.say(msgLanguageSet)
			return
		}
	}
	c.language("")
}
