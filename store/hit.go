package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Hit windows: plain counters in fixed windows, for limits that are not the
// code policy's — the chat engine's per-user flood limit, which a
// ulule/limiter Store builds on them (internal/app). They hold across every
// replica on one database, as the code policy's windows do.
const pfxHit = 'f' // f + key hash → hit window

// hitWindow is one live window of hits.
type hitWindow struct {
	Reset int64 `json:"r"` // unix ns: when the window ends
	Count int64 `json:"c"`
}

// ErrBadHit is returned by Hit for a negative count or a period that is not
// positive.
var ErrBadHit = errors.New("store: a hit needs a count of at least 0 and a positive period")

func (s *Store) hitKey(key string) []byte {
	return join([]byte{pfxHit}, s.mac(s.indexKey, "hit:"+key))
}

// Hit adds count hits to the window of key and returns the window's total
// and when it ends (reset), on the store's clock. Windows are fixed: one
// begins with the first hit after the previous one ended and lasts period;
// a later call with another period does not change a live window's end.
// Three things can happen:
//
//   - count > 0: the hits are counted, in one transaction, so concurrent
//     calls from every replica on one database each count exactly once.
//     With no live window a new one begins now.
//   - count == 0: nothing is written (a peek). With no live window total
//     is 0 and reset is now+period, when a window begun now would end.
//   - The storage fails, or count < 0 or period ≤ 0 (ErrBadHit): an error,
//     and nothing is counted.
//
// key is stored only as a keyed hash; the window's entry expires a minute
// after the window ends. Hits are not synced to disk: after a crash of the
// embedded store the latest few may be forgotten, which only ever lets
// more through, so use Hit for courtesy limits, not for the counters that
// protect codes.
func (s *Store) Hit(ctx context.Context, key string, count int64, period time.Duration) (total int64, reset time.Time, err error) {
	if count < 0 || period <= 0 {
		return 0, time.Time{}, ErrBadHit
	}
	k := s.hitKey(key)
	if count == 0 {
		err = s.kv.View(ctx, func(txn kv.Txn) error {
			now := s.now()
			w, err := readHits(txn, k, now, period)
			total, reset = w.Count, time.Unix(0, w.Reset)
			return err
		})
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("store: peek hits: %w", err)
		}
		return total, reset, nil
	}
	err = s.update(ctx, func(txn kv.Txn) error {
		now := s.now()
		w, err := readHits(txn, k, now, period)
		if err != nil {
			return err
		}
		w.Count += count
		total, reset = w.Count, time.Unix(0, w.Reset)
		// The window's end is decided by the store's clock (readHits); the
		// entry's TTL only collects it afterwards, with a margin so that
		// Badger's wall-clock expiry (1 s granularity) never ends it early.
		return setJSON(txn, k, w, reset.Sub(now)+time.Minute)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: hit: %w", err)
	}
	return total, reset, nil
}

// readHits returns the live window at key, or an empty one that would
// begin now when there is none (never stored, ended, expired, or ending
// further than period from now).
func readHits(txn kv.Txn, key []byte, now time.Time, period time.Duration) (hitWindow, error) {
	end := now.Add(period).UnixNano()
	var w hitWindow
	found, err := getJSON(txn, key, &w)
	if err != nil || !found || now.UnixNano() >= w.Reset || w.Reset > end {
		return hitWindow{Reset: end}, err
	}
	return w, nil
}

// ResetHits ends the window of key now, for every replica: the next Hit
// begins a new one. A key without a live window is left as it is.
func (s *Store) ResetHits(ctx context.Context, key string) error {
	k := s.hitKey(key)
	err := s.update(ctx, func(txn kv.Txn) error {
		_, err := txn.Get(k)
		if errors.Is(err, kv.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return txn.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("store: reset hits: %w", err)
	}
	return nil
}
