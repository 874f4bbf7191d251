package proof

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Revocations is the set of revoked proof ids, with the time the list was
// last changed. Its zero value is an empty list. A Revocations is immutable
// (With returns a new one) and safe for concurrent use.
//
// Its JSON form, served as /revocations.json and embedded in the
// verification page, is
//
//	{"revoked":["0123456789abcdef",...],"updated":"2026-05-01T10:00:00Z"}
//
// with the ids sorted, in lower case, and "updated" in RFC 3339 (UTC), left
// out when the time is unknown.
type Revocations struct {
	ids     map[string]struct{}
	updated time.Time
}

// NewRevocations makes a list of the given proof ids (Claims.ID; upper-case
// hex is accepted and folded). It fails on anything that is not 16 hex
// digits, naming it.
func NewRevocations(updated time.Time, ids ...string) (Revocations, error) {
	return Revocations{}.With(updated, ids...)
}

// With returns the list with ids added and the update time set; r itself is
// unchanged. It fails like NewRevocations.
func (r Revocations) With(updated time.Time, ids ...string) (Revocations, error) {
	out := Revocations{ids: maps.Clone(r.ids), updated: updated.UTC().Truncate(time.Second)}
	if out.ids == nil {
		out.ids = make(map[string]struct{}, len(ids))
	}
	for _, id := range ids {
		norm := strings.ToLower(id)
		if !validID(norm) {
			return Revocations{}, fmt.Errorf("proof: revocation %q is not a proof id (%d hex digits)", id, 2*idBytes)
		}
		out.ids[norm] = struct{}{}
	}
	return out, nil
}

// Has reports whether the proof id (in either case) is revoked.
func (r Revocations) Has(id string) bool {
	_, ok := r.ids[strings.ToLower(id)]
	return ok
}

// IDs returns the revoked ids, sorted.
func (r Revocations) IDs() []string { return slices.Sorted(maps.Keys(r.ids)) }

// Len is the number of revoked ids.
func (r Revocations) Len() int { return len(r.ids) }

// Updated is when the list last changed; the zero time if unknown.
func (r Revocations) Updated() time.Time { return r.updated }

type revocationsJSON struct {
	Revoked []string   `json:"revoked"`
	Updated *time.Time `json:"updated,omitempty"`
}

// MarshalJSON writes the documented format.
func (r Revocations) MarshalJSON() ([]byte, error) {
	out := revocationsJSON{Revoked: r.IDs()}
	if out.Revoked == nil {
		out.Revoked = []string{}
	}
	if !r.updated.IsZero() {
		out.Updated = &r.updated
	}
	return json.Marshal(out)
}

// UnmarshalJSON is ParseRevocations.
func (r *Revocations) UnmarshalJSON(data []byte) error {
	v, err := ParseRevocations(data)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseRevocations reads the documented format. It fails on malformed JSON,
// on a field it does not know (a list it half understands could let a
// revoked proof pass), on a missing "revoked" array, and on an id that is
// not 16 hex digits.
func ParseRevocations(data []byte) (Revocations, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in revocationsJSON
	if err := dec.Decode(&in); err != nil {
		return Revocations{}, fmt.Errorf("proof: revocations: %w", err)
	}
	if dec.More() {
		return Revocations{}, fmt.Errorf("proof: revocations: data after the object")
	}
	if in.Revoked == nil {
		return Revocations{}, fmt.Errorf(`proof: revocations: no "revoked" array`)
	}
	var updated time.Time
	if in.Updated != nil {
		updated = *in.Updated
	}
	return NewRevocations(updated, in.Revoked...)
}
