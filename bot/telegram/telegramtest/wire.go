package telegramtest

import (
	"encoding/json"
	"strconv"
)

// Chat types, as Telegram names them.
const (
	TypePrivate    = "private"
	TypeGroup      = "group"
	TypeSupergroup = "supergroup"
	TypeChannel    = "channel"
)

// supergroupBase is what Telegram puts in front of supergroup and channel
// ids: -100xxxxxxxxxx.
const supergroupBase = 1_000_000_000_000

// Chat is where an injected update happens. Type is one of the Type*
// constants; empty means private for a positive id, supergroup below
// -10^12, group otherwise. A private chat's id is its user's id.
type Chat struct {
	ID    int64
	Type  string
	Title string
}

// Private is the private chat with a user.
func Private(userID int64) Chat { return Chat{ID: userID, Type: TypePrivate} }

// Group is a basic group. Group ids are negative: a positive id is negated.
func Group(id int64, title string) Chat {
	if id > 0 {
		id = -id
	}
	return Chat{ID: id, Type: TypeGroup, Title: title}
}

// Supergroup is a supergroup. A positive id n becomes -100…n, the form
// Telegram gives supergroup ids.
func Supergroup(id int64, title string) Chat {
	if id > 0 {
		id = -(supergroupBase + id)
	}
	return Chat{ID: id, Type: TypeSupergroup, Title: title}
}

// Channel is a channel; ids are formed like Supergroup's.
func Channel(id int64, title string) Chat {
	c := Supergroup(id, title)
	c.Type = TypeChannel
	return c
}

func (c Chat) kind() string {
	switch {
	case c.Type != "":
		return c.Type
	case c.ID > 0:
		return TypePrivate
	case c.ID < -supergroupBase:
		return TypeSupergroup
	}
	return TypeGroup
}

// User is a person writing to the bot.
type User struct {
	ID           int64
	FirstName    string
	Username     string
	LanguageCode string // IETF tag from the user's client, e.g. "hi" or "en"
}

func (u User) wire() wireUser {
	name := u.FirstName
	if name == "" {
		name = "User " + strconv.FormatInt(u.ID, 10)
	}
	return wireUser{ID: u.ID, FirstName: name, Username: u.Username, LanguageCode: u.LanguageCode}
}

// wireChat builds the chat object; a private chat carries its user's names.
func (c Chat) wire(from *User) wireChat {
	w := wireChat{ID: c.ID, Type: c.kind()}
	if w.Type == TypePrivate {
		if from != nil && from.ID == c.ID {
			u := from.wire()
			w.FirstName, w.Username = u.FirstName, u.Username
		}
		return w
	}
	w.Title = c.Title
	if w.Title == "" {
		w.Title = "Chat " + strconv.FormatInt(c.ID, 10)
	}
	return w
}

// Telegram's JSON shapes, reduced to what the fake fills in.

type wireUser struct {
	ID           int64  `json:"id"`
	IsBot        bool   `json:"is_bot"`
	FirstName    string `json:"first_name"`
	Username     string `json:"username,omitempty"`
	LanguageCode string `json:"language_code,omitempty"`
}

type wireMe struct {
	ID                      int64  `json:"id"`
	IsBot                   bool   `json:"is_bot"`
	FirstName               string `json:"first_name"`
	Username                string `json:"username"`
	CanJoinGroups           bool   `json:"can_join_groups"`
	CanReadAllGroupMessages bool   `json:"can_read_all_group_messages"`
	SupportsInlineQueries   bool   `json:"supports_inline_queries"`
}

type wireChat struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title,omitempty"`
	Username  string `json:"username,omitempty"`
	FirstName string `json:"first_name,omitempty"`
}

type wireEntity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
}

type wireContact struct {
	PhoneNumber string `json:"phone_number"`
	FirstName   string `json:"first_name"`
	UserID      int64  `json:"user_id,omitempty"`
}

