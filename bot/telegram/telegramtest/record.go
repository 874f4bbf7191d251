package telegramtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Call is one request the fake answered, failed ones included.
type Call struct {
	Method      string            // as the client spelled it
	Params      map[string]string // one value per parameter; nested objects as their JSON text
	Time        time.Time         // arrival, on the fake's clock
	Status      int               // HTTP status answered (= error_code when not 200)
	Description string            // error description, "" on success
}

// SentMessage is a message the bot sent (or, from Edits and Latest, the
// state of a message after an edit).
type SentMessage struct {
	ChatID              int64
	MessageID           int
	Text                string
	ParseMode           string
	ReplyMarkup         json.RawMessage // as sent, any keyboard kind; nil when none
	ProtectContent      bool
	DisableNotification bool
	ReplyToMessageID    int
	Time                time.Time // sent; for Edits, edited
	// EditTime is when the message was last edited; zero when it never
	// was. Set by Edits and Latest.
	EditTime time.Time
	// Photo is the uploaded image of a sendPhoto, whose caption is Text.
	Photo []byte
}

// Answer is an answerCallbackQuery call that succeeded.
type Answer struct {
	CallbackID string
	Text       string
	ShowAlert  bool
	URL        string
	Time       time.Time
}

// BotCommand is one entry of setMyCommands.
type BotCommand struct {
	Command     string `json:"command"`
	Description string `json:"description"`
}

// CommandSet is one successful setMyCommands call.
type CommandSet struct {
	Commands     []BotCommand
	Raw          json.RawMessage // the commands parameter as sent
	Scope        json.RawMessage // nil for the default scope
	LanguageCode string
}

// Stats are counters since the fake started.
type Stats struct {
	Calls       int // requests answered
	Errors      int // answered ok:false (or the 502 page while down)
	Sent        int // messages sent by the bot
	TooMany429  int // 429 answers, injected by FailNext or enforced
	LimitGlobal int // sends refused by the 30/s overall limit
	LimitChat   int // sends refused by the 1/s private-chat limit
	LimitGroup  int // sends refused by the 20/min group limit
	Injected    int // answers scripted by FailNext, FailAfter or HangAfter
	Updates     int // updates queued
	Filtered    int // updates not created because allowed_updates excludes their type
	MaxInFlight int // most requests being handled at once
}

// Calls returns the calls answered so far, oldest first (only the most
// recent Options.MaxCalls or more when that is set).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Params = maps.Clone(c.Params)
		out[i] = c
	}
	return out
}

// CallsTo returns the calls of one method (case-sensitive, as sent).
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Sent returns the messages the bot sent to chatID, oldest first, deleted
// ones included.
func (s *Server) Sent(chatID int64) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sentLocked(chatID)
}

func (s *Server) sentLocked(chatID int64) []SentMessage {
	cs := s.chats[chatID]
	if cs == nil {
		return nil
	}
	out := make([]SentMessage, len(cs.sent))
	for i, idx := range cs.sent {
		out[i] = s.sent[idx]
	}
	return out
}

// SentAll returns every message the bot sent, to any chat, oldest first.
func (s *Server) SentAll() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SentMessage(nil), s.sent...)
}

// Latest returns the messages the bot sent to chatID, oldest first,
// deleted ones included, each as it stands after its latest edit: what the
// user sees (or saw until it was deleted). Time stays the time it was sent.
func (s *Server) Latest(chatID int64) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latestLocked(chatID)
}

func (s *Server) latestLocked(chatID int64) []SentMessage {
	out := s.sentLocked(chatID)
	cs := s.chats[chatID]
	if cs == nil {
		return out
	}
	at := make(map[int]int, len(out))
	for i, m := range out {
		at[m.MessageID] = i
	}
	for _, e := range cs.edits {
		if i, ok := at[e.MessageID]; ok {
			sent := out[i].Time
			out[i] = e
			out[i].Time, out[i].EditTime = sent, e.Time
		}
	}
	return out
}

