// Package pgkv is the PostgreSQL engine of the persistence contract
// (store/kv), for running several otpgate replicas on one database.
//
// Everything lives in one table, kv(k bytea primary key, v bytea,
// expires_at timestamptz). The keys are the store's own: one-byte prefixes
// followed by keyed HMACs, random ids or sequence numbers, never a mobile,
// a name or an ID number. Every value is sealed with AES-256-GCM under a
// key derived from the master key, with the row's key as associated data,
// so a database administrator sees nothing in clear and cannot move a
// value to another key unnoticed.
//
// Transactions run at Read Committed with pessimistic locks: Get in an
// Update transaction is SELECT … FOR UPDATE, so a second transaction that
// reads the same key waits until the first has committed and then reads
// its write (an attempt counter is never lost, a consumed code never
// consumed twice). A key read as missing is created with a plain INSERT:
// when another transaction created it meanwhile the INSERT fails and the
// transaction reports kv.ErrConflict, as it does on a deadlock or a
// serialisation failure; the store retries. Expiry uses the database's
// clock. Each COMMIT is durable when the server runs with
// synchronous_commit=on (the default; Open warns otherwise); a COMMIT
// whose outcome is unknown is reported as kv.ErrCommitUnknown.
package pgkv

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/otpgate/otpgate/store/kv"
)

// Options configure Open.
type Options struct {
	// URL is the libpq/pgx connection string (OTPGATE_DATABASE_URL).
	URL string
	// Key (32 bytes) seals every value (keys.Set.Rows).
	Key []byte
	// MaxConns bounds the pool; 0 means 16.
	MaxConns int32
	Logger   *slog.Logger
	// ReadOnly opens without migrating and refuses writes.
	ReadOnly bool
}

// DB is an open PostgreSQL engine. It is safe for concurrent use.
type DB struct {
	pool     *pgxpool.Pool
	aead     cipher.AEAD
	log      *slog.Logger
	readOnly bool
	// skew is the database clock minus ours, in nanoseconds, refreshed in
	// the background: Now is the database's clock without a round trip.
	skew atomic.Int64
	stop context.CancelFunc
	done sync.WaitGroup
}

var _ kv.Backend = (*DB)(nil)

// Open connects, applies the schema migrations (serialised across
// replicas starting at once) and starts the housekeeping: the clock and
// the removal of expired rows.
func Open(ctx context.Context, o Options) (*DB, error) {
	if len(o.Key) != 32 {
		return nil, errors.New("pgkv: Key must be 32 bytes")
	}
	block, err := aes.NewCipher(o.Key)
	if err != nil {
		return nil, fmt.Errorf("pgkv: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("pgkv: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, errors.New("pgkv: the database URL is not a valid PostgreSQL connection string")
	}
	cfg.MaxConns = o.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "otpgate"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgkv: connect: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DB{pool: pool, aead: aead, log: log, readOnly: o.ReadOnly}
	if err := d.start(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

func (d *DB) start(ctx context.Context) error {
	if err := d.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgkv: connect: %w", err)
	}
	if !d.readOnly {
		if err := migrate(ctx, d.pool); err != nil {
			return err
		}
	} else if err := checkSchema(ctx, d.pool); err != nil {
		return err
	}
	var sc string
	if err := d.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sc); err == nil && sc != "on" && sc != "remote_apply" && sc != "remote_write" {
		d.log.Warn("synchronous_commit is not on: a crash of the database can lose acknowledged counters and consumed codes", "synchronous_commit", sc)
	}
	if err := d.measureSkew(ctx); err != nil {
		return err
	}
	bg, stop := context.WithCancel(context.Background())
	d.stop = stop
	d.done.Go(func() { d.housekeep(bg) })
	return nil
}

// housekeep keeps the clock in step and removes expired rows.
func (d *DB) housekeep(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = d.measureSkew(ctx)
		if !d.readOnly {
			d.sweep(ctx)
		}
	}
}

// sweep deletes rows that expired more than a minute ago, a bounded
// number at a time. Every replica sweeps; a row a transaction holds is
// waited for, not skipped.
func (d *DB) sweep(ctx context.Context) {
	for range 100 {
		tag, err := d.pool.Exec(ctx, `DELETE FROM otpgate_kv WHERE k IN (
			SELECT k FROM otpgate_kv WHERE expires_at < now() - interval '1 minute' LIMIT 1000 FOR UPDATE SKIP LOCKED)`)
		if err != nil || tag.RowsAffected() < 1000 {
			return
		}
	}
}

