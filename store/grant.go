package store

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Grant is the proof of a completed code round trip: it lets one requester
// read the records it covers until it expires. It is stored; chats hold only
// its ID.
type Grant struct {
	ID        string    `json:"id"`
	Requester string    `json:"q"`
	Audience  Audience  `json:"a"`
	Agent     string    `json:"s,omitempty"`
	MobileKey string    `json:"k"`
	Records   []string  `json:"r"`
	ExpiresAt time.Time `json:"e"`
}

// GrantRef is what a caller presents: the grant's ID and who is asking.
// Both must match the stored grant.
type GrantRef struct {
	ID        string
	Requester string
}

// Ref returns the reference to present for g.
func (g Grant) Ref() GrantRef { return GrantRef{ID: g.ID, Requester: g.Requester} }

func grantKey(id string) []byte { return append([]byte{pfxGrant}, id...) }

func (s *Store) putGrant(txn kv.Txn, g Grant, ttl time.Duration) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	// Expiry is checked against the store's clock (loadGrant); the TTL
	// only collects the entry, a margin past it.
	return txn.SetEntry(kv.NewEntry(grantKey(g.ID), b).WithTTL(ttl + time.Minute))
}

// loadGrant validates ref inside txn: the grant exists, has not expired and
// belongs to the requester.
func (s *Store) loadGrant(txn kv.Txn, ref GrantRef) (Grant, error) {
	if ref.ID == "" || ref.Requester == "" || len(ref.ID) > 64 {
		return Grant{}, ErrNoGrant
	}
	item, err := txn.Get(grantKey(ref.ID))
	if errors.Is(err, kv.ErrKeyNotFound) {
		return Grant{}, ErrNoGrant
	}
	if err != nil {
		return Grant{}, err
	}
	var g Grant
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &g) }); err != nil {
		return Grant{}, ErrNoGrant
	}
	if subtle.ConstantTimeCompare([]byte(g.Requester), []byte(ref.Requester)) != 1 {
		return Grant{}, ErrNoGrant
	}
	if !s.now().Before(g.ExpiresAt) {
		return Grant{}, ErrNoGrant
	}
	return g, nil
}

// Status is a beneficiary's vaccination status, derived from the doses.
type Status string

const (
	StatusNone    Status = "none"
	StatusPartial Status = "partial"
	StatusFull    Status = "full"
)

// Summary is what a chooser shows: enough to pick a beneficiary.
type Summary struct {
	Handle   string // opaque, stable record handle for callback data
	Name     string
	RefLast4 string
}

// View is the released field set for one record and audience. Nothing else
// about a record ever leaves the store.
type View struct {
	Handle    string
	Name      string
	BirthYear int
	Gender    string
	IDType    string
	IDLast4   string
	Status    Status
	Doses     []Dose
	// Reference is the full 14-digit id for the beneficiary, and masked to
	// the last four digits for staff.
	Reference string
	Mobile    string // masked
}

// Field names recorded in the audit log for each kind of release.
var (
	summaryFields     = []string{"name", "reference_id_last4"}
	beneficiaryFields = []string{"name", "birth_year", "gender", "id_type", "id_last4", "vaccination_status", "doses", "reference_id", "mobile_masked"}
	staffFields       = []string{"name", "birth_year", "gender", "id_type", "id_last4", "vaccination_status", "doses", "reference_id_last4", "mobile_masked"}
)

// Summaries returns the chooser entries for every record the grant covers.
// It is a release (names leave the process) and is audited as one.
func (s *Store) Summaries(ctx context.Context, ref GrantRef) ([]Summary, error) {
	var out []Summary
	err := s.release(ctx, ref, nil, func(g Grant, recs []Record) (AuditEntry, error) {
		type entry struct {
			ref string
			sum Summary
		}
		es := make([]entry, len(recs))
		for i, r := range recs {
			es[i] = entry{r.RefID, Summary{Handle: g.Records[i], Name: r.Name, RefLast4: last4(r.RefID)}}
		}
		// Reference-id order: registration order, stable across lookups.
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.ref, b.ref) })
		out = out[:0]
		for _, e := range es {
			out = append(out, e.sum)
		}
		return AuditEntry{Fields: summaryFields}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Release returns the field set of the grant's audience for one record the
