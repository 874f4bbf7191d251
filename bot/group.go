package bot

import (
	"errors"
	"regexp"
	"strconv"
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
		if u.AddedToGroup || strings.HasPrefix(strings.TrimSpace(u.Text), "/") {
			c.say(msgGroupNotEnabled).LeaveChat = true
		}
		return
	}
	if u.AddedToGroup {
		c.say(msgGroupWelcome)
		return
	}
	cmd, arg, isCmd := findCommand(u.Text)
	switch {
	case cmd != nil && cmd.staff != nil && c.e.staffUsers[u.UserID]:
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
		Agent: agentLabel(c.u.UserID), Lang: c.lang,
	})
	if err != nil {
		c.e.log.Error("staff code request", "err", err)
		c.say(msgTryLater)
		return
	}
	token, err := c.e.o.Records.CreateLink(c.ctx, requester, c.e.o.CodeTTL)
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

// agentLabel is how the owner's SMS and history name a staff member.
func agentLabel(userID int64) string { return strconv.FormatInt(userID, 10) }

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
// a mobile, a reference id or an ID number: a run of six or more digits in
// any script (spaces and dashes between digits do not break the run), or a
// PAN, voter-id or passport-like token.
func sensitive(text string) bool {
	run, gap := 0, false
	for _, r := range text {
		switch {
		case unicode.IsDigit(r):
			run++
			gap = false
			if run >= 6 {
				return true
			}
		case (r == ' ' || r == '-' || r == '.') && run > 0 && !gap:
			gap = true // one separator inside a number
		default:
			run, gap = 0, false
		}
	}
	return panLike.MatchString(text)
}

// redeemLink is "/start <token>" in a private chat: a staff member arriving
// from the group's button.
func (c *conv) redeemLink(token string) {
	err := c.e.o.Records.RedeemLink(c.ctx, token, c.requester())
	switch {
	case errors.Is(err, store.ErrLinkInvalid):
		c.say(msgLinkInvalid)
		return
	case err != nil:
		c.e.log.Error("redeem link", "err", err)
		c.say(msgTryLater)
		return
	}
	c.s.state = stateAwaitStaffCode
	c.say(msgStaffEnterCode, c.e.o.CodeLength)
}
