package app

import (
	"context"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/common"

	"github.com/otpgate/otpgate/store"
)

// floodStore is a ulule/limiter Store over the store's hit windows
// (store.Hit): the chat engine's per-user flood limit (bot.Options.FloodStore)
// in the PostgreSQL mode, where every replica counts in the one database
// and so the limit holds across them all. It keeps ulule's semantics: a
// fixed window begun by the first hit and lasting rate.Period, Get counting
// one hit (reached or not), Peek none, Reset ending the window; the
// Context is built by ulule's own common.GetContextFromState, so Limit,
// Remaining, Reached and Reset (the window's end, unix seconds) mean what
// they mean in ulule's memory store. Windows end on the store's clock.
// Increment refuses a negative count (store.ErrBadHit), and with a count of
// 0 is a Peek: ulule's own stores would begin a window with nothing in it,
// which differs only in when a window that nothing was counted in ends.
type floodStore struct {
	st  *store.Store
	now func() time.Time
}

var _ limiter.Store = floodStore{}

// floodKey puts the limiter's keys (a user id) in a namespace of their own
// among the store's hit windows, as ulule's stores prefix theirs.
func floodKey(key string) string { return "flood:" + key }

func (f floodStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return f.Increment(ctx, key, 1, rate)
}

func (f floodStore) Increment(ctx context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	total, reset, err := f.st.Hit(ctx, floodKey(key), count, rate.Period)
	if err != nil {
		return limiter.Context{}, err
	}
	return common.GetContextFromState(f.now(), rate, reset, total), nil
}

func (f floodStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return f.Increment(ctx, key, 0, rate)
}

// Reset ends key's window and returns what a Peek finds after it: nothing
// counted, in a window that would begin now (or whatever another replica
// has counted since).
func (f floodStore) Reset(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	if err := f.st.ResetHits(ctx, floodKey(key)); err != nil {
		return limiter.Context{}, err
	}
	return f.Peek(ctx, key, rate)
}
