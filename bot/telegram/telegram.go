// Package telegram connects the conversation engine to Telegram's Bot API:
// it receives updates by long polling or by webhook, hands each chat's
// updates to the engine in order on a bounded worker pool, and sends the
// replies through one paced queue that keeps within Telegram's limits. It is
// the only package that imports go-telegram-bot-api.
//
// Messages that carry record fields are sent with protect_content and
// deleted after the engine's chosen time. The deletion schedule is kept in
// Deletions, durable storage that internal/app hands in, and a record is
// written into the chat only as the edit of an empty placeholder whose
// deletion is already scheduled: no crash, lost answer or retry leaves a
// copy behind (see revealOnceScheduled). Edited messages and the captions
// of files are passed to the engine, marked, for it to check for personal
// data.
//
// Several Bots for one token can run as replicas over a Coordinator, the
// state they share (internal/app hands in one over the database): each
// update is handled by one of them, a webhook is acknowledged once its
// replies are sent, their messages share the bot's send budget, and one
// of them polls at a time.
package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/bot"
)

// Options configure New.
type Options struct {
	Token     string
	APIURL    string // base URL, e.g. https://api.telegram.org
	Handler   bot.Handler
	Deletions Deletions
	Logger    *slog.Logger

	// WebhookURL switches to webhook mode: Telegram posts updates there,
	// and a server on WebhookListen (plain HTTP, behind TLS termination)
	// receives them at the URL's path.
	WebhookURL    string
	WebhookListen string
	WebhookSecret string
	// WebhookListener, when set, is served in place of listening on
	// WebhookListen (an inherited socket; an in-memory listener in tests).
	// Run closes it when it returns.
	WebhookListener net.Listener

	PollTimeout     time.Duration // long-poll wait; default 25s
	Workers         int           // inbound handlers; default 8
	SendWorkers     int           // concurrent outbound calls; default 8
	QueuePerWorker  int           // updates waiting per handler; default 64
	ShutdownTimeout time.Duration // bound on finishing work and flushing sends; default 10s
	// HTTPTransport, when set, replaces the default transport (tests).
	HTTPTransport http.RoundTripper
	// Registerer receives the adapter's metrics; nil keeps them private.
	Registerer prometheus.Registerer
	// Clock is the adapter's time; nil means the system clock.
	Clock Clock
	// Coordinator, when set, is the state this Bot shares with the other
	// replicas of the same bot (see Coordinator): every update is claimed
	// before it is handled and a webhook is answered once its replies
	// are sent, every message books its slot in the shared budget, and
	// only the replica holding the polling lease polls. Nil: this Bot is
	// alone.
	Coordinator Coordinator
}

