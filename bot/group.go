package bot

import (
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// group handles a group chat. Nothing about a record is ever said here:
// not a name, not a masked number, not whether it exists.
func (c *conv) group() {
	u := c.u
	if !c.e.staffChats[u.ChatID] {
		// Not a helpdesk group: say so once, then leave.
		if u.AddedToGroup || (!u.Edited && !u.Caption && strings.HasPrefix(strings.TrimSpace(u.Text), "/")) {
			c.say(msgGroupNotEnabled).LeaveChat = true
		}
		return
	}
	if u.AddedToGroup {
		c.say(msgGroupWelcome)
		return
	}
	if u.Edited || u.Caption {
		c.hygiene() // what a person sees, never a command
		return
	}
	cmd, arg, isCmd := findCommand(u.Text)
	switch {
	case cmd != nil && cmd.staff != nil && c.e.staffUsers[u.UserID] != "":
		cmd.staff(c, arg)
	case cmd != nil && cmd.groupHint:
		c.say(msgGroupNotStaff)
		c.hygiene()
	default:
		_ = isCmd // other bots' commands, typos, chatter: only clean up
		c.hygiene()
	}
}

// staffLookup sends the consent code to the mobile registered on whatever
// the staff member named, and gives them a one-time button into a private
// chat. The reply is the same whether or not anything matched.
func (c *conv) staffLookup(arg string) {
	if arg == "" {
		c.say(msgStaffUsage)
		return
	}
	id, err := pii.ParseIdentifier(arg)
	if err != nil {
		c.say(msgStaffBadIdentifier).DeleteMessage = c.u.MessageID
		return
	}
	requester := c.requester()
	tag, err := c.e.o.Gate.Request(c.ctx, otp.Request{
		Requester: requester, Identifier: id, Audience: store.AudienceStaff,
		Agent: c.e.staffUsers[c.u.UserID], Lang: c.lang,
	})
	if err != nil {
		c.e.log.Error("staff code request", "err", err)
		c.say(msgTryLater)
		return
	}
	token, err := c.e.o.Records.CreateLink(c.ctx, requester, tag, c.e.o.CodeTTL)
	if err != nil {
		c.e.log.Error("staff link", "err", err)
		c.say(msgTryLater)
		return
	}
	r := c.say(msgStaffCodeSentTagged, tag, minutes(c.e.o.CodeTTL))
	r.Buttons = [][]Button{{{Text: text(c.lang, msgStaffButton), Start: token}}}
	// The lookup itself named a person: take it out of the group.
	r.DeleteMessage = c.u.MessageID
	r.DeleteFailed = text(c.lang, msgNeedDeleteRight)
}

// hygiene removes a message that carries a code, a mobile or an ID number,
// with a short warning; when the bot cannot delete it, the channel says
// (once) which right it needs.
func (c *conv) hygiene() {
	if !sensitive(c.u.Text) {
		return
	}
	r := c.say(msgGroupDeleted)
	r.DeleteMessage = c.u.MessageID
	r.DeleteFailed = text(c.lang, msgNeedDeleteRight)
}

var panLike = regexp.MustCompile(`(?i)\b[a-z]{5}[0-9]{4}[a-z]\b|\b[a-z]{1,3}[0-9]{6,}\b`)

// sensitive reports whether text holds something that looks like a code,
// a mobile, a reference id or an ID number, as a person reading it would
// see it: a run of six or more digits in any script, with any spacing or
// punctuation between them, or a PAN, voter-id or passport-like token.
// Zero-width and other invisible formatting characters are removed first,
// so they cannot split a number.
func sensitive(text string) bool {
	text = visible(text)
	run := 0
	for _, r := range text {
		switch {
		case unicode.IsDigit(r):
			run++
			if run >= 6 {
				return true
			}
		case run > 0 && (unicode.IsSpace(r) || strings.ContainsRune("-.‐‑‒–—()", r)):
			// a separator inside a number: keep counting
		default:
			run = 0
		}
	}
	return panLike.MatchString(asciiDigits(text))
}

// visible drops the characters a reader does not see (Unicode category Cf:
// zero-width spaces and joiners, bidi marks, soft hyphens, word joiners).
func visible(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

// asciiDigits maps every decimal digit to ASCII, so the token patterns see
// "ABCDE१२३४F" as a PAN.
func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r > '9' && unicode.IsDigit(r) {
			if d, ok := pii.Digits(string(r)); ok && len(d) == 1 {
				return rune(d[0])
			}
		}
		return r
	}, s)
}

// redeemLink is "/start <token>" in a private chat: a staff member arriving
// from the group's button.
func (c *conv) redeemLink(token string) {
	tag, err := c.e.o.Records.RedeemLink(c.ctx, token, c.requester())
	switch {
	case errors.Is(err, store.ErrLinkInvalid):
		c.say(msgLinkInvalid)
		return
	case err != nil:
		c.e.log.Error("redeem link", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.State, c.s.StaffTag = ConvAwaitStaffCode, tag
	c.say(msgStaffEnterCode, c.e.o.CodeLength)
}
