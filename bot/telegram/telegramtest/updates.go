package telegramtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
)

// pendingUpdate is an update not yet confirmed (getUpdates) or delivered
// (webhook).
type pendingUpdate struct {
	id   int
	kind string
	raw  json.RawMessage
}

// poller is a getUpdates call being held.
type poller struct {
	conflict chan struct{} // closed when a newer getUpdates takes over
}

var (
	errConflictPoll = &apiError{code: http.StatusConflict,
		desc: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}
	errConflictWebhook = &apiError{code: http.StatusConflict,
		desc: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"}
)

// defaultExcluded are the update types Telegram withholds unless
// allowed_updates names them.
var defaultExcluded = map[string]bool{
	"chat_member": true, "message_reaction": true, "message_reaction_count": true,
}

func (s *Server) allowedLocked(kind string) bool {
	if s.allowed == nil {
		return !defaultExcluded[kind]
	}
	return s.allowed[kind]
}

// setAllowedLocked applies an allowed_updates parameter: absent keeps the
// previous setting, an empty list restores the default.
func (s *Server) setAllowedLocked(raw json.RawMessage) *apiError {
	if raw == nil {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return badRequest("can't parse allowed updates JSON array")
	}
	if len(list) == 0 {
		s.allowed = nil
		return nil
	}
	s.allowed = make(map[string]bool, len(list))
	for _, k := range list {
		s.allowed[k] = true
	}
	return nil
}

func (s *Server) allowedListLocked() []string {
	var out []string
	for k := range s.allowed {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// enqueueLocked gives u the next update_id and queues it, unless the
// current allowed_updates setting excludes its type: then, as on Telegram,
// the update is never created and enqueueLocked returns 0.
func (s *Server) enqueueLocked(u *wireUpdate) int {
	return s.enqueueRawLocked(u.kind(), func(id int) json.RawMessage {
		u.UpdateID = id
		b, err := json.Marshal(u)
		if err != nil {
			panic("telegramtest: " + err.Error()) // our own types always marshal
		}
		return b
	})
}

func (s *Server) enqueueRawLocked(kind string, build func(id int) json.RawMessage) int {
	if !s.allowedLocked(kind) {
		s.stats.Filtered++
		s.notifyLocked()
		return 0
	}
	s.lastUpdateID++
	id := s.lastUpdateID
	s.queue = append(s.queue, pendingUpdate{id: id, kind: kind, raw: build(id)})
	s.stats.Updates++
	s.wakeLocked()
	s.notifyLocked()
	if s.webhook.url != "" {
		s.startSenderLocked()
	}
	return id
}

// confirmLocked drops the updates a getUpdates offset confirms: those
// below a positive offset, or all but the last -offset for a negative one.
func (s *Server) confirmLocked(offset int) {
	drop := 0
	switch {
	case offset > 0:
		for drop < len(s.queue) && s.queue[drop].id < offset {
			drop++
		}
	case offset < 0:
		drop = max(len(s.queue)+offset, 0)
	}
	s.dropLocked(drop)
}

func (s *Server) dropLocked(n int) {
	if n == 0 {
		return
	}
	if n >= len(s.queue) {
		s.queue = nil
	} else {
		s.queue = s.queue[n:]
	}
	s.notifyLocked()
}

// getUpdates answers like Telegram: queued updates from offset on, at most
// limit; an empty queue holds the call until an update is queued, the
// timeout passes (capped by MaxPollWait), a newer getUpdates takes over
// (409 for this one), a webhook is set (409), the fake goes down or
// closes, or the client goes away.
func (s *Server) getUpdates(ctx context.Context, p params) (any, *apiError) {
	offset, err1 := p.int("offset")
	limit, err2 := p.int("limit")
	timeout, err3 := p.int("timeout")
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, badRequest(err.Error())
	}
	allowed, err := p.rawJSON("allowed_updates")
	if err != nil {
		return nil, badRequest("can't parse allowed updates JSON array")
	}
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	wait := s.opts.ShortPollWait
	if timeout > 0 {
		wait = time.Duration(timeout) * time.Second
	}
	wait = min(wait, s.opts.MaxPollWait)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webhook.url != "" {
		return nil, errConflictWebhook
	}
	if e := s.setAllowedLocked(allowed); e != nil {
		return nil, e
	}
	s.confirmLocked(offset)
	if s.poller != nil {
		close(s.poller.conflict)
	}
	me := &poller{conflict: make(chan struct{})}
	s.poller = me
	defer func() {
		if s.poller == me {
			s.poller = nil
			s.notifyLocked()
		}
	}()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		switch {
		case s.isClosed:
			return []json.RawMessage{}, nil
		case s.down:
			return nil, errDown
		case s.webhook.url != "":
			return nil, errConflictWebhook
		case len(s.queue) > 0:
			return s.batchLocked(limit), nil
		}
		wake := s.wake
		s.notifyLocked() // Polling is true now
		s.mu.Unlock()
		var e *apiError
		timedOut := false
		select {
		case <-wake:
		case <-timer.C:
			timedOut = true
		case <-me.conflict:
			e = errConflictPoll
		case <-ctx.Done():
			e = errGone
		}
		s.mu.Lock()
		if e != nil {
			return nil, e
		}
		if timedOut {
			return s.batchLocked(limit), nil
		}
	}
}

func (s *Server) batchLocked(limit int) []json.RawMessage {
	out := make([]json.RawMessage, 0, min(limit, len(s.queue)))
	for _, u := range s.queue[:min(limit, len(s.queue))] {
		out = append(out, u.raw)
	}
	return out
}

// commandRE is what Telegram marks as a bot_command at the start of a text.
var commandRE = regexp.MustCompile(`^/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,64})?`)

// commandEntities marks a leading /command the way Telegram does; without
// the entity the library does not see a command.
func commandEntities(text string) []wireEntity {
	cmd := commandRE.FindString(text)
	if cmd == "" {
		return nil
	}
	return []wireEntity{{Type: "bot_command", Offset: 0, Length: utf16Len(cmd)}}
}

// utf16Len is a text length the way Telegram counts offsets.
func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// incomingLocked builds a new message from a user in chat, stores it as a
// live message of the chat and returns it for the caller to fill in.
func (s *Server) incomingLocked(chat Chat, from *User) *wireMessage {
	cs := s.chatLocked(chat, from)
	m := &wireMessage{MessageID: cs.nextMessageID(), Date: s.now().Unix(), Chat: cs.chat}
	if from != nil {
		u := from.wire()
		m.From = &u
	}
	cs.live[m.MessageID] = &liveMessage{msg: m}
	return m
}

// SendText queues a text message from a user and returns its message id.
// A text that starts with a /command carries a bot_command entity, as
// Telegram sets it.
func (s *Server) SendText(chat Chat, from User, text string) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, &from)
	m.Text, m.Entities = text, commandEntities(text)
	s.enqueueLocked(&wireUpdate{Message: m})
	return m.MessageID
}