func (o *Options) validate() error {
	var errs []error
	if o.Token == "" {
		errs = append(errs, errors.New("Token is empty"))
	}
	if u, err := url.Parse(o.APIURL); err != nil || u.Host == "" {
		errs = append(errs, errors.New("APIURL is not a URL"))
	}
	if o.Handler == nil || o.Deletions == nil {
		errs = append(errs, errors.New("Handler and Deletions are required"))
	}
	if o.WebhookURL != "" {
		if u, err := url.Parse(o.WebhookURL); err != nil || u.Host == "" {
			errs = append(errs, errors.New("WebhookURL is not a URL"))
		}
		if o.WebhookSecret == "" || (o.WebhookListen == "" && o.WebhookListener == nil) {
			errs = append(errs, errors.New("webhook mode needs WebhookSecret and WebhookListen (or WebhookListener)"))
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = 25 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.SendWorkers <= 0 {
		o.SendWorkers = 8
	}
	if o.QueuePerWorker <= 0 {
		o.QueuePerWorker = 64
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.HTTPTransport == nil {
		// Keep a connection per concurrent call (the send workers, the long
		// poll, a spare): the default keeps two, so the others would be
		// closed and dialled — a TLS handshake — again and again, and
		// sends paced in time would reach Telegram bunched.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = o.SendWorkers + 2
		o.HTTPTransport = tr
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return errors.Join(errs...)
}

// allowedUpdates are the update kinds otpgate asks for.
var allowedUpdates = []string{"message", "edited_message", "callback_query", "my_chat_member"}

// Bot is the Telegram front end. Run it once.
type Bot struct {
	o     Options
	log   *slog.Logger
	clock Clock

	mu       sync.Mutex
	deleting map[Deletion]bool // deletions queued and not yet done
	warned   map[int64]bool    // chats told that the bot cannot delete there
	out      *outbox
	username string // the bot's @username, for deep links
	health   health
	m        *metrics

	// With a Coordinator: the trackers of claimed updates not yet taken
	// by a handler (guarded by mu), the goroutines holding claims, closed
	// abandon when Run stops waiting for their calls, and the context of
	// their coordinator calls, which ends with Run's shutdown bound.
	tracking map[int]*tracked
	settling settlers
	abandon  chan struct{}
	coordCtx context.Context
}

// New checks the options. It does no I/O.
func New(o Options) (*Bot, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("telegram: %w", err)
	}
	b := &Bot{o: o, log: o.Logger.With("component", "telegram"), clock: o.Clock,
		deleting: map[Deletion]bool{}, warned: map[int64]bool{}, health: health{clock: o.Clock},
		tracking: map[int]*tracked{}, abandon: make(chan struct{}), coordCtx: context.Background()}
	b.m = newMetrics(o.Registerer, func() float64 {
		if out := b.outbox(); out != nil {
			return float64(out.depth())
		}
		return 0
	})
	return b, nil
}

// ErrUnauthorized means Telegram refused the token.
var ErrUnauthorized = errors.New("telegram: the bot token was refused (check OTPGATE_TELEGRAM_TOKEN)")

// connect builds a client whose every request is bound to ctx, so that
// cancelling ctx aborts a long poll at once. The library calls getMe here.
func (b *Bot) connect(ctx context.Context, timeout time.Duration) (*tgbotapi.BotAPI, error) {
	client := &http.Client{Timeout: timeout, Transport: ctxTransport{ctx: ctx, rt: b.o.HTTPTransport}}
	endpoint := strings.TrimRight(b.o.APIURL, "/") + "/bot%s/%s"
	api, err := tgbotapi.NewBotAPIWithClient(b.o.Token, endpoint, client)
	if err != nil {
		var tg *tgbotapi.Error
		if errors.As(err, &tg) && tg.Code == http.StatusUnauthorized {
			return nil, ErrUnauthorized
		}
		return nil, fmt.Errorf("telegram: connect: %w", redactErr(err))
	}
	return api, nil
}

// ctxTransport binds requests to a context: the library has no context
// support of its own.
type ctxTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.rt.RoundTrip(r.WithContext(t.ctx))
}

// Run serves until ctx ends, then stops taking updates, lets the handlers
// finish what they hold, flushes the send queue, all within
// ShutdownTimeout. It returns an error when it could not start, or when
// sends were left unsent at shutdown.
func (b *Bot) Run(ctx context.Context) error {
	// Sends must outlive ctx by the shutdown bound; they get their own.
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	sendAPI, err := b.connect(sendCtx, 30*time.Second)
	if err != nil {
		return err
	}
	b.log.Info("connected", "bot", sendAPI.Self.UserName, "mode", map[bool]string{true: "webhook", false: "polling"}[b.o.WebhookURL != ""])
	b.health.ok()
	// Calls to the Coordinator about claims outlive ctx by the shutdown
	// bound, like sends.
	coordCtx, cancelCoord := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCoord()
	b.coordCtx = coordCtx
	out := newOutbox(sendAPI, b.log, b.o.SendWorkers, b.clock)
	out.health, out.tooManyMetric, out.coord = &b.health, b.m.tooMany, b.o.Coordinator
	b.mu.Lock()
	b.username, b.out = sendAPI.Self.UserName, out
	b.mu.Unlock()
	outDone := make(chan struct{})
	go func() { defer close(outDone); b.out.run(sendCtx) }()
	b.registerCommands()

	// Handlers finish their update even after ctx ends; they get their own.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	d := newDispatcher(b.o.Workers, b.o.QueuePerWorker, func(u tgbotapi.Update) { b.handle(workCtx, u) }, b.log, b.clock)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.sweepDeletions(ctx) }()
	go func() { defer wg.Done(); b.probe(ctx, sendAPI) }()

	var runErr error
	if b.o.WebhookURL != "" {
		runErr = b.serveWebhook(ctx, sendAPI, d)
	} else {
		runErr = b.poll(ctx, sendAPI, d)
	}

	// Shutdown: no new updates; finish the held ones; flush sends. All of
	// it within ShutdownTimeout: handlers get three quarters of it, and if
	// they overrun, their work is cancelled and they have what is left to
	// return, so none runs on after Run (and after the store closes).
	deadline, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.o.ShutdownTimeout)
	defer cancel()
	handlers, cancelHandlers := context.WithTimeout(deadline, b.o.ShutdownTimeout*3/4)
	defer cancelHandlers()
	if err := d.close(handlers); err != nil {
		b.log.Error("shutdown: updates left unhandled", "err", err)
		cancelWork()
		_ = d.wait(deadline)
	}
	wg.Wait()
	flushErr := b.out.drain(deadline)
	// Claimed updates whose calls are all made have been marked done;
	// the others are abandoned now (see settle). Their coordinator calls
	// end with the shutdown bound.
	close(b.abandon)
	stopCoord := context.AfterFunc(deadline, cancelCoord)
	defer stopCoord()
	if err := b.settling.close(deadline); err != nil {
		cancelCoord()
		b.settling.wg.Wait()
	}
	cancelSend()
	<-outDone
	if flushErr != nil {
		b.log.Error("shutdown", "err", flushErr)
	}
	return errors.Join(runErr, flushErr)
}

// poll receives updates with getUpdates until ctx ends. Errors back off
// (capped); the loop never spins. With a Coordinator it polls only while
// it holds the polling lease, and stands by while another replica does.
func (b *Bot) poll(ctx context.Context, sendAPI *tgbotapi.BotAPI, d *dispatcher) error {
	// A webhook left set makes getUpdates fail with 409: polling replaces it.
	if _, err := sendAPI.MakeRequest("deleteWebhook", nil); err != nil {
		b.log.Warn("deleteWebhook failed", "err", redactErr(err))
	}
	if b.o.Coordinator == nil {
		err := b.pollLeading(ctx, ctx, sendAPI, d)
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	failures := 0
	for ctx.Err() == nil {
		lead, release, err := b.o.Coordinator.Lead(ctx, pollLease)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.m.coordErrors.WithLabelValues("lead").Inc()
			failures++
			wait := backoff(failures)
			b.log.Warn("cannot tell which replica polls; will ask again", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
			case <-b.clock.After(wait):
			}
			continue
		}
		b.log.Info("leading: this replica polls")
		b.m.leading.Set(1)
		since := b.clock.Now()
		err = b.pollLeading(ctx, lead, sendAPI, d)
		release()
		b.m.leading.Set(0)
		switch {
		case ctx.Err() != nil:
			continue
		case errors.Is(err, ErrUnauthorized):
			return err
		case err != nil:
			b.log.Warn("could not start polling; standing by", "err", err)
		default:
			b.log.Warn("lost the polling lease; standing by")
		}
		// A lead lost as soon as it was won must not become a loop of
		// Lead and getMe: back off unless it lasted a lease.
		if b.clock.Now().Sub(since) >= pollLease && err == nil {
			failures = 0
			continue
		}
		failures++
		select {
		case <-ctx.Done():
		case <-b.clock.After(backoff(failures)):
		}
	}
	return nil
}

// pollLeading polls until lead ends: ctx, or with a Coordinator the
// polling lease. With a Coordinator every update is claimed first, and
// one that another replica still holds (the leader before, finishing
// what it had) is asked for again until it is done or its claim lapses:
// nothing is lost or handled twice across a change of leader, and a
// chat's updates keep their order.
func (b *Bot) pollLeading(ctx, lead context.Context, sendAPI *tgbotapi.BotAPI, d *dispatcher) error {
	pollAPI, err := b.connect(lead, b.o.PollTimeout+15*time.Second)
	if err != nil {
		return err
	}
	offset, failures := 0, 0
	for lead.Err() == nil {
		updates, err := pollAPI.GetUpdates(tgbotapi.UpdateConfig{
			Offset: offset, Timeout: int(b.o.PollTimeout / time.Second), AllowedUpdates: allowedUpdates,
		})
		if err != nil {
			if lead.Err() != nil {
				break
			}
			b.health.fail()
			failures++
			wait := backoff(failures)
			b.log.Warn("getUpdates failed", "err", redactErr(err), "retry_in", wait)
			select {
			case <-lead.Done():
			case <-b.clock.After(wait):
			}
			continue
		}
		failures = 0
		b.health.ok()
		var again time.Duration
		for _, u := range updates {
			if b.o.Coordinator != nil {
				if again = b.admitPolled(d, u); again > 0 {
					break // this one and the rest come again with offset
				}
				offset = u.UpdateID + 1
				continue
			}
			offset = u.UpdateID + 1
			d.dispatch(u)
		}
		if again > 0 {
			select {
			case <-lead.Done():
			case <-b.clock.After(again):
			}
		}
	}
	if offset > 0 && ctx.Err() != nil {
		// Confirm what was handed to the handlers, so a restart does not
		// see it again. The poll client is cancelled; use the send client.
		// Not after losing the lease: the new leader polls, and a second
		// getUpdates would cut its poll short with 409.
		_, _ = sendAPI.MakeRequest("getUpdates", tgbotapi.Params{"offset": strconv.Itoa(offset), "limit": "1", "timeout": "0"})
	}
	return nil
}

// admitPolled claims a polled update and, if it is new, dispatches it
// and settles it in the background. It returns 0 when the update is dealt
// with (dispatched, or done already), or how soon to poll for it again.
func (b *Bot) admitPolled(d *dispatcher, u tgbotapi.Update) time.Duration {
	c, err := b.claim(u.UpdateID)
	switch {
	case err != nil:
		b.log.Warn("could not claim an update; will poll it again", "update_id", u.UpdateID, "err", err, "retry_in", busyRetry)
		return busyRetry
	case c == ClaimDone:
		return 0
	case c == ClaimBusy:
		b.log.Debug("update held by another replica; will poll it again", "update_id", u.UpdateID)
		return busyRetry
	}
	until := b.clock.Now().Add(settleWait)
	if !b.settling.add() {
		b.release(u.UpdateID)
		return busyRetry
	}
	t := newTracked()
	b.track(u.UpdateID, t)
	if !d.tryDispatch(u, -1) {
		b.untrack(u.UpdateID)
		b.release(u.UpdateID)
		b.settling.done()
		return busyRetry
	}
	go func() {
		defer b.settling.done()
		b.settle(u.UpdateID, t, until)
	}()
	return 0
}

// handle runs one update through the engine and queues the replies. A
// claimed update's tracker follows every call queued for it.
func (b *Bot) handle(ctx context.Context, tu tgbotapi.Update) {
	t, ok := b.takeTracker(tu.UpdateID)
	if !ok {
		return // given back at shutdown: another replica handles it
	}
	defer t.handled() // also when the engine panics: nothing more will come
	u, ok := toUpdate(tu)
	b.m.updates.WithLabelValues(updateKind(tu, ok)).Inc()
	if !ok {
		return
	}
	group := u.ChatKind != bot.ChatPrivate
	for _, r := range b.o.Handler.Handle(ctx, u) {
		for _, c := range toCalls(r, b.username) {
			switch {
			case c.reveal != nil:
				c.next = b.revealOnceScheduled(c.reveal, r.DeleteAfter)
			case c.method == "deleteMessage" && r.DeleteFailed != "":
				c.done = b.warnIfNotDeleted(r.ChatID, r.DeleteFailed, group, t)
			}
			c.update = t
			t.add()
			b.out.enqueue(c, group)
		}
	}
}

// warnIfNotDeleted says, once per chat, that the bot lacks the right to
// delete messages there (Telegram answers 400 "message can't be deleted").
// The notice belongs to the update t, if tracked.
func (b *Bot) warnIfNotDeleted(chatID int64, notice string, group bool, t *tracked) func(*tgbotapi.APIResponse, error) {
	return func(_ *tgbotapi.APIResponse, err error) {
		if err == nil {
			return
		}
		b.mu.Lock()
		already := b.warned[chatID]
		b.warned[chatID] = true
		b.mu.Unlock()
		if !already {
			t.add()
			b.out.enqueue(&call{chatID: chatID, method: "sendMessage", update: t,
				params: tgbotapi.Params{"chat_id": strconv.FormatInt(chatID, 10), "text": notice}}, group)
		}
	}
}

// registerCommands sets the command menu in every language.
func (b *Bot) registerCommands() {
	for i, lang := range bot.Languages() {
		var cmds []tgbotapi.BotCommand
		for _, c := range bot.Commands(lang) {
			cmds = append(cmds, tgbotapi.BotCommand{Command: c.Name, Description: c.Description})
		}
		js, _ := json.Marshal(cmds)
		p := tgbotapi.Params{"commands": string(js)}
		if i > 0 { // the first language is the default menu
			p["language_code"] = lang
		}
		b.out.enqueue(&call{method: "setMyCommands", params: p}, false)
	}
}

// dispatcher hands updates to a fixed set of workers, each chat always to
// the same one, so a chat's updates are handled in order while chats run in
// parallel. A full worker queue blocks the receiver: back-pressure, not loss.
type dispatcher struct {
	queues []chan tgbotapi.Update
	wg     sync.WaitGroup
	clock  Clock
	// mu guards closed: a webhook request still in flight when shutdown
	// gives up waiting for it must find the queues closed, not send on them.
	mu     sync.RWMutex
	closed bool
}

func newDispatcher(workers, depth int, handle func(tgbotapi.Update), log *slog.Logger, clock Clock) *dispatcher {
	d := &dispatcher{queues: make([]chan tgbotapi.Update, workers), clock: clock}
	for i := range d.queues {
		q := make(chan tgbotapi.Update, depth)
		d.queues[i] = q
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for u := range q {
				safely(handle, u, log)
			}
		}()
	}
	return d
}

