package bot_test

import (
	"testing"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/sessiontest"
)

// TestMemorySessionsConform: the in-process Sessions keeps the contract
// the shared ones do.
func TestMemorySessionsConform(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T, c sessiontest.Config) bot.Sessions {
		return bot.NewMemorySessions(c.Retention, c.Now)
	})
}
