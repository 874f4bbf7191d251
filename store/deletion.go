package store

import (
	"context"
	"encoding/binary"
	"errors"
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

// deletionKey sorts by due time; the chat and message are behind a keyed
// hash, and in the value, so that no chat id is readable in a key.
func (s *Store) deletionKey(d Deletion) []byte {
	k := make([]byte, 1+8, 1+8+hashLen)
	k[0] = pfxReleaseDel
	binary.BigEndian.PutUint64(k[1:], uint64(d.Due.UnixMilli()))
	return append(k, s.mac(s.indexKey, fmt.Sprintf("deletion:%d:%d", d.ChatID, d.MessageID))...)
}

func deletionValue(d Deletion) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(d.ChatID)), uint64(d.MessageID))
}

// parseDeletion reads an entry of the schedule. Stores written before the
// chat moved into the value have it in the key (25 bytes, empty value).
func parseDeletion(k, v []byte) (Deletion, bool) {
	due := time.UnixMilli(int64(binary.BigEndian.Uint64(k[1:9])))
	switch {
	case len(k) == 1+8+hashLen && len(v) == 16:
		return Deletion{Due: due, ChatID: int64(binary.BigEndian.Uint64(v)), MessageID: int(binary.BigEndian.Uint64(v[8:]))}, true
	case len(k) == 25:
		return Deletion{Due: due, ChatID: int64(binary.BigEndian.Uint64(k[9:])), MessageID: int(binary.BigEndian.Uint64(k[17:]))}, true
	}
	return Deletion{}, false
}

// legacyDeletionKey is the key of a deletion scheduled by an older store.
func legacyDeletionKey(d Deletion) []byte {
	k := make([]byte, 1+8+8+8)
	k[0] = pfxReleaseDel
	binary.BigEndian.PutUint64(k[1:], uint64(d.Due.UnixMilli()))
	binary.BigEndian.PutUint64(k[9:], uint64(d.ChatID))
	binary.BigEndian.PutUint64(k[17:], uint64(d.MessageID))
	return k
}

// ScheduleDeletion records d durably.
func (s *Store) ScheduleDeletion(ctx context.Context, d Deletion) error {
	if err := s.update(ctx, func(txn kv.Txn) error { return txn.Set(s.deletionKey(d), deletionValue(d)) }); err != nil {
		return fmt.Errorf("store: schedule deletion: %w", err)
	}
	return s.sync()
}

// DeletionLease is how long a deletion DueDeletions handed out stays with
// its caller: if DeletionDone has not removed it by then (the caller
// died, or Telegram was unreachable), it is due again.
const DeletionLease = 2 * time.Minute

// DueDeletions claims up to limit deletions due at or before now, oldest
// first: each is handed to one caller, whichever replica asks, and is due
// again DeletionLease after now unless DeletionDone removes it first. The
// Deletions returned carry their new due time; pass them to DeletionDone
// as they are.
func (s *Store) DueDeletions(ctx context.Context, now time.Time, limit int) ([]Deletion, error) {
	var out []Deletion
	err := s.update(ctx, func(txn kv.Txn) error {
		out = out[:0]
		var due [][]byte
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxReleaseDel}})
		for it.Rewind(); it.Valid() && len(due) < limit; it.Next() {
			k := it.Item().Key()
			if len(k) < 9 {
				continue
			}
			if time.UnixMilli(int64(binary.BigEndian.Uint64(k[1:9]))).After(now) {
				break // keys sort by due time
			}
			due = append(due, it.Item().KeyCopy(nil))
		}
		it.Close()
		for _, k := range due {
			// Read each again: the claim is what Get protects, so of two
			// replicas claiming at once one gets it and the other finds it
			// gone.
			item, err := txn.Get(k)
			if errors.Is(err, kv.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			d, ok := parseDeletion(k, v)
			if !ok {
				continue
			}
			d.Due = time.UnixMilli(now.Add(DeletionLease).UnixMilli())
			if err := txn.Delete(k); err != nil {
				return err
			}
			if err := txn.Set(s.deletionKey(d), deletionValue(d)); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim deletions: %w", err)
	}
	return out, s.sync()
}

// DeletionDone removes d from the schedule.
func (s *Store) DeletionDone(ctx context.Context, d Deletion) error {
	return s.update(ctx, func(txn kv.Txn) error {
		if err := txn.Delete(legacyDeletionKey(d)); err != nil {
			return err
		}
		return txn.Delete(s.deletionKey(d))
	})
}
