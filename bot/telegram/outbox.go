package telegram

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// caller makes one Bot API call, form-encoded or, with files, as a
// multipart upload. *tgbotapi.BotAPI implements it.
type caller interface {
	MakeRequest(endpoint string, params tgbotapi.Params) (*tgbotapi.APIResponse, error)
	UploadFiles(endpoint string, params tgbotapi.Params, files []tgbotapi.RequestFile) (*tgbotapi.APIResponse, error)
}

// Telegram's documented limits (Bot FAQ), with a margin so that network
// jitter between our clock and theirs does not push a send over.
const (
	globalInterval  = time.Second/30 + 3*time.Millisecond // ≤ 30 messages/s overall
	privateInterval = time.Second + 50*time.Millisecond   // ≤ 1 message/s per chat
	groupWindow     = time.Minute + 500*time.Millisecond  // ≤ 20 messages/min per group
	groupPerWindow  = 20
	maxBackoff      = 30 * time.Second
)

// groupInterval spaces a group's messages evenly when the budget is shared
// (Coordinator.Reserve keeps one instant per chat, not a window): never
// more than groupPerWindow in groupWindow.
const groupInterval = groupWindow / groupPerWindow

// call is one queued Bot API request.
type call struct {
	chatID int64
	method string
	params tgbotapi.Params
	// done, if set, gets the outcome once: the response, or the error that
	// made the call impossible (never a transient one).
	done func(*tgbotapi.APIResponse, error)
	// next, if set, runs once the call has succeeded, while its chat is
	// still held, and returns the call that takes its place at the head of
	// the chat's queue (nil for none): two steps nothing comes between.
	next func(*tgbotapi.APIResponse) *call
	// reveal is, on a placeholder, the edit that puts the sensitive text
	// in (toCalls sets it; the Bot turns it into next).
	reveal *call
	// files, when set, go as a multipart upload (sendPhoto).
	files []tgbotapi.RequestFile
	// update, if set, is the claimed update the call answers; it learns
	// when the call is made or refused for good (not when it is replaced
	// by next: what takes its place answers the same update).
	update *tracked
	seq    uint64
}

// message reports whether c counts against Telegram's message limits.
func (c *call) message() bool { return c.method == "sendMessage" || c.method == "sendPhoto" }

type chatQueue struct {
	calls    []*call
	inFlight bool
	next     time.Time   // earliest time the head may go
	recent   []time.Time // group chats: sends in the last window
	failures int         // consecutive transient failures of the head
	group    bool
}

// outbox is the one send queue: per-chat FIFO, paced within Telegram's
// limits, retrying transient failures (429 after retry_after, 5xx and
// network errors with back-off) without ever dropping or reordering a
// message. Calls that Telegram refuses for good (400, 403) are logged and
// dropped, since no retry can make them succeed.
type outbox struct {
	api     caller
	log     *slog.Logger
	clock   Clock
	workers int

	mu        sync.Mutex
	chats     map[int64]*chatQueue
	pending   int
	seq       uint64
	nextSend  time.Time // global pacing
	closed    bool
	wake      chan struct{}
	idle      chan struct{} // closed and replaced whenever pending drops to 0
	tooMany   int           // 429s received, for tests and metrics
	permanent int           // calls dropped as impossible

	work chan *call
	wg   sync.WaitGroup

	health        *health            // nil in unit tests
	tooManyMetric prometheus.Counter // nil in unit tests
	// coord, when set, books every message's slot in the budget the
	// replicas share, on top of this queue's own pacing.
	coord Coordinator
}

func newOutbox(api caller, log *slog.Logger, workers int, clock Clock) *outbox {
	return &outbox{
		api: api, log: log, clock: clock, workers: workers,
		chats: map[int64]*chatQueue{}, wake: make(chan struct{}, 1), idle: make(chan struct{}),
		work: make(chan *call),
	}
}

// enqueue adds c behind everything already queued for its chat. It never
// blocks and never fails; after close it logs and drops.
func (o *outbox) enqueue(c *call, group bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.log.Error("send after shutdown dropped", "method", c.method)
		return
	}
	o.seq++
	c.seq = o.seq
	q := o.chats[c.chatID]
	if q == nil {
		q = &chatQueue{group: group}
		o.chats[c.chatID] = q
	}
	q.calls = append(q.calls, c)
	o.pending++
	o.mu.Unlock()
	o.poke()
}

func (o *outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// depth is the number of calls queued or in flight.
func (o *outbox) depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}

