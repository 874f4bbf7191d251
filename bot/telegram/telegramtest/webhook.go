package telegramtest

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// SecretHeader carries a webhook's secret_token on every delivery.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// webhookState is the current setWebhook, with its delivery errors.
type webhookState struct {
	url, secret   string
	maxConn       int
	ipAddress     string
	allowed       []string
	lastError     string
	lastErrorTime time.Time
}

// WebhookInfo is the webhook as the bot last set it; URL is empty when no
// webhook is set.
type WebhookInfo struct {
	URL            string
	SecretToken    string
	MaxConnections int
	AllowedUpdates []string // as set by setWebhook or getUpdates; nil for Telegram's default
	PendingUpdates int
	LastError      string // Telegram's last_error_message, "" if none
	LastErrorTime  time.Time
}

// WebhookStats count the fake's deliveries to the webhook. Every attempt
// is one POST of one update; Failures are attempts answered non-2xx or not
// answered at all, each followed by a retry of the same update.
type WebhookStats struct {
	Attempts  int
	Delivered int
	Failures  int
}

// Webhook returns the current webhook setting.
func (s *Server) Webhook() WebhookInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return WebhookInfo{
		URL:            s.webhook.url,
		SecretToken:    s.webhook.secret,
		MaxConnections: s.webhook.maxConn,
		AllowedUpdates: append([]string(nil), s.webhook.allowed...),
		PendingUpdates: len(s.queue),
		LastError:      s.webhook.lastError,
		LastErrorTime:  s.webhook.lastErrorTime,
	}
}

// WebhookDeliveries returns the delivery counters.
func (s *Server) WebhookDeliveries() WebhookStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hookStats
}

// startSenderLocked starts the webhook sender once; Close stops it.
func (s *Server) startSenderLocked() {
	if s.senderRunning || s.isClosed {
		return
	}
	s.senderRunning = true
	s.wg.Add(1)
	go s.sendLoop()
}

// hookQueue names the delivery queue an update waits in: the chat it
// belongs to, or for an update without a chat (an inline query, say) the
// user it comes from, or one queue for all the rest. Spaces keep a private
// chat and its user apart.
type hookQueue struct {
	space byte
	id    int64
}

const (
	queueChat byte = iota + 1
	queueUser
	queueOther
)

// hookSender is the webhook sender's bookkeeping, guarded by Server.mu.
// A queue is busy from the moment its head is posted until that post is
// answered 2xx, or until the back-off after a failed one ran out: a chat's
// next update waits, other chats' do not. Every step costs O(log n) in the
// number of pending updates, so a long backlog does not slow a load test
// down.
type hookSender struct {
	indexed  int                         // the last update id filed in fifo
	fifo     map[hookQueue][]int         // each queue's pending update ids, oldest first; may hold dropped ones
	ready    readyQueues                 // queues neither busy nor empty, oldest head first
	busy     map[hookQueue]bool          // a delivery of the queue is in flight or backing off
	backoff  map[hookQueue]time.Duration // the wait after the queue's next failure
	inFlight int                         // POSTs not yet answered
	kick     chan struct{}               // a delivery finished or its back-off ran out
}

// readyQueues is a heap of queues by the update id at the head of each.
type readyQueues struct {
	qs   []hookQueue
	fifo map[hookQueue][]int
}

func (r *readyQueues) Len() int           { return len(r.qs) }
func (r *readyQueues) Less(i, j int) bool { return r.fifo[r.qs[i]][0] < r.fifo[r.qs[j]][0] }
func (r *readyQueues) Swap(i, j int)      { r.qs[i], r.qs[j] = r.qs[j], r.qs[i] }
func (r *readyQueues) Push(x any)         { r.qs = append(r.qs, x.(hookQueue)) }
func (r *readyQueues) Pop() any {
	q := r.qs[len(r.qs)-1]
	r.qs = r.qs[:len(r.qs)-1]
	return q
}

// delivery is one POST of one update.
type delivery struct {
	u            pendingUpdate
	q            hookQueue
	hook, secret string
}