// ShareContact queues a message carrying a contact. contactUserID is the
// Telegram user the contact belongs to: from.ID when the user pressed a
// request_contact button, another id (or 0 for someone not on Telegram)
// when they attached any contact. phone is sent as given; Telegram often
// omits the leading '+'.
func (s *Server) ShareContact(chat Chat, from User, phone string, contactUserID int64) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, &from)
	name := "Contact"
	if contactUserID == from.ID {
		name = from.wire().FirstName
	}
	m.Contact = &wireContact{PhoneNumber: phone, FirstName: name, UserID: contactUserID}
	s.enqueueLocked(&wireUpdate{Message: m})
	return m.MessageID
}

// SendSticker queues a sticker message.
func (s *Server) SendSticker(chat Chat, from User) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, &from)
	m.Sticker = &wireSticker{FileID: s.fileID("sticker"), FileUniqueID: s.fileID("u"),
		Type: "regular", Width: 512, Height: 512, Emoji: "\U0001F44D"}
	s.enqueueLocked(&wireUpdate{Message: m})
	return m.MessageID
}

// SendPhoto queues a photo message with an optional caption.
func (s *Server) SendPhoto(chat Chat, from User, caption string) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, &from)
	m.Photo = []wirePhotoSize{
		{FileID: s.fileID("photo"), FileUniqueID: s.fileID("u"), Width: 90, Height: 67, FileSize: 1210},
		{FileID: s.fileID("photo"), FileUniqueID: s.fileID("u"), Width: 800, Height: 600, FileSize: 52170},
	}
	m.Caption = caption
	s.enqueueLocked(&wireUpdate{Message: m})
	return m.MessageID
}

