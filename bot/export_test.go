package bot

import "time"

// NewMemorySessions is the in-process Sessions (Options.Sessions nil), for
// the conformance suite in package bot_test.
func NewMemorySessions(retention time.Duration, now func() time.Time) Sessions {
	return newMemSessions(retention, now)
}
