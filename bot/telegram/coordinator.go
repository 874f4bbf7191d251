package telegram

import (
	"context"
	"strconv"
	"time"
)

// Coordinator is the state several Bots for one token share when they run
// as replicas, each in its own process: which updates have been handled,
// the bot's send budget, and which replica long-polls. Telegram's limits
// are per bot, not per process, and it may deliver an update to any
// replica, more than once. The adapter declares what it needs here and
// internal/app hands in an implementation over the shared database; chat
// adapters never import a store. Options.Coordinator nil means one process
// alone: every update is its own and its limits are the bot's.
//
// Every time a Coordinator measures (a claim's lease, a send slot, the
// polling lease) is on its own clock (a database's now()), and every
// duration crosses the interface relative to it, so that the replicas'
// clocks need not agree with each other or with the coordinator. It sees
// update ids, chat ids and durations, never what a message says; its
// errors are logged, and should carry nothing more than an update id.
//
// The methods fit a transactional key-value store with row locks: one
// row per update id, one per chat plus one for the bot (send budgets),
// one for the polling lease. Each call is one short transaction. A call's
// ctx bounds it. A call whose commit's outcome is unknown returns an
// error; what each caller does with an error is written under each
// method, and is always safe whether or not the write took effect.
//
// Implementations are safe for concurrent use.
type Coordinator interface {
	// ClaimUpdate claims the update updateID for the caller for lease,
	// so that only one replica handles it. Three things can happen:
	//   - ClaimNew: no replica has handled it and none holds a live claim
	//     (never seen, released, or claimed by a holder whose lease
	//     lapsed, since it died): the caller now holds it until the lease
	//     lapses, and handles it.
	//   - ClaimDone: UpdateDone was called for it: some replica handled
	//     it. The caller acknowledges it to Telegram (a webhook answers
	//     200, the poller moves past it) and does nothing else.
	//   - ClaimBusy: a replica holds a live claim and is handling it now
	//     (the caller too may hold it: a claim knows no holder). The caller
	//     leaves it for later: a webhook answers non-2xx, so that Telegram
	//     delivers it again, and the poller asks for it again. By then it
	//     is done (ClaimDone) or its holder died (ClaimNew once the lease
	//     lapsed).
	//
	// On an error nothing may be assumed: the caller neither handles nor
	// acknowledges the update (a webhook answers 503), and asks again
	// later. A claim committed though its answer was lost is taken back
	// by its lease.
	ClaimUpdate(ctx context.Context, updateID int64, lease time.Duration) (Claim, error)
	// UpdateDone marks updateID handled: from now on ClaimUpdate answers
	// ClaimDone for it. The mark must be kept at least 25 hours, longer
	// than Telegram keeps an update and may redeliver it (24 hours); that
	// is the Coordinator's job, and after that it may forget the id.
	// Marking an id that is not claimed, or already done, is not an
	// error. On an error the claim lapses with its lease, and a later
	// delivery may be handled a second time.
	UpdateDone(ctx context.Context, updateID int64) error
	// ReleaseUpdate gives back the caller's claim on updateID: it could
	// not be handled, and nothing was sent for it (the replica had no
	// room for it or was shutting down). The next ClaimUpdate answers
	// ClaimNew. Releasing an id that is done or not claimed changes
	// nothing and is not an error. On an error the claim lapses with its
	// lease instead.
	ReleaseUpdate(ctx context.Context, updateID int64) error

	// Reserve books the instant one message (sendMessage, sendPhoto) may
	// go, against two budgets all replicas share: the bot's and the
	// chat's, each kept as its next free instant. Two things can happen:
	//   - The chat's next free instant is after now: nothing is booked,
	//     and wait is how long until then (booked false). The caller
	//     waits and asks again.
	//   - Otherwise it books t, the later of now and the bot's next free
	//     instant; moves the bot's next free instant to t+s.GlobalInterval
	//     and the chat's to t+s.ChatInterval; and returns wait t-now,
	//     booked true. The caller waits that long and sends.
	//
	// Booking only a chat that is free keeps the bot's instant moving by
	// one interval per message from about now: a message that must wait
	// for its chat never holds the bot's budget for the others, and no
	// two booked instants are closer than GlobalInterval. A booking is
	// never given back: a message that fails, or whose replica dies
	// before sending it, leaves a gap, and a retry books again. A free
	// instant in the past carries nothing and may be forgotten.
	//
	// On an error nothing was booked, or the booking is lost: the caller
	// does not send, and tries to book again later.
	Reserve(ctx context.Context, s Slot) (wait time.Duration, booked bool, err error)
	// Backoff moves chatID's next free instant to at least now+wait:
	// Telegram answered a message to the chat 429 with retry_after wait,
	// and the other replicas must hold back too. Only the chat's budget
	// moves: Telegram does not say which limit a 429 is for, most are one
	// chat's, and the bot's budget already keeps the replicas within the
	// bot's limit. On an error the caller goes on: its own retry waits
	// anyway, and another replica's message would at worst be answered
	// 429 too.
	Backoff(ctx context.Context, chatID int64, wait time.Duration) error

	// Lead makes the caller the one replica that long-polls (getUpdates
	// allows one consumer per token): it blocks until the caller holds
	// the polling lease, whose time to live is lease. Three things can
	// happen:
	//   - The caller leads: lead is a child of ctx that ends when the
	//     lease is lost: ctx ends, a renewal fails, or it finds another
	//     replica holds it. The Coordinator renews the lease about every
	//     lease/3 while lead lasts, and ends lead before the lease can
	//     lapse unrenewed, so that no replica polls past its lease. The
	//     caller polls only while lead lasts; then, or when it stops, it
	//     calls release exactly once, which gives the lease up if it is
	//     still the caller's (a standby leads at once, not after the time
	//     to live) and returns once renewing has stopped.
	//   - ctx ends first: ctx's error.
	//   - Another error: the Coordinator cannot tell who leads; the
	//     caller waits and calls Lead again.
	//
	// A standby blocked in Lead asks at least every lease/3 (or is told):
	// it takes over within half a lease of a release, and within lease of
	// the leader's last renewal when the leader dies or is cut off.
	// Nothing rests on two replicas never leading at once: a second
	// getUpdates makes Telegram answer 409 to one of the two, and claims
	// keep an update from being handled twice.
	Lead(ctx context.Context, lease time.Duration) (lead context.Context, release func(), err error)
}

