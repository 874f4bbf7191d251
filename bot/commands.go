package bot

import (
	"strings"

	"github.com/otpgate/otpgate/store"
)

// command is one entry of the command table: the only list of commands.
// The private and group dispatchers, the menu the channel registers
// (setMyCommands) and /help are all read from it.
type command struct {
	name string // without the slash
	// menu is its line in the menu and in /help, per language; noMenu
	// keeps it out of both.
	menu msg
	// private handles it in a private chat; nil: unknown there.
	private func(c *conv, arg string)
	// staff handles it in a helpdesk group for a staff member; nil: staff
	// get the same treatment as anyone else in the group.
	staff func(c *conv, arg string)
	// groupHint: in a helpdesk group, anyone it is not for is told that only
	// staff look records up here (the command is a private one).
	groupHint bool
}

const noMenu msg = -1

// commandTable is in menu order. /start is not in the menu: Telegram sends
// it when a chat opens, and a deep link carries a staff token in it. (A
// function rather than a variable: /help reads the table it is part of.)
func commandTable() []command {
	return []command{
		{name: "lookup", menu: msgMenuLookup, private: (*conv).lookupCommand, staff: (*conv).staffLookup, groupHint: true},
		{name: "history", menu: msgMenuHistory, private: func(c *conv, _ string) { c.history() }, groupHint: true},
		{name: "certificate", menu: msgMenuCertificate, private: func(c *conv, _ string) { c.certificate() }},
		{name: "logout", menu: msgMenuLogout, private: func(c *conv, _ string) { c.logout() }},
		{name: "cancel", menu: msgMenuCancel, private: func(c *conv, _ string) { c.cancel() }},
		{name: "language", menu: msgMenuLanguage, private: (*conv).language},
		{name: "privacy", menu: msgMenuPrivacy, private: func(c *conv, _ string) { c.privacy() }},
		{name: "help", menu: msgMenuHelp, private: func(c *conv, _ string) { c.help() }, groupHint: true},
		{name: "start", menu: noMenu, private: (*conv).start, groupHint: true},
	}
}

// findCommand parses "/name args" (and "/name@botname args"); ok is false
// when t is not a command at all, cmd nil when it is one the table lacks.
func findCommand(t string) (cmd *command, arg string, ok bool) {
	t = strings.TrimSpace(t)
	if !strings.HasPrefix(t, "/") {
		return nil, "", false
	}
	name, arg, _ := strings.Cut(t, " ")
	name, _, _ = strings.Cut(strings.ToLower(strings.TrimPrefix(name, "/")), "@")
	for _, c := range commandTable() {
		if c.name == name {
			return &c, strings.TrimSpace(arg), true
		}
	}
	return nil, strings.TrimSpace(arg), true
}

// command handles a command in a private chat.
func (c *conv) command() {
	cmd, arg, _ := findCommand(c.u.Text)
	if cmd == nil || cmd.private == nil {
		c.say(msgUnknownCommand)
		return
	}
	cmd.private(c, arg)
}

func (c *conv) start(arg string) {
	if arg != "" {
		c.redeemLink(arg)
		return
	}
	c.say(msgStart)
}

func (c *conv) help() {
	var b strings.Builder
	b.WriteString(text(c.lang, msgHelp))
	for _, cmd := range commandTable() {
		if cmd.menu != noMenu {
			b.WriteString("\n/" + cmd.name + " — " + text(c.lang, cmd.menu))
		}
	}
	c.sayText(b.String())
}

func (c *conv) privacy() {
	c.say(msgPrivacy, minutes(c.e.o.CodeTTL), minutes(c.e.o.ReleaseTTL))
}

func (c *conv) lookupCommand(arg string) {
	if arg == "" {
		c.s.State = ConvAwaitMobile
		c.say(msgAskMobile).ContactButton = text(c.lang, msgShareButton)
		return
	}
	c.lookupMobile(arg)
}

func (c *conv) cancel() {
	if c.s.State == ConvIdle {
		c.say(msgNothingToCancel)
		return
	}
	aud := store.AudienceBeneficiary
	if c.s.State == ConvAwaitStaffCode {
		aud = store.AudienceStaff
	}
	if err := c.e.o.Gate.Cancel(c.ctx, c.requester(), aud); err != nil {
		c.e.log.Warn("cancel", "err", err)
	}
	c.s.State = ConvIdle
	c.say(msgCancelled).RemoveKeyboard = true
}

// Command is an entry of the chat's command menu.
type Command struct {
	Name        string // without the slash
	Description string
}

// Commands returns the command menu in lang, for the channel to register.
func Commands(lang string) []Command {
	var out []Command
	for _, cmd := range commandTable() {
		if cmd.menu != noMenu {
			out = append(out, Command{cmd.name, text(lang, cmd.menu)})
		}
	}
	return out
}

// Languages returns the language codes the bot speaks.
func Languages() []string {
	out := make([]string, len(languages))
	for i, l := range languages {
		out[i] = l.Code
	}
	return out
}
