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

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store/kv"
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
//
// A decoy is a challenge for a lookup that gets no SMS (nothing registered,
// a destination outside the allowlist, a limit reached). It is stored,
// counted and aged exactly like a real one, so nothing the requester can
// observe tells the two apart, but no code matches it.
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
	// Lookup is the keyed hash of what the requester named (LookupKey).
	Lookup string `json:"l,omitempty"`
	// Tag is the short request tag the SMS names and the chat was shown.
	Tag   string `json:"g,omitempty"`
	Decoy bool   `json:"d,omitempty"`
	// Owner: the requester proved the mobile is theirs (ByOwner).
	Owner bool `json:"o,omitempty"`
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

// LookupKey is the keyed hash of what a lookup named, hex-encoded and the
// same length as a MobileKey. For a mobile it is the MobileKey, whether or
// not the number is registered, so a decoy for an unregistered number is
// counted under the very key a real code would be.
func (s *Store) LookupKey(id pii.Identifier) string {
	switch id.Kind {
	case pii.KindMobile:
		return s.MobileKey(id.Mobile)
	case pii.KindReference:
		return hex.EncodeToString(s.mac(s.indexKey, "lookup:ref:"+id.Ref))
	case pii.KindIDNumber:
		return hex.EncodeToString(s.mac(s.indexKey, "lookup:id:"+id.ID.Value()))
	}
	return hex.EncodeToString(s.mac(s.indexKey, "lookup:none"))
}

// IssueParams describe a code about to be sent. Zero limits are off.
type IssueParams struct {
	Challenge Challenge // CreatedAt, Attempts and Decoy are filled in, and ID when empty
	// Decoy, when not empty, says why no SMS may go for this lookup whatever
	// the limits say ("no_target", "country_not_allowed"). Everything is
	// counted and stored as for a real target; the challenge is marked a
	// decoy and the audit entry carries the reason.
	Decoy string
	// ByOwner: the requester proved through the chat platform that the
	// mobile is their own. The request draws on OwnerSends instead of the
	// mobile's hourly and daily windows, is not held back by the wrong codes
	// strangers typed against the mobile, and its code replaces every code
	// other chats hold for the mobile.
	ByOwner bool
	// Prefix is the number range for the velocity window ("" skips it).
	Prefix string
	// Requests counts every code request of the requester for this purpose,
	// refused or not.
	Requests Limit
	// Cooldown: no second code to the same mobile for the same requester
	// within this time.
	Cooldown time.Duration
	// Send windows: checked together and counted together, only when every
	// check passes (a request one cap refuses uses up none of the others).
	MobileHour, MobileDay, OwnerSends, PrefixHour, Global Limit
	// MobileWrong and RequesterWrong: a locked mobile or requester gets no code.
	MobileWrong    Limit
	RequesterWrong Limit
}

// IssueOutcome says what became of a request. Only IssueStored with a
// challenge that is not a decoy may be sent.
type IssueOutcome string

const (
	IssueStored           IssueOutcome = "stored"
	IssueCooldown         IssueOutcome = "cooldown"
	IssueMobileLocked     IssueOutcome = "mobile_locked"
	IssueRequesterLocked  IssueOutcome = "requester_locked"
	IssueRequesterLimited IssueOutcome = "requester_limited"
	IssueMobileHourly     IssueOutcome = "mobile_hourly_limit"
	IssueMobileDaily      IssueOutcome = "mobile_daily_limit"
	IssueOwnerLimit       IssueOutcome = "owner_limit"
	IssuePrefixVelocity   IssueOutcome = "prefix_velocity"
	IssueGlobalLimit      IssueOutcome = "global_limit"
)

// ownerEpochTTL outlives any challenge created before the owner's (codes
// live at most 10 minutes, kept a minute past expiry).
const ownerEpochTTL = 12 * time.Minute

type ownerEpoch struct {
	At int64  `json:"t"` // unix nanoseconds
	ID string `json:"id"`
}

