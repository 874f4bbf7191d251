package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Limit is a fixed window: at most Max events per Period. A Limit with
// Max or Period zero is off.
type Limit struct {
	Max    int
	Period time.Duration
}

// On reports whether the limit applies.
func (l Limit) On() bool { return l.Max > 0 && l.Period > 0 }

// Counter kinds. One byte each, part of the on-disk format. Every window
// that protects codes or bounds SMS spend lives here, in the store, so a
// restart forgets none of them.
const (
	CounterWrongByMobile    byte = 'M' // wrong codes against a mobile, across all its codes
	CounterWrongByRequester byte = 'R' // rejected codes from one chat user
	// CounterCooldown was the per-mobile cooldown; it is now per (mobile,
	// requester) (counterCooldown). Old entries expire by their TTL.
	CounterCooldown byte = 'C'

	counterRequests   byte = 'Q' // code requests per requester and purpose
	counterCooldown   byte = 'K' // last code to a mobile for one requester
	counterMobileHour byte = 'H' // codes to a mobile, per hour
	counterMobileDay  byte = 'Y' // codes to a mobile, per day
	counterOwnerHour  byte = 'O' // codes to a mobile its owner asked for (reserved)
	counterPrefixHour byte = 'P' // codes to a number range, per hour
	counterGlobalHour byte = 'G' // codes in total, per hour
	counterOwnerEpoch byte = 'E' // when the owner last took over a mobile's codes
)

type window struct {
	Start int64  `json:"s"` // unix seconds
	Count int    `json:"c"`
	Label string `json:"l,omitempty"` // what an operator is shown (a number range); never a full number
}

func counterKey(kind byte, subject []byte) []byte {
	return join([]byte{pfxCounter, kind}, subject)
}

// readWindow returns the live window for key, or a zero one when the stored
// window has run out.
func readWindow(txn kv.Txn, key []byte, now time.Time, period time.Duration) (window, error) {
	item, err := txn.Get(key)
	if errors.Is(err, kv.ErrKeyNotFound) {
		return window{}, nil
	}
	if err != nil {
		return window{}, err
	}
	var w window
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &w) }); err != nil {
		return window{}, err
	}
	if now.Unix() >= w.Start+int64(period/time.Second) {
		return window{}, nil
	}
	return w, nil
}

// bump adds one event to the window at key and stores it with a TTL that
// ends with the window, so the counter vanishes by itself.
func bump(txn kv.Txn, key []byte, now time.Time, l Limit) (window, error) {
	return bumpLabelled(txn, key, now, l, "")
}

func bumpLabelled(txn kv.Txn, key []byte, now time.Time, l Limit, label string) (window, error) {
	w, err := readWindow(txn, key, now, l.Period)
	if err != nil {
		return w, err
	}
	if w.Count == 0 {
		w.Start = now.Unix()
	}
	w.Count++
	w.Label = label
	b, _ := json.Marshal(w)
	// The window's end is decided by the store's clock (readWindow); the
	// entry's TTL only collects it afterwards, with a margin so that Badger's
	// wall-clock expiry (1 s granularity) never ends a window early.
	ttl := time.Unix(w.Start, 0).Add(l.Period).Sub(now) + time.Minute
	return w, txn.SetEntry(kv.NewEntry(key, b).WithTTL(ttl))
}

// lockedUntil reports when the window at key stops blocking, or the zero
// time when it does not block.
func lockedUntil(txn kv.Txn, key []byte, now time.Time, l Limit) (time.Time, error) {
	w, err := readWindow(txn, key, now, l.Period)
	if err != nil || w.Count < l.Max {
		return time.Time{}, err
	}
	return time.Unix(w.Start, 0).Add(l.Period), nil
}

// Shared send caps, as an operator names them.
const (
	CapGlobal = "global" // every code, per hour
	CapPrefix = "prefix" // codes to one number range, per hour
)

