package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/otpgate/otpgate/store"
)

// keepLease renews holder's lease on name every lease/3 in the background,
// each renewal bounded by what is left of the lease. held ends when a
// renewal fails or finds the lease taken (the holder must then act as if
// it had lost it: it may lapse), or when stop is called; stop ends the
// renewals and returns once the renewer has.
func keepLease(parent context.Context, st *store.Store, name, holder string, lease time.Duration, log *slog.Logger) (held context.Context, stop func()) {
	every := lease / 3
	held, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(held, lease-every)
			ok, err := st.Lease(rctx, name, holder, lease)
			rcancel()
			if err != nil || !ok {
				if held.Err() == nil {
					// Not the name: a session's names the chat user.
					log.Warn("lost a lease", "err", err)
				}
				cancel()
				return
			}
		}
	})
	return held, func() { cancel(); wg.Wait() }
}