// LatestAll is Latest for every chat, in the order the messages were sent.
func (s *Server) LatestAll() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	byChat := map[int64][]SentMessage{}
	next := map[int64]int{}
	out := make([]SentMessage, 0, len(s.sent))
	for _, m := range s.sent {
		l, ok := byChat[m.ChatID]
		if !ok {
			l = s.latestLocked(m.ChatID)
			byChat[m.ChatID] = l
		}
		out = append(out, l[next[m.ChatID]])
		next[m.ChatID]++
	}
	return out
}

// WaitLatest blocks until the bot has sent at least n messages to chatID
// and the n-th, as it stands now (see Latest), satisfies ready; nil ready
// accepts any. It returns Latest(chatID). On failure it returns what there
// is with an error wrapping ctx's error (or ErrClosed).
func (s *Server) WaitLatest(ctx context.Context, chatID int64, n int, ready func(SentMessage) bool) ([]SentMessage, error) {
	var got []SentMessage
	err := s.WaitFor(ctx, func() bool {
		got = s.Latest(chatID)
		return n > 0 && len(got) >= n && (ready == nil || ready(got[n-1]))
	})
	if err != nil {
		return got, fmt.Errorf("telegramtest: message %d of chat %d not there or not ready (%d sent): %w", n, chatID, len(got), err)
	}
	return got, nil
}

// Edits returns the successful edits of the bot's messages in chatID,
// oldest first, each as the message stood after it.
func (s *Server) Edits(chatID int64) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.chats[chatID]; cs != nil {
		return append([]SentMessage(nil), cs.edits...)
	}
	return nil
}

// Deleted returns the ids of the messages deleted in chatID, in order.
func (s *Server) Deleted(chatID int64) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.chats[chatID]; cs != nil {
		return append([]int(nil), cs.deleted...)
	}
	return nil
}

// DeletedAt reports when the message messageID of chatID was deleted, on
// the fake's clock, and false if it was not.
func (s *Server) DeletedAt(chatID int64, messageID int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs := s.chats[chatID]; cs != nil {
		at, ok := cs.deletedAt[messageID]
		return at, ok
	}
	return time.Time{}, false
}

// Answered returns the callback query ids answered, in order.
func (s *Server) Answered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.answers))
	for i, a := range s.answers {
		out[i] = a.CallbackID
	}
	return out
}

// Answers returns the callback answers in full, in order.
func (s *Server) Answers() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Answer(nil), s.answers...)
}

// Unanswered returns the ids of callback queries queued by PressButton and
// not answered yet. Telegram wants every one answered.
func (s *Server) Unanswered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.callbacks {
		out = append(out, id)
	}
	return out
}

// Commands returns the successful setMyCommands calls, in order.
func (s *Server) Commands() []CommandSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CommandSet(nil), s.commands...)
}

// Left returns the chats the bot left with leaveChat, in order.
func (s *Server) Left() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.left...)
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// WaitFor blocks until cond returns true. cond is checked at once and
// again after every recorded change (a call answered, an update queued or
// delivered, a setting changed); it runs without the fake's lock held, so
// it may call any of the fake's methods. WaitFor returns ctx's error,
// wrapped, when ctx ends first, and ErrClosed when the fake is closed with
// cond still false.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		changed, closed := s.changed, s.isClosed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("telegramtest: condition still false: %w", ctx.Err())
		}
	}
}

// WaitSent blocks until the bot has sent at least n messages to chatID and
// returns all of them. On failure it returns what was sent so far with an
// error wrapping ctx's error (or ErrClosed).
func (s *Server) WaitSent(ctx context.Context, chatID int64, n int) ([]SentMessage, error) {
	var got []SentMessage
	err := s.WaitFor(ctx, func() bool {
		got = s.Sent(chatID)
		return len(got) >= n
	})
	if err != nil {
		return got, fmt.Errorf("telegramtest: %d of %d messages to chat %d: %w", len(got), n, chatID, err)
	}
	return got, nil
}
