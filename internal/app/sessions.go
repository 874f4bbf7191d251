package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/store"
)

// storeSessions keeps the engine's conversation sessions in the store, so
// that consecutive messages of one user may land on any replica: a hold is
// a lease in the store (renewed while the handler runs, lapsing within
// sessionLease if its process dies), taken and read, or saved and given
// up, in one transaction each.
type storeSessions struct {
	st     *store.Store
	holder string // this process; each hold adds its own id
	retain time.Duration
	now    func() time.Time
	log    *slog.Logger
}

var _ bot.Sessions = storeSessions{}

const (
	// sessionLease is how long a hold outlives its last renewal: a user
	// whose handler died waits at most this long.
	sessionLease = 15 * time.Second
	// sessionPoll bounds the wait between two tries for a held session.
	sessionPoll = 50 * time.Millisecond
	// sessionSaveTimeout bounds the save that ends a hold.
	sessionSaveTimeout = 10 * time.Second
)

// savedSession is what the store keeps: the state and when it was saved,
// on the engine's clock, which retention is counted by.
type savedSession struct {
	Saved time.Time        `json:"saved"`
	State bot.SessionState `json:"state"`
}

func sessionKey(user int64) string { return "telegram:" + strconv.FormatInt(user, 10) }

func (s storeSessions) Acquire(ctx context.Context, user int64) (bot.SessionState, bot.Release, error) {
	key, holder := sessionKey(user), s.holder+":"+store.NewID()
	var raw []byte
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, sessionPoll) {
		held, state, err := s.st.HoldSession(ctx, key, holder, sessionLease)
		if err != nil {
			return bot.SessionState{}, nil, err
		}
		if held {
			raw = state
			break
		}
		select {
		case <-ctx.Done():
			return bot.SessionState{}, nil, fmt.Errorf("waiting for a session: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
	var saved savedSession
	if raw != nil {
		if err := json.Unmarshal(raw, &saved); err != nil {
			s.log.Warn("a saved session does not decode; starting over", "component", "sessions", "err", err)
			saved = savedSession{}
		}
	}
	if !saved.Saved.IsZero() && s.now().Sub(saved.Saved) > s.retain {
		saved = savedSession{}
	}
	// A hold whose renewal fails may lapse: the release then finds it
	// taken over and saves nothing (store.ErrHoldLost).
	_, stop := keepLease(context.WithoutCancel(ctx), s.st, store.SessionLease(key), holder, sessionLease, s.log.With("component", "sessions"))
	var released atomic.Bool
	release := func(ctx context.Context, next *bot.SessionState) error {
		if !released.CompareAndSwap(false, true) {
			return errors.New("session released twice")
		}
		stop()
		var b []byte
		if next != nil {
			var err error
			if b, err = json.Marshal(savedSession{Saved: s.now(), State: *next}); err != nil {
				b = nil
			}
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sessionSaveTimeout)
		defer cancel()
		return s.st.ReleaseSession(ctx, key, holder, b, s.retain+time.Minute)
	}
	return saved.State, release, nil
}
