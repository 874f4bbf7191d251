package app

import (
	"log/slog"
	"testing"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/sessiontest"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/storetest"
)

// The sessions replicas share pass the engine's conformance suite (over
// Badger here; the store's own suite shows the calls behave alike on
// PostgreSQL).
func TestStoreSessionsConform(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T, c sessiontest.Config) bot.Sessions {
		ks := storetest.TestKeys(t, 3)
		st, err := store.Open(store.Options{InMemory: true, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit, Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return storeSessions{st: st, holder: "test", retain: c.Retention, now: c.Now, log: slog.New(slog.DiscardHandler)}
	})
}
