package bot

import (
	"context"
	"time"
)

// Handler turns one inbound update into the replies to send. *Engine
// implements it; the channel adapters consume it.
type Handler interface {
	Handle(ctx context.Context, u Update) []Reply
}

var _ Handler = (*Engine)(nil)

// ChatKind says where a message was written.
type ChatKind int

const (
	ChatPrivate ChatKind = iota
	ChatGroup
	ChatChannel
)

// Update is one inbound event. Exactly one of Text, Contact, Callback is
// meaningful; Unsupported marks anything else (stickers, photos, voice…).
type Update struct {
	ChatID    int64
	ChatKind  ChatKind
	UserID    int64
	Lang      string // the client's language code, e.g. "hi" or "en-GB"
	MessageID int
	Text      string
	Contact   *Contact
	Callback  *Callback
	Forwarded bool
	// Unsupported is set for messages the bot cannot read.
	Unsupported bool
	// AddedToGroup is set when the bot was added to the group ChatID.
	AddedToGroup bool
	// Edited marks an edited message: check it for personal data, never act
	// on it as a command or a code.
	Edited bool
	// Caption marks Text as the caption of a photo, document or video: the
	// same rule as Edited.
	Caption bool
}

// Contact is a shared phone contact.
type Contact struct {
	Phone  string
	UserID int64 // the Telegram user the contact belongs to, 0 when unknown
}

// Callback is an inline-button press.
type Callback struct {
	ID   string
	Data string
}

// Reply is one thing to do in a chat.
type Reply struct {
	ChatID int64
	Text   string
	// Buttons is an inline keyboard, rows of buttons.
	Buttons [][]Button
	// ContactButton, when set, shows a one-time keyboard with a button so
	// labelled that shares the user's own phone number.
	ContactButton string
	// RemoveKeyboard hides a reply keyboard shown earlier.
	RemoveKeyboard bool
	// Sensitive marks a message that carries record fields: send it protected
	// from forwarding and saving, and delete it after DeleteAfter.
	Sensitive   bool
	DeleteAfter time.Duration
	// AnswerCallback, when set, is the ID of the callback query this reply
	// answers (every button press must be answered).
	AnswerCallback string
	// DeleteMessage, when non-zero, is an inbound message to delete (a code
	// the user typed).
	DeleteMessage int
	// LeaveChat asks the channel to leave ChatID after sending Text.
	LeaveChat bool
	// DeleteFailed, when set with DeleteMessage, is said in the chat (once
	// per chat) if the channel could not delete the message, e.g. because
	// the bot lacks the right in a group.
	DeleteFailed string
	// Photo, when set, is a PNG to send with Text as its caption: a
	// vaccination proof's QR code. It is minimal by design and meant to be
	// kept and shown, so it is neither protected nor deleted.
	Photo []byte
	// PhotoText is the text the photo encodes (the proof), for channels
	// that cannot show an image (the terminal).
	PhotoText string
}

// Button is an inline-keyboard button: a callback (Data) or, when Start is
// set, a link that opens a private chat with the bot and sends it
// "/start <Start>" (a Telegram deep link).
type Button struct {
	Text  string
	Data  string // at most 64 bytes
	Start string
}
