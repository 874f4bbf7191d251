package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

const pfxRevoked = 'p' // p + proof id → revocation time (unix seconds)

// proofIDLen is the length of a proof id: 8 random bytes in hex.
const proofIDLen = 16

// ProofFacts is what a vaccination proof is made from: the record's status
// and dose facts, its birth year, and its name, from which the signer takes
// only the initials. It never leaves the process as such.
type ProofFacts struct {
	Name      string
	BirthYear int
	Status    Status
	Doses     int
	LastDose  string // YYYY-MM-DD of the latest dose, "" when none
}

// proofFields are the audit names of what a proof discloses.
var proofFields = []string{"proof:initials", "birth_year", "vaccination_status", "dose_count", "last_dose_month"}

// ErrNotBeneficiary is returned by Certify for a grant minted through the
// staff path: proofs are for the beneficiary alone.
var ErrNotBeneficiary = errors.New("store: proofs are issued to the beneficiary only")

// Certify is the door for vaccination proofs, and it is the same door as
// Release: the grant must exist, be unexpired, be bound to ref's requester
// and cover handle, and the record must still be on the grant's mobile.
// sign receives the facts and returns the new proof's id; the issuance is
// appended to the audit chain (the proof id, never its contents) and synced
// before Certify returns, so a proof that leaves is always audited.
//
// Outcomes: nil (issued and audited); ErrNoGrant (no such grant, expired,
// another requester's, not covering handle, or the record moved); an
// ErrNotBeneficiary (a staff grant); sign's error (nothing audited, nothing
// issued); or a storage error (nothing issued).
func (s *Store) Certify(ctx context.Context, ref GrantRef, handle string, sign func(ProofFacts) (proofID string, err error)) error {
	err := s.release(ctx, ref, []string{handle}, func(g Grant, recs []Record) (AuditEntry, error) {
		if g.Audience != AudienceBeneficiary {
			return AuditEntry{}, ErrNotBeneficiary
		}
		r := recs[0]
		f := ProofFacts{Name: r.Name, BirthYear: r.BirthYear, Status: statusOf(r.Doses), Doses: len(r.Doses)}
		for _, d := range r.Doses {
			if d.Date > f.LastDose {
				f.LastDose = d.Date
			}
		}
		id, err := sign(f)
		if err != nil {
			return AuditEntry{}, err
		}
		return AuditEntry{Fields: proofFields, Outcome: "proof " + id}, nil
	})
	return err
}

// IsProof reports whether an Access was the issuance of a proof.
func (a Access) IsProof() bool { return slices.Contains(a.Fields, proofFields[0]) }

// RevokeProof adds a proof id to the revocation list. Revoking one already
// revoked keeps the first time. The id is not checked against issued
// proofs: the store keeps no list of them, only the audit entries.
func (s *Store) RevokeProof(ctx context.Context, id string) error {
	if len(id) != proofIDLen || strings.ContainsFunc(id, func(r rune) bool { return !strings.ContainsRune("0123456789abcdef", r) }) {
		return fmt.Errorf("store: %q is not a proof id (16 lower-case hex characters)", id)
	}
	key := append([]byte{pfxRevoked}, id...)
	err := s.update(ctx, func(txn kv.Txn) error {
		if _, err := txn.Get(key); err == nil {
			return nil
		} else if !errors.Is(err, kv.ErrKeyNotFound) {
			return err
		}
		return txn.Set(key, []byte(fmt.Sprint(s.now().Unix())))
	})
	if err != nil {
		return fmt.Errorf("store: revoke proof: %w", err)
	}
	return s.sync()
}

// Revoked lists the revoked proof ids, in order, and when the list last
// changed (zero when it is empty).
func (s *Store) Revoked(ctx context.Context) (ids []string, updated time.Time, err error) {
	err = s.kv.View(ctx, func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxRevoked}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, string(it.Item().Key()[1:]))
			var sec int64
			if err := it.Item().Value(func(v []byte) error {
				_, err := fmt.Sscan(string(v), &sec)
				return err
			}); err != nil {
				return err
			}
			if t := time.Unix(sec, 0); t.After(updated) {
				updated = t
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store: revoked proofs: %w", err)
	}
	return ids, updated, nil
}
