// Package store keeps otpgate's state — beneficiary records and their
// keyed-hash indexes, one-time-code challenges, grants, the counters that
// protect codes, and the hash-chained audit log — as keys and values in an
// engine of the persistence contract (store/kv): an embedded, encrypted
// Badger database by default, or PostgreSQL shared by several replicas.
// The logic is written once, over the contract, and so behaves the same on
// both.
//
// The store is where the product's invariant is enforced: the only calls
// that return record fields (Summaries and Release) take a grant minted by a
// successful code verification and check it — exists, unexpired, bound to
// the caller, covering the record — inside the same transaction that writes
// the audit entry, and the audit entry is synced to disk before a single
// field is returned.
package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store/badgerkv"
	"github.com/otpgate/otpgate/store/kv"
)

// Errors returned by the store.
var (
	ErrNotFound    = errors.New("store: not found")
	ErrNoGrant     = errors.New("store: no valid grant")
	ErrWrongKey    = errors.New("store: the master key does not open this data directory")
	ErrLocked      = errors.New("store: data directory is in use by another otpgate process")
	ErrClosed      = errors.New("store: closed")
	ErrAuditBroken = errors.New("store: audit chain broken")
	ErrBadOptions  = errors.New("store: bad options")
	// ErrNotBadger: a Badger-only operation (backup) on another engine.
	ErrNotBadger = errors.New("store: the state is in PostgreSQL: back it up with PostgreSQL's own tools (pg_basebackup, WAL archiving); otpgate backup is for the embedded store")
)

// Options configure Open. Keys come from internal/keys.
type Options struct {
	// Dir is the Badger directory; ignored when InMemory is set.
	Dir      string
	InMemory bool
	// EncryptionKey (32 bytes) encrypts every table and value log at rest.
	EncryptionKey []byte
	// IndexKey keys the HMACs that index mobiles, reference ids and ID numbers.
	IndexKey []byte
	// AuditKey keys the HMAC chain of the audit log.
	AuditKey []byte
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// ReadOnly opens without taking writes (audit verify/export).
	ReadOnly bool
	// Backend, when set, is the engine to keep the state in instead of a
	// Badger database in Dir (PostgreSQL: store/pgkv, which encrypts each
	// value itself, so EncryptionKey is not used). The store closes it.
	// Dir, when set, is where an import keeps its scratch files.
	Backend kv.Backend
}

