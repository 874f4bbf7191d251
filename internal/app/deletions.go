package app

import "github.com/otpgate/otpgate/store"

// storeDeletions hands the store's deletion schedule to the Telegram
// adapter.
type storeDeletions struct{ *store.Store }
