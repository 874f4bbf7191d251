package pgkv

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/otpgate/otpgate/store/kv"
)

// batchRows is how many writes one bulk transaction carries.
const batchRows = 8192

// op is one buffered write; v is sealed already (sealing is the writers'
// CPU, spread over their goroutines).
type op struct {
	k, v []byte
	del  bool
}

// batch is a bulk writer: writes are buffered, sealed by the caller's
// goroutine, and applied in order by one flusher, each chunk in one
// transaction: its sets as arrays in one INSERT (the last write of a key
// wins), a plain one when no key exists yet, else INSERT … ON CONFLICT.
type batch struct {
	d      *DB
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	buf       []op
	err       error
	full      chan []op
	closeFull sync.Once
	done      chan struct{}
}

func (d *DB) NewWriteBatch(ctx context.Context) kv.WriteBatch {
	ctx, cancel := context.WithCancel(ctx)
	b := &batch{d: d, ctx: ctx, cancel: cancel, full: make(chan []op, 2), done: make(chan struct{})}
	go b.flusher()
	return b
}

func (b *batch) flusher() {
	defer close(b.done)
	for ops := range b.full {
		if b.failed() != nil {
			continue
		}
		if err := b.apply(ops); err != nil {
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
			b.cancel()
		}
	}
}

func (b *batch) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// add appends the ops of one group; a chunk never splits a group.
func (b *batch) add(ops ...op) error {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return b.err
	}
	b.buf = append(b.buf, ops...)
	var ready []op
	if len(b.buf) >= batchRows {
		ready, b.buf = b.buf, make([]op, 0, batchRows)
	}
	b.mu.Unlock()
	if ready != nil {
		select {
		case b.full <- ready:
		case <-b.ctx.Done():
			return b.stopped()
		}
	}
	return nil
}

func (b *batch) stopped() error {
	if err := b.failed(); err != nil {
		return err
	}
	return b.ctx.Err()
}

func (b *batch) Set(key, value []byte) error {
	if b.d.readOnly {
		return kv.ErrReadOnly
	}
	return b.add(op{k: append([]byte{}, key...), v: b.d.seal(key, value)})
}

func (b *batch) Delete(key []byte) error {
	if b.d.readOnly {
		return kv.ErrReadOnly
	}
	return b.add(op{k: append([]byte{}, key...), del: true})
}

// Write buffers a group so that one transaction applies all of it.
func (b *batch) Write(group ...kv.Write) error {
	if b.d.readOnly {
		return kv.ErrReadOnly
	}
	ops := make([]op, len(group))
	for i, w := range group {
		ops[i] = op{k: append([]byte{}, w.Key...), del: w.Delete}
		if !w.Delete {
			ops[i].v = b.d.seal(w.Key, w.Value)
		}
	}
	return b.add(ops...)
}

// Flush applies what is buffered and waits for the flusher.
func (b *batch) Flush() error {
	b.mu.Lock()
	rest := b.buf
	b.buf = nil
	b.mu.Unlock()
	if len(rest) > 0 {
		select {
		case b.full <- rest:
		case <-b.ctx.Done():
		}
	}
	b.closeFull.Do(func() { close(b.full) })
	<-b.done
	b.cancel()
	return b.failed()
}

// Cancel drops what is not applied yet; safe after Flush. Like Flush, it
// must not run while another goroutine is still in Set or Delete.
func (b *batch) Cancel() {
	b.cancel()
	b.mu.Lock()
	b.buf = nil
	b.mu.Unlock()
	b.closeFull.Do(func() { close(b.full) })
	<-b.done
}

// apply writes one chunk in one transaction, preserving the order of
// sets and deletes. A chunk of sets only (a bulk load) is one statement.
func (b *batch) apply(ops []op) error {
	ctx := b.ctx
	if !slices.ContainsFunc(ops, func(o op) bool { return o.del }) {
		return bulkError(insertSets(ctx, b.d.pool, ops))
	}
	err := pgx.BeginTxFunc(ctx, b.d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for start := 0; start < len(ops); {
			end := start
			for end < len(ops) && ops[end].del == ops[start].del {
				end++
			}
			var err error
			if ops[start].del {
				err = deleteRun(ctx, tx, ops[start:end])
			} else {
				err = upsertSets(ctx, tx, ops[start:end])
			}
			if err != nil {
				return err
			}
			start = end
		}
		return nil
	})
	return bulkError(err)
}

func bulkError(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("pgkv: bulk write: %w", classify(err))
}

// The sets of a run travel as two arrays (keys, sealed values) in one
// statement; DISTINCT ON keeps the last write of a key.
const (
	insertSetsSQL = `INSERT INTO otpgate_kv (k, v, expires_at)
		SELECT DISTINCT ON (k) k, v, NULL::timestamptz
		FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS t(k, v, seq) ORDER BY k, seq DESC`
	upsertSetsSQL = insertSetsSQL + `
		ON CONFLICT (k) DO UPDATE SET v = excluded.v, expires_at = NULL`
)

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func setArrays(ops []op) (keys, vals [][]byte) {
	keys, vals = make([][]byte, len(ops)), make([][]byte, len(ops))
	for i, o := range ops {
		keys[i], vals[i] = o.k, o.v
	}
	return keys, vals
}

// insertSets writes a chunk of sets. A first load creates every key, so
// it tries a plain INSERT, without the upsert's speculative insertion (a
// second index descent and WAL record per row); a key already there fails
// that statement whole, nothing of it applied, and the upsert runs.
func insertSets(ctx context.Context, db execer, ops []op) error {
	keys, vals := setArrays(ops)
	_, err := db.Exec(ctx, insertSetsSQL, keys, vals)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		_, err = db.Exec(ctx, upsertSetsSQL, keys, vals)
	}
	return err
}

// upsertSets writes a run of sets inside a chunk's transaction.
func upsertSets(ctx context.Context, tx pgx.Tx, ops []op) error {
	keys, vals := setArrays(ops)
	_, err := tx.Exec(ctx, upsertSetsSQL, keys, vals)
	return err
}

func deleteRun(ctx context.Context, tx pgx.Tx, ops []op) error {
	keys := make([][]byte, len(ops))
	for i, o := range ops {
		keys[i] = o.k
	}
	_, err := tx.Exec(ctx, "DELETE FROM otpgate_kv WHERE k = ANY($1)", keys)
	return err
}
