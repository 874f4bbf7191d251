package telegramtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
)

// Coordinator is an in-memory telegram.Coordinator: the state that
// several Bots in one test share, as replicas share a database. It keeps
// the semantics a database implementation must (see telegram.Coordinator):
// claims whose lease lapses, marks of handled updates kept for
// DoneRetention, send budgets as next free instants, and a polling lease
// renewed every third of its time to live.
//
// Its clock is time.Now, like a database's now(): inside a
// testing/synctest bubble that is the bubble's clock, which the Bots
// there use too; build the Coordinator in the bubble that uses it (it
// makes channels). The zero value is an empty coordinator. A Coordinator
// is safe for concurrent use.
//
// Give each Bot its own Conn, to cut one replica off (SetDown) without the
// others; a Coordinator used directly never fails.
type Coordinator struct {
	mu        sync.Mutex
	updates   map[int64]*updateState
	global    time.Time           // the bot's next free instant
	chats     map[int64]time.Time // each chat's next free instant
	leader    int64               // holder of the polling lease; 0 for none
	expires   time.Time           // when the lease lapses unrenewed
	holders   int64               // last holder number given out
	changed   chan struct{}       // closed and replaced when the lease is given up
	lastPrune time.Time
	stats     CoordinatorStats
}

var _ telegram.Coordinator = (*Coordinator)(nil)

// DoneRetention is how long a mark of a handled update is kept: longer
// than Telegram keeps an update (24 hours).
const DoneRetention = 25 * time.Hour

// ErrCoordinatorDown is what a Conn answers while it is down.
var ErrCoordinatorDown = errors.New("telegramtest: coordinator unreachable")

// errBadLease is the answer to a lease that is not positive.
var errBadLease = errors.New("telegramtest: a lease must be positive")

type updateState struct {
	done    bool
	expires time.Time // of the claim, while not done
	doneAt  time.Time
}

// CoordinatorStats count what the coordinator was asked.
type CoordinatorStats struct {
	New, Done, Busy int // ClaimUpdate outcomes
	Marked          int // UpdateDone calls
	Released        int // ReleaseUpdate calls that gave a claim back
	Booked          int // Reserve calls that booked a slot
	NotYet          int // Reserve calls told to wait for the chat
	Backoffs        int // Backoff calls
	Leads           int // polling leases taken
}

// Stats returns the counters so far.
func (c *Coordinator) Stats() CoordinatorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Handled reports whether updateID is marked done.
func (c *Coordinator) Handled(updateID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.updates[updateID]
	return st != nil && st.done
}

// initLocked makes the maps and prunes what has lapsed, at most once a
// minute.
func (c *Coordinator) initLocked(now time.Time) {
	if c.updates == nil {
		c.updates = make(map[int64]*updateState)
		c.chats = make(map[int64]time.Time)
	}
	if now.Sub(c.lastPrune) < time.Minute {
		return
	}
	c.lastPrune = now
	for id, st := range c.updates {
		if (st.done && now.Sub(st.doneAt) > DoneRetention) || (!st.done && !now.Before(st.expires)) {
			delete(c.updates, id)
		}
	}
	for id, at := range c.chats {
		if at.Before(now) {
			delete(c.chats, id)
		}
	}
}

