package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// What replicas of one bot agree on through the store: which chat updates
// are handled, the send budget they share, who holds a lease, and each
// user's conversation state. On Badger (one process) these are simply
// durable; on PostgreSQL they hold across every replica, because each is a
// transaction on keys that Get protects (see store/kv).
const (
	pfxUpdate  = 'u' // u + update id (8 bytes BE) → update mark
	pfxBudget  = 'b' // b + name hash → next free moment (unix ns)
	pfxLease   = 'L' // L + name hash → lease
	pfxSession = 's' // s + user hash → conversation state (opaque to the store)
)

// UpdateMarkTTL is how long a handled update's mark is kept: Telegram
// keeps an unacknowledged update for at most 24 hours.
const UpdateMarkTTL = 25 * time.Hour

// UpdateClaim is what ClaimUpdate found.
type UpdateClaim int

const (
	// ClaimNew: nobody handled the update or holds it; the caller now does.
	ClaimNew UpdateClaim = iota
	// ClaimDone: it was handled (by any replica) within UpdateMarkTTL.
	ClaimDone
	// ClaimBusy: another caller holds it and its lease has not run out.
	ClaimBusy
)

type updateMark struct {
	Done  bool  `json:"d,omitempty"`
	Until int64 `json:"u,omitempty"` // unix ns: a claim's lease
}

func updateKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxUpdate}, uint64(id))
}

// ClaimUpdate claims chat update id for lease. A claim whose lease ran out
// (its holder died) is taken over. Of several callers at once, on any
// replicas, one gets ClaimNew.
func (s *Store) ClaimUpdate(ctx context.Context, id int64, lease time.Duration) (UpdateClaim, error) {
	var out UpdateClaim
	err := s.update(ctx, func(txn kv.Txn) error {
		now := s.now()
		var m updateMark
		found, err := getJSON(txn, updateKey(id), &m)
		if err != nil {
			return err
		}
		switch {
		case found && m.Done:
			out = ClaimDone
			return nil
		case found && now.UnixNano() < m.Until:
			out = ClaimBusy
			return nil
		}
		out = ClaimNew
		return setJSON(txn, updateKey(id), updateMark{Until: now.Add(lease).UnixNano()}, lease+time.Minute)
	})
	if err != nil {
		return 0, fmt.Errorf("store: claim update: %w", err)
	}
	return out, s.sync()
}

// UpdateDone marks update id handled, for UpdateMarkTTL.
func (s *Store) UpdateDone(ctx context.Context, id int64) error {
	err := s.update(ctx, func(txn kv.Txn) error {
		return setJSON(txn, updateKey(id), updateMark{Done: true}, UpdateMarkTTL)
	})
	if err != nil {
		return fmt.Errorf("store: update done: %w", err)
	}
	return s.sync()
}

// ReleaseUpdate gives a claim back unhandled: the next delivery of the
// update is ClaimNew. A handled update stays handled.
func (s *Store) ReleaseUpdate(ctx context.Context, id int64) error {
	return s.update(ctx, func(txn kv.Txn) error {
		var m updateMark
		found, err := getJSON(txn, updateKey(id), &m)
		if err != nil || !found || m.Done {
			return err
		}
		return txn.Delete(updateKey(id))
	})
}

// Budget is one shared send budget: at most one use per Interval.
type Budget struct {
	Name     string // e.g. "bot", "chat:123"; stored only as a keyed hash
	Interval time.Duration
}