// Issue stores a challenge for every request, in one transaction with
// every window and the code_requested audit entry (synced before it
// returns, so no code is sent without its trace). What can happen:
//
//   - every check passes: all windows are counted and the challenge is
//     stored; it is a decoy when p.Decoy says so. The outcome is
//     IssueStored, and the caller sends the code unless it is a decoy.
//   - a check refuses: nothing after it is counted and a decoy replaces
//     the requester's previous code; the outcome names the check. The
//     checks run in three stages — the requester's own (requests, its
//     wrong-code lock), the shared windows (number range, global: counted as
//     soon as they pass), then the destination's (mobile lock, cooldown for
//     this requester, the mobile's hourly and daily windows or the owner's
//     reserve). The one exception: repeating the very same lookup (same
//     identifier, records and tag) inside the cooldown keeps the code
//     already on its way.
//
// No check reads whether anything is registered. For a mobile every window
// is keyed by the number itself, registered or not; a lookup by reference
// or ID number is keyed by the record's mobile, or by the identifier when
// there is none, and so only its destination's windows may differ — which
// is why the shared windows, the ones other requesters can observe through
// their own phones, are counted before those.
func (s *Store) Issue(ctx context.Context, p IssueParams) (Challenge, IssueOutcome, error) {
	c := p.Challenge
	if c.ID == "" {
		c.ID = NewID()
	}
	c.Attempts = 0
	c.Consumed = false
	c.Owner = p.ByOwner
	now := s.now()
	c.CreatedAt = now
	plan, err := s.planIssue(c, p, now)
	if err != nil {
		return Challenge{}, "", err
	}
	var outcome IssueOutcome
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err = s.update(ctx, func(txn kv.Txn) error {
		var derr error
		if outcome, derr = plan.decide(txn); derr != nil {
			return derr
		}
		c.Decoy = p.Decoy != "" || outcome != IssueStored
		return s.putIssued(txn, c, p, outcome, plan.mobile, now)
	})
	if err != nil {
		return Challenge{}, "", fmt.Errorf("store: issue: %w", err)
	}
	if err := s.sync(); err != nil {
		return Challenge{}, "", err
	}
	return c, outcome, nil
}

// sendWindow is one send limit a request is checked and counted against.
type sendWindow struct {
	key     []byte
	limit   Limit
	label   string
	outcome IssueOutcome
}

// issuePlan is every window and lock one request is judged by.
type issuePlan struct {
	p                 IssueParams
	now               time.Time
	mobile, requester []byte
	// shared: pools that every requester draws on, so what they count must
	// not depend on anything keyed by a record's mobile. own: the
	// destination's windows.
	shared, own     []sendWindow
	cool            Limit
	coolKey, reqKey []byte
}

func (s *Store) planIssue(c Challenge, p IssueParams, now time.Time) (issuePlan, error) {
	mobile, err := hex.DecodeString(c.MobileKey)
	if err != nil || len(mobile) != hashLen {
		return issuePlan{}, fmt.Errorf("%w: bad mobile key", ErrBadOptions)
	}
	pl := issuePlan{p: p, now: now, mobile: mobile, requester: s.requesterSubject(c.Requester)}
	if p.Prefix != "" {
		pl.shared = append(pl.shared, sendWindow{counterKey(counterPrefixHour, s.prefixSubject(p.Prefix)), p.PrefixHour, p.Prefix, IssuePrefixVelocity})
	}
	pl.shared = append(pl.shared, sendWindow{counterKey(counterGlobalHour, nil), p.Global, "", IssueGlobalLimit})
	if p.ByOwner {
		pl.own = append(pl.own, sendWindow{counterKey(counterOwnerHour, mobile), p.OwnerSends, "", IssueOwnerLimit})
	} else {
		pl.own = append(pl.own,
			sendWindow{counterKey(counterMobileHour, mobile), p.MobileHour, "", IssueMobileHourly},
			sendWindow{counterKey(counterMobileDay, mobile), p.MobileDay, "", IssueMobileDaily})
	}
	pl.cool = Limit{Max: 1, Period: p.Cooldown}
	pl.coolKey = counterKey(counterCooldown, pairSubject(mobile, pl.requester))
	pl.reqKey = counterKey(counterRequests, s.mac(s.indexKey, "requests:"+c.Requester+"\x00"+c.Purpose))
	return pl, nil
}