// run schedules calls until ctx ends. Workers execute them; run owns them.
func (o *outbox) run(ctx context.Context) {
	for range o.workers {
		o.wg.Add(1)
		go o.worker(ctx)
	}
	defer o.wg.Wait()
	defer close(o.work)
	for {
		c, wait := o.pick()
		if c != nil {
			select {
			case o.work <- c:
				continue
			case <-ctx.Done():
				o.unpick(c)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-o.clock.After(wait):
		}
	}
}

// pick returns the call to send now, or how long to wait before one may go.
// Among chats whose head may go, the oldest call goes first.
func (o *outbox) pick() (*call, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	var (
		best     *chatQueue
		bestCall *call
		wait     = time.Hour
	)
	for _, q := range o.chats {
		if q.inFlight || len(q.calls) == 0 {
			continue
		}
		c := q.calls[0]
		at := q.next
		if c.message() {
			at = later(at, o.nextSend)
			if q.group && len(q.recent) >= groupPerWindow {
				at = later(at, q.recent[len(q.recent)-groupPerWindow].Add(groupWindow))
			}
		} else if q.failures == 0 {
			at = now // answers and deletions are not paced
		}
		if d := at.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if bestCall == nil || c.seq < bestCall.seq {
			best, bestCall = q, c
		}
	}
	if bestCall == nil {
		return nil, wait
	}
	best.inFlight = true
	if bestCall.message() {
		o.nextSend = later(now, o.nextSend).Add(globalInterval)
		if best.group {
			best.recent = append(best.recent, now)
			if len(best.recent) > groupPerWindow {
				best.recent = best.recent[1:]
			}
		} else {
			best.next = now.Add(privateInterval)
		}
	}
	return bestCall, 0
}

func (o *outbox) unpick(c *call) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if q := o.chats[c.chatID]; q != nil {
		q.inFlight = false
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (o *outbox) worker(ctx context.Context) {
	defer o.wg.Done()
	for c := range o.work {
		if o.coord != nil && c.message() {
			if err := o.reserve(ctx, c); err != nil {
				o.notSent(c, err)
				continue
			}
		}
		var (
			resp *tgbotapi.APIResponse
			err  error
		)
		if len(c.files) > 0 {
			resp, err = o.api.UploadFiles(c.method, c.params, c.files)
		} else {
			resp, err = o.api.MakeRequest(c.method, c.params)
		}
		if o.coord != nil && c.message() {
			o.shareBackoff(c, err)
		}
		o.finish(c, resp, err)
	}
}

// reserve books c's slot in the shared budget and waits for it, first
// for its chat to be free if another replica wrote to it last. The chat
// is held meanwhile, so its order stands.
func (o *outbox) reserve(ctx context.Context, c *call) error {
	o.mu.Lock()
	group := o.chats[c.chatID].group
	o.mu.Unlock()
	for rebooked := 0; ; {
		rctx, cancel := context.WithTimeout(ctx, storeTimeout)
		wait, booked, err := o.coord.Reserve(rctx, slotFor(c.chatID, group))
		cancel()
		if err != nil {
			return fmt.Errorf("telegram: booking a send slot: %w", err)
		}
		due := o.clock.Now().Add(wait)
		if !booked {
			wait = max(wait, time.Millisecond) // never a spin
		}
		if wait > 0 {
			select {
			case <-o.clock.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !booked {
			continue
		}
		// Woken well after the slot (a loaded machine): sent now, the
		// message would land on top of the next replica's slot and
		// bunch over Telegram's window. Book again, a few times at most.
		if o.clock.Now().Sub(due) > lateSlot && rebooked < maxRebooks {
			rebooked++
			continue
		}
		return nil
	}
}

// How late a wake-up may be for its booked slot before the slot is
// booked again, and how often.
const (
	lateSlot   = 10 * time.Millisecond
	maxRebooks = 3
)

// shareBackoff tells the other replicas of a 429 for c's chat.
func (o *outbox) shareBackoff(c *call, err error) {
	var tg *tgbotapi.Error
	if !errors.As(err, &tg) || tg.Code != http.StatusTooManyRequests {
		return
	}
	wait, _ := classify(err)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := o.coord.Backoff(ctx, c.chatID, wait); err != nil {
		o.log.Warn("could not share a 429 with the other replicas", "retry_in", wait, "err", err)
	}
}

// notSent puts c back at the head of its chat, unsent, to try again
// after a back-off: its slot could not be booked. Telegram was not asked,
// so health and the 429 count are untouched.
func (o *outbox) notSent(c *call, err error) {
	o.mu.Lock()
	q := o.chats[c.chatID]
	q.inFlight = false
	q.failures++
	retryIn := backoff(q.failures)
	q.next = later(q.next, o.clock.Now().Add(retryIn))
	attempt := q.failures
	o.mu.Unlock()
	o.log.Warn("send slot not booked; will retry", "method", c.method, "retry_in", retryIn, "attempt", attempt, "err", err)
	o.poke()
}

// finish records the outcome of c: success and permanent failure pop it;
// a transient failure keeps it at the head of its chat, paused.
func (o *outbox) finish(c *call, resp *tgbotapi.APIResponse, err error) {
	if c.method == "editMessageText" && notModified(err) {
		// A retried edit whose first attempt took effect: done.
		err = nil
	}
	if err == nil && c.next != nil {
		if follow := c.next(resp); follow != nil {
			o.replaceHead(c, follow)
			if c.done != nil {
				c.done(resp, nil)
			}
			return
		}
	}
	retryIn, permanent := classify(err)
	if o.health != nil {
		if err == nil || permanent { // Telegram answered
			o.health.ok()
		} else {
			o.health.fail()
		}
	}
	o.mu.Lock()
	q := o.chats[c.chatID]
	q.inFlight = false
	if err != nil && !permanent {
		q.failures++
		var tg *tgbotapi.Error
		if errors.As(err, &tg) && tg.Code == http.StatusTooManyRequests {
			o.tooMany++
			if o.tooManyMetric != nil {
				o.tooManyMetric.Inc()
			}
		}
		if retryIn == 0 {
			retryIn = backoff(q.failures)
		}
		// Never earlier than the pacing already due: a call whose answer
		// was lost may have been delivered, and counts against the chat.
		q.next = later(q.next, o.clock.Now().Add(retryIn))
		attempt := q.failures
		o.mu.Unlock()
		o.log.Warn("telegram call failed; will retry", "method", c.method, "retry_in", retryIn, "attempt", attempt, "err", redactErr(err))
		o.poke()
		return
	}
	q.failures = 0
	q.calls = q.calls[1:]
	if len(q.calls) == 0 && !q.group && q.next.Before(o.clock.Now()) {
		delete(o.chats, c.chatID) // keep the map small; pacing state has lapsed
	} else if len(q.calls) == 0 && q.group && len(q.recent) > 0 && o.clock.Now().Sub(q.recent[len(q.recent)-1]) > groupWindow {
		delete(o.chats, c.chatID)
	}
	if permanent {
		o.permanent++
	}
	o.pending--
	if o.pending == 0 {
		close(o.idle)
		o.idle = make(chan struct{})
	}
	o.mu.Unlock()
	if permanent {
		o.log.Error("telegram refused a call; dropped", "method", c.method, "err", redactErr(err))
	}
	if c.done != nil {
		c.done(resp, err)
	}
	c.update.callDone() // after done: a call done queues belongs to the update too
	o.poke()
}

// replaceHead puts follow in the place of c, which has succeeded, at the
// head of its chat's queue, and releases the chat.
func (o *outbox) replaceHead(c, follow *call) {
	if o.health != nil {
		o.health.ok()
	}
	o.mu.Lock()
	q := o.chats[c.chatID]
	follow.seq = c.seq // it keeps its turn among the chats
	follow.update = c.update
	q.calls[0] = follow
	q.inFlight, q.failures = false, 0
	o.mu.Unlock()
	o.poke()
}

// notModified reports Telegram's refusal of an edit that changes nothing.
func notModified(err error) bool {
	var tg *tgbotapi.Error
	return errors.As(err, &tg) && tg.Code == http.StatusBadRequest && strings.Contains(tg.Message, "message is not modified")
}

// classify says how to treat a call's error: retry after a given time (429),
// retry with back-off (0, false), or give up (permanent).
func classify(err error) (retryIn time.Duration, permanent bool) {
	if err == nil {
		return 0, false
	}
	var tg *tgbotapi.Error
	if errors.As(err, &tg) {
		switch {
		case tg.Code == http.StatusTooManyRequests:
			return time.Duration(max(tg.RetryAfter, 1)) * time.Second, false
		case tg.Code >= 500:
			return 0, false
		case tg.Code >= 400:
			return 0, true
		}
	}
	return 0, false // network errors, unreadable replies (a proxy's 502 page)
}

func backoff(failures int) time.Duration {
	d := 500 * time.Millisecond << min(failures-1, 6)
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1) // jitter; not near secrets
}

// drain waits until every queued call has been made, or ctx ends. It then
// refuses new calls.
func (o *outbox) drain(ctx context.Context) error {
	for {
		o.mu.Lock()
		if o.pending == 0 {
			o.closed = true
			o.mu.Unlock()
			return nil
		}
		idle, n := o.idle, o.pending
		o.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			o.mu.Lock()
			o.closed = true
			o.mu.Unlock()
			return fmt.Errorf("telegram: %d queued calls not sent before shutdown: %w", n, ctx.Err())
		}
	}
}

// stats reports 429s received and calls dropped as impossible.
func (o *outbox) stats() (tooMany, permanent int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tooMany, o.permanent
}