// SendWindow is the live state of one shared send cap.
type SendWindow struct {
	Cap    string    // CapGlobal or CapPrefix
	Range  string    // the number range of a prefix cap (e.g. "+9190000"); "" for global
	Count  int       // codes counted in the window so far
	Limit  int       // the cap
	Resets time.Time // when the window ends
}

// Drained reports whether the window refuses further codes.
func (w SendWindow) Drained() bool { return w.Count >= w.Limit }

// SendWindows lists the live global window and every live prefix window,
// global first, then prefixes by count (fullest first). global and prefix
// are the caps in force (their periods decide what is still live).
func (s *Store) SendWindows(ctx context.Context, global, prefix Limit) ([]SendWindow, error) {
	now := s.now()
	var out []SendWindow
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		if global.On() {
			w, err := readWindow(txn, counterKey(counterGlobalHour, nil), now, global.Period)
			if err != nil {
				return err
			}
			out = append(out, SendWindow{Cap: CapGlobal, Count: w.Count, Limit: global.Max, Resets: resets(w, now, global)})
		}
		if !prefix.On() {
			return nil
		}
		pfx := counterKey(counterPrefixHour, nil)
		it := txn.NewIterator(kv.IteratorOptions{Prefix: pfx, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			w, err := readWindow(txn, it.Item().KeyCopy(nil), now, prefix.Period)
			if err != nil {
				return err
			}
			if w.Count == 0 {
				continue
			}
			out = append(out, SendWindow{Cap: CapPrefix, Range: w.Label, Count: w.Count, Limit: prefix.Max, Resets: resets(w, now, prefix)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: send windows: %w", err)
	}
	slices.SortStableFunc(out, func(a, b SendWindow) int {
		if a.Cap != b.Cap {
			if a.Cap == CapGlobal {
				return -1
			}
			return 1
		}
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Range, b.Range)
	})
	return out, nil
}

func resets(w window, now time.Time, l Limit) time.Time {
	if w.Count == 0 {
		return now.Add(l.Period).Truncate(time.Second)
	}
	return time.Unix(w.Start, 0).Add(l.Period)
}

// ErrUnknownCap is returned by LiftSendWindow for a cap it does not know.
var ErrUnknownCap = errors.New("store: unknown send cap (want global, or prefix with a number range)")

// EventLimitLifted records an operator emptying a shared send window.
const EventLimitLifted = "limit_lifted"

// LiftSendWindow empties a shared send window now — the global one, or the
// prefix window of rng ("+9190000") — instead of waiting for it to end.
// The lift is audited (Outcome names the cap and range) and synced. It
// reports whether a live window was there to lift.
func (s *Store) LiftSendWindow(ctx context.Context, cap, rng, actor string) (bool, error) {
	var key []byte
	switch {
	case cap == CapGlobal && rng == "":
		key = counterKey(counterGlobalHour, nil)
	case cap == CapPrefix && rng != "":
		key = counterKey(counterPrefixHour, s.prefixSubject(rng))
	default:
		return false, ErrUnknownCap
	}
	var found bool
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn kv.Txn) error {
		found = false
		_, err := txn.Get(key)
		switch {
		case errors.Is(err, kv.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			found = true
			if err := txn.Delete(key); err != nil {
				return err
			}
		}
		outcome := cap
		if rng != "" {
			outcome += " " + rng
		}
		return s.appendAudit(txn, AuditEntry{Event: EventLimitLifted, Requester: actor, Outcome: outcome})
	})
	if err != nil {
		return false, fmt.Errorf("store: lift %s: %w", cap, err)
	}
	return found, s.sync()
}

func (s *Store) prefixSubject(rng string) []byte { return s.mac(s.indexKey, "prefix:"+rng) }

// requesterSubject keys the per-requester windows.
func (s *Store) requesterSubject(requester string) []byte {
	return s.mac(s.indexKey, "requester:"+requester)
}

func pairSubject(mobile, requester []byte) []byte {
	return bytes.Join([][]byte{mobile, requester}, nil)
}
