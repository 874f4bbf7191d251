package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Audience says which field set a grant releases.
type Audience string

const (
	AudienceBeneficiary Audience = "beneficiary" // the owner, in a private chat
	AudienceStaff       Audience = "staff"       // a helpdesk agent, with the owner's code
)

// Challenge is a pending one-time code. Only its HMAC is stored. It is keyed
// by (requester, purpose): one pending code per chat user and purpose, so a
// new request replaces the old code.
type Challenge struct {
	ID          string    `json:"id"`
	Requester   string    `json:"q"`
	Purpose     string    `json:"p"`
	Audience    Audience  `json:"a"`
	Agent       string    `json:"s,omitempty"`
	MobileKey   string    `json:"k"`
	Records     []string  `json:"r"`
	MAC         []byte    `json:"h"`
	CreatedAt   time.Time `json:"t"`
	ExpiresAt   time.Time `json:"e"`
	Attempts    int       `json:"n"`
	MaxAttempts int       `json:"x"`
	Consumed    bool      `json:"u,omitempty"`
}

func (s *Store) challengeKey(requester, purpose string) []byte {
	return join([]byte{pfxChallenge}, s.mac(s.indexKey, "challenge:"+requester+"\x00"+purpose))
}

// NewID returns a random 128-bit identifier, URL-safe.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// IssueParams describe a code about to be sent.
type IssueParams struct {
	Challenge Challenge // CreatedAt and Attempts are filled in, and ID when empty
	// Cooldown: no second code to the same mobile within this time.
	Cooldown time.Duration
	// MobileWrong and RequesterWrong: a locked mobile or requester gets no code.
	MobileWrong    Limit
	RequesterWrong Limit
}

// IssueOutcome says whether a challenge was stored.
type IssueOutcome string

const (
	IssueStored          IssueOutcome = "stored"
	IssueCooldown        IssueOutcome = "cooldown"
	IssueMobileLocked    IssueOutcome = "mobile_locked"
	IssueRequesterLocked IssueOutcome = "requester_locked"
)

