package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Audit event names. They are part of the export format.
const (
	EventCodeRequested  = "code_requested"  // someone asked for a code; Outcome says what became of it
	EventCodeSent       = "code_sent"       // the SMS provider accepted the message
	EventDeliveryFailed = "delivery_failed" // the SMS provider refused or never answered
	EventCodeVerified   = "code_verified"   // a correct code: a grant was minted
	EventCodeRejected   = "code_rejected"   // wrong, expired, used or absent code
	EventLocked         = "locked"          // a guess limit was reached
	EventReleased       = "released"        // record fields left the process
	EventSessionEnded   = "session_ended"   // a grant was ended by the user
)

// AuditEntry is one link of the chain. It carries no code, no full mobile,
// no ID number and no record field: subjects appear as keyed hashes
// (MobileKey, Records) and actors as the requester id.
type AuditEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Requester string    `json:"requester,omitempty"` // e.g. "telegram:12345", "console"
	Agent     string    `json:"agent,omitempty"`     // staff label, e.g. "4521", for staff lookups
	Audience  Audience  `json:"audience,omitempty"`
	MobileKey string    `json:"mobile_key,omitempty"`
	Records   []string  `json:"records,omitempty"` // record handles
	Fields    []string  `json:"fields,omitempty"`  // names of released fields
	Outcome   string    `json:"outcome,omitempty"`
	Prev      string    `json:"prev"`
	MAC       string    `json:"mac"`
}

type auditHead struct {
	Seq uint64 `json:"seq"`
	MAC string `json:"mac"`
}

func auditKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = pfxAudit
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// entryMAC chains e to its predecessor: HMAC over the entry's canonical JSON
// with MAC blanked (Prev is inside, so each MAC covers the whole history).
func (s *Store) entryMAC(e AuditEntry) string {
	e.MAC = ""
	b, _ := json.Marshal(e) // a struct of plain fields always marshals
	m := hmac.New(sha256.New, s.auditKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// appendAudit adds entries to the chain inside txn. The caller must hold
// s.auditMu and must sync after commit before acting on the outcome.
func (s *Store) appendAudit(txn kv.Txn, entries ...AuditEntry) error {
	head, err := readHead(txn)
	if err != nil {
		return err
	}
	for _, e := range entries {
		e.Seq = head.Seq + 1
		e.Time = s.now().UTC().Truncate(time.Millisecond)
		e.Prev = head.MAC
		e.MAC = s.entryMAC(e)
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := txn.Set(auditKey(e.Seq), b); err != nil {
			return err
		}
		for _, h := range e.Records {
			if err := txn.Set(historyKey(h, e.Seq), nil); err != nil {
				return err
			}
		}
		head = auditHead{Seq: e.Seq, MAC: e.MAC}
	}
	hb, _ := json.Marshal(head)
	return txn.Set(keyAuditHead, hb)
}

var errHeadUnreadable = errors.New("store: audit head unreadable")

// readHead returns the chain head: the last sequence number and MAC, zero
// for an empty chain.
func readHead(txn kv.Txn) (auditHead, error) {
	var head auditHead
	item, err := txn.Get(keyAuditHead)
	switch {
	case errors.Is(err, kv.ErrKeyNotFound):
		return head, nil
	case err != nil:
		return head, err
	}
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &head) }); err != nil {
		return head, errHeadUnreadable
	}
	return head, nil
}

// Audit appends entries on their own and syncs them to disk.
func (s *Store) Audit(ctx context.Context, entries ...AuditEntry) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if err := s.update(ctx, func(txn kv.Txn) error { return s.appendAudit(txn, entries...) }); err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return s.sync()
}

// AuditProblem describes the first place the chain does not hold.
type AuditProblem struct {
	Seq    uint64 // the entry at fault (or the expected one, when missing)
	Reason string
}

func (p *AuditProblem) Error() string {
	return fmt.Sprintf("audit entry %d: %s", p.Seq, p.Reason)
}

// VerifyAudit walks the whole chain. It returns the number of entries and,
// when the chain was altered, removed from or reordered, an error wrapping
// ErrAuditBroken and an *AuditProblem naming the first bad entry.
func (s *Store) VerifyAudit(ctx context.Context) (uint64, error) {
	var n uint64
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		head, err := readHead(txn)
		if errors.Is(err, errHeadUnreadable) {
			return broken(0, "head unreadable")
		}
		if err != nil {
			return err
		}
		prev := ""
		expect := uint64(1)
		err = s.walkAudit(txn, func(key uint64, e AuditEntry, decodeErr error) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch {
			case decodeErr != nil:
				return broken(key, "unreadable")
			case key != expect:
				return broken(expect, fmt.Sprintf("missing (next entry found is %d)", key))
			case e.Seq != key:
				return broken(key, fmt.Sprintf("stored under %d but says %d (moved)", key, e.Seq))
			case e.Prev != prev:
				return broken(key, "does not follow the entry before it (removed or reordered)")
			case !hmac.Equal([]byte(e.MAC), []byte(s.entryMAC(e))):
				return broken(key, "content altered")
			}
			prev = e.MAC
			expect++
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if head.Seq != n || head.MAC != prev {
			return broken(n+1, fmt.Sprintf("missing (the chain head records %d entries)", head.Seq))
		}
		return nil
	})
	return n, err
}

