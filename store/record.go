package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store/kv"
)

// MaxPerMobile is how many beneficiaries one mobile may carry (CoWIN's rule).
const MaxPerMobile = 6

// Record is a beneficiary as stored. The ID number itself is never stored:
// only its type, its last four characters and (in the index) a keyed hash.
// A Record never leaves this package except through Release, which returns
// a View; its String and LogValue print nothing personal.
type Record struct {
	RefID     string     `json:"r"`
	Name      string     `json:"n"`
	BirthYear int        `json:"y"`
	Gender    string     `json:"g"`
	Mobile    pii.Mobile `json:"m"`
	IDType    string     `json:"t"`
	IDLast4   string     `json:"l"`
	IDKey     string     `json:"i,omitempty"` // keyed hash of the ID number, hex
	Doses     []Dose     `json:"d,omitempty"`
}

// Dose is one vaccination.
type Dose struct {
	Number  int    `json:"n"`
	Vaccine string `json:"v"`
	Date    string `json:"d"` // YYYY-MM-DD
	Center  string `json:"c"`
}

func (Record) String() string       { return "<record>" }
func (Record) LogValue() slog.Value { return slog.StringValue("<record>") }

func encodeRecord(r *Record) ([]byte, error) { return json.Marshal(r) }

func decodeRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("store: decode record: %w", err)
	}
	return r, nil
}

// Target is where a code for an identifier goes: the registered mobile of
// the records it names, and which records a successful verification covers.
// Mobile is for the SMS sender only.
type Target struct {
	Mobile    pii.Mobile
	MobileKey string   // keyed hash, hex: safe for logs and limits
	Records   []string // handles (keyed hash of the reference id, hex)
}

// Resolve finds the target of an identifier without returning any record
// field except the registered mobile. It returns ErrNotFound when nothing
// matches, and also when an ID number matches records on different mobiles
// (ambiguous: no single owner to ask).
func (s *Store) Resolve(ctx context.Context, id pii.Identifier) (Target, error) {
	var t Target
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		var refs [][]byte
		var err error
		switch id.Kind {
		case pii.KindMobile:
			refs, err = indexRefs(txn, pfxMobileIdx, s.mobileHash(id.Mobile))
		case pii.KindIDNumber:
			refs, err = indexRefs(txn, pfxIDIdx, s.idHash(id.ID))
		case pii.KindReference:
			refs = [][]byte{s.refHash(id.Ref)}
		default:
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		for _, h := range refs {
			r, err := getRecord(txn, h)
			if errors.Is(err, ErrNotFound) {
				continue // index entry without record: skip, never fail open
			}
			if err != nil {
				return err
			}
			if t.Mobile == "" {
				t.Mobile = r.Mobile
			} else if t.Mobile != r.Mobile {
				return ErrNotFound
			}
			t.Records = append(t.Records, hex.EncodeToString(h))
		}
		if len(t.Records) == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return Target{}, err
	}
	t.MobileKey = s.MobileKey(t.Mobile)
	return t, nil
}

func indexRefs(txn kv.Txn, pfx byte, h []byte) ([][]byte, error) {
	prefix := join([]byte{pfx}, h)
	it := txn.NewIterator(kv.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var refs [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+hashLen {
			continue
		}
		refs = append(refs, append([]byte(nil), k[len(prefix):]...))
		if len(refs) > 64 {
			break // bounded: a mobile carries at most MaxPerMobile
		}
	}
	return refs, nil
}

func getRecord(txn kv.Txn, refHash []byte) (Record, error) {
	item, err := txn.Get(join([]byte{pfxRecord}, refHash))
	if errors.Is(err, kv.ErrKeyNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	var r Record
	err = item.Value(func(v []byte) error {
		var derr error
		r, derr = decodeRecord(v)
		return derr
	})
	return r, err
}

// Count returns the number of records stored.
func (s *Store) Count(ctx context.Context) (int, error) {
	n := 0
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}