// Claim is the outcome of ClaimUpdate.
type Claim int

// ClaimUpdate's outcomes; see there. The zero Claim is none of them.
const (
	ClaimNew Claim = iota + 1
	ClaimDone
	ClaimBusy
)

func (c Claim) String() string {
	switch c {
	case ClaimNew:
		return "new"
	case ClaimDone:
		return "done"
	case ClaimBusy:
		return "busy"
	}
	return "Claim(" + strconv.Itoa(int(c)) + ")"
}

// Slot is what one message costs of the send budgets, in the adapter's
// terms, so that a Coordinator needs no knowledge of Telegram's limits.
type Slot struct {
	ChatID int64
	// ChatInterval is the least time between two messages to ChatID:
	// a little over a second for a private chat; for a group, a minute
	// over the 20 messages a group may get in one, so that no minute
	// holds more than 20.
	ChatInterval time.Duration
	// GlobalInterval is the least time between any two messages of the
	// bot: a little over a thirtieth of a second.
	GlobalInterval time.Duration
}

// sharedGlobalInterval is the bot-wide spacing when replicas share the
// budget: wider than one process's globalInterval (about 25 messages a
// second instead of 27.5), because sends booked by different processes
// reach Telegram with more jitter than one process's paced queue: a send
// delayed on a loaded machine lands close to the next replica's. Measured
// with the burst test (three replicas, race detector): 1 to 8 answers 429
// in each of three runs at the narrower spacing, none in three at this one.
const sharedGlobalInterval = time.Second/30 + 7*time.Millisecond

// slotFor is the budget of one message to chatID.
func slotFor(chatID int64, group bool) Slot {
	s := Slot{ChatID: chatID, ChatInterval: privateInterval, GlobalInterval: sharedGlobalInterval}
	if group {
		s.ChatInterval = groupInterval
	}
	return s
}

// How the adapter holds updates with a Coordinator.
const (
	// settleWait bounds how long a claimed update may take, from its
	// claim to the last of its calls, before it is marked done anyway;
	// for a webhook it is the wait before the answer, well under the 60 s
	// after which Telegram closes an idle connection and delivers again.
	settleWait = 45 * time.Second
	// claimLease outlives settleWait, so that an update is marked done
	// before its claim can lapse under a replica that is still at it:
	// only a replica that died leaves a claim to lapse.
	claimLease = settleWait + 15*time.Second
	// pollLease is the polling lease's time to live: a standby polls
	// within about this long of the leader's death.
	pollLease = 10 * time.Second
	// busyRetry is how soon the poller asks again for an update another
	// replica is still handling.
	busyRetry = time.Second
)
