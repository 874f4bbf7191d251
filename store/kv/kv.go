// Package kv is the persistence contract of otpgate's store: the one
// interface both engines implement — the embedded Badger database
// (store/badgerkv, the zero-configuration default) and PostgreSQL
// (store/pgkv, for several replicas) — and the types they share. It imports
// neither engine.
//
// The store (package store) keeps every piece of state — records and their
// keyed-hash indexes, challenges, grants, counters, links, the deletion
// schedule, conversation sessions, update marks and the audit chain — as
// keys and values in serialisable transactions, so the logic that enforces
// the invariant (no field without a grant, every attempt counted before the
// compare, the audit entry committed with the release) is written once and
// is the same on both engines. kvtest is the conformance suite both engines
// pass; store/storetest runs the store's own behaviour on both.
//
// The contract is modelled on Badger's transaction API, which the store was
// written against, with these guarantees every engine gives:
//
//   - Isolation. An Update transaction is serialisable with respect to
//     every key it reads with Get or writes: if another transaction
//     committed a write to such a key after this one read it, this one
//     fails with ErrConflict and nothing of it is applied; the caller
//     retries from the start. (Badger detects the conflict at commit;
//     PostgreSQL locks each key read with Get until the end of the
//     transaction, so the second reader waits instead, and reports a
//     conflict only when two transactions created the same missing key or
//     deadlocked.) Iterators read a consistent view but do not protect what
//     they read against concurrent writers.
//   - Atomicity. Update applies all of fn's writes or none: when fn returns
//     an error, nothing is written and the error is returned unchanged.
//   - Durability. After Sync returns nil, every transaction that had
//     committed before the call survives a crash of the process and of the
//     engine (PostgreSQL with synchronous_commit=on makes each commit durable
//     on its own; Badger needs the Sync).
//   - Unknown outcome. When the engine cannot tell whether a commit took
//     effect (the connection dropped during COMMIT), Update returns an
//     error wrapping ErrCommitUnknown; the caller must release nothing on
//     that path.
//   - Expiry. A key written with a TTL is invisible to Get and iterators
//     once the TTL has passed on the engine's clock (the database's, for
//     PostgreSQL); it is removed later.
package kv

import (
	"context"
	"errors"
	"time"
)

// Errors every engine returns.
var (
	// ErrKeyNotFound: Get found no live value for the key.
	ErrKeyNotFound = errors.New("kv: key not found")
	// ErrConflict: the transaction lost a race with another one and did
	// not commit; retry it from the start.
	ErrConflict = errors.New("kv: transaction conflict")
	// ErrCommitUnknown: the commit may or may not have taken effect.
	ErrCommitUnknown = errors.New("kv: commit outcome unknown")
	// ErrUnreadable: a stored value does not decrypt or authenticate: the
	// engine was opened with another key, or the value was tampered with.
	ErrUnreadable = errors.New("kv: a stored value does not open with this key")
	// ErrReadOnly: a write in a read-only transaction or database.
	ErrReadOnly = errors.New("kv: read-only")
)

// Backend is one engine's database.
type Backend interface {
	// Update runs fn in a read-write transaction and commits it when fn
	// returns nil. It runs fn once: on ErrConflict the caller retries.
	Update(ctx context.Context, fn func(Txn) error) error
	// View runs fn in a read-only transaction over a consistent snapshot.
	View(ctx context.Context, fn func(Txn) error) error
	// NewReadTxn opens a read-only snapshot the caller must Discard; it
	// lets a long job read the state from before its own writes.
	NewReadTxn(ctx context.Context) (ReadTxn, error)
	// NewWriteBatch returns a batch for bulk loads: writes are applied in
	// order, in as many transactions as the engine finds efficient, and
	// are all applied once Flush returns nil. A batch is not isolated from
	// concurrent transactions; the store uses it only for records.
	NewWriteBatch(ctx context.Context) WriteBatch
	// DropPrefix deletes every key that starts with one of the prefixes.
	DropPrefix(ctx context.Context, prefixes ...[]byte) error
	// Sync makes every committed transaction durable (see the package doc).
	Sync() error
	// Ping checks that the engine answers.
	Ping(ctx context.Context) error
	// Now is the engine's clock: the one every replica's expiry decisions
	// use (the database's, for PostgreSQL).
	Now() time.Time
	Close() error
}

// Txn is one transaction. It is not safe for concurrent use.
type Txn interface {
	// Get returns the live value of key, or ErrKeyNotFound. In an Update
	// transaction the key is then protected as the package doc says,
	// whether or not it was found.
	Get(key []byte) (Item, error)
	// Set writes key without a TTL.
	Set(key, value []byte) error
	// SetEntry writes an entry, with its TTL when it has one.
	SetEntry(e *Entry) error
	// Delete removes key (no error when it is absent).
	Delete(key []byte) error
	// NewIterator iterates over the keys with opts.Prefix in byte order
	// (reverse order when opts.Reverse), including this transaction's own
	// writes. The caller must Close it.
	NewIterator(opts IteratorOptions) Iterator
}

// ReadTxn is a Txn the caller ends with Discard.
type ReadTxn interface {
	Txn
	Discard()
}

// Item is one key and its value. Key's bytes and the bytes Value passes
// to fn are valid only until the iterator moves or the transaction ends;
// copy them to keep them.
type Item interface {
	Key() []byte
	KeyCopy(dst []byte) []byte
	Value(fn func(val []byte) error) error
	ValueCopy(dst []byte) ([]byte, error)
}

// Iterator walks keys in order.
type Iterator interface {
	// Rewind moves to the first key (the last, in reverse).
	Rewind()
	// Seek moves to the first key ≥ key (≤ key, in reverse).
	Seek(key []byte)
	Valid() bool
	// ValidForPrefix is Valid and the current key starts with prefix.
	ValidForPrefix(prefix []byte) bool
	Next()
	Item() Item
	Close()
}

// IteratorOptions choose the keys an iterator visits.
type IteratorOptions struct {
	Prefix  []byte
	Reverse bool
	// PrefetchValues and PrefetchSize are hints: the engine may load that
	// many values ahead.
	PrefetchValues bool
	PrefetchSize   int
}

// DefaultIteratorOptions visit every key, prefetching values.
var DefaultIteratorOptions = IteratorOptions{PrefetchValues: true, PrefetchSize: 100}

// Write is one write of a group: a set, or a delete when Delete is true.
type Write struct {
	Key, Value []byte
	Delete     bool
}

// Entry is a write with options.
type Entry struct {
	Key, Value []byte
	// TTL, when positive, makes the entry expire that long after the write.
	TTL time.Duration
}

// NewEntry returns an entry without a TTL.
func NewEntry(key, value []byte) *Entry { return &Entry{Key: key, Value: value} }

// WithTTL sets the entry's TTL.
func (e *Entry) WithTTL(d time.Duration) *Entry { e.TTL = d; return e }

// WriteBatch is a bulk writer (Backend.NewWriteBatch). Its methods are
// safe for concurrent use, except Flush and Cancel, which run after every
// other call has returned.
type WriteBatch interface {
	Set(key, value []byte) error
	Delete(key []byte) error
	// Write applies one group of writes (a record and its index entries)
	// in order. An engine that other processes read while the batch runs
	// (PostgreSQL) applies a group in one transaction, so that a reader
	// sees all of it or none; Badger may split a group, which no reader
	// sees, because the store holds its directory alone while it imports.
	Write(group ...Write) error
	// Flush applies what is left and waits for every write.
	Flush() error
	// Cancel drops what is not yet applied.
	Cancel()
}
