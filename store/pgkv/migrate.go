package pgkv

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, applied in order; a version, once
// shipped, never changes. otpgate_schema records the applied ones.
var migrations = []string{
	1: `CREATE TABLE otpgate_kv (
		k bytea PRIMARY KEY,
		v bytea NOT NULL,
		expires_at timestamptz
	);
	CREATE INDEX otpgate_kv_expires ON otpgate_kv (expires_at) WHERE expires_at IS NOT NULL;`,
}

// migrateLock is the advisory lock key that serialises migrations of
// replicas starting at once ("otpgate" in ASCII).
const migrateLock = 0x6f747067617465

// migrate applies the missing migrations in one transaction, holding an
// advisory lock so that replicas starting together apply each once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return fmt.Errorf("pgkv: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS otpgate_schema (
			version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("pgkv: migrate: %w", err)
		}
		have, err := version(ctx, tx)
		if err != nil {
			return err
		}
		if have >= len(migrations) {
			return newer(have)
		}
		for v := have + 1; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("pgkv: migrate to schema version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO otpgate_schema (version) VALUES ($1)", v); err != nil {
				return fmt.Errorf("pgkv: migrate: %w", err)
			}
		}
		return nil
	})
}

// checkSchema is the read-only check: the schema is there and not newer.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('otpgate_schema') IS NOT NULL").Scan(&exists); err != nil {
		return fmt.Errorf("pgkv: %w", err)
	}
	if !exists {
		return fmt.Errorf("pgkv: the database holds no otpgate schema: start `otpgate serve` or `otpgate import` once to create it")
	}
	have, err := version(ctx, pool)
	if err != nil {
		return err
	}
	if have < len(migrations)-1 {
		return fmt.Errorf("pgkv: the database schema is at version %d, this otpgate needs %d: start `otpgate serve` once to migrate it", have, len(migrations)-1)
	}
	return newer(have)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func version(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM otpgate_schema").Scan(&v); err != nil {
		return 0, fmt.Errorf("pgkv: read the schema version: %w", err)
	}
	return v, nil
}

func newer(have int) error {
	if have > len(migrations)-1 {
		return fmt.Errorf("pgkv: the database schema is at version %d, newer than this otpgate knows (%d): run the newer otpgate", have, len(migrations)-1)
	}
	return nil
}