type wireSticker struct {
	FileID       string `json:"file_id"`
	FileUniqueID string `json:"file_unique_id"`
	Type         string `json:"type"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	IsAnimated   bool   `json:"is_animated"`
	IsVideo      bool   `json:"is_video"`
	Emoji        string `json:"emoji,omitempty"`
}

type wirePhotoSize struct {
	FileID       string `json:"file_id"`
	FileUniqueID string `json:"file_unique_id"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	FileSize     int    `json:"file_size,omitempty"`
}

type wireOrigin struct {
	Type       string    `json:"type"`
	Date       int64     `json:"date"`
	SenderUser *wireUser `json:"sender_user,omitempty"`
}

type wireMessage struct {
	MessageID           int             `json:"message_id"`
	From                *wireUser       `json:"from,omitempty"`
	SenderChat          *wireChat       `json:"sender_chat,omitempty"`
	Date                int64           `json:"date"`
	Chat                wireChat        `json:"chat"`
	ForwardOrigin       *wireOrigin     `json:"forward_origin,omitempty"`
	ForwardFrom         *wireUser       `json:"forward_from,omitempty"`
	ForwardDate         int64           `json:"forward_date,omitempty"`
	EditDate            int64           `json:"edit_date,omitempty"`
	HasProtectedContent bool            `json:"has_protected_content,omitempty"`
	Text                string          `json:"text,omitempty"`
	Entities            []wireEntity    `json:"entities,omitempty"`
	Sticker             *wireSticker    `json:"sticker,omitempty"`
	Photo               []wirePhotoSize `json:"photo,omitempty"`
	Caption             string          `json:"caption,omitempty"`
	Contact             *wireContact    `json:"contact,omitempty"`
	NewChatMembers      []wireUser      `json:"new_chat_members,omitempty"`
	ReplyMarkup         json.RawMessage `json:"reply_markup,omitempty"`
}

type wireCallback struct {
	ID           string       `json:"id"`
	From         wireUser     `json:"from"`
	Message      *wireMessage `json:"message,omitempty"`
	ChatInstance string       `json:"chat_instance"`
	Data         string       `json:"data,omitempty"`
}

type wireMember struct {
	User   wireUser `json:"user"`
	Status string   `json:"status"`
}

type wireMemberUpdated struct {
	Chat          wireChat   `json:"chat"`
	From          wireUser   `json:"from"`
	Date          int64      `json:"date"`
	OldChatMember wireMember `json:"old_chat_member"`
	NewChatMember wireMember `json:"new_chat_member"`
}

type wireUpdate struct {
	UpdateID      int                `json:"update_id"`
	Message       *wireMessage       `json:"message,omitempty"`
	EditedMessage *wireMessage       `json:"edited_message,omitempty"`
	ChannelPost   *wireMessage       `json:"channel_post,omitempty"`
	CallbackQuery *wireCallback      `json:"callback_query,omitempty"`
	MyChatMember  *wireMemberUpdated `json:"my_chat_member,omitempty"`
}

// kind is the update's type, as allowed_updates names it.
func (u *wireUpdate) kind() string {
	switch {
	case u.Message != nil:
		return "message"
	case u.EditedMessage != nil:
		return "edited_message"
	case u.ChannelPost != nil:
		return "channel_post"
	case u.CallbackQuery != nil:
		return "callback_query"
	case u.MyChatMember != nil:
		return "my_chat_member"
	}
	return ""
}

type wireWebhookInfo struct {
	URL                  string   `json:"url"`
	HasCustomCertificate bool     `json:"has_custom_certificate"`
	PendingUpdateCount   int      `json:"pending_update_count"`
	LastErrorDate        int64    `json:"last_error_date,omitempty"`
	LastErrorMessage     string   `json:"last_error_message,omitempty"`
	MaxConnections       int      `json:"max_connections,omitempty"`
	AllowedUpdates       []string `json:"allowed_updates,omitempty"`
}
