package telegram

import (
	"context"
	"sync"
	"time"
)

// tracked follows one claimed update from the engine to the last of its
// calls: done closes once the engine has answered it and every call it
// queued (and every call those put in their place: a placeholder's edit,
// a notice that a deletion failed) has been made or refused for good.
// The methods do nothing on a nil *tracked: updates without a claim are
// not tracked.
type tracked struct {
	done chan struct{}

	mu       sync.Mutex
	pending  int  // calls queued and not yet made or refused
	answered bool // the engine has answered and its calls are queued
	started  bool // the engine has it (handle took it)
	released bool // given back before the engine had it: not to be handled
	closed   bool
}

func newTracked() *tracked { return &tracked{done: make(chan struct{})} }

// add counts one more call of the update.
func (t *tracked) add() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.pending++
	t.mu.Unlock()
}

// callDone counts one call made or refused for good.
func (t *tracked) callDone() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.pending--
	t.settleLocked()
	t.mu.Unlock()
}

// handled says the engine has answered and every call is queued.
func (t *tracked) handled() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.answered = true
	t.settleLocked()
	t.mu.Unlock()
}

func (t *tracked) settleLocked() {
	if t.answered && t.pending == 0 && !t.closed {
		t.closed = true
		close(t.done)
	}
}

// start hands the update to the engine, unless it was released first.
func (t *tracked) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		return false
	}
	t.started = true
	return true
}

// release takes the update back if the engine has not had it yet.
func (t *tracked) release() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started {
		return false
	}
	t.released = true
	return true
}

// track registers t as the tracker of update id, for handle to find.
func (b *Bot) track(id int, t *tracked) {
	b.mu.Lock()
	b.tracking[id] = t
	b.mu.Unlock()
}

// untrack forgets the tracker of an update that was never dispatched.
func (b *Bot) untrack(id int) {
	b.mu.Lock()
	delete(b.tracking, id)
	b.mu.Unlock()
}

// takeTracker returns the tracker of update id, nil for an update that
// has none, and false when the update was given back and must not be
// handled.
func (b *Bot) takeTracker(id int) (*tracked, bool) {
	b.mu.Lock()
	t := b.tracking[id]
	delete(b.tracking, id)
	b.mu.Unlock()
	if t == nil {
		return nil, true
	}
	return t, t.start()
}

// claim asks the Coordinator for update id, counting the outcome.
func (b *Bot) claim(id int) (Claim, error) {
	ctx, cancel := context.WithTimeout(b.coordCtx, storeTimeout)
	defer cancel()
	c, err := b.o.Coordinator.ClaimUpdate(ctx, int64(id), claimLease)
	if err != nil {
		b.m.coordErrors.WithLabelValues("claim").Inc()
		return 0, err
	}
	b.m.claims.WithLabelValues(c.String()).Inc()
	return c, nil
}

// release gives back the claim on an update that was not handled.
func (b *Bot) release(id int) {
	ctx, cancel := context.WithTimeout(b.coordCtx, storeTimeout)
	defer cancel()
	if err := b.o.Coordinator.ReleaseUpdate(ctx, int64(id)); err != nil {
		b.m.coordErrors.WithLabelValues("release").Inc()
		b.log.Warn("could not give an update back; its claim lapses instead", "update_id", id, "lapses_in", claimLease, "err", err)
	}
}

// settled is how the wait for a claimed update ended.
type settled int

const (
	settledDone      settled = iota // every call made or refused for good
	settledLate                     // settleWait passed first
	settledAbandoned                // the Bot stopped first
)

// settle waits until the claimed update id is finished (t.done), until
// the clock reaches until, or until the Bot stops, and records the
// outcome with the Coordinator:
//   - finished: marked done.
//   - late: marked done all the same. Its calls stay queued, and the send
//     queue goes on with them in order, but the update is no longer held:
//     were it left claimed, the claim would lapse under a replica still at
//     it and another would handle the update again, and a second handling
//     (a second SMS, a code tried again) is worse than a late reply.
//     What is given up is redelivery if this replica dies before the
//     calls go, and, for the chat's next update, the order against them.
//   - the Bot stopped: if the engine never had the update, the claim is
//     given back; otherwise it is left to lapse, as if this replica had
//     died, and a redelivery is handled again.
func (b *Bot) settle(id int, t *tracked, until time.Time) settled {
	out := settledDone
	select {
	case <-t.done:
	case <-b.clock.After(until.Sub(b.clock.Now())):
		out = settledLate
	case <-b.abandon:
		out = settledAbandoned
	}
	select {
	case <-t.done:
		out = settledDone
	default:
	}
	switch out {
	case settledAbandoned:
		if t.release() {
			b.release(id)
		}
		return out
	case settledLate:
		b.m.late.Inc()
		b.log.Warn("an update's replies are not all sent in time; marked done, replies still queued", "update_id", id, "after", settleWait)
	}
	ctx, cancel := context.WithTimeout(b.coordCtx, storeTimeout)
	defer cancel()
	if err := b.o.Coordinator.UpdateDone(ctx, int64(id)); err != nil {
		b.m.coordErrors.WithLabelValues("done").Inc()
		b.log.Error("could not mark an update done; a redelivery after its claim lapses is handled again", "update_id", id, "err", err)
	}
	return out
}

// settlers counts the goroutines that hold a claimed update: webhook
// requests waiting to answer, and the poller's settle goroutines. Run
// waits for them before it returns.
type settlers struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts one more, unless Run is past waiting for them.
func (s *settlers) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *settlers) done() { s.wg.Done() }

// close refuses new settlers and waits for the ones there are, or ctx.
func (s *settlers) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