// decide checks and counts the request in three stages, the first refusal
// deciding the outcome; windows past it are neither checked nor counted.
func (pl issuePlan) decide(txn kv.Txn) (IssueOutcome, error) {
	p, now := pl.p, pl.now
	outcome := IssueStored
	check := func(o IssueOutcome, key []byte, l Limit) error {
		if outcome != IssueStored || !l.On() {
			return nil
		}
		until, err := lockedUntil(txn, key, now, l)
		if err == nil && !until.IsZero() {
			outcome = o
		}
		return err
	}
	checkAndCount := func(ws []sendWindow) error {
		for _, w := range ws {
			if err := check(w.outcome, w.key, w.limit); err != nil {
				return err
			}
		}
		for _, w := range ws {
			if outcome != IssueStored || !w.limit.On() {
				continue
			}
			if _, err := bumpLabelled(txn, w.key, now, w.limit, w.label); err != nil {
				return err
			}
		}
		return nil
	}
	// 1. The requester's own checks: what it asked, what it typed.
	if p.Requests.On() {
		w, err := bump(txn, pl.reqKey, now, p.Requests)
		if err != nil {
			return "", err
		}
		if w.Count > p.Requests.Max {
			outcome = IssueRequesterLimited
		}
	}
	if err := check(IssueRequesterLocked, counterKey(CounterWrongByRequester, pl.requester), p.RequesterWrong); err != nil {
		return "", err
	}
	// 2. The shared windows, checked and counted before anything keyed by
	// the destination: a lookup by reference or ID number is keyed by the
	// record's mobile when there is one and by the identifier when there is
	// none, and whatever those windows decide must not reach a pool other
	// requesters can observe.
	if err := checkAndCount(pl.shared); err != nil {
		return "", err
	}
	// 3. The destination's checks and windows.
	if !p.ByOwner {
		if err := check(IssueMobileLocked, counterKey(CounterWrongByMobile, pl.mobile), p.MobileWrong); err != nil {
			return "", err
		}
	}
	if err := check(IssueCooldown, pl.coolKey, pl.cool); err != nil {
		return "", err
	}
	if err := checkAndCount(pl.own); err != nil {
		return "", err
	}
	if outcome == IssueStored && pl.cool.On() {
		if _, err := bump(txn, pl.coolKey, now, pl.cool); err != nil {
			return "", err
		}
	}
	return outcome, nil
}