// measureSkew reads the database clock a few times and keeps the reading
// with the shortest round trip, whose midpoint stands for the moment it
// was read (as NTP does): the error is at most half that round trip.
func (d *DB) measureSkew(ctx context.Context) error {
	best, bestRTT := time.Duration(0), time.Duration(-1)
	for range 5 {
		var db time.Time
		before := time.Now()
		if err := d.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&db); err != nil {
			return fmt.Errorf("pgkv: read the database clock: %w", err)
		}
		rtt := time.Since(before)
		if bestRTT < 0 || rtt < bestRTT {
			best, bestRTT = db.Sub(before.Add(rtt/2)), rtt
		}
	}
	d.skew.Store(int64(best))
	return nil
}

// Now is the database's clock (see the package doc).
func (d *DB) Now() time.Time { return time.Now().Add(time.Duration(d.skew.Load())) }

// Pool is the connection pool, for the parts of otpgate that speak SQL
// themselves (leases).
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return d.pool.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Sync is a no-op: with synchronous_commit=on each COMMIT was durable when
// it returned.
func (d *DB) Sync() error { return nil }

func (d *DB) Close() error {
	if d.stop != nil {
		d.stop()
		d.done.Wait()
	}
	d.pool.Close()
	return nil
}

func (d *DB) Update(ctx context.Context, fn func(kv.Txn) error) error {
	if d.readOnly {
		return kv.ErrReadOnly
	}
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return classify(err)
	}
	t := &txn{d: d, ctx: ctx, tx: tx, write: true, seen: map[string]bool{}}
	ferr := fn(t)
	if ferr == nil && t.failed != nil {
		ferr = t.failed // fn ignored a failed statement: the transaction is aborted
	}
	if ferr != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if t.failed != nil && errors.Is(t.failed, kv.ErrConflict) {
			return kv.ErrConflict
		}
		return ferr
	}
	if err := tx.Commit(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return classify(err)
		}
		// The server may have committed before the connection went.
		return fmt.Errorf("%w: %w", kv.ErrCommitUnknown, err)
	}
	return nil
}

func (d *DB) View(ctx context.Context, fn func(kv.Txn) error) error {
	t, err := d.readTxn(ctx)
	if err != nil {
		return err
	}
	defer t.Discard()
	if err := fn(t); err != nil {
		return err
	}
	return t.failed
}

func (d *DB) NewReadTxn(ctx context.Context) (kv.ReadTxn, error) { return d.readTxn(ctx) }

func (d *DB) readTxn(ctx context.Context) (*txn, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, classify(err)
	}
	return &txn{d: d, ctx: ctx, tx: tx}, nil
}

func (d *DB) DropPrefix(ctx context.Context, prefixes ...[]byte) error {
	if d.readOnly {
		return kv.ErrReadOnly
	}
	for _, p := range prefixes {
		lo, hi := bounds(p)
		q, args := "DELETE FROM otpgate_kv WHERE k >= $1", []any{lo}
		if hi != nil {
			q, args = q+" AND k < $2", append(args, hi)
		}
		if _, err := d.pool.Exec(ctx, q, args...); err != nil {
			return classify(err)
		}
	}
	return nil
}

// seal encrypts a value bound to its key: nonce ‖ ciphertext ‖ tag.
func (d *DB) seal(key, value []byte) []byte {
	out := make([]byte, d.aead.NonceSize(), d.aead.NonceSize()+len(value)+d.aead.Overhead())
	_, _ = rand.Read(out) // crypto/rand.Read never fails on supported platforms
	return d.aead.Seal(out, out, value, key)
}

// ErrTampered: a stored value does not open under its key: written with
// another master key, damaged, or moved to another row.
var ErrTampered = fmt.Errorf("pgkv: %w (another master key, or tampered with)", kv.ErrUnreadable)

func (d *DB) open(key, sealed []byte) ([]byte, error) {
	n := d.aead.NonceSize()
	if len(sealed) < n+d.aead.Overhead() {
		return nil, ErrTampered
	}
	v, err := d.aead.Open(nil, sealed[:n], sealed[n:], key)
	if err != nil {
		return nil, ErrTampered
	}
	return v, nil
}

// classify maps PostgreSQL's errors onto the contract's: the races that a
// retry resolves become kv.ErrConflict.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "23505": // serialization_failure, deadlock_detected, unique_violation
			return kv.ErrConflict
		}
	}
	return err
}

// bounds gives the key range of a prefix: [lo, hi), hi nil when the prefix
// is empty or all 0xff.
func bounds(prefix []byte) (lo, hi []byte) {
	lo = append([]byte{}, prefix...)
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			hi = append([]byte{}, prefix[:i+1]...)
			hi[i]++
			return lo, hi
		}
	}
	return lo, nil
}
