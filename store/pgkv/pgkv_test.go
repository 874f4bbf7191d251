package pgkv_test

import (
	"context"
	"testing"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/kv"
	"github.com/otpgate/otpgate/store/kv/kvtest"
	"github.com/otpgate/otpgate/store/pgkv"
	"github.com/otpgate/otpgate/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string, key []byte) (*pgkv.DB, error) {
	return pgkv.Open(context.Background(), pgkv.Options{URL: url, Key: key})
}

// TestContract runs the persistence contract's suite on PostgreSQL.
func TestContract(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Backend {
		db, err := open(t, pgtest.Shared(t).NewDatabase(t), storetest.Keys(t).Rows)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// postgresEngine runs the store's conformance suite with its state in
// PostgreSQL: each test gets its own database, and several stores may open
// one database at once, as replicas do.
var postgresEngine = storetest.Engine{
	Name:  "postgres",
	Fresh: func(t *testing.T, durable bool) string { return pgtest.Shared(t).NewDatabase(t) },
	Open: func(t *testing.T, url string, ks keys.Set, o store.Options) (*store.Store, error) {
		db, err := open(t, url, ks.Rows)
		if err != nil {
			return nil, err
		}
		o.Backend = db
		return store.Open(o)
	},
	Backend: func(t *testing.T, url string, ks keys.Set) (kv.Backend, error) { return open(t, url, ks.Rows) },
}

func TestConformance(t *testing.T) { storetest.Run(t, postgresEngine) }