// forwardOrigin is whom SendForwarded's messages were first written by.
var forwardOrigin = User{ID: 5550001, FirstName: "Someone Else"}

// SendForwarded queues a text the user forwarded from someone else: it
// carries forward_origin, and forward_from/forward_date for clients of
// Bot API 5.x such as the library.
func (s *Server) SendForwarded(chat Chat, from User, text string) (messageID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, &from)
	orig := forwardOrigin.wire()
	when := s.now().Add(-time.Hour).Unix()
	m.Text = text
	m.ForwardOrigin = &wireOrigin{Type: "user", Date: when, SenderUser: &orig}
	m.ForwardFrom, m.ForwardDate = &orig, when
	s.enqueueLocked(&wireUpdate{Message: m})
	return m.MessageID
}

// EditText queues an edited_message: the user changed the text of their
// message messageID. An unknown messageID is edited all the same.
func (s *Server) EditText(chat Chat, from User, messageID int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatLocked(chat, &from)
	u := from.wire()
	m := &wireMessage{MessageID: messageID, From: &u, Date: s.now().Unix(), Chat: cs.chat}
	m.EditDate = s.now().Unix()
	m.Text, m.Entities = text, commandEntities(text)
	if lm := cs.live[messageID]; lm != nil && !lm.fromBot {
		m.Date = lm.msg.Date
		stored := *lm.msg
		stored.Text, stored.Entities, stored.EditDate = m.Text, m.Entities, m.EditDate
		lm.msg = &stored
	}
	s.enqueueLocked(&wireUpdate{EditedMessage: m})
}

// callbackBase makes callback query ids look like Telegram's long numbers.
const callbackBase = 4_100_000_000_000_000_000

// PressButton queues a callback_query: the user pressed the inline button
// with callback data on the bot's message messageID, which the query
// carries in full when the fake knows it. It returns the query id, which
// the bot must answer exactly once.
func (s *Server) PressButton(chat Chat, from User, messageID int, data string) (callbackID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatLocked(chat, &from)
	var msg wireMessage
	if lm := cs.live[messageID]; lm != nil {
		msg = *lm.msg
	} else {
		bot := s.bot
		msg = wireMessage{MessageID: messageID, From: &bot, Date: s.now().Unix(), Chat: cs.chat}
	}
	s.cbSeq++
	callbackID = strconv.FormatInt(callbackBase+s.cbSeq, 10)
	s.callbacks[callbackID] = true
	s.enqueueLocked(&wireUpdate{CallbackQuery: &wireCallback{
		ID:           callbackID,
		From:         from.wire(),
		Message:      &msg,
		ChatInstance: strconv.FormatInt(chat.ID*7919+104729, 10),
		Data:         data,
	}})
	return callbackID
}