func broken(seq uint64, reason string) error {
	return fmt.Errorf("%w: %w", ErrAuditBroken, &AuditProblem{Seq: seq, Reason: reason})
}

func (s *Store) walkAudit(txn kv.Txn, fn func(seq uint64, e AuditEntry, err error) error) error {
	it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxAudit}, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != 9 {
			continue
		}
		seq := binary.BigEndian.Uint64(k[1:])
		var e AuditEntry
		err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) })
		if err := fn(seq, e, err); err != nil {
			return err
		}
	}
	return nil
}

// ExportAudit writes every entry as one JSON object per line, in order.
func (s *Store) ExportAudit(ctx context.Context, w io.Writer) (uint64, error) {
	var n uint64
	enc := json.NewEncoder(w)
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		return s.walkAudit(txn, func(_ uint64, e AuditEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			n++
			return enc.Encode(e)
		})
	})
	return n, err
}

// AuditEntries returns every entry matching keep, in order. It is meant for
// tests and small tools; ExportAudit streams.
func (s *Store) AuditEntries(ctx context.Context, keep func(AuditEntry) bool) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		return s.walkAudit(txn, func(_ uint64, e AuditEntry, err error) error {
			if err != nil {
				return err
			}
			if keep == nil || keep(e) {
				out = append(out, e)
			}
			return nil
		})
	})
	return out, err
}

// historyKey indexes audit entries by record: h + handle + seq. It is not
// part of the chain (it can be rebuilt from it) and carries no data.
func historyKey(handle string, seq uint64) []byte {
	k := make([]byte, 0, 1+hashLen+8)
	k = append(k, pfxHistory)
	k = append(k, mustHex(handle)...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// Access is one release of a record, as the beneficiary's history shows it.
type Access struct {
	Time   time.Time
	Record string // handle
	Self   bool   // released to the same chat user who asks now
	Agent  string // staff label, when a helpdesk agent asked
	Fields []string
}

// History returns the latest releases (newest first, at most limit) of the
// records the grant covers. Only a beneficiary's own grant may read it; the
// reading is itself audited, before anything is returned.
func (s *Store) History(ctx context.Context, ref GrantRef, limit int) ([]Access, error) {
	var out []Access
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn kv.Txn) error {
		out = out[:0]
		g, err := s.loadGrant(txn, ref)
		if err != nil {
			return err
		}
		if g.Audience != AudienceBeneficiary {
			return ErrNoGrant
		}
		var seqs []uint64
		for _, h := range g.Records {
			prefix := append([]byte{pfxHistory}, mustHex(h)...)
			it := txn.NewIterator(kv.IteratorOptions{Prefix: prefix, Reverse: true})
			seek := append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
			n := 0
			for it.Seek(seek); it.Valid() && n < 4*limit; it.Next() {
				k := it.Item().Key()
				seqs = append(seqs, binary.BigEndian.Uint64(k[len(k)-8:]))
				n++
			}
			it.Close()
		}
		slices.Sort(seqs)
		seqs = slices.Compact(seqs)
		for i := len(seqs) - 1; i >= 0 && len(out) < limit; i-- {
			item, err := txn.Get(auditKey(seqs[i]))
			if err != nil {
				continue
			}
			var e AuditEntry
			if item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }) != nil || e.Event != EventReleased {
				continue
			}
			if slices.Contains(e.Fields, historyField) {
				continue // reading the history is not an access to the record
			}
			for _, h := range e.Records {
				if slices.Contains(g.Records, h) {
					out = append(out, Access{Time: e.Time, Record: h, Self: e.Requester == g.Requester, Agent: e.Agent, Fields: e.Fields})
				}
			}
		}
		return s.appendAudit(txn, AuditEntry{Event: EventReleased, Requester: g.Requester, Audience: g.Audience,
			MobileKey: g.MobileKey, Records: g.Records, Fields: []string{historyField}})
	})
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	if err := s.sync(); err != nil {
		return nil, err
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

const historyField = "access_history"