// Issue stores a challenge, replacing the requester's previous one for the
// same purpose, unless the mobile is cooling down or locked. The code_requested
// audit entry is written in the same transaction, and synced, so a code is
// never sent without its trace. The caller sends the SMS only on IssueStored.
func (s *Store) Issue(ctx context.Context, p IssueParams) (Challenge, IssueOutcome, error) {
	c := p.Challenge
	if c.ID == "" {
		c.ID = NewID()
	}
	c.Attempts = 0
	c.Consumed = false
	now := s.now()
	c.CreatedAt = now
	mobile, err := hex.DecodeString(c.MobileKey)
	if err != nil || len(mobile) != hashLen {
		return Challenge{}, "", fmt.Errorf("%w: bad mobile key", ErrBadOptions)
	}
	requester := s.mac(s.indexKey, "requester:"+c.Requester)
	var outcome IssueOutcome
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err = s.update(ctx, func(txn *badger.Txn) error {
		outcome = IssueStored
		if until, err := lockedUntil(txn, counterKey(CounterWrongByRequester, requester), now, p.RequesterWrong); err != nil {
			return err
		} else if !until.IsZero() {
			outcome = IssueRequesterLocked
		}
		if outcome == IssueStored {
			if until, err := lockedUntil(txn, counterKey(CounterWrongByMobile, mobile), now, p.MobileWrong); err != nil {
				return err
			} else if !until.IsZero() {
				outcome = IssueMobileLocked
			}
		}
		cool := Limit{Max: 1, Period: p.Cooldown}
		if outcome == IssueStored && p.Cooldown > 0 {
			if until, err := lockedUntil(txn, counterKey(CounterCooldown, mobile), now, cool); err != nil {
				return err
			} else if !until.IsZero() {
				outcome = IssueCooldown
			}
		}
		entry := AuditEntry{Event: EventCodeRequested, Requester: c.Requester, Agent: c.Agent,
			Audience: c.Audience, MobileKey: c.MobileKey, Records: c.Records, Outcome: string(outcome)}
		ckey := s.challengeKey(c.Requester, c.Purpose)
		if outcome != IssueStored {
			// A new request abandons the requester's previous code whatever
			// happens to it, so the old code's fate reveals nothing about the
			// new target — except that repeating the very same lookup inside
			// the cooldown keeps the code already on its way. "The same" means
			// the same records, not just the same mobile: otherwise a staff
			// member could learn that two ID numbers share a mobile.
			keep := false
			if outcome == IssueCooldown {
				if old, err := s.getChallenge(txn, ckey); err == nil && old.MobileKey == c.MobileKey && slices.Equal(old.Records, c.Records) {
					keep = true
				}
			}
			if !keep {
				if err := txn.Delete(ckey); err != nil {
					return err
				}
			}
			return s.appendAudit(txn, entry)
		}
		if p.Cooldown > 0 {
			if _, err := bump(txn, counterKey(CounterCooldown, mobile), now, cool); err != nil {
				return err
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		ttl := c.ExpiresAt.Sub(now) + time.Minute // kept a little past expiry to answer "expired"
		if err := txn.SetEntry(badger.NewEntry(ckey, b).WithTTL(ttl)); err != nil {
			return err
		}
		return s.appendAudit(txn, entry)
	})
	if err != nil {
		return Challenge{}, "", fmt.Errorf("store: issue: %w", err)
	}
	if err := s.sync(); err != nil {
		return Challenge{}, "", err
	}
	return c, outcome, nil
}

// VerifyParams describe one code submission. Match compares the submitted
// code with the challenge in constant time; it runs inside the transaction
// and may run more than once (on retries).
type VerifyParams struct {
	Requester      string
	Purpose        string
	Match          func(Challenge) bool
	MobileWrong    Limit
	RequesterWrong Limit
	GrantTTL       time.Duration
}

// VerifyOutcome is what happened to a submission. Callers show one reply for
// every outcome but VerifyOK.
type VerifyOutcome string

const (
	VerifyOK              VerifyOutcome = "verified"
	VerifyWrong           VerifyOutcome = "wrong"
	VerifyExpired         VerifyOutcome = "expired"
	VerifyUsed            VerifyOutcome = "used"
	VerifyNoChallenge     VerifyOutcome = "no_challenge"
	VerifyCodeDead        VerifyOutcome = "attempts_exhausted"
	VerifyMobileLocked    VerifyOutcome = "mobile_locked"
	VerifyRequesterLocked VerifyOutcome = "requester_locked"
)

// Verify checks a submitted code against the requester's pending challenge
// in one serialisable transaction: the attempt and the wrong-code counters
// are written in the same commit as the outcome, and nothing is returned
// until that commit is synced. A correct code consumes the challenge (so of
// N concurrent correct submissions exactly one gets the grant) and mints a
// grant bound to the requester covering the challenge's records.
func (s *Store) Verify(ctx context.Context, p VerifyParams) (Grant, VerifyOutcome, error) {
	now := s.now()
	requester := s.mac(s.indexKey, "requester:"+p.Requester)
	var (
		grant   Grant
		outcome VerifyOutcome
	)
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn *badger.Txn) error {
		grant, outcome = Grant{}, ""
		entry := AuditEntry{Requester: p.Requester}
		reqKey := counterKey(CounterWrongByRequester, requester)
		if until, err := lockedUntil(txn, reqKey, now, p.RequesterWrong); err != nil {
			return err
		} else if !until.IsZero() {
			outcome = VerifyRequesterLocked
			entry.Event, entry.Outcome = EventLocked, string(outcome)
			return s.appendAudit(txn, entry)
		}
		ckey := s.challengeKey(p.Requester, p.Purpose)
		c, err := s.getChallenge(txn, ckey)
		switch {
		case errors.Is(err, ErrNotFound):
			outcome = VerifyNoChallenge
		case err != nil:
			return err
		}
		if outcome == "" {
			entry.Audience, entry.Agent, entry.MobileKey, entry.Records = c.Audience, c.Agent, c.MobileKey, c.Records
			switch {
			case c.Consumed:
				outcome = VerifyUsed
			case !now.Before(c.ExpiresAt):
				outcome = VerifyExpired
			case c.Attempts >= c.MaxAttempts:
				outcome = VerifyCodeDead
			}
		}
		var mobKey []byte
		if outcome == "" {
			mobKey = counterKey(CounterWrongByMobile, mustHex(c.MobileKey))
			if until, err := lockedUntil(txn, mobKey, now, p.MobileWrong); err != nil {
				return err
			} else if !until.IsZero() {
				outcome = VerifyMobileLocked
			}
		}
		if outcome != "" {
			entry.Event, entry.Outcome = EventCodeRejected, string(outcome)
			if outcome == VerifyMobileLocked {
				entry.Event = EventLocked
			}
			return s.appendAudit(txn, entry)
		}

		// A live challenge: count the attempt, then check.
		var locked *AuditEntry
		c.Attempts++
		if p.Match(c) {
			c.Consumed = true
			outcome = VerifyOK
			grant = Grant{ID: NewID(), Requester: p.Requester, Audience: c.Audience, Agent: c.Agent,
				MobileKey: c.MobileKey, Records: c.Records, ExpiresAt: now.Add(p.GrantTTL)}
			if err := s.putGrant(txn, grant, p.GrantTTL); err != nil {
				return err
			}
			entry.Event, entry.Outcome = EventCodeVerified, string(outcome)
		} else {
			outcome = VerifyWrong
			entry.Event, entry.Outcome = EventCodeRejected, string(outcome)
			mw, err := bump(txn, mobKey, now, p.MobileWrong)
			if err != nil {
				return err
			}
			rw, err := bump(txn, reqKey, now, p.RequesterWrong)
			if err != nil {
				return err
			}
			if mw.Count >= p.MobileWrong.Max || rw.Count >= p.RequesterWrong.Max {
				locked = &AuditEntry{Event: EventLocked, Requester: p.Requester, Agent: c.Agent,
					MobileKey: c.MobileKey, Outcome: "limit_reached"}
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		ttl := c.ExpiresAt.Sub(now) + time.Minute
		if err := txn.SetEntry(badger.NewEntry(ckey, b).WithTTL(ttl)); err != nil {
			return err
		}
		if locked != nil {
			return s.appendAudit(txn, entry, *locked)
		}
		return s.appendAudit(txn, entry)
	})
	if err != nil {
		return Grant{}, "", fmt.Errorf("store: verify: %w", err)
	}
	if err := s.sync(); err != nil {
		return Grant{}, "", err
	}
	return grant, outcome, nil
}

func (s *Store) getChallenge(txn *badger.Txn, key []byte) (Challenge, error) {
	var c Challenge
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, err
	}
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
		return c, fmt.Errorf("store: decode challenge: %w", err)
	}
	return c, nil
}

// CancelChallenge drops the requester's pending code for purpose, if any.
func (s *Store) CancelChallenge(ctx context.Context, requester, purpose string) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return txn.Delete(s.challengeKey(requester, purpose))
	})
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return []byte(s) // still a distinct, stable key
	}
	return b
}
