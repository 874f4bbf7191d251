package pgkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/otpgate/otpgate/store/kv"
)

// txn is one transaction. rows remembers, for each key this Update read,
// whether a row was there (live or expired): a key read as missing is
// created with a plain INSERT, so a concurrent creation is a conflict
// rather than a lost write.
type txn struct {
	d     *DB
	ctx   context.Context
	tx    pgx.Tx
	write bool
	seen  map[string]bool
	// failed is the first statement error: PostgreSQL aborts the whole
	// transaction on it, so every later call returns it too.
	failed error
}

func (t *txn) fail(err error) error {
	err = classify(err)
	if t.failed == nil {
		t.failed = err
	}
	return err
}

func (t *txn) Discard() { _ = t.tx.Rollback(context.WithoutCancel(t.ctx)) }

func (t *txn) Get(key []byte) (kv.Item, error) {
	if t.failed != nil {
		return nil, t.failed
	}
	q := "SELECT v, expires_at IS NOT NULL AND expires_at <= now() FROM otpgate_kv WHERE k = $1"
	if t.write {
		q += " FOR UPDATE"
	}
	var (
		v       []byte
		expired bool
	)
	err := t.tx.QueryRow(t.ctx, q, key).Scan(&v, &expired)
	if errors.Is(err, pgx.ErrNoRows) {
		if t.write {
			t.seen[string(key)] = false
		}
		return nil, kv.ErrKeyNotFound
	}
	if err != nil {
		return nil, t.fail(err)
	}
	if t.write {
		t.seen[string(key)] = true
	}
	if expired {
		return nil, kv.ErrKeyNotFound
	}
	return &item{d: t.d, key: bytes.Clone(key), sealed: v}, nil
}

func (t *txn) Set(key, value []byte) error { return t.SetEntry(kv.NewEntry(key, value)) }

func (t *txn) SetEntry(e *kv.Entry) error {
	if t.failed != nil {
		return t.failed
	}
	if !t.write {
		return kv.ErrReadOnly
	}
	var ttl any // NULL: no expiry
	if e.TTL > 0 {
		ttl = e.TTL.Microseconds()
	}
	q := `INSERT INTO otpgate_kv (k, v, expires_at) VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond')`
	if present, read := t.seen[string(e.Key)]; !read || present {
		q += ` ON CONFLICT (k) DO UPDATE SET v = excluded.v, expires_at = excluded.expires_at`
	}
	if _, err := t.tx.Exec(t.ctx, q, e.Key, t.d.seal(e.Key, e.Value), ttl); err != nil {
		return t.fail(err)
	}
	t.seen[string(e.Key)] = true // ours now: a later write updates it
	return nil
}

func (t *txn) Delete(key []byte) error {
	if t.failed != nil {
		return t.failed
	}
	if !t.write {
		return kv.ErrReadOnly
	}
	if _, err := t.tx.Exec(t.ctx, "DELETE FROM otpgate_kv WHERE k = $1", key); err != nil {
		return t.fail(err)
	}
	if _, read := t.seen[string(key)]; read {
		t.seen[string(key)] = true // a row this transaction holds: re-creating it is an upsert
	}
	return nil
}

func (t *txn) NewIterator(o kv.IteratorOptions) kv.Iterator {
	lo, hi := bounds(o.Prefix)
	n := o.PrefetchSize
	if n < 64 {
		n = 256
	}
	return &iterator{t: t, reverse: o.Reverse, lo: lo, hi: hi, pageSize: n}
}

// item holds a value sealed until Value is called: a walk over keys alone
// decrypts nothing.
type item struct {
	d      *DB
	key    []byte
	sealed []byte
	plain  []byte
}

func (i *item) Key() []byte               { return i.key }
func (i *item) KeyCopy(dst []byte) []byte { return append(dst[:0], i.key...) }

func (i *item) Value(fn func([]byte) error) error {
	if i.plain == nil {
		v, err := i.d.open(i.key, i.sealed)
		if err != nil {
			return err
		}
		i.plain = v
	}
	return fn(i.plain)
}

func (i *item) ValueCopy(dst []byte) ([]byte, error) {
	var out []byte
	err := i.Value(func(v []byte) error { out = append(dst[:0], v...); return nil })
	return out, err
}

// iterator reads the range a page at a time; each page is read whole
// before the caller continues, so the transaction can run other
// statements between pages.
type iterator struct {
	t        *txn
	reverse  bool
	lo, hi   []byte
	pageSize int
	page     []*item
	i        int
	more     bool // the last page was full: there may be more
}

func (it *iterator) Rewind() { it.fetch(nil, true) }

func (it *iterator) Seek(key []byte) { it.fetch(key, true) }

// fetch loads the page that starts at from (nil: the range's start; the
// end, in reverse), including from itself when inclusive.
func (it *iterator) fetch(from []byte, inclusive bool) {
	it.page, it.i, it.more = it.page[:0], 0, false
	if it.t.failed != nil {
		return
	}
	cmp, order := ">", "ASC"
	if it.reverse {
		cmp, order = "<", "DESC"
	}
	if inclusive {
		cmp += "="
	}
	// Each bound is its own condition, present or absent, never "$n IS
	// NULL OR …": a generic plan could not use such a bound on the index
	// and would walk the table from lo to its end.
	conds, args := []string{"k >= $1"}, []any{it.lo}
	if it.hi != nil {
		args = append(args, it.hi)
		conds = append(conds, fmt.Sprintf("k < $%d", len(args)))
	}
	if from != nil {
		args = append(args, from)
		conds = append(conds, fmt.Sprintf("k %s $%d", cmp, len(args)))
	}
	args = append(args, it.pageSize)
	q := "SELECT k, v FROM otpgate_kv WHERE " + strings.Join(conds, " AND ") +
		" AND (expires_at IS NULL OR expires_at > now()) ORDER BY k " + order + fmt.Sprintf(" LIMIT $%d", len(args))
	rows, err := it.t.tx.Query(it.t.ctx, q, args...)
	if err != nil {
		it.t.fail(err)
		return
	}
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			it.t.fail(err)
			it.page = it.page[:0]
			return
		}
		it.page = append(it.page, &item{d: it.t.d, key: k, sealed: v})
	}
	if err := rows.Err(); err != nil {
		it.t.fail(err)
		it.page = it.page[:0]
		return
	}
	it.more = len(it.page) == it.pageSize
}

func (it *iterator) Valid() bool { return it.i < len(it.page) }

func (it *iterator) ValidForPrefix(prefix []byte) bool {
	return it.Valid() && bytes.HasPrefix(it.page[it.i].key, prefix)
}

func (it *iterator) Next() {
	it.i++
	if it.i >= len(it.page) && it.more {
		it.fetch(it.page[len(it.page)-1].key, false)
	}
}

func (it *iterator) Item() kv.Item { return it.page[it.i] }

func (it *iterator) Close() { it.page = nil }
