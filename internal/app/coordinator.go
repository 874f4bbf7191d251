package app

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
	"github.com/otpgate/otpgate/store"
)

// storeCoordinator is what the Telegram adapters of several replicas agree
// on, kept in the store they share (PostgreSQL): update claims and marks,
// the bot's and each chat's send budget, and the polling lease. Every
// decision is one store transaction on the database's clock.
type storeCoordinator struct {
	st     *store.Store
	holder string
	log    *slog.Logger
}

var _ telegram.Coordinator = storeCoordinator{}

func (c storeCoordinator) ClaimUpdate(ctx context.Context, id int64, lease time.Duration) (telegram.Claim, error) {
	got, err := c.st.ClaimUpdate(ctx, id, lease)
	if err != nil {
		return 0, err
	}
	switch got {
	case store.ClaimDone:
		return telegram.ClaimDone, nil
	case store.ClaimBusy:
		return telegram.ClaimBusy, nil
	}
	return telegram.ClaimNew, nil
}

func (c storeCoordinator) UpdateDone(ctx context.Context, id int64) error {
	return c.st.UpdateDone(ctx, id)
}

func (c storeCoordinator) ReleaseUpdate(ctx context.Context, id int64) error {
	return c.st.ReleaseUpdate(ctx, id)
}

// botBudget is the budget every message of the bot draws on.
const botBudget = "bot"

func chatBudget(chat int64) string { return "chat:" + strconv.FormatInt(chat, 10) }

// Reserve measures the wait when the booking's answer has arrived, on the
// store's clock, so that the time the answer took is not added to it: a
// late send would bunch up with the next replica's on time.
func (c storeCoordinator) Reserve(ctx context.Context, s telegram.Slot) (time.Duration, bool, error) {
	at, booked, err := c.st.Reserve(ctx, store.Budget{Name: chatBudget(s.ChatID), Interval: s.ChatInterval},
		store.Budget{Name: botBudget, Interval: s.GlobalInterval})
	if err != nil {
		return 0, false, err
	}
	return max(at.Sub(c.st.Now()), 0), booked, nil
}

func (c storeCoordinator) Backoff(ctx context.Context, chat int64, wait time.Duration) error {
	return c.st.PushBack(ctx, store.Budget{Name: chatBudget(chat)}, wait)
}

// pollLease names the lease of the one replica that long-polls.
const pollLease = "telegram:poll"

// Lead waits for the polling lease, asking every lease/3, then renews it
// every lease/3 and ends lead as soon as a renewal fails or finds the
// lease taken, which is before the lease can lapse unrenewed.
func (c storeCoordinator) Lead(ctx context.Context, lease time.Duration) (context.Context, func(), error) {
	every := lease / 3
	for {
		held, err := c.st.Lease(ctx, pollLease, c.holder, lease)
		if err != nil {
			return nil, nil, err
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(every):
		}
	}
	lead, stop := keepLease(ctx, c.st, pollLease, c.holder, lease, c.log.With("component", "telegram"))
	var once sync.Once
	release := func() {
		once.Do(func() {
			stop()
			ctx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			if err := c.st.DropLease(ctx, pollLease, c.holder); err != nil {
				c.log.Warn("giving up the polling lease", "component", "telegram", "err", err)
			}
		})
	}
	return lead, release, nil
}
