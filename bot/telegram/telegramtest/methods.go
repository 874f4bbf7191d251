package telegramtest

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// handlers are the Bot API methods the fake implements, by lower-case name
// (Telegram method names are case-insensitive). getUpdates is dispatched
// separately because it blocks.
var handlers = map[string]func(*Server, params) (any, *apiError){
	"getme":                  (*Server).getMe,
	"getupdates":             nil,
	"sendmessage":            (*Server).sendMessage,
	"sendphoto":              (*Server).sendPhoto,
	"sendchataction":         (*Server).sendChatAction,
	"editmessagetext":        (*Server).editMessageText,
	"editmessagereplymarkup": (*Server).editMessageReplyMarkup,
	"deletemessage":          (*Server).deleteMessage,
	"answercallbackquery":    (*Server).answerCallbackQuery,
	"setwebhook":             (*Server).setWebhook,
	"deletewebhook":          (*Server).deleteWebhook,
	"getwebhookinfo":         (*Server).getWebhookInfo,
	"setmycommands":          (*Server).setMyCommands,
	"getmycommands":          (*Server).getMyCommands,
	"deletemycommands":       (*Server).deleteMyCommands,
	"leavechat":              (*Server).leaveChat,
	"getchat":                (*Server).getChat,
	"getchatmember":          (*Server).getChatMember,
}

// maxMessageAge is how old a message may be and still be deleted.
const maxMessageAge = 48 * time.Hour

// chatState is everything the fake knows about one chat.
type chatState struct {
	chat       wireChat
	lastMsgID  int
	live       map[int]*liveMessage // not deleted, either direction
	sent       []int                // indexes into Server.sent
	deleted    []int
	deletedAt  map[int]time.Time
	edits      []SentMessage
	lastSend   time.Time   // private-chat limit
	groupSends []time.Time // group limit window
	botOut     string      // why sends fail (bot left or was removed); "" while in
}

// liveMessage is a message that can still be deleted or edited. msg is
// replaced, never mutated, once a reply may be encoding it.
type liveMessage struct {
	msg     *wireMessage
	fromBot bool
}

// nextMessageID numbers messages per chat, in both directions, as
// Telegram does.
func (c *chatState) nextMessageID() int {
	c.lastMsgID++
	return c.lastMsgID
}

// chatLocked returns the state of chat, creating it, and refreshes what
// the fake knows about the chat and its user.
func (s *Server) chatLocked(chat Chat, from *User) *chatState {
	cs := s.chatByIDLocked(chat.ID)
	w := chat.wire(from)
	switch {
	case w.Type == TypePrivate && w.FirstName == "" && cs.chat.Type == TypePrivate:
		// keep the names learnt from an earlier message
	case w.Type != TypePrivate && chat.Title == "" && w.Type == cs.chat.Type:
		// keep the title
	default:
		cs.chat = w
	}
	if from != nil {
		s.users[from.ID] = from.wire()
	}
	return cs
}

// chatByIDLocked returns the state of a chat known only by id, creating
// it with the type its id implies.
func (s *Server) chatByIDLocked(id int64) *chatState {
	cs := s.chats[id]
	if cs == nil {
		cs = &chatState{chat: Chat{ID: id}.wire(nil), live: make(map[int]*liveMessage)}
		s.chats[id] = cs
	}
	return cs
}

func (s *Server) getMe(params) (any, *apiError) {
	return wireMe{ID: s.bot.ID, IsBot: true, FirstName: s.bot.FirstName, Username: s.bot.Username,
		CanJoinGroups: true}, nil
}

// canSendLocked answers 403 for chats the bot cannot write to.
func (s *Server) canSendLocked(cs *chatState) *apiError {
	if s.blocked[cs.chat.ID] {
		return forbidden("bot was blocked by the user")
	}
	if cs.botOut != "" {
		return forbidden(cs.botOut)
	}
	return nil
}

