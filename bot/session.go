package bot

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/otpgate/otpgate/store"
)

// SessionState is what the engine remembers of one chat user between two of
// their updates, in a form any replica can store and read back (it is
// plain data with JSON tags; encoding/json round-trips it).
//
// It holds no record data, no code, no mobile number and no ID number —
// nothing the user typed is kept. It says where the conversation is, which
// language to speak, and which grant to present: a reference only; the
// grant itself, and what it covers, stays in the store, which checks it on
// every call. The grant's ID is a capability for the grant's short life
// (with the user's requester id it is what the store asks for): store a
// state where the grants themselves may be stored.
type SessionState struct {
	// Lang is the language chosen with /language; "" follows the client's.
	Lang string `json:"lang,omitempty"`
	// State is where the conversation is.
	State ConvState `json:"state,omitempty"`
	// Grant is the reference of the grant a verified code minted, to
	// present to the store; the zero GrantRef when there is none.
	Grant store.GrantRef `json:"grant,omitzero"`
	// GrantAudience is the field set Grant releases (/certificate is for
	// beneficiaries only; metrics are labelled with it).
	GrantAudience store.Audience `json:"grant_audience,omitempty"`
	// StaffTag is the request tag of the lookup whose one-time link a
	// staff member redeemed: only that lookup's code is accepted. A tag is
	// two letters and two digits, shown in the chat and the SMS; not a code.
	StaffTag string `json:"staff_tag,omitempty"`
	// LastSeen is when the engine last handled an update of the user, on
	// the engine's clock. An update more than Options.IdleTTL later starts
	// the conversation over.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// FloodWarned is the flood window the user was last told to slow down
	// in, named by its end as Options.FloodStore reports it
	// (limiter.Context.Reset, unix seconds); 0 when never. The count is
	// the FloodStore's; the warning is kept here, where the session's hold
	// orders it, so that engines sharing Sessions and a FloodStore warn
	// once per window between them.
	FloodWarned int64 `json:"flood_warned,omitempty"`
}

// ConvState is a step of the conversation. The zero value is idle; a value
// this version does not know (written by a newer replica) reads as idle.
type ConvState string

const (
	ConvIdle           ConvState = ""
	ConvAwaitMobile    ConvState = "await_mobile"
	ConvAwaitCode      ConvState = "await_code"
	ConvAwaitStaffCode ConvState = "await_staff_code" // a staff member opened their one-time link
)

// Sessions keeps each user's SessionState where every engine that shares it
// sees it — several `otpgate serve` replicas over one database — and makes
// the handling of one user's updates one at a time across all of them.
// Implementations are safe for concurrent use. Options.Sessions nil gives
// the engine one that lives in its process.
//
// Acquire waits until no other handler, in this process or any other, holds
// user's session; takes the hold; and returns the state last saved for user
// and the Release that ends the hold. Three things can happen:
//
//   - It returns a nil error: the caller holds user's session until it calls
//     release, which it must do exactly once, on every path. The state is
//     the one last saved for user, or the zero SessionState when none was
//     saved or the one saved is older than the implementation's retention.
//   - ctx ends while it waits: it returns an error wrapping ctx.Err(), and
//     nothing is held.
//   - The storage fails: it returns that error, and nothing is held.
//
// ctx bounds the wait and Acquire's own storage calls, not the hold: the
// hold lasts until release is called, whatever becomes of ctx (a database/sql
// transaction begun with ctx would end with it: begin it without ctx's
// cancellation). The hold must end if its holder's process dies (a row lock
// or an advisory lock ends with its connection), or that user is stuck.
//
// Release(ctx, next) saves *next as user's state — nil leaves the saved
// state as it was — and ends the hold, as one step: the next Acquire of
// user, here or elsewhere, returns only after it and sees what it saved.
// Saving also renews the state's retention. Release ends the hold on every
// path, also when ctx is done or the save fails:
//
//   - nil: next is saved (or nothing changed), and the hold is over.
//   - an error: the hold is over; the saved state is either the one before
//     or *next, never a mix.
//
// Calling a Release a second time returns an error and changes nothing.
//
// Retention: an implementation forgets a state not saved for longer than
// its retention, which bounds what it keeps. It must be at least the
// engine's IdleTTL and at least a minute (the flood window); keeping a
// state longer is harmless, because the idle rule is the engine's: it
// starts over when LastSeen is older than IdleTTL, on its own clock.
//
// Updates without a user (UserID 0) share the session of user 0.
type Sessions interface {
	Acquire(ctx context.Context, user int64) (SessionState, Release, error)
}

// Release saves the state (nil: unchanged) and ends a hold of Sessions.
type Release func(ctx context.Context, next *SessionState) error

// floodWindow is the span FloodPerMinute counts over.
const floodWindow = time.Minute

// afterIdle is what is left of s once the user was idle past IdleTTL:
// nothing of the conversation. The flood warning is not the conversation's
// and stays (it matters only if IdleTTL is under a minute).
func (s SessionState) afterIdle() SessionState {
	return SessionState{FloodWarned: s.FloodWarned}
}

// normalize reads what this version does not know as its zero: a
// conversation step or a language added by a newer replica.
func (s *SessionState) normalize() {
	switch s.State {
	case ConvIdle, ConvAwaitMobile, ConvAwaitCode, ConvAwaitStaffCode:
	default:
		s.State = ConvIdle
	}
	if _, ok := catalogue[s.Lang]; !ok {
		s.Lang = ""
	}
}

// language is the language to answer in: the one chosen, else the
// client's when the bot speaks it, else English.
func (s *SessionState) language(client string) string {
	if s.Lang != "" {
		return s.Lang
	}
	base, _, _ := strings.Cut(strings.ToLower(client), "-")
	if _, ok := catalogue[base]; ok {
		return base
	}
	return "en"
}

// flooding applies the per-user message cap: past it the user is told once
// per window to slow down and then ignored until the window is over.
// Button presses are still answered (Telegram requires it), silently. When
// the FloodStore fails the update is not limited: the cap is a courtesy to
// the bot, and every limit that protects codes or SMS is the store's.
func (c *conv) flooding() bool {
	if c.u.UserID == 0 {
		return false
	}
	lc, err := c.e.flood.Get(c.ctx, strconv.FormatInt(c.u.UserID, 10))
	if err != nil {
		c.e.log.Warn("flood limit unavailable", "err", err)
		return false
	}
	if !lc.Reached {
		return false
	}
	c.e.floods.Inc()
	if c.s.FloodWarned != lc.Reset {
		c.s.FloodWarned = lc.Reset
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
