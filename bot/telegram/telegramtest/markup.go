package telegramtest

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Button is one keyboard button of a sent message.
type Button struct {
	Text           string
	CallbackData   string // inline keyboards
	URL            string // inline keyboards
	RequestContact bool   // reply keyboards
}

// markup is the union of Telegram's four reply_markup objects.
type markup struct {
	InlineKeyboard [][]map[string]json.RawMessage `json:"inline_keyboard"`
	Keyboard       [][]json.RawMessage            `json:"keyboard"`
	RemoveKeyboard bool                           `json:"remove_keyboard"`
	ForceReply     bool                           `json:"force_reply"`
}

var errMarkup = badRequest("can't parse reply keyboard markup JSON object")

// parseReplyMarkup validates a reply_markup parameter the way Telegram
// rejects the usual mistakes, and returns it (nil when absent).
func parseReplyMarkup(v string) (json.RawMessage, *apiError) {
	if v == "" || v == "null" {
		return nil, nil
	}
	var m markup
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, errMarkup
	}
	switch {
	case m.InlineKeyboard != nil:
		for _, row := range m.InlineKeyboard {
			for _, b := range row {
				if e := checkInlineButton(b); e != nil {
					return nil, e
				}
			}
		}
	case m.Keyboard != nil:
		for _, row := range m.Keyboard {
			for _, raw := range row {
				if keyboardButton(raw).Text == "" {
					return nil, badRequest("keyboard button text is empty")
				}
			}
		}
	case m.RemoveKeyboard, m.ForceReply:
	default:
		return nil, errMarkup
	}
	return json.RawMessage(v), nil
}

func checkInlineButton(b map[string]json.RawMessage) *apiError {
	var text string
	if json.Unmarshal(b["text"], &text) != nil || text == "" {
		return badRequest("BUTTON_TEXT_INVALID")
	}
	if raw, ok := b["callback_data"]; ok {
		var data string
		if json.Unmarshal(raw, &data) != nil || len(data) < 1 || len(data) > 64 {
			return badRequest("BUTTON_DATA_INVALID")
		}
	}
	if len(b) == 1 {
		return badRequest("text buttons are unallowed in the inline keyboard")
	}
	return nil
}

// inlineOnly returns markup when it is an inline keyboard: the only kind a
// Message carries back.
func inlineOnly(raw json.RawMessage) json.RawMessage {
	var m markup
	if raw == nil || json.Unmarshal(raw, &m) != nil || m.InlineKeyboard == nil {
		return nil
	}
	return raw
}

// keyboardButton reads a reply keyboard button: an object or, in old
// clients, a bare string.
func keyboardButton(raw json.RawMessage) Button {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return Button{Text: s}
	}
	var b struct {
		Text           string `json:"text"`
		RequestContact bool   `json:"request_contact"`
	}
	_ = json.Unmarshal(raw, &b)
	return Button{Text: b.Text, RequestContact: b.RequestContact}
}

// Buttons returns the rows of buttons of a sent message's inline or reply
// keyboard; nil when it has none.
func Buttons(m SentMessage) [][]Button {
	var mk markup
	if m.ReplyMarkup == nil || json.Unmarshal(m.ReplyMarkup, &mk) != nil {
		return nil
	}
	var rows [][]Button
	for _, row := range mk.InlineKeyboard {
		var out []Button
		for _, b := range row {
			var btn Button
			_ = json.Unmarshal(b["text"], &btn.Text)
			_ = json.Unmarshal(b["callback_data"], &btn.CallbackData)
			_ = json.Unmarshal(b["url"], &btn.URL)
			out = append(out, btn)
		}
		rows = append(rows, out)
	}
	for _, row := range mk.Keyboard {
		var out []Button
		for _, raw := range row {
			out = append(out, keyboardButton(raw))
		}
		rows = append(rows, out)
	}
	return rows
}

// RemovesKeyboard reports whether a sent message hides the reply keyboard
// (reply_markup {"remove_keyboard":true}).
func RemovesKeyboard(m SentMessage) bool {
	var mk markup
	return m.ReplyMarkup != nil && json.Unmarshal(m.ReplyMarkup, &mk) == nil && mk.RemoveKeyboard
}

// checkParseMode rejects text that Telegram could not parse in the given
// mode. It catches the common mistakes, not every one.
func checkParseMode(mode, text string) *apiError {
	switch strings.ToLower(mode) {
	case "":
		return nil
	case "markdown":
		return nil
	case "markdownv2":
		return checkMarkdownV2(text)
	case "html":
		return checkHTML(text)
	}
	return badRequest("unsupported parse_mode")
}

func entityError(format string, args ...any) *apiError {
	return badRequest("can't parse entities: " + fmt.Sprintf(format, args...))
}

// checkMarkdownV2 finds reserved characters that must be escaped and are
// not: those that never start markup, outside code, pre and link URLs.
func checkMarkdownV2(t string) *apiError {
	const literal = "#+-=|{}.!>"
	inCode, inPre, inURL := false, false, false
	start := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '\\':
			i++ // the escaped character, whatever it is
		case inPre:
			if strings.HasPrefix(t[i:], "```") {
				inPre = false
				i += 2
			}
		case inCode:
			inCode = c != '`'
		case inURL:
			inURL = c != ')'
		case strings.HasPrefix(t[i:], "```"):
			inPre, start = true, i
			i += 2
		case c == '`':
			inCode, start = true, i
		case c == ']' && i+1 < len(t) && t[i+1] == '(':
			inURL = true
			i++
		case c == '>' && (i == 0 || t[i-1] == '\n'):
			// a block quote
		case strings.IndexByte(literal, c) >= 0:
			return entityError("Character '%c' is reserved and must be escaped with the preceding '\\'", c)
		}
	}
	if inCode || inPre {
		return entityError("Can't find end of the entity starting at byte offset %d", start)
	}
	return nil
}

// htmlTags are the tags Telegram's HTML style accepts.
var htmlTags = map[string]bool{
	"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true,
	"s": true, "strike": true, "del": true, "span": true, "tg-spoiler": true,
	"a": true, "code": true, "pre": true, "blockquote": true, "tg-emoji": true,
}

// checkHTML finds unsupported and unbalanced tags, including a bare '<'.
func checkHTML(t string) *apiError {
	var open []string
	for i := 0; i < len(t); i++ {
		if t[i] != '<' {
			continue
		}
		end := strings.IndexByte(t[i:], '>')
		if end < 0 {
			return entityError("Unclosed start tag at byte offset %d", i)
		}
		tag := t[i+1 : i+end]
		closing := strings.HasPrefix(tag, "/")
		name := strings.ToLower(strings.TrimPrefix(tag, "/"))
		if j := strings.IndexAny(name, " \t\n"); j >= 0 {
			name = name[:j]
		}
		switch {
		case !htmlTags[name] && closing:
			return entityError("Unexpected end tag at byte offset %d", i)
		case !htmlTags[name]:
			return entityError("Unsupported start tag \"%s\" at byte offset %d", name, i)
		case closing && (len(open) == 0 || open[len(open)-1] != name):
			return entityError("Unexpected end tag at byte offset %d", i)
		case closing:
			open = open[:len(open)-1]
		default:
			open = append(open, name)
		}
		i += end
	}
	if len(open) > 0 {
		return entityError("Can't find end tag corresponding to start tag \"%s\"", open[len(open)-1])
	}
	return nil
}