// ClaimUpdate claims updateID; see telegram.Coordinator.
func (c *Coordinator) ClaimUpdate(ctx context.Context, updateID int64, lease time.Duration) (telegram.Claim, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if lease <= 0 {
		return 0, errBadLease
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.initLocked(now)
	st := c.updates[updateID]
	switch {
	case st != nil && st.done:
		c.stats.Done++
		return telegram.ClaimDone, nil
	case st != nil && now.Before(st.expires):
		c.stats.Busy++
		return telegram.ClaimBusy, nil
	}
	c.updates[updateID] = &updateState{expires: now.Add(lease)}
	c.stats.New++
	return telegram.ClaimNew, nil
}

// UpdateDone marks updateID handled; see telegram.Coordinator.
func (c *Coordinator) UpdateDone(ctx context.Context, updateID int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.initLocked(now)
	c.stats.Marked++
	if st := c.updates[updateID]; st != nil && st.done {
		return nil
	}
	c.updates[updateID] = &updateState{done: true, doneAt: now}
	return nil
}

// ReleaseUpdate gives a claim back; see telegram.Coordinator.
func (c *Coordinator) ReleaseUpdate(ctx context.Context, updateID int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked(time.Now())
	if st := c.updates[updateID]; st != nil && !st.done {
		delete(c.updates, updateID)
		c.stats.Released++
	}
	return nil
}

// Reserve books a message's slot; see telegram.Coordinator.
func (c *Coordinator) Reserve(ctx context.Context, s telegram.Slot) (time.Duration, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if s.ChatInterval < 0 || s.GlobalInterval < 0 {
		return 0, false, fmt.Errorf("telegramtest: negative interval in %+v", s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.initLocked(now)
	if free := c.chats[s.ChatID]; free.After(now) {
		c.stats.NotYet++
		return free.Sub(now), false, nil
	}
	t := later(now, c.global)
	c.global = t.Add(s.GlobalInterval)
	c.chats[s.ChatID] = t.Add(s.ChatInterval)
	c.stats.Booked++
	return t.Sub(now), true, nil
}

// Backoff holds a chat back; see telegram.Coordinator.
func (c *Coordinator) Backoff(ctx context.Context, chatID int64, wait time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.initLocked(now)
	c.chats[chatID] = later(c.chats[chatID], now.Add(wait))
	c.stats.Backoffs++
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Lead waits for the polling lease; see telegram.Coordinator.
func (c *Coordinator) Lead(ctx context.Context, lease time.Duration) (context.Context, func(), error) {
	return c.lead(ctx, lease, func() bool { return false })
}

// changedLocked is closed when the lease is next given up.
func (c *Coordinator) changedLocked() chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// lead is Lead through a connection that is down while down() is true:
// no lease is taken, renewed or given up then.
func (c *Coordinator) lead(ctx context.Context, ttl time.Duration, down func() bool) (context.Context, func(), error) {
	if ttl <= 0 {
		return nil, nil, errBadLease
	}
	c.mu.Lock()
	c.holders++
	me := c.holders
	c.mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if down() {
			return nil, nil, ErrCoordinatorDown
		}
		c.mu.Lock()
		now := time.Now()
		if c.leader == 0 || !now.Before(c.expires) {
			c.leader, c.expires = me, now.Add(ttl)
			c.stats.Leads++
			c.mu.Unlock()
			break
		}
		// A database standby would ask every few seconds; this one wakes
		// when the lease is given up or would lapse, the earliest it could
		// take over.
		wait, changed := c.expires.Sub(now), c.changedLocked()
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(wait):
		}
	}

	lead, cancel := context.WithCancel(ctx)
	renewing := make(chan struct{})
	go func() {
		defer close(renewing)
		defer cancel()
		for {
			select {
			case <-lead.Done():
				return
			case <-time.After(ttl / 3):
			}
			if down() {
				return // a renewal failed: stop before the lease can lapse
			}
			c.mu.Lock()
			now := time.Now()
			mine := c.leader == me && now.Before(c.expires)
			if mine {
				c.expires = now.Add(ttl)
			}
			c.mu.Unlock()
			if !mine {
				return
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			cancel()
			<-renewing
			if down() {
				return // it lapses instead
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.leader == me {
				c.leader = 0
				if c.changed != nil {
					close(c.changed)
					c.changed = nil
				}
			}
		})
	}
	return lead, release, nil
}

// Conn returns a new connection to c, for one replica.
func (c *Coordinator) Conn() *Conn { return &Conn{c: c} }

// Conn is one replica's connection to a Coordinator: a
// telegram.Coordinator that fails with ErrCoordinatorDown while it is
// down, as a replica cut off from its database does. A lease it holds is
// not renewed then, and its lead ends at the next renewal.
type Conn struct {
	c    *Coordinator
	down atomic.Bool
}

var _ telegram.Coordinator = (*Conn)(nil)

// SetDown cuts the connection (true) or restores it.
func (k *Conn) SetDown(down bool) { k.down.Store(down) }

// ClaimUpdate is Coordinator.ClaimUpdate unless k is down.
func (k *Conn) ClaimUpdate(ctx context.Context, updateID int64, lease time.Duration) (telegram.Claim, error) {
	if k.down.Load() {
		return 0, ErrCoordinatorDown
	}
	return k.c.ClaimUpdate(ctx, updateID, lease)
}

// UpdateDone is Coordinator.UpdateDone unless k is down.
func (k *Conn) UpdateDone(ctx context.Context, updateID int64) error {
	if k.down.Load() {
		return ErrCoordinatorDown
	}
	return k.c.UpdateDone(ctx, updateID)
}

// ReleaseUpdate is Coordinator.ReleaseUpdate unless k is down.
func (k *Conn) ReleaseUpdate(ctx context.Context, updateID int64) error {
	if k.down.Load() {
		return ErrCoordinatorDown
	}
	return k.c.ReleaseUpdate(ctx, updateID)
}

// Reserve is Coordinator.Reserve unless k is down.
func (k *Conn) Reserve(ctx context.Context, s telegram.Slot) (time.Duration, bool, error) {
	if k.down.Load() {
		return 0, false, ErrCoordinatorDown
	}
	return k.c.Reserve(ctx, s)
}

// Backoff is Coordinator.Backoff unless k is down.
func (k *Conn) Backoff(ctx context.Context, chatID int64, wait time.Duration) error {
	if k.down.Load() {
		return ErrCoordinatorDown
	}
	return k.c.Backoff(ctx, chatID, wait)
}

// Lead is Coordinator.Lead through k.
func (k *Conn) Lead(ctx context.Context, lease time.Duration) (context.Context, func(), error) {
	return k.c.lead(ctx, lease, k.down.Load)
}