func (o Options) validate() error {
	var errs []error
	if !o.InMemory && o.Dir == "" && o.Backend == nil {
		errs = append(errs, errors.New("Dir is empty"))
	}
	for name, k := range map[string][]byte{"EncryptionKey": o.EncryptionKey, "IndexKey": o.IndexKey, "AuditKey": o.AuditKey} {
		if name == "EncryptionKey" && o.Backend != nil {
			continue
		}
		if len(k) != 32 {
			errs = append(errs, fmt.Errorf("%s must be 32 bytes", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	return nil
}

// Store is safe for concurrent use.
type Store struct {
	kv kv.Backend
	// bdb is the Badger database underneath, nil on PostgreSQL: backups
	// and value-log GC are Badger's own.
	bdb      *badger.DB
	dir      string // "" in memory
	log      *slog.Logger
	now      func() time.Time
	indexKey []byte
	auditKey []byte

	// auditMu serialises every transaction that appends to the audit chain,
	// so the chain head never conflicts and entries are totally ordered.
	auditMu sync.Mutex
}

// Open opens (or creates) the database. It fails with ErrWrongKey when the
// directory was written with another master key and ErrLocked when another
// process holds it.
func Open(opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Backend != nil {
		return open(opts.Backend, nil, opts, log)
	}
	bo := BadgerOptions(opts)
	db, err := badger.Open(bo)
	switch {
	case errors.Is(err, badger.ErrEncryptionKeyMismatch):
		return nil, ErrWrongKey
	case err != nil && isLockErr(err):
		return nil, fmt.Errorf("%w: %s", ErrLocked, opts.Dir)
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	if opts.InMemory {
		opts.Dir = ""
	}
	return open(badgerkv.New(db), db, opts, log)
}

// open builds the store over an open engine and checks the keys; on error
// it closes the engine.
func open(b kv.Backend, bdb *badger.DB, opts Options, log *slog.Logger) (*Store, error) {
	now := opts.Now
	if now == nil {
		now = b.Now
	}
	s := &Store{kv: b, bdb: bdb, dir: opts.Dir, log: log, now: now, indexKey: opts.IndexKey, auditKey: opts.AuditKey}
	if err := s.checkIndexKey(opts.ReadOnly); err != nil {
		_ = b.Close()
		return nil, err
	}
	return s, nil
}

// BadgerOptions returns the Badger options Open uses. Exported for tools
// that measure raw Badger against the store on equal terms.
//
// They are chosen so that the process's memory does not grow with the
// data. Heap and allocation profiles of a 1,000,000-record import and of
// serve on its directory showed where Badger's memory goes (pure-Go build:
// z.Calloc is the Go heap):
//
//   - Table builders. Each compaction runs up to 8 + splits builders at
//     once, per compactor, and each keeps its whole table (compressed,
//     encrypted blocks) until it is written: memory = builders × table
//     size. With the default TableSizeMultiplier of 2 the table size
//     doubles per level, so deeper data (more records) meant bigger
//     builders: most of the 1 GB heap peak. Here every level uses 2 MB
//     tables (multiplier 1) and one compactor runs besides L0's.
//   - Memtables: each is an arena of MemTableSize plus a batch allowance,
//     NumMemtables of them may wait to flush, and flushing one builds a
//     level-0 table of its size (about 2× in builder buffers). 8 MB × 2
//     (the smallest Badger accepts in memory) halves that to ~40 MB; the
//     cost is more level-0 tables to compact.
//   - Caches: with encryption every block read is decrypted into the block
//     cache, and table indexes and bloom filters live in the index cache
//     (IndexCacheSize > 0; otherwise every open table's index and filter
//     stay on the heap, which grows with the number of tables). Both are
//     bounded at 16 MB: a record read is one or two blocks.
//   - Level-0 tables are compacted early (3) and writes stall late (8):
//     fewer overlapping tables for a read, a bounded backlog for an import.
func BadgerOptions(o Options) badger.Options {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := badger.DefaultOptions(o.Dir)
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	}
	bo = bo.
		WithLogger(badgerLogger{log.With("component", "badger")}).
		WithEncryptionKey(o.EncryptionKey).
		WithEncryptionKeyRotationDuration(30 * 24 * time.Hour).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBaseLevelSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2). // the minimum: compactor 0 serves L0, one more the rest
		WithNumGoroutines(2). // streams (backup): one per core
		WithMetricsEnabled(false).
		WithReadOnly(o.ReadOnly)
	// Every level's tables are BaseTableSize: a builder's memory must not
	// depend on how deep the tree is, i.e. on the number of records.
	bo.TableSizeMultiplier = 1
	return bo
}

func isLockErr(err error) bool {
	// Badger reports a held directory lock only as text.
	s := err.Error()
	return strings.Contains(s, "Cannot acquire directory lock") || strings.Contains(s, "resource temporarily unavailable")
}

// checkIndexKey guards against a master key whose storage key opens the
// directory but whose other derived keys differ (impossible with HKDF from
// one master, but cheap to check and it catches a corrupted key file).
func (s *Store) checkIndexKey(readOnly bool) error {
	want := s.mac(s.indexKey, "keycheck")
	return s.kv.Update(context.Background(), func(txn kv.Txn) error {
		item, err := txn.Get(keyMetaKeyCheck)
		if errors.Is(err, kv.ErrKeyNotFound) {
			if readOnly {
				return nil
			}
			return txn.Set(keyMetaKeyCheck, want)
		}
		if err != nil {
			return err
		}
		err = item.Value(func(v []byte) error {
			if !hmac.Equal(v, want) {
				return ErrWrongKey
			}
			return nil
		})
		if errors.Is(err, kv.ErrUnreadable) {
			return ErrWrongKey
		}
		return err
	})
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.kv.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// CollectGarbage rewrites value-log files that are at least half garbage,
// as Badger advises: round after round until one finds nothing to rewrite
// (at most 16 rounds a call). Call it on a ticker.
func (s *Store) CollectGarbage() error {
	if s.bdb == nil {
		return nil // PostgreSQL vacuums itself
	}
	for range 16 {
		err := s.bdb.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Key prefixes. One byte each; the layout is part of the on-disk format.
var (
	keyMetaKeyCheck = []byte("x/keycheck")
	keyMetaImport   = []byte("x/import-in-progress")
	keyAuditHead    = []byte("A")
)

const (
	pfxRecord     = 'r' // r + ref hash → record
	pfxMobileIdx  = 'm' // m + mobile hash + ref hash → nil
	pfxIDIdx      = 'i' // i + id hash + ref hash → nil
	pfxChallenge  = 'c' // c + flow hash → challenge
	pfxGrant      = 'g' // g + grant id → grant
	pfxCounter    = 'w' // w + kind + subject hash → window
	pfxAudit      = 'a' // a + seq (8 bytes BE) → entry
	pfxReleaseDel = 'd' // d + due time + id → scheduled chat deletion
	pfxHistory    = 'h' // h + record handle + audit seq → nil
)

const hashLen = 16

// mac returns the first 16 bytes of HMAC-SHA256(key, label): 128 bits is
// ample against collisions at any realistic record count and halves index size.
func (s *Store) mac(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)[:hashLen]
}

func (s *Store) mobileHash(m pii.Mobile) []byte { return s.mac(s.indexKey, "mobile:"+m.E164()) }
func (s *Store) refHash(ref string) []byte      { return s.mac(s.indexKey, "ref:"+ref) }
func (s *Store) idHash(id pii.IDNumber) []byte  { return s.mac(s.indexKey, "id:"+id.Value()) }

// MobileKey is the keyed hash of a mobile, hex-encoded: safe to log and to
// use as a rate-limit key.
func (s *Store) MobileKey(m pii.Mobile) string { return hex.EncodeToString(s.mobileHash(m)) }

// SubjectKey hashes any opaque subject (a requester id, a prefix) with the
// index key, for counters and logs that must not carry the raw value.
func (s *Store) SubjectKey(label string) string {
	return hex.EncodeToString(s.mac(s.indexKey, "subject:"+label))
}

func join(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// update runs fn in a read-write transaction, retrying on SSI conflicts.
func (s *Store) update(ctx context.Context, fn func(txn kv.Txn) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.kv.Update(ctx, fn)
		if !errors.Is(err, kv.ErrConflict) {
			return err
		}
		if attempt >= 100 {
			return fmt.Errorf("store: gave up after %d conflicts: %w", attempt, err)
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

// sync makes committed writes durable. Badger does not sync each commit
// (SyncWrites is off to keep imports fast); everything that must survive a
// power cut — consumed codes, counters, grants, audit — is followed by this.
func (s *Store) sync() error {
	if err := s.kv.Sync(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// badgerLogger forwards Badger's own logging to slog at lower levels: its
// info lines are housekeeping chatter.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.kv.View(ctx, func(txn kv.Txn) error {
		_, err := txn.Get(keyMetaKeyCheck)
		if errors.Is(err, kv.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

// Census counts the live keys of each kind. Expired entries (codes, grants,
// links, counters past their TTL) are not counted: it shows what the store
// holds, for tools and for checking that short-lived state stays bounded.
type Census struct {
	Keys       int64
	Records    int64
	Challenges int64
	Grants     int64
	Counters   int64
	Links      int64
	Deletions  int64
	Audit      int64 // audit entries
}

// Census walks every key (not the values): proportional to the store's size.
func (s *Store) Census(ctx context.Context) (Census, error) {
	var c Census
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if c.Keys%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			c.Keys++
			switch it.Item().Key()[0] {
			case pfxRecord:
				c.Records++
			case pfxChallenge:
				c.Challenges++
			case pfxGrant:
				c.Grants++
			case pfxCounter:
				c.Counters++
			case pfxLink:
				c.Links++
			case pfxReleaseDel:
				c.Deletions++
			case pfxAudit:
				c.Audit++
			}
		}
		return nil
	})
	return c, err
}
