package pgkv

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

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
// transaction: COPY into a session's staging table, then one INSERT … ON
// CONFLICT into otpgate_kv (the last write of a key wins).
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
// sets and deletes.
func (b *batch) apply(ops []op) error {
	ctx := b.ctx
	err := pgx.BeginTxFunc(ctx, b.d.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS otpgate_load (seq int, k bytea, v bytea) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		for start := 0; start < len(ops); {
			end := start
			for end < len(ops) && ops[end].del == ops[start].del {
				end++
			}
			var err error
			if ops[start].del {
				err = deleteRun(ctx, tx, ops[start:end])
			} else {
				err = setRun(ctx, tx, ops[start:end])
			}
			if err != nil {
				return err
			}
			start = end
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("pgkv: bulk write: %w", classify(err))
	}
	return nil
}

func setRun(ctx context.Context, tx pgx.Tx, ops []op) error {
	if _, err := tx.Exec(ctx, "TRUNCATE otpgate_load"); err != nil {
		return err
	}
	i := 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"otpgate_load"}, []string{"seq", "k", "v"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(ops) {
				return nil, nil
			}
			o := ops[i]
			i++
			return []any{int32(i), o.k, o.v}, nil
		}))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO otpgate_kv (k, v, expires_at)
		SELECT DISTINCT ON (k) k, v, NULL FROM otpgate_load ORDER BY k, seq DESC
		ON CONFLICT (k) DO UPDATE SET v = excluded.v, expires_at = NULL`)
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
