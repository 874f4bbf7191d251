package bot

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otpgate/otpgate/store"
)

// data: only where the conversation is and the grant to present.
type session struct {
	mu    sync.Mutex
	lang  string // chosen with /language; "" means follow the client
	state state
	grant store.GrantRef
	// grantAudience is the field set the grant releases, for metrics.
	grantAudience store.Audience
	lastSeen      time.Time
	warned        int64 // the flood window (its reset time) the user was last warned in
	// staffTag is the request tag of the lookup whose one-time link a
	// staff member redeemed: only that lookup's code is accepted.
	staffTag string
}

type state int

const (
	stateIdle state = iota
	stateAwaitMobile
	stateAwaitCode
	stateAwaitStaffCode // a staff member opened their one-time link
)

// answered (Telegram requires it), silently.
func (c *conv) flooding() bool {
	if c.u.UserID == 0 {
		return false
	}
	lc, err := c.e.flood.Get(c.ctx, strconv.FormatInt(c.u.UserID, 10))
	if err != nil || !lc.Reached {
		return false
	}
	c.e.floods.Inc()
	if c.s.warned != lc.Reset {
		c.s.warned = lc.Reset
		c.say(msgSlowDown)
	}
	if cb := c.u.Callback; cb != nil {
		if len(c.out) == 0 {
			c.out = append(c.out, Reply{ChatID: c.u.ChatID})
		}
		c.out[0].AnswerCallback = cb.ID
	}
	return true
}

func callbackID(u Update) string {
	if u.Callback != nil {
		return u.Callback.ID
	}
	return ""
}

func (e *Engine) session(user int64) *session {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.o.Now()
	if now.Sub(e.swept) > time.Minute {
		for id, s := range e.sessions {
			if s.mu.TryLock() {
				if now.Sub(s.lastSeen) > e.o.IdleTTL {
					delete(e.sessions, id)
				}
				s.mu.Unlock()
			}
		}
		e.swept = now
	}
	s := e.sessions[user]
	if s == nil {
		s = &session{}
		e.sessions[user] = s
	}
	s.lastSeen = now
	return s
}

func (s *session) language(client string) string {
	if s.lang != "" {
		return s.lang
	}
	base, _, _ := strings.Cut(strings.ToLower(client), "-")
	if _, ok := catalogue[base]; ok {
		return base
	}
	return "en"
}
