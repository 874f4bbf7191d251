package bot

import (
	"slices"
	"strings"
	"testing"
)

// TestCommandTable pins the table's order and what each entry feeds: the
// menu (setMyCommands), /help and both dispatchers read this one table, so
// a command added or moved shows up in all of them or in none.
func TestCommandTable(t *testing.T) {
	var names, menu []string
	for _, c := range commandTable() {
		names = append(names, c.name)
		if c.menu != noMenu {
			menu = append(menu, c.name)
		}
		if c.private == nil {
			t.Errorf("/%s has no private handler", c.name)
		}
	}
	want := []string{"lookup", "history", "certificate", "logout", "cancel", "language", "privacy", "help", "start"}
	if !slices.Equal(names, want) {
		t.Fatalf("table order %v, want %v", names, want)
	}
	for _, lang := range Languages() {
		var got []string
		for _, c := range Commands(lang) {
			got = append(got, c.Name)
			if c.Description == "" || len(c.Description) > 256 {
				t.Errorf("%s /%s: menu text %q (Telegram takes 1-256 characters)", lang, c.Name, c.Description)
			}
		}
		if !slices.Equal(got, menu) {
			t.Errorf("%s menu %v, want the table's %v", lang, got, menu)
		}
	}
	// Only /lookup works for staff in a group.
	for _, c := range commandTable() {
		if (c.staff != nil) != (c.name == "lookup") {
			t.Errorf("/%s: staff handler set = %v", c.name, c.staff != nil)
		}
	}
}

func TestFindCommand(t *testing.T) {
	for _, c := range []struct {
		in, name, arg string
		isCmd         bool
	}{
		{"/lookup 98765 43210", "lookup", "98765 43210", true},
		{"  /LOOKUP@otpgate_bot   x ", "lookup", "x", true},
		{"/nope arg", "", "arg", true},
		{"lookup", "", "", false},
		{"/", "", "", true},
	} {
		cmd, arg, ok := findCommand(c.in)
		name := ""
		if cmd != nil {
			name = cmd.name
		}
		if name != c.name || arg != c.arg || ok != c.isCmd {
			t.Errorf("findCommand(%q) = %q, %q, %v; want %q, %q, %v", c.in, name, arg, ok, c.name, c.arg, c.isCmd)
		}
	}
}

// TestHelpListsTheMenu: /help is the table's menu, in order, in the user's
// language.
func TestHelpListsTheMenu(t *testing.T) {
	c := &conv{e: &Engine{}, lang: "hi"}
	c.help()
	got := c.out[0].Text
	prev := -1
	for _, m := range Commands("hi") {
		i := strings.Index(got, "/"+m.Name+" — "+m.Description)
		if i < 0 || i < prev {
			t.Fatalf("/help misses or misorders /%s:\n%s", m.Name, got)
		}
		prev = i
	}
}
