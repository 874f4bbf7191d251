package app

import (
	"context"
	"log/slog"
	"testing"

	"github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/pgkv"
	"github.com/otpgate/otpgate/store/storetest"
)

// The coordinator replicas share holds to the Telegram adapter's contract
// on PostgreSQL: two replicas, each with its own connection to one fresh
// database, in real time.
func TestStoreCoordinatorConforms(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	for _, c := range telegramtest.CoordinatorChecks {
		t.Run(c.Name, func(t *testing.T) {
			url := srv.NewDatabase(t)
			open := func(name string) storeCoordinator {
				ks := storetest.TestKeys(t, 4)
				db, err := pgkv.Open(context.Background(), pgkv.Options{URL: url, Key: ks.Rows})
				if err != nil {
					t.Fatal(err)
				}
				st, err := store.Open(store.Options{Backend: db, IndexKey: ks.Index, AuditKey: ks.Audit})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return storeCoordinator{st: st, holder: name, log: slog.New(slog.DiscardHandler)}
			}
			c.Run(t, open("a"), open("b"))
		})
	}
}
