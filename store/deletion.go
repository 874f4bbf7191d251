package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Deletion is a chat message that must be removed from the chat at Due:
// every message that carried record fields. The schedule is stored so that
// a restart does not leave records in chats.
type Deletion struct {
	Due       time.Time
	ChatID    int64
	MessageID int
}

func deletionKey(d Deletion) []byte {
	k := make([]byte, 1+8+8+8)
	k[0] = pfxReleaseDel
	binary.BigEndian.PutUint64(k[1:], uint64(d.Due.UnixMilli()))
	binary.BigEndian.PutUint64(k[9:], uint64(d.ChatID))
	binary.BigEndian.PutUint64(k[17:], uint64(d.MessageID))
	return k
}

// ScheduleDeletion records d durably.
func (s *Store) ScheduleDeletion(ctx context.Context, d Deletion) error {
	if err := s.update(ctx, func(txn kv.Txn) error { return txn.Set(deletionKey(d), nil) }); err != nil {
		return fmt.Errorf("store: schedule deletion: %w", err)
	}
	return s.sync()
}

// DueDeletions returns up to limit deletions due at or before now, oldest first.
func (s *Store) DueDeletions(ctx context.Context, now time.Time, limit int) ([]Deletion, error) {
	var out []Deletion
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxReleaseDel}})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()
			if len(k) != 25 {
				continue
			}
			d := Deletion{
				Due:       time.UnixMilli(int64(binary.BigEndian.Uint64(k[1:]))),
				ChatID:    int64(binary.BigEndian.Uint64(k[9:])),
				MessageID: int(binary.BigEndian.Uint64(k[17:])),
			}
			if d.Due.After(now) {
				break // keys sort by due time
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// DeletionDone removes d from the schedule.
func (s *Store) DeletionDone(ctx context.Context, d Deletion) error {
	return s.update(ctx, func(txn kv.Txn) error { return txn.Delete(deletionKey(d)) })
}
