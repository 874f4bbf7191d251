package bot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// memSessions is the Sessions of a single process (Options.Sessions nil):
// a map of users, each with a one-token channel as its hold, so that a
// waiter can give up when its context ends and waiters are served in the
// order they came. Entries neither held nor awaited are swept once they are
// past retention, at most once a minute, so memory follows the users seen
// within retention, not all users ever seen.
type memSessions struct {
	retention time.Duration
	now       func() time.Time

	mu    sync.Mutex
	users map[int64]*memSession
	swept time.Time
}

type memSession struct {
	hold chan struct{} // holds its one token while nobody holds the session
	// Guarded by memSessions.mu:
	refs  int // Acquire calls holding or waiting for hold
	state SessionState
	saved time.Time
}

var _ Sessions = (*memSessions)(nil)

var errReleased = errors.New("bot: session already released")

// sweepEvery bounds how often Acquire walks the map.
const sweepEvery = time.Minute

func newMemSessions(retention time.Duration, now func() time.Time) *memSessions {
	return &memSessions{retention: retention, now: now, users: map[int64]*memSession{}}
}

func (m *memSessions) Acquire(ctx context.Context, user int64) (SessionState, Release, error) {
	m.mu.Lock()
	m.sweep()
	s := m.users[user]
	if s == nil {
		s = &memSession{hold: make(chan struct{}, 1)}
		s.hold <- struct{}{}
		m.users[user] = s
	}
	s.refs++
	m.mu.Unlock()
	// A free session is taken even when ctx is done: ctx only bounds the
	// wait, as the mutex this replaces did not look at it at all.
	select {
	case <-s.hold:
	default:
		select {
		case <-s.hold:
		case <-ctx.Done():
			m.mu.Lock()
			s.refs--
			m.mu.Unlock()
			return SessionState{}, nil, fmt.Errorf("bot: waiting for the session: %w", ctx.Err())
		}
	}
	m.mu.Lock()
	st := s.state
	if m.now().Sub(s.saved) > m.retention {
		st = SessionState{}
	}
	m.mu.Unlock()
	var done atomic.Bool
	release := func(_ context.Context, next *SessionState) error {
		if !done.CompareAndSwap(false, true) {
			return errReleased
		}
		m.mu.Lock()
		if next != nil {
			s.state, s.saved = *next, m.now()
		}
		s.refs--
		m.mu.Unlock()
		s.hold <- struct{}{}
		return nil
	}
	return st, release, nil
}

// sweep forgets the sessions nobody holds or awaits that were not saved
// within retention. The caller holds m.mu.
func (m *memSessions) sweep() {
	now := m.now()
	if now.Sub(m.swept) <= sweepEvery {
		return
	}
	for id, s := range m.users {
		if s.refs == 0 && now.Sub(s.saved) > m.retention {
			delete(m.users, id)
		}
	}
	m.swept = now
}
