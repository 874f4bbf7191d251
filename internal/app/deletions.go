package app

import (
	"context"
	"time"

	"github.com/otpgate/otpgate/bot/telegram"
	"github.com/otpgate/otpgate/store"
)

// TelegramDeletions hands the store's deletion schedule to the Telegram
// adapter, which declares what it needs (telegram.Deletions) and never
// imports the store.
func TelegramDeletions(s *store.Store) telegram.Deletions { return storeDeletions{s} }

// storeDeletions converts between the adapter's Deletion and the store's.
type storeDeletions struct{ s *store.Store }

var _ telegram.Deletions = storeDeletions{}

func (d storeDeletions) ScheduleDeletion(ctx context.Context, x telegram.Deletion) error {
	return d.s.ScheduleDeletion(ctx, toStore(x))
}

func (d storeDeletions) DueDeletions(ctx context.Context, now time.Time, limit int) ([]telegram.Deletion, error) {
	due, err := d.s.DueDeletions(ctx, now, limit)
	out := make([]telegram.Deletion, len(due))
	for i, x := range due {
		out[i] = fromStore(x)
	}
	return out, err
}

func (d storeDeletions) DeletionDone(ctx context.Context, x telegram.Deletion) error {
	return d.s.DeletionDone(ctx, toStore(x))
}

func toStore(d telegram.Deletion) store.Deletion {
	return store.Deletion{Due: d.Due, ChatID: d.ChatID, MessageID: d.MessageID}
}

func fromStore(d store.Deletion) telegram.Deletion {
	return telegram.Deletion{Due: d.Due, ChatID: d.ChatID, MessageID: d.MessageID}
}