// safely is the last fence: the engine recovers on its own, but a panic in
// the adapter must not take the worker, and with it a share of the chats, down.
func safely(handle func(tgbotapi.Update), u tgbotapi.Update, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("update handler panicked", "panic", fmt.Sprint(p), "update_id", u.UpdateID)
		}
	}()
	handle(u)
}

func (d *dispatcher) queue(u tgbotapi.Update) chan tgbotapi.Update {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.FormatInt(chatOf(u), 10)))
	return d.queues[h.Sum32()%uint32(len(d.queues))]
}

// dispatch hands u to its chat's worker, waiting while that worker's queue
// is full (back-pressure on the poll loop).
func (d *dispatcher) dispatch(u tgbotapi.Update) { d.tryDispatch(u, -1) }

// tryDispatch gives up after wait (a negative wait never gives up), for the
// webhook: Telegram retries. It refuses once the dispatcher is closed.
func (d *dispatcher) tryDispatch(u tgbotapi.Update, wait time.Duration) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return false
	}
	if wait < 0 {
		d.queue(u) <- u
		return true
	}
	select {
	case d.queue(u) <- u:
		return true
	case <-d.clock.After(wait):
		return false
	}
}

// close stops the workers after they finish their queues, or when ctx ends.
func (d *dispatcher) close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	for _, q := range d.queues {
		close(q)
	}
	d.mu.Unlock()
	return d.wait(ctx)
}