// sendLoop delivers queued updates to the webhook the way Telegram's Bot
// API server does: each chat's updates one at a time and in order, the
// next posted only once the previous was answered 2xx, and the heads of
// different chats in parallel, at most max_connections POSTs at a time. A
// failed delivery is retried with doubling back-off and holds back only
// its own chat. The loop pauses while no webhook is set or the fake is down,
// and returns, after every delivery it started, when the fake closes.
func (s *Server) sendLoop() {
	defer s.wg.Done()
	hs := &hookSender{
		fifo:    make(map[hookQueue][]int),
		busy:    make(map[hookQueue]bool),
		backoff: make(map[hookQueue]time.Duration),
		kick:    make(chan struct{}, 1),
	}
	hs.ready.fifo = hs.fifo
	var workers sync.WaitGroup
	defer workers.Wait()
	for {
		s.mu.Lock()
		if s.isClosed {
			s.mu.Unlock()
			return
		}
		ready := s.readyLocked(hs)
		wake := s.wake
		s.mu.Unlock()

		for _, d := range ready {
			workers.Add(1)
			go func() {
				defer workers.Done()
				s.deliver(hs, d)
			}()
		}
		select {
		case <-wake:
		case <-hs.kick:
		case <-s.ctx.Done():
			return
		}
	}
}

// readyLocked files the updates queued since it last ran and picks the
// deliveries to start now: the head of every queue that is not busy, in
// update order, up to max_connections in flight. It marks their queues
// busy.
func (s *Server) readyLocked(hs *hookSender) []delivery {
	if s.webhook.url == "" || s.down {
		return nil
	}
	// s.queue is in update id order: the new ones are at its end.
	from, _ := slices.BinarySearchFunc(s.queue, hs.indexed+1, byID)
	for _, u := range s.queue[from:] {
		q := queueOf(u)
		hs.fifo[q] = append(hs.fifo[q], u.id)
		if len(hs.fifo[q]) == 1 && !hs.busy[q] {
			heap.Push(&hs.ready, q)
		}
		hs.indexed = u.id
	}

	limit := min(max(s.webhook.maxConn, 1), 100) // Telegram's range
	var ready []delivery
	for hs.inFlight < limit && hs.ready.Len() > 0 {
		q := heap.Pop(&hs.ready).(hookQueue)
		head := hs.fifo[q][0]
		i, found := slices.BinarySearchFunc(s.queue, head, byID)
		if !found {
			// Dropped by drop_pending_updates or a getUpdates offset
			// while no webhook was set: never delivered.
			s.popFifo(hs, q)
			continue
		}
		hs.busy[q] = true
		hs.inFlight++
		ready = append(ready, delivery{u: s.queue[i], q: q, hook: s.webhook.url, secret: s.webhook.secret})
	}
	return ready
}

func byID(u pendingUpdate, id int) int { return cmp.Compare(u.id, id) }

// popFifo drops the head of q's ids and, unless q is busy or now empty,
// makes it ready again.
func (s *Server) popFifo(hs *hookSender, q hookQueue) {
	ids := hs.fifo[q][1:]
	if len(ids) == 0 {
		delete(hs.fifo, q)
		return
	}
	hs.fifo[q] = ids
	if !hs.busy[q] {
		heap.Push(&hs.ready, q)
	}
}

