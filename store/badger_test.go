package store_test

import (
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/badgerkv"
	"github.com/otpgate/otpgate/store/kv"
	"github.com/otpgate/otpgate/store/storetest"
)

// badgerEngine runs the conformance suite on the embedded engine: in
// memory unless a test needs the state to outlive Close.
var badgerEngine = storetest.Engine{
	Name:      "badger",
	Exclusive: true,
	Fresh: func(t *testing.T, durable bool) string {
		if !durable {
			return ""
		}
		return t.TempDir()
	},
	Open: func(t *testing.T, dir string, _ keys.Set, o store.Options) (*store.Store, error) {
		o.Dir, o.InMemory = dir, dir == ""
		return store.Open(o)
	},
	Backend: func(t *testing.T, dir string, ks keys.Set) (kv.Backend, error) {
		db, err := badger.Open(store.BadgerOptions(store.Options{Dir: dir, InMemory: dir == "", EncryptionKey: ks.Storage}))
		if err != nil {
			return nil, err
		}
		return badgerkv.New(db), nil
	},
}

func TestConformance(t *testing.T) { storetest.Run(t, badgerEngine) }

// The Badger-only tests (backups) use these.

func options(t *testing.T, ks keys.Set, dir string, clk *storetest.Clock) store.Options {
	return store.Options{Dir: dir, InMemory: dir == "", EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Now: clk.Now}
}

func openStore(t *testing.T, dir string, clk *storetest.Clock) *store.Store {
	t.Helper()
	s, err := store.Open(options(t, storetest.TestKeys(t, 7), dir, clk))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t *testing.T) (*store.Store, *storetest.Clock) {
	t.Helper()
	clk := storetest.NewClock()
	s := openStore(t, "", clk)
	t.Cleanup(func() { _ = s.Close() })
	return s, clk
}
