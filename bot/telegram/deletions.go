package telegram

import (
	"context"
	"strconv"
	"time"

	tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
)

// Deletion is a message the bot sent that must leave its chat at Due: every
// message that carried record fields.
type Deletion struct {
	Due       time.Time
	ChatID    int64
	MessageID int
}

// Deletions keeps the schedule of messages to delete. It must be durable: a
// deletion scheduled before the process dies is still due after a restart,
// whatever Bot runs then. The adapter declares it and internal/app hands in
// the store behind it; chat adapters never import a store.
//
// Implementations are safe for concurrent use.
type Deletions interface {
	// ScheduleDeletion records d. Once it returns nil, d survives a crash.
	ScheduleDeletion(ctx context.Context, d Deletion) error
	// DueDeletions returns up to limit deletions due at or before now, the
	// earliest first.
	DueDeletions(ctx context.Context, now time.Time, limit int) ([]Deletion, error)
	// DeletionDone removes d, as DueDeletions returned it, from the
	// schedule. Removing what is not scheduled is not an error.
	DeletionDone(ctx context.Context, d Deletion) error
}

// sweepInterval is how often the schedule is read: a message is deleted at
// most this long after it is due (plus the send queue's wait).
const sweepInterval = 5 * time.Second

// sweepDeletions deletes due messages every sweepInterval until ctx ends.
func (b *Bot) sweepDeletions(ctx context.Context) {
	for {
		b.deleteDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-b.clock.After(sweepInterval):
		}
	}
}

func (b *Bot) deleteDue(ctx context.Context) {
	due, err := b.o.Deletions.DueDeletions(ctx, b.clock.Now(), 200)
	if err != nil {
		b.log.Error("reading the deletion schedule", "err", err)
		return
	}
	for _, d := range due {
		b.mu.Lock()
		busy := b.deleting[d]
		b.deleting[d] = true
		b.mu.Unlock()
		if busy {
			continue
		}
		b.out.enqueue(&call{
			chatID: d.ChatID, method: "deleteMessage",
			params: tgbotapi.Params{"chat_id": strconv.FormatInt(d.ChatID, 10), "message_id": strconv.Itoa(d.MessageID)},
			done: func(_ *tgbotapi.APIResponse, err error) {
				// Done or impossible (already deleted, older than 48 h):
				// either way it leaves the schedule.
				if err := b.o.Deletions.DeletionDone(context.Background(), d); err != nil {
					b.log.Error("deletion schedule", "err", err)
				}
				b.mu.Lock()
				delete(b.deleting, d)
				b.mu.Unlock()
			},
		}, d.ChatID < 0)
	}
}

// scheduleDeletion returns a completion hook that records when the sent
// message must go.
func (b *Bot) scheduleDeletion(chatID int64, after time.Duration) func(*tgbotapi.APIResponse, error) {
	return func(resp *tgbotapi.APIResponse, err error) {
		id := sentMessageID(resp)
		if err != nil || id == 0 {
			return
		}
		d := Deletion{Due: b.clock.Now().Add(after), ChatID: chatID, MessageID: id}
		if err := b.o.Deletions.ScheduleDeletion(context.Background(), d); err != nil {
			b.log.Error("could not schedule the deletion of a released record", "err", err)
		}
	}
}