// deliver posts one update and books the outcome: a 2xx takes the update
// off the queue and frees its chat; anything else is counted as a failure
// and the chat stays busy for the back-off, then its head is retried.
func (s *Server) deliver(hs *hookSender, d delivery) {
	status, err := s.post(s.ctx, d.hook, d.secret, d.u.raw)
	if s.ctx.Err() != nil {
		return
	}
	ok := err == nil && status >= 200 && status < 300

	s.mu.Lock()
	s.hookStats.Attempts++
	hs.inFlight--
	var wait time.Duration
	if ok {
		s.hookStats.Delivered++
		s.removeLocked(d.u.id)
		delete(hs.busy, d.q)
		delete(hs.backoff, d.q)
		s.popFifo(hs, d.q)
	} else {
		s.hookStats.Failures++
		if s.webhook.url == d.hook {
			s.webhook.lastErrorTime = s.now()
			s.webhook.lastError = deliveryError(status, err)
		}
		wait = hs.backoff[d.q]
		if wait == 0 {
			wait = s.opts.WebhookBackoff
		}
		hs.backoff[d.q] = min(2*wait, s.opts.WebhookMaxBackoff)
	}
	s.notifyLocked()
	s.mu.Unlock()
	hs.poke()
	if ok {
		return
	}

	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-s.ctx.Done():
		t.Stop()
		return
	}
	s.mu.Lock()
	delete(hs.busy, d.q)
	heap.Push(&hs.ready, d.q) // its head, the failed update, is still filed
	s.mu.Unlock()
	hs.poke()
}

// poke wakes the dispatcher without blocking.
func (hs *hookSender) poke() {
	select {
	case hs.kick <- struct{}{}:
	default:
	}
}

// removeLocked takes a delivered update off the queue, wherever it is:
// updates of other chats before it may still be pending. It shifts those
// up by one, in place; nothing outside s.mu holds the array.
func (s *Server) removeLocked(id int) {
	i, found := slices.BinarySearchFunc(s.queue, id, byID)
	if !found {
		return // dropped meanwhile
	}
	copy(s.queue[1:i+1], s.queue[:i])
	s.queue[0] = pendingUpdate{}
	s.dropLocked(1)
}

// queueOf works out which delivery queue an update waits in: its chat
// (for a callback query, the chat of the message its button is on), else
// the user it is from, else the shared queue of the rest.
func queueOf(u pendingUpdate) hookQueue {
	var fields map[string]json.RawMessage
	if json.Unmarshal(u.raw, &fields) != nil {
		return hookQueue{space: queueOther}
	}
	type id struct {
		ID *int64 `json:"id"`
	}
	var obj struct {
		Chat    *id `json:"chat"`
		Message *struct {
			Chat *id `json:"chat"`
		} `json:"message"`
		From *id `json:"from"`
		User *id `json:"user"`
	}
	if json.Unmarshal(fields[u.kind], &obj) != nil {
		return hookQueue{space: queueOther}
	}
	switch {
	case obj.Chat != nil && obj.Chat.ID != nil:
		return hookQueue{space: queueChat, id: *obj.Chat.ID}
	case obj.Message != nil && obj.Message.Chat != nil && obj.Message.Chat.ID != nil:
		return hookQueue{space: queueChat, id: *obj.Message.Chat.ID}
	case obj.From != nil && obj.From.ID != nil:
		return hookQueue{space: queueUser, id: *obj.From.ID}
	case obj.User != nil && obj.User.ID != nil:
		return hookQueue{space: queueUser, id: *obj.User.ID}
	}
	return hookQueue{space: queueOther}
}

// deliveryError words a failed delivery like getWebhookInfo's
// last_error_message.
func deliveryError(status int, err error) string {
	if err != nil {
		return "Connection refused"
	}
	return fmt.Sprintf("Wrong response from the webhook: %d %s", status, http.StatusText(status))
}

// post sends one update to a webhook and returns the status answered.
func (s *Server) post(ctx context.Context, hook, secret string, update []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(update))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set(SecretHeader, secret)
	}
	resp, err := s.hook.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// PostUpdateWithSecret POSTs update to the current webhook the way the fake
// delivers, but outside the queue and the counters, with secret as the
// secret header (none when empty): a forged or misdirected delivery. It
// returns the HTTP status the webhook answered.
func (s *Server) PostUpdateWithSecret(ctx context.Context, secret string, update json.RawMessage) (int, error) {
	s.mu.Lock()
	hook := s.webhook.url
	s.mu.Unlock()
	if hook == "" {
		return 0, ErrNoWebhook
	}
	status, err := s.post(ctx, hook, secret, update)
	if err != nil {
		return 0, fmt.Errorf("telegramtest: post to webhook: %w", err)
	}
	return status, nil
}
