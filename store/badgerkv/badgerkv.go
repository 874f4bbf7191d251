// Package badgerkv is the embedded engine of the persistence contract
// (store/kv): a thin adapter over a Badger database, which the contract
// was modelled on. Badger's optimistic transactions detect a conflict at
// commit (kv.ErrConflict); Sync flushes the write-ahead value log.
package badgerkv

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/store/kv"
)

// DB adapts an open Badger database. The store owns it; tools that need
// Badger itself (backup streams, value-log GC) use Badger.
type DB struct{ db *badger.DB }

var _ kv.Backend = (*DB)(nil)

// New wraps db.
func New(db *badger.DB) *DB { return &DB{db: db} }

// Badger is the database underneath.
func (d *DB) Badger() *badger.DB { return d.db }

func (d *DB) Update(ctx context.Context, fn func(kv.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return convert(d.db.Update(func(t *badger.Txn) error { return fn(txn{t}) }))
}

func (d *DB) View(ctx context.Context, fn func(kv.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return convert(d.db.View(func(t *badger.Txn) error { return fn(txn{t}) }))
}

func (d *DB) NewReadTxn(ctx context.Context) (kv.ReadTxn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return readTxn{txn{d.db.NewTransaction(false)}}, nil
}

func (d *DB) NewWriteBatch(context.Context) kv.WriteBatch { return batch{d.db.NewWriteBatch()} }

// batch is Badger's own WriteBatch; a group is written in order.
type batch struct{ *badger.WriteBatch }

func (b batch) Write(group ...kv.Write) error {
	for _, w := range group {
		var err error
		if w.Delete {
			err = b.Delete(w.Key)
		} else {
			err = b.Set(w.Key, w.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) DropPrefix(_ context.Context, prefixes ...[]byte) error {
	return d.db.DropPrefix(prefixes...)
}

func (d *DB) Sync() error { return d.db.Sync() }

func (d *DB) Ping(ctx context.Context) error {
	return d.View(ctx, func(t kv.Txn) error {
		_, err := t.Get([]byte("x/ping"))
		if errors.Is(err, kv.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

// Now is the process's clock: Badger's TTLs run on it.
func (d *DB) Now() time.Time { return time.Now() }

func (d *DB) Close() error { return d.db.Close() }

// convert maps Badger's errors onto the contract's.
func convert(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrConflict):
		return kv.ErrConflict
	case errors.Is(err, badger.ErrKeyNotFound):
		return kv.ErrKeyNotFound
	}
	return err
}

type txn struct{ t *badger.Txn }

func (t txn) Get(key []byte) (kv.Item, error) {
	it, err := t.t.Get(key)
	if err != nil {
		return nil, convert(err)
	}
	return it, nil
}

func (t txn) Set(key, value []byte) error { return convert(t.t.Set(key, value)) }

func (t txn) SetEntry(e *kv.Entry) error {
	be := badger.NewEntry(e.Key, e.Value)
	if e.TTL > 0 {
		be = be.WithTTL(e.TTL)
	}
	return convert(t.t.SetEntry(be))
}

func (t txn) Delete(key []byte) error { return convert(t.t.Delete(key)) }

func (t txn) NewIterator(o kv.IteratorOptions) kv.Iterator {
	return iterator{t.t.NewIterator(badger.IteratorOptions{
		Prefix: o.Prefix, Reverse: o.Reverse, PrefetchValues: o.PrefetchValues, PrefetchSize: o.PrefetchSize,
	})}
}

type readTxn struct{ txn }

func (r readTxn) Discard() { r.t.Discard() }

// iterator returns Badger's items as they are (*badger.Item has Item's
// methods), so a walk allocates nothing per key beyond Badger's own.
type iterator struct{ *badger.Iterator }

func (i iterator) Item() kv.Item { return i.Iterator.Item() }