// grant covers. The release is audited, and the audit entry synced, before
// the view is returned; if the audit cannot be written nothing is returned.
func (s *Store) Release(ctx context.Context, ref GrantRef, handle string) (View, error) {
	var v View
	err := s.release(ctx, ref, []string{handle}, func(g Grant, recs []Record) (AuditEntry, error) {
		v = view(recs[0], handle, g.Audience)
		if g.Audience == AudienceStaff {
			return AuditEntry{Fields: staffFields}, nil
		}
		return AuditEntry{Fields: beneficiaryFields}, nil
	})
	if err != nil {
		return View{}, err
	}
	return v, nil
}

// release is the one path by which record fields leave the store. build
// sees the covered records inside the transaction and returns the audit
// entry of what it lets out; an error from it aborts the release, and
// nothing is audited or returned.
func (s *Store) release(ctx context.Context, ref GrantRef, handles []string, build func(Grant, []Record) (AuditEntry, error)) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn kv.Txn) error {
		g, err := s.loadGrant(txn, ref)
		if err != nil {
			return err
		}
		if handles == nil {
			handles = g.Records
		}
		recs := make([]Record, 0, len(handles))
		for _, h := range handles {
			if !slices.Contains(g.Records, h) {
				return ErrNoGrant
			}
			raw, err := hex.DecodeString(h)
			if err != nil {
				return ErrNoGrant
			}
			r, err := getRecord(txn, raw)
			if err != nil {
				return err
			}
			// The code proved control of one mobile: a record since moved to
			// another (a corrected import) is no longer covered.
			if s.MobileKey(r.Mobile) != g.MobileKey {
				return ErrNoGrant
			}
			recs = append(recs, r)
		}
		e, err := build(g, recs)
		if err != nil {
			return err
		}
		e.Event, e.Requester, e.Agent, e.Audience, e.MobileKey, e.Records = EventReleased, g.Requester, g.Agent, g.Audience, g.MobileKey, handles
		return s.appendAudit(txn, e)
	})
	if err != nil {
		return fmt.Errorf("store: release: %w", err)
	}
	return s.sync()
}

// EndGrant ends a grant before its time (logout). Ending a grant that does
// not exist or has expired is not an error.
func (s *Store) EndGrant(ctx context.Context, ref GrantRef) error {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	err := s.update(ctx, func(txn kv.Txn) error {
		g, err := s.loadGrant(txn, ref)
		if errors.Is(err, ErrNoGrant) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := txn.Delete(grantKey(g.ID)); err != nil {
			return err
		}
		return s.appendAudit(txn, AuditEntry{Event: EventSessionEnded, Requester: g.Requester, Agent: g.Agent, Audience: g.Audience, MobileKey: g.MobileKey})
	})
	if err != nil {
		return fmt.Errorf("store: end grant: %w", err)
	}
	return s.sync()
}

func view(r Record, handle string, a Audience) View {
	v := View{
		Handle: handle, Name: r.Name, BirthYear: r.BirthYear, Gender: r.Gender,
		IDType: r.IDType, IDLast4: r.IDLast4, Doses: slices.Clone(r.Doses),
		Status: statusOf(r.Doses), Reference: r.RefID, Mobile: r.Mobile.String(),
	}
	if a != AudienceBeneficiary {
		v.Reference = "**********" + last4(r.RefID)
	}
	return v
}

func statusOf(doses []Dose) Status {
	switch {
	case len(doses) == 0:
		return StatusNone
	case len(doses) == 1:
		return StatusPartial
	}
	return StatusFull
}

func last4(s string) string {
	if len(s) < 4 {
		return s
	}
	return s[len(s)-4:]
}