// ChannelPost queues a channel_post: a text posted in a channel the bot
// administers. It has a sender_chat and no from, like Telegram's.
func (s *Server) ChannelPost(chat Chat, text string) (messageID int) {
	if chat.Type == "" {
		chat.Type = TypeChannel
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.incomingLocked(chat, nil)
	sc := m.Chat
	m.SenderChat = &sc
	m.Text, m.Entities = text, commandEntities(text)
	s.enqueueLocked(&wireUpdate{ChannelPost: m})
	return m.MessageID
}

// AddedToGroup queues what Telegram sends when a user adds the bot to a
// group: a my_chat_member update (bot status left → member; administrator
// for a channel) and then, except in channels, the service message with
// new_chat_members. Sends to the chat work again after a leaveChat.
func (s *Server) AddedToGroup(chat Chat, by User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatLocked(chat, &by)
	cs.botOut = ""
	status := "member"
	if cs.chat.Type == TypeChannel {
		status = "administrator"
	}
	s.memberUpdateLocked(cs, by.wire(), "left", status)
	if cs.chat.Type != TypeChannel {
		m := s.incomingLocked(chat, &by)
		m.NewChatMembers = []wireUser{s.bot}
		s.enqueueLocked(&wireUpdate{Message: m})
	}
}

// RemovedFromGroup queues the my_chat_member update Telegram sends when a
// user removes the bot from a group (member → left in a basic group,
// kicked elsewhere). Later sends to the chat answer 403.
func (s *Server) RemovedFromGroup(chat Chat, by User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chatLocked(chat, &by)
	status := "kicked"
	if cs.chat.Type == TypeGroup {
		status = "left"
	}
	old := "member"
	if cs.chat.Type == TypeChannel {
		old = "administrator"
	}
	cs.botOut = "bot was kicked from the " + cs.chat.Type + " chat"
	s.memberUpdateLocked(cs, by.wire(), old, status)
}

func (s *Server) memberUpdateLocked(cs *chatState, by wireUser, from, to string) {
	s.enqueueLocked(&wireUpdate{MyChatMember: &wireMemberUpdated{
		Chat:          cs.chat,
		From:          by,
		Date:          s.now().Unix(),
		OldChatMember: wireMember{User: s.bot, Status: from},
		NewChatMember: wireMember{User: s.bot, Status: to},
	}})
}

// SendRaw queues any update given as a JSON object, for types the helpers
// do not build. Its update_id is replaced by the next one; its type is its
// first field other than update_id. It returns the update_id, or 0 when
// the current allowed_updates setting excludes that type.
func (s *Server) SendRaw(update json.RawMessage) (updateID int, err error) {
	fields, kind, err := decodeUpdate(update)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqueueRawLocked(kind, func(id int) json.RawMessage {
		fields["update_id"] = json.RawMessage(strconv.Itoa(id))
		b, _ := json.Marshal(fields) // values are valid JSON already
		return b
	}), nil
}

// decodeUpdate splits an update object into fields and finds its type.
func decodeUpdate(raw json.RawMessage) (map[string]json.RawMessage, string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, "", errors.New("telegramtest: an update must be a JSON object")
	}
	fields := map[string]json.RawMessage{}
	kind := ""
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", fmt.Errorf("telegramtest: bad update JSON: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, "", fmt.Errorf("telegramtest: bad update JSON: %w", err)
		}
		fields[key] = v
		if kind == "" && key != "update_id" {
			kind = key
		}
	}
	if kind == "" {
		return nil, "", errors.New("telegramtest: an update needs a field besides update_id")
	}
	return fields, kind, nil
}

// fileID makes a file id that looks like Telegram's.
func (s *Server) fileID(prefix string) string {
	s.cbSeq++
	return fmt.Sprintf("AgAC%s%016x", prefix, s.cbSeq)
}

// Polling reports whether a getUpdates call is being held, waiting for
// an update: a test can WaitFor it to know the bot is listening.
func (s *Server) Polling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poller != nil
}

// Pending is the number of updates neither confirmed by a getUpdates
// offset nor delivered to the webhook.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