// wait blocks until the workers have stopped, or ctx ends.
func (d *dispatcher) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func chatOf(u tgbotapi.Update) int64 {
	if cq := u.CallbackQuery; cq != nil {
		// FromChat dereferences the message, absent on an inline
		// message's button.
		switch {
		case cq.Message != nil && cq.Message.Chat != nil:
			return cq.Message.Chat.ID
		case cq.From != nil:
			return cq.From.ID
		}
		return 0
	}
	if c := u.FromChat(); c != nil {
		return c.ID
	}
	return 0
}

// outbox returns the send queue once Run has built it.
func (b *Bot) outbox() *outbox {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out
}

// probeInterval is the silence after which probe asks getMe.
const probeInterval = 20 * time.Second

// probe keeps the reachability check honest when nothing else talks to
// Telegram for a while (webhook mode, quiet hours): a getMe every 20 s of
// silence.
func (b *Bot) probe(ctx context.Context, api *tgbotapi.BotAPI) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.clock.After(probeInterval):
		}
		if !b.health.quiet(probeInterval) {
			continue
		}
		if _, err := api.MakeRequest("getMe", nil); err != nil {
			b.health.fail()
			b.log.Warn("getMe failed", "err", redactErr(err))
		} else {
			b.health.ok()
		}
	}
}

// updateKind names an update for metrics.
func updateKind(u tgbotapi.Update, handled bool) string {
	switch {
	case u.CallbackQuery != nil:
		return "callback"
	case u.MyChatMember != nil:
		return "membership"
	case u.Message != nil && handled:
		return "message"
	case u.EditedMessage != nil && handled:
		return "edited"
	}
	return "ignored"
}
