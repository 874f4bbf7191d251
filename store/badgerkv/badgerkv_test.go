package badgerkv_test

import (
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/store/badgerkv"
	"github.com/otpgate/otpgate/store/kv"
	"github.com/otpgate/otpgate/store/kv/kvtest"
)

func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Backend {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		return badgerkv.New(db)
	})
}