// putIssued stores the challenge (real or decoy) and its audit entry.
func (s *Store) putIssued(txn kv.Txn, c Challenge, p IssueParams, outcome IssueOutcome, mobile []byte, now time.Time) error {
	entry := AuditEntry{Event: EventCodeRequested, Requester: c.Requester, Agent: c.Agent,
		Audience: c.Audience, MobileKey: c.MobileKey, Records: c.Records, Outcome: string(outcome)}
	if outcome == IssueStored && p.Decoy != "" {
		entry.Outcome = p.Decoy
	}
	ckey := s.challengeKey(c.Requester, c.Purpose)
	if outcome == IssueCooldown {
		// Repeating the very same lookup inside the cooldown keeps the code
		// already on its way. "The same" means the same identifier and
		// records, not just the same mobile (otherwise a staff member could
		// learn that two ID numbers share a mobile), and the same tag, so
		// the chat never shows a tag the SMS does not carry.
		if old, err := s.getChallenge(txn, ckey); err == nil && old.MobileKey == c.MobileKey &&
			old.Lookup == c.Lookup && old.Tag == c.Tag && slices.Equal(old.Records, c.Records) {
			return s.appendAudit(txn, entry)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ttl := c.ExpiresAt.Sub(now) + time.Minute // kept a little past expiry to answer "expired"
	if err := txn.SetEntry(kv.NewEntry(ckey, b).WithTTL(ttl)); err != nil {
		return err
	}
	if outcome == IssueStored && p.ByOwner {
		// The owner's code replaces every code other chats hold for this
		// mobile: Verify refuses those created until now.
		e, _ := json.Marshal(ownerEpoch{At: now.UnixNano(), ID: c.ID})
		if err := txn.SetEntry(kv.NewEntry(counterKey(counterOwnerEpoch, mobile), e).WithTTL(ownerEpochTTL)); err != nil {
			return err
		}
	}
	return s.appendAudit(txn, entry)
}

// replacedByOwner reports whether the owner of c's mobile took over its
// codes after c was created.
func replacedByOwner(txn kv.Txn, c Challenge, mobile []byte) (bool, error) {
	if c.Owner {
		return false, nil
	}
	item, err := txn.Get(counterKey(counterOwnerEpoch, mobile))
	if errors.Is(err, kv.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var e ownerEpoch
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
		return false, err
	}
	return e.ID != c.ID && c.CreatedAt.UnixNano() <= e.At, nil
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
	VerifyReplaced        VerifyOutcome = "replaced_by_owner"
	VerifyMobileLocked    VerifyOutcome = "mobile_locked"
	VerifyRequesterLocked VerifyOutcome = "requester_locked"
)

// Verify checks a submitted code against the requester's pending challenge
// in one serialisable transaction, synced before it returns. What can happen:
//
//   - the code matches a live challenge that is not a decoy: the attempt is
//     counted, the challenge consumed (of N concurrent correct submissions
//     exactly one gets here) and a grant minted, bound to the requester and
//     covering the challenge's records. VerifyOK.
//   - a live challenge (real or decoy) and no match: the attempt, the
//     mobile's wrong count and the requester's are counted. VerifyWrong.
//   - anything else — no challenge, expired, used, dead, replaced by the
//     owner's code, mobile or requester locked: the requester's wrong count
//     is counted all the same, so what stands behind a rejected code never
//     changes what the requester can observe next.
//
// Reaching a wrong-code limit writes a locked entry beside the outcome's.
func (s *Store) Verify(ctx context.Context, p VerifyParams) (Grant, VerifyOutcome, error) {
	now := s.now()
	requester := s.requesterSubject(p.Requester)
	var (
		grant   Grant
		outcome VerifyOutcome
	)
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn kv.Txn) error {
		grant = Grant{}
		entry := AuditEntry{Requester: p.Requester}
		reqKey := counterKey(CounterWrongByRequester, requester)
		ckey := s.challengeKey(p.Requester, p.Purpose)
		c, found, o, err := s.triable(txn, p, now, reqKey, ckey)
		if err != nil {
			return err
		}
		outcome = o
		if found {
			entry.Audience, entry.Agent, entry.MobileKey, entry.Records = c.Audience, c.Agent, c.MobileKey, c.Records
		}
		mobKey := counterKey(CounterWrongByMobile, mustHex(c.MobileKey))
		if outcome == "" {
			// A live challenge: count the attempt, then check.
			c.Attempts++
			if !c.Decoy && p.Match(c) {
				c.Consumed = true
				outcome = VerifyOK
				grant = Grant{ID: NewID(), Requester: p.Requester, Audience: c.Audience, Agent: c.Agent,
					MobileKey: c.MobileKey, Records: c.Records, ExpiresAt: now.Add(p.GrantTTL)}
				if err := s.putGrant(txn, grant, p.GrantTTL); err != nil {
					return err
				}
			} else {
				outcome = VerifyWrong
			}
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			ttl := c.ExpiresAt.Sub(now) + time.Minute
			if err := txn.SetEntry(kv.NewEntry(ckey, b).WithTTL(ttl)); err != nil {
				return err
			}
		}
		entry.Event, entry.Outcome = EventCodeRejected, string(outcome)
		switch outcome {
		case VerifyOK:
			entry.Event = EventCodeVerified
			return s.appendAudit(txn, entry)
		case VerifyMobileLocked, VerifyRequesterLocked:
			entry.Event = EventLocked
		}
		entries := []AuditEntry{entry}
		locked, err := countRejection(txn, p, now, outcome, mobKey, reqKey)
		if err != nil {
			return err
		}
		if locked {
			entries = append(entries, AuditEntry{Event: EventLocked, Requester: p.Requester, Agent: c.Agent,
				MobileKey: c.MobileKey, Outcome: "limit_reached"})
		}
		return s.appendAudit(txn, entries...)
	})
	if err != nil {
		return Grant{}, "", fmt.Errorf("store: verify: %w", err)
	}
	if err := s.sync(); err != nil {
		return Grant{}, "", err
	}
	return grant, outcome, nil
}

