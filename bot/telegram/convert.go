package telegram

import (
	"encoding/json"
	"net/url"
	"strconv"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"

	"github.com/otpgate/otpgate/bot"
)

// toUpdate translates a Bot API update into the engine's terms. ok is false
// for updates the engine has nothing to say to (channel posts, service
// messages, other bots, unknown kinds). Edits are passed on, marked: a code
// or a mobile can be edited into a message as well as typed.
func toUpdate(u tgbotapi.Update) (bot.Update, bool) {
	switch {
	case u.CallbackQuery != nil:
		cq := u.CallbackQuery
		out := bot.Update{Callback: &bot.Callback{ID: cq.ID, Data: cq.Data}}
		if cq.From != nil {
			out.UserID, out.Lang = cq.From.ID, cq.From.LanguageCode
		}
		if cq.Message != nil && cq.Message.Chat != nil {
			out.ChatID, out.ChatKind = cq.Message.Chat.ID, chatKind(cq.Message.Chat)
		} else {
			out.ChatID, out.ChatKind = out.UserID, bot.ChatPrivate // inline-mode button: answer privately
		}
		return out, out.UserID != 0
	case u.MyChatMember != nil:
		m := u.MyChatMember
		joined := m.NewChatMember.Status == "member" || m.NewChatMember.Status == "administrator"
		if !joined || m.Chat.IsPrivate() {
			return bot.Update{}, false
		}
		return bot.Update{ChatID: m.Chat.ID, ChatKind: chatKind(&m.Chat), UserID: m.From.ID, Lang: m.From.LanguageCode, AddedToGroup: true}, true
	case u.Message != nil:
		return fromMessage(u.Message)
	case u.EditedMessage != nil:
		out, ok := fromMessage(u.EditedMessage)
		out.Edited = true
		return out, ok
	}
	return bot.Update{}, false
}

func fromMessage(m *tgbotapi.Message) (bot.Update, bool) {
	if m.From == nil || m.From.IsBot || m.Chat == nil {
		return bot.Update{}, false
	}
	out := bot.Update{
		ChatID: m.Chat.ID, ChatKind: chatKind(m.Chat), UserID: m.From.ID, Lang: m.From.LanguageCode,
		MessageID: m.MessageID, Forwarded: m.ForwardDate != 0,
	}
	switch {
	case m.Contact != nil:
		out.Contact = &bot.Contact{Phone: m.Contact.PhoneNumber, UserID: m.Contact.UserID}
	case m.Text != "":
		out.Text = m.Text
	case m.NewChatMembers != nil || m.LeftChatMember != nil || m.NewChatTitle != "" || m.NewChatPhoto != nil ||
		m.DeleteChatPhoto || m.GroupChatCreated || m.SuperGroupChatCreated || m.PinnedMessage != nil || m.MigrateToChatID != 0:
		return bot.Update{}, false // service messages
	case m.Caption != "":
		// A photo, document, video… the bot cannot read, with a caption
		// that may carry a code or a mobile: hygiene reads the caption.
		out.Text, out.Caption, out.Unsupported = m.Caption, true, true
	default:
		out.Unsupported = true // stickers, photos, voice, documents, locations, polls…
	}
	return out, true
}

func chatKind(c *tgbotapi.Chat) bot.ChatKind {
	switch {
	case c.IsPrivate():
		return bot.ChatPrivate
	case c.IsChannel():
		return bot.ChatChannel
	}
	return bot.ChatGroup
}

// placeholderText is what a message that will carry record fields says
// before its deletion is scheduled: nothing at all.
const placeholderText = "…"

