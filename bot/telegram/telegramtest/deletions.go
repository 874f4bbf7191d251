package telegramtest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
)

// Deletions is an in-memory telegram.Deletions. Give one to a Bot, stop
// the Bot, give it to the next: the schedule outlives the Bot as a store's
// outlives a restart (not the process). Due times are kept to the
// millisecond, as the store keeps them. The zero value is an empty
// schedule; a Deletions is safe for concurrent use.
type Deletions struct {
	mu   sync.Mutex
	m    map[deletionKey]telegram.Deletion
	fail error
}

var _ telegram.Deletions = (*Deletions)(nil)

type deletionKey struct {
	due     int64 // Unix milliseconds
	chat    int64
	message int
}

func keyOf(d telegram.Deletion) deletionKey {
	return deletionKey{due: d.Due.UnixMilli(), chat: d.ChatID, message: d.MessageID}
}

// ScheduleDeletion records d, or returns the error set by Fail.
func (s *Deletions) ScheduleDeletion(_ context.Context, d telegram.Deletion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if s.m == nil {
		s.m = make(map[deletionKey]telegram.Deletion)
	}
	d.Due = time.UnixMilli(d.Due.UnixMilli())
	s.m[keyOf(d)] = d
	return nil
}

// DueDeletions returns up to limit deletions due at or before now, the
// earliest first.
func (s *Deletions) DueDeletions(_ context.Context, now time.Time, limit int) ([]telegram.Deletion, error) {
	var out []telegram.Deletion
	for _, d := range s.Scheduled() {
		if len(out) == limit || d.Due.After(now) {
			break
		}
		out = append(out, d)
	}
	return out, nil
}

// DeletionDone removes d from the schedule.
func (s *Deletions) DeletionDone(_ context.Context, d telegram.Deletion) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, keyOf(d))
	return nil
}

// Scheduled returns every deletion still scheduled, the earliest first.
func (s *Deletions) Scheduled() []telegram.Deletion {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]telegram.Deletion, 0, len(s.m))
	for _, d := range s.m {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b telegram.Deletion) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.ChatID, b.ChatID), cmp.Compare(a.MessageID, b.MessageID))
	})
	return out
}

// Fail makes every later ScheduleDeletion return err (nil: succeed again),
// as a store that cannot write does.
func (s *Deletions) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}