// triable finds the requester's challenge and says why it cannot be tried,
// if it cannot: "" means a live challenge whose attempt is to be counted.
// found reports whether a challenge was read (locks are checked first).
func (s *Store) triable(txn kv.Txn, p VerifyParams, now time.Time, reqKey, ckey []byte) (c Challenge, found bool, outcome VerifyOutcome, err error) {
	if p.RequesterWrong.On() {
		if until, err := lockedUntil(txn, reqKey, now, p.RequesterWrong); err != nil {
			return c, false, "", err
		} else if !until.IsZero() {
			return c, false, VerifyRequesterLocked, nil
		}
	}
	c, err = s.getChallenge(txn, ckey)
	switch {
	case errors.Is(err, ErrNotFound):
		return c, false, VerifyNoChallenge, nil
	case err != nil:
		return c, false, "", err
	case c.Consumed:
		return c, true, VerifyUsed, nil
	case !now.Before(c.ExpiresAt):
		return c, true, VerifyExpired, nil
	case c.Attempts >= c.MaxAttempts:
		return c, true, VerifyCodeDead, nil
	}
	mobile := mustHex(c.MobileKey)
	if replaced, err := replacedByOwner(txn, c, mobile); err != nil {
		return c, true, "", err
	} else if replaced {
		return c, true, VerifyReplaced, nil
	}
	if !c.Owner && p.MobileWrong.On() {
		// Strangers' wrong codes lock a mobile against strangers; the
		// owner's own code is guessable only from the owner's chat.
		if until, err := lockedUntil(txn, counterKey(CounterWrongByMobile, mobile), now, p.MobileWrong); err != nil {
			return c, true, "", err
		} else if !until.IsZero() {
			return c, true, VerifyMobileLocked, nil
		}
	}
	return c, true, "", nil
}

// countRejection counts a rejected code against the requester (always, so
// that no budget tells a live challenge from none) and, for a wrong code on
// a live challenge, against the mobile. locked reports that this rejection
// reached a limit.
func countRejection(txn kv.Txn, p VerifyParams, now time.Time, outcome VerifyOutcome, mobKey, reqKey []byte) (locked bool, err error) {
	if outcome == VerifyWrong && p.MobileWrong.On() {
		mw, err := bump(txn, mobKey, now, p.MobileWrong)
		if err != nil {
			return false, err
		}
		locked = mw.Count == p.MobileWrong.Max
	}
	if p.RequesterWrong.On() {
		rw, err := bump(txn, reqKey, now, p.RequesterWrong)
		if err != nil {
			return false, err
		}
		locked = locked || rw.Count == p.RequesterWrong.Max
	}
	return locked, nil
}

func (s *Store) getChallenge(txn kv.Txn, key []byte) (Challenge, error) {
	var c Challenge
	item, err := txn.Get(key)
	if errors.Is(err, kv.ErrKeyNotFound) {
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
	return s.update(ctx, func(txn kv.Txn) error {
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