func (s *Server) sendMessage(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	text := p["text"]
	switch {
	case strings.TrimSpace(text) == "":
		return nil, badRequest("message text is empty")
	case utf8.RuneCountInString(text) > 4096:
		return nil, badRequest("message is too long")
	}
	markup, e := parseReplyMarkup(p["reply_markup"])
	if e != nil {
		return nil, e
	}
	if e := checkParseMode(p["parse_mode"], text); e != nil {
		return nil, e
	}
	replyTo, err := p.int("reply_to_message_id")
	if err != nil {
		return nil, badRequest(err.Error())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatByIDLocked(chatID)
	if e := s.canSendLocked(cs); e != nil {
		return nil, e
	}
	if replyTo != 0 && cs.live[replyTo] == nil && !p.bool("allow_sending_without_reply") {
		return nil, badRequest("message to be replied not found")
	}
	now := s.now()
	if e := s.admitLocked(cs, now); e != nil {
		return nil, e
	}
	bot := s.bot
	m := &wireMessage{
		MessageID:           cs.nextMessageID(),
		From:                &bot,
		Date:                now.Unix(),
		Chat:                cs.chat,
		HasProtectedContent: p.bool("protect_content"),
		Text:                text,
		ReplyMarkup:         inlineOnly(markup),
	}
	s.deliverLocked(cs, m, SentMessage{
		ChatID:              chatID,
		MessageID:           m.MessageID,
		Text:                text,
		ParseMode:           p["parse_mode"],
		ReplyMarkup:         markup,
		ProtectContent:      m.HasProtectedContent,
		DisableNotification: p.bool("disable_notification"),
		ReplyToMessageID:    replyTo,
		Time:                now,
	})
	return *m, nil
}

// deliverLocked records m, which the bot sent to cs, as sent.
func (s *Server) deliverLocked(cs *chatState, m *wireMessage, sent SentMessage) {
	cs.live[m.MessageID] = &liveMessage{msg: m, fromBot: true}
	cs.sent = append(cs.sent, len(s.sent))
	s.sent = append(s.sent, sent)
	s.stats.Sent++
	s.notifyLocked()
}

// sendPhoto takes the photo as a multipart upload (Telegram also takes a
// file_id or URL; otpgate uploads), a caption of at most 1,024 characters
// and protect_content, and counts against the same limits as a message.
func (s *Server) sendPhoto(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	photo, uploaded := p[fileKey+"photo"]
	switch {
	case !uploaded:
		return nil, badRequest("there is no photo in the request")
	case len(photo) == 0:
		return nil, badRequest("file must be non-empty")
	case len(photo) > 10<<20:
		return nil, badRequest("photo is too big (10 MB at most)")
	case utf8.RuneCountInString(p["caption"]) > 1024:
		return nil, badRequest("message caption is too long")
	}
	markup, e := parseReplyMarkup(p["reply_markup"])
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatByIDLocked(chatID)
	if e := s.canSendLocked(cs); e != nil {
		return nil, e
	}
	now := s.now()
	if e := s.admitLocked(cs, now); e != nil {
		return nil, e
	}
	bot := s.bot
	m := &wireMessage{
		MessageID: cs.nextMessageID(), From: &bot, Date: now.Unix(), Chat: cs.chat,
		HasProtectedContent: p.bool("protect_content"), Caption: p["caption"], ReplyMarkup: inlineOnly(markup),
		Photo: []wirePhotoSize{{FileID: "photo-" + strconv.FormatInt(chatID, 10) + "-" + strconv.Itoa(len(s.sent)),
			FileUniqueID: "u" + strconv.Itoa(len(s.sent)), Width: 1, Height: 1, FileSize: len(photo)}},
	}
	s.deliverLocked(cs, m, SentMessage{
		ChatID: chatID, MessageID: m.MessageID, Text: p["caption"], ReplyMarkup: markup,
		ProtectContent: m.HasProtectedContent, DisableNotification: p.bool("disable_notification"), Time: now,
		Photo: []byte(photo),
	})
	return *m, nil
}

func (s *Server) sendChatAction(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	if p["action"] == "" {
		return nil, badRequest("action is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.canSendLocked(s.chatByIDLocked(chatID)); e != nil {
		return nil, e
	}
	return true, nil
}

func (s *Server) editMessageText(p params) (any, *apiError) {
	text := p["text"]
	switch {
	case strings.TrimSpace(text) == "":
		return nil, badRequest("message text is empty")
	case utf8.RuneCountInString(text) > 4096:
		return nil, badRequest("message is too long")
	}
	if e := checkParseMode(p["parse_mode"], text); e != nil {
		return nil, e
	}
	return s.edit(p, &text)
}

func (s *Server) editMessageReplyMarkup(p params) (any, *apiError) {
	return s.edit(p, nil)
}

// edit changes the text (when text is not nil) and the inline keyboard of
// one of the bot's messages. Like Telegram, an edit without reply_markup
// removes the inline keyboard, and an edit that changes nothing fails.
func (s *Server) edit(p params, text *string) (any, *apiError) {
	if p["inline_message_id"] != "" {
		return nil, badRequest("message to edit not found")
	}
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	msgID, e := p.messageID()
	if e != nil {
		return nil, e
	}
	markup, e := parseReplyMarkup(p["reply_markup"])
	if e != nil {
		return nil, e
	}
	if markup != nil && inlineOnly(markup) == nil {
		return nil, badRequest("inline keyboard expected")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chats[chatID]
	if cs == nil || cs.live[msgID] == nil {
		return nil, badRequest("message to edit not found")
	}
	lm := cs.live[msgID]
	if !lm.fromBot {
		return nil, badRequest("message can't be edited")
	}
	m := *lm.msg
	if text != nil {
		m.Text = *text
	}
	m.ReplyMarkup = markup
	if m.Text == lm.msg.Text && compactJSON(m.ReplyMarkup) == compactJSON(lm.msg.ReplyMarkup) {
		return nil, badRequest("message is not modified: specified new message content and reply markup " +
			"are exactly the same as a current content and reply markup of the message")
	}
	now := s.now()
	m.EditDate = now.Unix()
	lm.msg = &m
	cs.edits = append(cs.edits, SentMessage{
		ChatID: chatID, MessageID: msgID, Text: m.Text, ParseMode: p["parse_mode"],
		ReplyMarkup: markup, ProtectContent: m.HasProtectedContent, Time: now,
	})
	s.notifyLocked()
	return m, nil
}

func (s *Server) deleteMessage(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	msgID, e := p.messageID()
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chats[chatID]
	if cs == nil || cs.live[msgID] == nil {
		return nil, badRequest("message to delete not found")
	}
	if s.now().Sub(time.Unix(cs.live[msgID].msg.Date, 0)) >= maxMessageAge {
		return nil, badRequest("message can't be deleted")
	}
	delete(cs.live, msgID)
	cs.deleted = append(cs.deleted, msgID)
	if cs.deletedAt == nil {
		cs.deletedAt = make(map[int]time.Time)
	}
	cs.deletedAt[msgID] = s.now()
	s.notifyLocked()
	return true, nil
}

func (s *Server) answerCallbackQuery(p params) (any, *apiError) {
	id := p["callback_query_id"]
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.callbacks[id] {
		return nil, badRequest("query is too old and response timeout expired or query ID is invalid")
	}
	delete(s.callbacks, id)
	s.answers = append(s.answers, Answer{
		CallbackID: id, Text: p["text"], ShowAlert: p.bool("show_alert"), URL: p["url"], Time: s.now(),
	})
	s.notifyLocked()
	return true, nil
}

// secretRE is what Telegram accepts as a webhook secret_token.
var secretRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

func (s *Server) setWebhook(p params) (any, *apiError) {
	hook := p["url"]
	secret := p["secret_token"]
	if secret != "" && !secretRE.MatchString(secret) {
		return nil, badRequest("secret token contains unallowed characters")
	}
	if hook != "" {
		u, err := url.Parse(hook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, badRequest("invalid webhook URL specified")
		}
	}
	maxConn, err := p.int("max_connections")
	if err != nil {
		return nil, badRequest(err.Error())
	}
	if maxConn == 0 {
		maxConn = 40
	}
	allowed, err := p.rawJSON("allowed_updates")
	if err != nil {
		return nil, badRequest("can't parse allowed updates JSON array")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.setAllowedLocked(allowed); e != nil {
		return nil, e
	}
	if p.bool("drop_pending_updates") {
		s.dropLocked(len(s.queue))
	}
	if hook == "" {
		return described{true, s.clearWebhookLocked()}, nil
	}
	desc := "Webhook was set"
	if s.webhook.url == hook {
		desc = "Webhook is already set"
	} else {
		s.webhook = webhookState{}
	}
	s.webhook.url, s.webhook.secret, s.webhook.maxConn = hook, secret, maxConn
	s.webhook.ipAddress = p["ip_address"]
	s.webhook.allowed = s.allowedListLocked()
	s.wakeLocked() // held getUpdates answer 409 now
	s.startSenderLocked()
	s.notifyLocked()
	return described{true, desc}, nil
}

func (s *Server) clearWebhookLocked() string {
	if s.webhook.url == "" {
		return "Webhook is already deleted"
	}
	s.webhook = webhookState{}
	s.wakeLocked()
	s.notifyLocked()
	return "Webhook was deleted"
}

func (s *Server) deleteWebhook(p params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.bool("drop_pending_updates") {
		s.dropLocked(len(s.queue))
	}
	return described{true, s.clearWebhookLocked()}, nil
}

func (s *Server) getWebhookInfo(params) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := wireWebhookInfo{URL: s.webhook.url, PendingUpdateCount: len(s.queue)}
	if s.webhook.url != "" {
		info.MaxConnections = s.webhook.maxConn
		info.AllowedUpdates = s.webhook.allowed
		if !s.webhook.lastErrorTime.IsZero() {
			info.LastErrorDate = s.webhook.lastErrorTime.Unix()
			info.LastErrorMessage = s.webhook.lastError
		}
	}
	return info, nil
}

// commandRuleRE is what Telegram accepts as a command name.
var commandRuleRE = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

func (s *Server) setMyCommands(p params) (any, *apiError) {
	raw := p["commands"]
	var cmds []BotCommand
	if err := json.Unmarshal([]byte(raw), &cmds); err != nil {
		return nil, badRequest("can't parse commands JSON object")
	}
	if len(cmds) > 100 {
		return nil, badRequest("too many commands")
	}
	for _, c := range cmds {
		if !commandRuleRE.MatchString(c.Command) {
			return nil, badRequest("BOT_COMMAND_INVALID")
		}
		if n := utf8.RuneCountInString(c.Description); n < 1 || n > 256 {
			return nil, badRequest("BOT_COMMAND_DESCRIPTION_INVALID")
		}
	}
	scope, key, e := commandsKey(p)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmdByKey[key] = cmds
	s.commands = append(s.commands, CommandSet{
		Commands: cmds, Raw: json.RawMessage(raw), Scope: scope, LanguageCode: p["language_code"],
	})
	s.notifyLocked()
	return true, nil
}

func (s *Server) getMyCommands(p params) (any, *apiError) {
	_, key, e := commandsKey(p)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds := s.cmdByKey[key]
	if cmds == nil {
		cmds = []BotCommand{}
	}
	return cmds, nil
}

func (s *Server) deleteMyCommands(p params) (any, *apiError) {
	_, key, e := commandsKey(p)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cmdByKey, key)
	s.notifyLocked()
	return true, nil
}

// commandsKey identifies a command list by scope and language; the
// default scope may be given or left out.
func commandsKey(p params) (json.RawMessage, string, *apiError) {
	scope, err := p.rawJSON("scope")
	if err != nil {
		return nil, "", badRequest("can't parse BotCommandScope JSON object")
	}
	key := `{"type":"default"}`
	if scope != nil {
		var m map[string]any
		if err := json.Unmarshal(scope, &m); err != nil || m["type"] == nil {
			return nil, "", badRequest("can't parse BotCommandScope JSON object")
		}
		b, _ := json.Marshal(m) // map keys come out sorted: a canonical form
		key = string(b)
	}
	return scope, key + "|" + p["language_code"], nil
}

func (s *Server) leaveChat(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	if chatID > 0 {
		return nil, badRequest("chat member status can't be changed in private chats")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatByIDLocked(chatID)
	if cs.botOut != "" {
		return nil, forbidden(cs.botOut)
	}
	old := "member"
	if cs.chat.Type == TypeChannel {
		old = "administrator"
	}
	cs.botOut = "bot is not a member of the " + cs.chat.Type + " chat"
	s.left = append(s.left, chatID)
	s.memberUpdateLocked(cs, s.bot, old, "left")
	s.notifyLocked()
	return true, nil
}

func (s *Server) getChat(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chats[chatID]
	if cs == nil {
		return nil, badRequest("chat not found")
	}
	return cs.chat, nil
}

func (s *Server) getChatMember(p params) (any, *apiError) {
	chatID, e := p.chatID()
	if e != nil {
		return nil, e
	}
	userID, err := p.int64("user_id")
	if err != nil || userID == 0 {
		return nil, badRequest("user not found")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chats[chatID]
	if cs == nil {
		return nil, badRequest("chat not found")
	}
	if userID == s.bot.ID {
		status := "member"
		switch {
		case cs.botOut != "":
			status = "left"
		case cs.chat.Type == TypeChannel:
			status = "administrator"
		}
		return wireMember{User: s.bot, Status: status}, nil
	}
	u, ok := s.users[userID]
	if !ok {
		return nil, badRequest("user not found")
	}
	return wireMember{User: u, Status: "member"}, nil
}

// compactJSON is a canonical text for comparing markups.
func compactJSON(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