// toCalls turns one engine reply into Bot API calls, in order: the message,
// then the answer to the button press, the deletion of the user's code, and
// leaving the chat.
//
// A message that carries record fields and must be deleted goes out as a
// placeholder whose reveal is the edit that puts the text in; see
// Bot.revealOnceScheduled for why.
func toCalls(r bot.Reply, botUsername string) []*call {
	var calls []*call
	chat := strconv.FormatInt(r.ChatID, 10)
	switch {
	case len(r.Photo) > 0:
		// A proof's QR code: minimal by design and meant to be kept and
		// shown, so neither protected nor deleted. v5.5.1 has no config
		// for a photo from bytes with a caption: the raw upload call.
		p := tgbotapi.Params{"chat_id": chat, "caption": r.Text}
		if markup := replyMarkup(r, botUsername); markup != "" {
			p["reply_markup"] = markup
		}
		calls = append(calls, &call{chatID: r.ChatID, method: "sendPhoto", params: p,
			files: []tgbotapi.RequestFile{{Name: "photo", Data: tgbotapi.FileBytes{Name: "proof.png", Bytes: r.Photo}}}})
	case r.Text != "" && r.Sensitive && r.DeleteAfter > 0:
		// protect_content is a property of the message, set when it is
		// sent (not in v5.5.1's config structs: a raw parameter); the
		// edit keeps it. An edit carries an inline keyboard only: any
		// other keyboard goes with the placeholder.
		p := tgbotapi.Params{"chat_id": chat, "text": placeholderText, "protect_content": "true"}
		edit := tgbotapi.Params{"chat_id": chat, "text": r.Text}
		if markup := replyMarkup(r, botUsername); markup != "" && len(r.Buttons) > 0 {
			edit["reply_markup"] = markup
		} else if markup != "" {
			p["reply_markup"] = markup
		}
		calls = append(calls, &call{chatID: r.ChatID, method: "sendMessage", params: p,
			reveal: &call{chatID: r.ChatID, method: "editMessageText", params: edit}})
	case r.Text != "":
		p := tgbotapi.Params{"chat_id": chat, "text": r.Text}
		if markup := replyMarkup(r, botUsername); markup != "" {
			p["reply_markup"] = markup
		}
		if r.Sensitive {
			p["protect_content"] = "true"
		}
		calls = append(calls, &call{chatID: r.ChatID, method: "sendMessage", params: p})
	}
	if r.AnswerCallback != "" {
		calls = append(calls, &call{chatID: r.ChatID, method: "answerCallbackQuery", params: tgbotapi.Params{"callback_query_id": r.AnswerCallback}})
	}
	if r.DeleteMessage != 0 {
		calls = append(calls, &call{chatID: r.ChatID, method: "deleteMessage",
			params: tgbotapi.Params{"chat_id": chat, "message_id": strconv.Itoa(r.DeleteMessage)}})
	}
	if r.LeaveChat {
		calls = append(calls, &call{chatID: r.ChatID, method: "leaveChat", params: tgbotapi.Params{"chat_id": chat}})
	}
	return calls
}

func replyMarkup(r bot.Reply, botUsername string) string {
	var v any
	switch {
	case len(r.Buttons) > 0:
		rows := make([][]tgbotapi.InlineKeyboardButton, 0, len(r.Buttons))
		for _, row := range r.Buttons {
			var out []tgbotapi.InlineKeyboardButton
			for _, b := range row {
				if b.Start != "" {
					// A deep link: opens a private chat that sends "/start <token>".
					link := "https://t.me/" + url.PathEscape(botUsername) + "?start=" + url.QueryEscape(b.Start)
					out = append(out, tgbotapi.NewInlineKeyboardButtonURL(b.Text, link))
					continue
				}
				out = append(out, tgbotapi.NewInlineKeyboardButtonData(b.Text, b.Data))
			}
			rows = append(rows, out)
		}
		v = tgbotapi.NewInlineKeyboardMarkup(rows...)
	case r.ContactButton != "":
		v = tgbotapi.ReplyKeyboardMarkup{
			Keyboard:        [][]tgbotapi.KeyboardButton{{tgbotapi.NewKeyboardButtonContact(r.ContactButton)}},
			ResizeKeyboard:  true,
			OneTimeKeyboard: true,
		}
	case r.RemoveKeyboard:
		v = tgbotapi.NewRemoveKeyboard(false)
	default:
		return ""
	}
	b, _ := json.Marshal(v) // plain structs always marshal
	return string(b)
}

// sentMessageID reads the message id from a sendMessage response.
func sentMessageID(resp *tgbotapi.APIResponse) int {
	if resp == nil {
		return 0
	}
	var m struct {
		MessageID int `json:"message_id"`
	}
	if json.Unmarshal(resp.Result, &m) != nil {
		return 0
	}
	return m.MessageID
}