// Reserve books a send slot against two budgets every replica shares: a
// gate (one chat's) and a shared one (the bot's). If the gate's next free
// moment is after now nothing is booked, and at is that moment. Otherwise
// it books at, the later of now and the shared budget's next free moment,
// moves the shared budget to at+its interval and the gate to at+its
// interval, and reports booked. So N replicas together stay within one
// budget, and a message waiting for its chat never holds the bot's budget
// for others. at is on the store's clock (Now): the caller measures its
// wait against Now when the answer arrives, not when it asked.
func (s *Store) Reserve(ctx context.Context, gate, shared Budget) (at time.Time, booked bool, err error) {
	err = s.update(ctx, func(txn kv.Txn) error {
		now := s.now()
		gateNext, err := s.budgetNext(txn, gate.Name)
		if err != nil {
			return err
		}
		if gateNext.After(now) {
			at, booked = gateNext, false
			return nil
		}
		at, err = s.budgetNext(txn, shared.Name)
		if err != nil {
			return err
		}
		if at.Before(now) {
			at = now
		}
		if err := s.setBudget(txn, shared, at.Add(shared.Interval)); err != nil {
			return err
		}
		if err := s.setBudget(txn, gate, at.Add(gate.Interval)); err != nil {
			return err
		}
		booked = true
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: reserve a send slot: %w", err)
	}
	return at, booked, nil
}

// Now is the store's clock: the database's, on PostgreSQL.
func (s *Store) Now() time.Time { return s.now() }

// budgetNext is a budget's next free moment (the zero time when none).
func (s *Store) budgetNext(txn kv.Txn, name string) (time.Time, error) {
	item, err := txn.Get(s.budgetKey(name))
	if errors.Is(err, kv.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	err = item.Value(func(v []byte) error {
		if len(v) == 8 {
			next = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	return next, err
}

func (s *Store) setBudget(txn kv.Txn, b Budget, next time.Time) error {
	ttl := max(time.Until(next), 0) + b.Interval + time.Minute
	return txn.SetEntry(kv.NewEntry(s.budgetKey(b.Name), binary.BigEndian.AppendUint64(nil, uint64(next.UnixNano()))).WithTTL(ttl))
}

// PushBack moves a budget's next free moment to wait from now at the
// earliest (Telegram answered 429 with retry_after), for every replica.
func (s *Store) PushBack(ctx context.Context, b Budget, wait time.Duration) error {
	return s.update(ctx, func(txn kv.Txn) error {
		until := s.now().Add(wait)
		next, err := s.budgetNext(txn, b.Name)
		if err != nil || !next.Before(until) {
			return err
		}
		return s.setBudget(txn, b, until)
	})
}

func (s *Store) budgetKey(name string) []byte {
	return join([]byte{pfxBudget}, s.mac(s.indexKey, "budget:"+name))
}

type lease struct {
	Holder string `json:"h"`
	Until  int64  `json:"u"` // unix ns
}

func (s *Store) leaseKey(name string) []byte {
	return join([]byte{pfxLease}, s.mac(s.indexKey, "lease:"+name))
}

// Lease takes the named lease for holder until now+ttl, or renews it if
// holder has it. It reports whether holder holds it now: false when
// another holder's lease has not run out.
func (s *Store) Lease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	held := false
	err := s.update(ctx, func(txn kv.Txn) error {
		var err error
		held, err = s.takeLease(txn, name, holder, ttl)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: lease: %w", err)
	}
	return held, s.sync()
}

func (s *Store) takeLease(txn kv.Txn, name, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	var l lease
	found, err := getJSON(txn, s.leaseKey(name), &l)
	if err != nil {
		return false, err
	}
	if found && l.Holder != holder && now.UnixNano() < l.Until {
		return false, nil
	}
	return true, setJSON(txn, s.leaseKey(name), lease{Holder: holder, Until: now.Add(ttl).UnixNano()}, ttl+time.Minute)
}

// DropLease ends holder's lease on name; another holder's is left alone.
func (s *Store) DropLease(ctx context.Context, name, holder string) error {
	return s.update(ctx, func(txn kv.Txn) error {
		var l lease
		found, err := getJSON(txn, s.leaseKey(name), &l)
		if err != nil || !found || l.Holder != holder {
			return err
		}
		return txn.Delete(s.leaseKey(name))
	})
}

func (s *Store) sessionKey(user string) []byte {
	return join([]byte{pfxSession}, s.mac(s.indexKey, "session:"+user))
}

// SessionLease names the lease that holds user's session (renew it with
// Lease).
func SessionLease(user string) string { return "session:" + user }

// ErrHoldLost: a session's hold ran out and another holder took it, so
// what this holder computed is not saved.
var ErrHoldLost = errors.New("store: the session's hold ran out and was taken over")

// HoldSession takes the hold on user's conversation for holder, for lease
// (renew it with Lease(SessionLease(user), …)), and returns the state last
// saved (nil when none, or it expired), as one step. held is false, and
// state nil, while another holder's lease runs: the caller waits and asks
// again. The store does not read the state: the chat engine keeps in it
// only where a conversation is, never a record field or code.
func (s *Store) HoldSession(ctx context.Context, user, holder string, lease time.Duration) (held bool, state []byte, err error) {
	err = s.update(ctx, func(txn kv.Txn) error {
		held, state = false, nil
		var err error
		if held, err = s.takeLease(txn, SessionLease(user), holder, lease); err != nil || !held {
			return err
		}
		item, err := txn.Get(s.sessionKey(user))
		if errors.Is(err, kv.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		state, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return false, nil, fmt.Errorf("store: hold session: %w", err)
	}
	return held, state, s.sync()
}

// ReleaseSession saves state as user's conversation for ttl (nil keeps
// what is saved) and ends holder's hold, as one step. If the hold was lost
// to another holder it saves nothing and returns ErrHoldLost.
func (s *Store) ReleaseSession(ctx context.Context, user, holder string, state []byte, ttl time.Duration) error {
	err := s.update(ctx, func(txn kv.Txn) error {
		var l lease
		found, err := getJSON(txn, s.leaseKey(SessionLease(user)), &l)
		if err != nil {
			return err
		}
		if !found || l.Holder != holder {
			return ErrHoldLost
		}
		if state != nil {
			if err := txn.SetEntry(kv.NewEntry(s.sessionKey(user), state).WithTTL(ttl)); err != nil {
				return err
			}
		}
		return txn.Delete(s.leaseKey(SessionLease(user)))
	})
	if err != nil {
		return fmt.Errorf("store: release session: %w", err)
	}
	return s.sync()
}

// getJSON reads key into v; found is false when the key is absent.
func getJSON(txn kv.Txn, key []byte, v any) (found bool, err error) {
	item, err := txn.Get(key)
	if errors.Is(err, kv.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func setJSON(txn kv.Txn, key []byte, v any, ttl time.Duration) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.SetEntry(kv.NewEntry(key, b).WithTTL(ttl))
}

const pfxTag = 't' // t + requester hash → the request tag last shown

type shownTag struct {
	Lookup string `json:"l"`
	Tag    string `json:"g"`
	At     int64  `json:"t"` // unix ns, on the store's clock
}

// RecallTag is the shared memory of the request tag each requester was
// last shown (who names the requester and audience): if the same lookup
// was shown a tag less than keep ago, that tag is returned and its time
// slides to now; otherwise fresh is remembered and returned. Replicas
// share it, so a lookup repeated on another replica inside the cooldown is
// shown the tag of the code already on its way, as in one process.
func (s *Store) RecallTag(ctx context.Context, who, lookup string, keep time.Duration, fresh string) (string, error) {
	out := fresh
	err := s.update(ctx, func(txn kv.Txn) error {
		key := join([]byte{pfxTag}, s.mac(s.indexKey, "tag:"+who))
		now := s.now()
		var t shownTag
		found, err := getJSON(txn, key, &t)
		if err != nil {
			return err
		}
		out = fresh
		if found && t.Lookup == lookup && now.Sub(time.Unix(0, t.At)) < keep {
			out = t.Tag
		}
		return setJSON(txn, key, shownTag{Lookup: lookup, Tag: out, At: now.UnixNano()}, keep+time.Minute)
	})
	if err != nil {
		return "", fmt.Errorf("store: recall tag: %w", err)
	}
	return out, nil
}
