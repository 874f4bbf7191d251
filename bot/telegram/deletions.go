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

// storeTimeout bounds one write to the schedule, made by a send worker,
// and one call to the Coordinator.
const storeTimeout = 10 * time.Second

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
				ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
				defer cancel()
				if err := b.o.Deletions.DeletionDone(ctx, d); err != nil {
					b.log.Error("deletion schedule", "err", err)
				}
				b.mu.Lock()
				delete(b.deleting, d)
				b.mu.Unlock()
			},
		}, d.ChatID < 0)
	}
}

// revealOnceScheduled returns the next step of a placeholder sent for a
// message that carries record fields: schedule the placeholder's deletion
// durably, then edit the record into it.
//
// Why a placeholder, and not the record sent at once with its deletion
// scheduled when Telegram answers: the message id is the key of the
// deletion and Telegram alone assigns it, in its answer. A record sent
// directly exists, between Telegram accepting it and the schedule being
// written, as a message nobody will delete: a crash there leaves it in the
// chat for good, and an answer lost to a 5xx or a dropped connection after
// Telegram accepted it makes a blind resend deliver a second copy while
// only the one whose answer arrived is scheduled. Guessing the lost copy
// later (ids rise within a chat, so it lies between known ids) means
// deleting ids the bot did not write: in a private chat, and in a group
// where the bot is an admin, deleteMessage removes the user's own
// messages, so the guesses are not harmless. With a placeholder, the only
// message whose id is unknown is one that says nothing. The record text
// reaches Telegram only as an edit of a message whose deletion is already
// on the durable schedule, and an edit cannot make a second message: a
// lost answer is retried, and a retry of an edit that took effect is
// answered "message is not modified", which counts as done. A crash at any
// point leaves either an empty placeholder or a scheduled one. As a bonus
// the notification, sent when the placeholder arrives, shows nothing of
// the record. The cost is one more call per released message, not counted
// against the message limits, and an empty placeholder left behind when a
// placeholder's own answer is lost and it is sent again.
//
// If the schedule cannot be written the record is not sent and the
// placeholder is deleted: nothing is released that would not be deleted.
func (b *Bot) revealOnceScheduled(edit *call, after time.Duration) func(*tgbotapi.APIResponse) *call {
	return func(resp *tgbotapi.APIResponse) *call {
		id := sentMessageID(resp)
		if id == 0 {
			b.log.Error("a placeholder was sent without a message id; the record it was for is not sent")
			return nil
		}
		chat := strconv.FormatInt(edit.chatID, 10)
		d := Deletion{Due: b.clock.Now().Add(after), ChatID: edit.chatID, MessageID: id}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := b.o.Deletions.ScheduleDeletion(ctx, d); err != nil {
			b.log.Error("could not schedule the deletion of a released record; it is not sent", "err", err)
			return &call{chatID: edit.chatID, method: "deleteMessage",
				params: tgbotapi.Params{"chat_id": chat, "message_id": strconv.Itoa(id)}}
		}
		edit.params["message_id"] = strconv.Itoa(id)
		return edit
	}
}
