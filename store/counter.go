package store

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Limit is a fixed window: at most Max events per Period.
type Limit struct {
	Max    int
	Period time.Duration
}

// Counter kinds. One byte each, part of the on-disk format.
const (
	CounterWrongByMobile    byte = 'M' // wrong codes against a mobile, across all its codes
	CounterWrongByRequester byte = 'R' // wrong codes from one chat user
	CounterCooldown         byte = 'C' // last code sent to a mobile
)

type window struct {
	Start int64 `json:"s"` // unix seconds
	Count int   `json:"c"`
}

func counterKey(kind byte, subject []byte) []byte {
	return join([]byte{pfxCounter, kind}, subject)
}

// readWindow returns the live window for key, or a zero one when the stored
// window has run out.
func readWindow(txn *badger.Txn, key []byte, now time.Time, period time.Duration) (window, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
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
func bump(txn *badger.Txn, key []byte, now time.Time, l Limit) (window, error) {
	w, err := readWindow(txn, key, now, l.Period)
	if err != nil {
		return w, err
	}
	if w.Count == 0 {
		w.Start = now.Unix()
	}
	w.Count++
	b, _ := json.Marshal(w)
	ttl := time.Unix(w.Start, 0).Add(l.Period).Sub(now)
	if ttl < time.Second {
		ttl = time.Second
	}
	return w, txn.SetEntry(badger.NewEntry(key, b).WithTTL(ttl))
}

// lockedUntil reports when the window at key stops blocking, or the zero
// time when it does not block.
func lockedUntil(txn *badger.Txn, key []byte, now time.Time, l Limit) (time.Time, error) {
	w, err := readWindow(txn, key, now, l.Period)
	if err != nil || w.Count < l.Max {
		return time.Time{}, err
	}
	return time.Unix(w.Start, 0).Add(l.Period), nil
}
