// Package storetest is the store's conformance suite: the same tests of
// the store's behaviour — the invariant (no field without a grant, one
// grant for many concurrent correct codes, counters that no new code
// resets), the code policy, imports, the audit chain, and what replicas
// agree on (update claims, send budgets, leases, sessions, hit windows) — run on every engine
// of the persistence contract. The Badger engine runs it in package store's
// tests, PostgreSQL in store/pgkv's. Only tests import this package.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/kv"
)

// Engine tells the suite how to make stores on one engine.
type Engine struct {
	Name string
	// Fresh returns a new, empty location (a directory, a database URL).
	// Only a durable one must keep its state after Close; Badger's others
	// are in memory.
	Fresh func(t *testing.T, durable bool) string
	// Open opens the store at loc with the keys ks; o carries them and the
	// clock, and Open fills in where the state lives (Dir or Backend). It
	// returns the store's own errors (store.ErrWrongKey, store.ErrLocked).
	Open func(t *testing.T, loc string, ks keys.Set, o store.Options) (*store.Store, error)
	// Backend opens the engine itself at loc, for the tests that put a
	// fault between the store and the engine.
	Backend func(t *testing.T, loc string, ks keys.Set) (kv.Backend, error)
	// Exclusive: a location admits one open store at a time.
	Exclusive bool
}

// Run runs the whole suite on e, each test as a subtest.
func Run(t *testing.T, e Engine) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Engine)
	}{
		{"NoFieldWithoutGrant", testNoFieldWithoutGrant},
		{"ConcurrentCorrectCodesMintOneGrant", testConcurrentCorrectCodesMintOneGrant},
		{"ConcurrentWrongCodesMeetTheCaps", testConcurrentWrongCodesMeetTheCaps},
		{"EndGrant", testEndGrant},
		{"StaffViewMasksReference", testStaffViewMasksReference},
		{"AuditFailureReleasesNothing", testAuditFailureReleasesNothing},
		{"UnknownCommitReleasesNothing", testUnknownCommitReleasesNothing},
		{"VerifyOutcomes", testVerifyOutcomes},
		{"WrongCodesPerMobileSurviveNewCodes", testWrongCodesPerMobileSurviveNewCodes},
		{"ReopenKeepsState", testReopenKeepsState},
		{"WrongKeyRefused", testWrongKeyRefused},
		{"AuditHasNoPII", testAuditHasNoPII},
		{"AuditVerifyCatchesTampering", testAuditVerifyCatchesTampering},
		{"AuditChainIsLinearUnderConcurrency", testAuditChainIsLinearUnderConcurrency},
		{"DeletionScheduleSurvivesReopen", testDeletionScheduleSurvivesReopen},
		{"DeletionsClaimedOnce", testDeletionsClaimedOnce},
		{"GrantDoesNotFollowARecordToAnotherMobile", testGrantDoesNotFollowARecordToAnotherMobile},
		{"CooldownKeepsACodeOnlyForTheSameLookup", testCooldownKeepsACodeOnlyForTheSameLookup},
		{"DecoyCountsLikeARealTarget", testDecoyCountsLikeARealTarget},
		{"CooldownIsPerRequester", testCooldownIsPerRequester},
		{"OwnerBudgetAndTakeover", testOwnerBudgetAndTakeover},
		{"EveryRejectedCodeCountsAgainstTheRequester", testEveryRejectedCodeCountsAgainstTheRequester},
		{"SendWindowsLiveInTheStore", testSendWindowsLiveInTheStore},
		{"UpdateClaimedOnce", testUpdateClaimedOnce},
		{"ReservationsShareOneBudget", testReservationsShareOneBudget},
		{"LeaseHasOneHolder", testLeaseHasOneHolder},
		{"SessionHeldByOne", testSessionHeldByOne},
		{"TagsSharedAcrossReplicas", testTagsSharedAcrossReplicas},
		{"HitsCountAcrossReplicas", testHitsCountAcrossReplicas},
		{"ImportRejectsAndChangesNothing", testImportRejectsAndChangesNothing},
		{"ImportIdempotentAndUpdates", testImportIdempotentAndUpdates},
		{"ImportFirstLoadRejectsAndChangesNothing", testImportFirstLoadRejectsAndChangesNothing},
		{"ImportInterruptedResumes", testImportInterruptedResumes},
		{"RemoveRecords", testRemoveRecords},
		{"ReplaceRecords", testReplaceRecords},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, e) })
	}
}

// Clock is a settable test clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a Clock at a fixed moment.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *Clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestKeys derives a key set from a master key of 32 times seed.
func TestKeys(t *testing.T, seed byte) keys.Set {
	t.Helper()
	ks, err := keys.Derive(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Keys are the keys the suite opens its stores with, for engines'
// own tests that open a location the suite wrote.
func Keys(t *testing.T) keys.Set { return TestKeys(t, 7) }

// options are the keys and clock; the engine fills in the location.
func options(ks keys.Set, clk *Clock) store.Options {
	return store.Options{EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Now: clk.Now}
}

func (e Engine) openStore(t *testing.T, loc string, clk *Clock) *store.Store {
	t.Helper()
	ks := TestKeys(t, 7)
	s, err := e.Open(t, loc, ks, options(ks, clk))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openWith opens the store over the engine at loc, with wrap between them.
func (e Engine) openWith(t *testing.T, loc string, clk *Clock, ks keys.Set, wrap func(kv.Backend) kv.Backend) *store.Store {
	t.Helper()
	b, err := e.Backend(t, loc, ks)
	if err != nil {
		t.Fatal(err)
	}
	o := options(ks, clk)
	o.Backend = wrap(b)
	s, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T, e Engine) (*store.Store, *Clock) {
	t.Helper()
	clk := NewClock()
	s := e.openStore(t, e.Fresh(t, false), clk)
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}

// failAudit is a fault between the store and the engine: while set, every
// write of an audit entry (keys starting with 'a') fails, as a full disk
// or a lost database connection would; while unknown is set, every
// transaction commits and then reports that its outcome is unknown, as
// when the connection drops during COMMIT.
type failAudit struct{ on, unknown atomic.Bool }

var errAuditWrite = errors.New("storetest: audit write failed (injected)")

func (f *failAudit) set(on bool) { f.on.Store(on) }

func (f *failAudit) wrap(b kv.Backend) kv.Backend { return faultyBackend{b, f} }

type faultyBackend struct {
	kv.Backend
	f *failAudit
}

func (b faultyBackend) Update(ctx context.Context, fn func(kv.Txn) error) error {
	err := b.Backend.Update(ctx, func(t kv.Txn) error { return fn(faultyTxn{t, b.f}) })
	if err == nil && b.f.unknown.Load() {
		return fmt.Errorf("%w: connection reset during COMMIT (injected)", kv.ErrCommitUnknown)
	}
	return err
}

type faultyTxn struct {
	kv.Txn
	f *failAudit
}

func (t faultyTxn) fails(key []byte) bool { return t.f.on.Load() && len(key) > 0 && key[0] == 'a' }

func (t faultyTxn) Set(key, value []byte) error {
	if t.fails(key) {
		return errAuditWrite
	}
	return t.Txn.Set(key, value)
}

func (t faultyTxn) SetEntry(e *kv.Entry) error {
	if t.fails(e.Key) {
		return errAuditWrite
	}
	return t.Txn.SetEntry(e)
}
