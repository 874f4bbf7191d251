package proof

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Status is a beneficiary's vaccination status as a proof states it.
type Status int

// The statuses, with their value on the wire (private claim key 1).
const (
	StatusNone    Status = 0 // no dose recorded
	StatusPartial Status = 1 // vaccination begun, not complete
	StatusFull    Status = 2 // primary course complete
)

// String returns "none", "partial" or "full", and "Status(n)" for anything
// else.
func (s Status) String() string {
	switch s {
	case StatusNone:
		return "none"
	case StatusPartial:
		return "partial"
	case StatusFull:
		return "full"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

func (s Status) valid() bool { return s >= StatusNone && s <= StatusFull }

// ParseStatus is the inverse of String: "none", "partial" or "full" (the
// store's status names). Anything else is an error.
func ParseStatus(s string) (Status, error) {
	for st := StatusNone; st <= StatusFull; st++ {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("proof: unknown vaccination status %q", s)
}

// Bounds on what a proof holds, checked when issuing and when verifying.
const (
	maxIssuerBytes   = 64
	maxDoses         = 32
	minYear          = 1900
	maxYear          = 9999
	maxInitialsBytes = maxInitialWords * (maxInitialRunes*utf8.UTFMax + 1)
	idBytes          = 8
	// maxNumericDate is 9999-12-31T23:59:59Z.
	maxNumericDate = 253402300799
)

// Claims is everything a proof says, and all that it says.
type Claims struct {
	Issuer   string    // who signed, e.g. "otpgate.example.in"
	IssuedAt time.Time // UTC, whole seconds
	Expires  time.Time // UTC, whole seconds; the proof is refused from this instant on
	ID       string    // 16 lower-case hex digits of 8 random bytes: what a revocation names
	Status   Status
	Doses    int    // number of doses, 0 to 32
	LastDose string // month of the last dose, "YYYY-MM"; "" exactly when Doses is 0
	// BirthYear is the beneficiary's year of birth, 1900 to 9999.
	BirthYear int
	// Initials abbreviate the name, as Initials makes them: "A.V.".
	Initials string
}

// String names the proof by its id only: the claims are a beneficiary's data.
func (c Claims) String() string { return "<proof " + c.ID + ">" }

// LogValue logs the proof id only.
func (c Claims) LogValue() slog.Value { return slog.GroupValue(slog.String("proof_id", c.ID)) }

// CWT claim keys (RFC 8392) and the private claim; see the package doc.
const (
	claimIss   = 1
	claimExp   = 4
	claimIat   = 6
	claimCti   = 7
	claimProof = -65537 // the first key of the private-use range (below -65536)
)

// wireClaims is the CBOR payload. Field order does not matter: core
// deterministic encoding sorts the keys.
type wireClaims struct {
	Issuer   string    `cbor:"1,keyasint"`
	Expires  int64     `cbor:"4,keyasint"`
	IssuedAt int64     `cbor:"6,keyasint"`
	ID       []byte    `cbor:"7,keyasint"`
	Proof    wireProof `cbor:"-65537,keyasint"`
}

// wireProof is the private claim's map.
type wireProof struct {
	Status    uint64 `cbor:"1,keyasint"`
	Doses     uint64 `cbor:"2,keyasint"`
	LastDose  string `cbor:"3,keyasint,omitempty"`
	BirthYear uint64 `cbor:"4,keyasint"`
	Initials  string `cbor:"5,keyasint"`
}

var (
	// encMode is RFC 8949 core deterministic encoding (section 4.2.1):
	// shortest lengths and integers, definite lengths, keys sorted.
	encMode = mustEncMode(cbor.CoreDetEncOptions())
	// decMode refuses what the payload never holds: duplicate or unknown
	// keys, indefinite lengths, tags, invalid UTF-8, deep nesting.
	decMode = mustDecMode(cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   4,
		MaxArrayElements:  16,
		MaxMapPairs:       16,
	})
)

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

// encodeClaims checks c and returns its CBOR payload.
func encodeClaims(c Claims) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	id, _ := hex.DecodeString(c.ID) // checked above
	return encMode.Marshal(wireClaims{
		Issuer:   c.Issuer,
		Expires:  c.Expires.Unix(),
		IssuedAt: c.IssuedAt.Unix(),
		ID:       id,
		Proof: wireProof{
			Status:    uint64(c.Status),
			Doses:     uint64(c.Doses),
			LastDose:  c.LastDose,
			BirthYear: uint64(c.BirthYear),
			Initials:  c.Initials,
		},
	})
}

var errNotCanonical = errors.New("payload is not in core deterministic encoding")

// decodeClaims parses a payload. It accepts only what encodeClaims makes:
// exactly the documented keys, each of its type, within bounds, encoded
// deterministically (so a payload has one encoding).
func decodeClaims(payload []byte) (Claims, error) {
	var w wireClaims
	if err := decMode.Unmarshal(payload, &w); err != nil {
		return Claims{}, err
	}
	if w.Proof.Status > uint64(StatusFull) || w.Proof.Doses > maxDoses || w.Proof.BirthYear > maxYear {
		return Claims{}, errors.New("private claim out of range")
	}
	if len(w.ID) != idBytes {
		return Claims{}, fmt.Errorf("cti is %d bytes, want %d", len(w.ID), idBytes)
	}
	if w.IssuedAt < 0 || w.Expires > maxNumericDate || w.IssuedAt >= w.Expires {
		return Claims{}, errors.New("iat and exp out of range")
	}
	c := Claims{
		Issuer:    w.Issuer,
		IssuedAt:  time.Unix(w.IssuedAt, 0).UTC(),
		Expires:   time.Unix(w.Expires, 0).UTC(),
		ID:        hex.EncodeToString(w.ID),
		Status:    Status(w.Proof.Status),
		Doses:     int(w.Proof.Doses),
		LastDose:  w.Proof.LastDose,
		BirthYear: int(w.Proof.BirthYear),
		Initials:  w.Proof.Initials,
	}
	again, err := encodeClaims(c)
	if err != nil {
		return Claims{}, err
	}
	if !bytes.Equal(again, payload) {
		// A missing key, an integer or length not in its shortest form,
		// or keys out of order.
		return Claims{}, errNotCanonical
	}
	return c, nil
}

// check reports the first way c is not something a proof may say.
func (c Claims) check() error {
	switch {
	case c.Issuer == "" || len(c.Issuer) > maxIssuerBytes || !printable(c.Issuer):
		return fmt.Errorf("issuer must be 1 to %d bytes of printable UTF-8", maxIssuerBytes)
	case c.IssuedAt.Unix() < 0 || c.Expires.Unix() > maxNumericDate || !c.IssuedAt.Before(c.Expires):
		return errors.New("issued-at must come before expiry, both between 1970 and 9999")
	case !validID(c.ID):
		return fmt.Errorf("id must be %d lower-case hex digits", 2*idBytes)
	case !c.Status.valid():
		return fmt.Errorf("unknown status %v", c.Status)
	case c.Doses < 0 || c.Doses > maxDoses:
		return fmt.Errorf("doses must be 0 to %d", maxDoses)
	case (c.Doses == 0) != (c.Status == StatusNone):
		return fmt.Errorf("status %v does not fit %d doses", c.Status, c.Doses)
	case (c.Doses == 0) != (c.LastDose == ""):
		return errors.New("the last dose month must be given exactly when there are doses")
	case c.LastDose != "" && !validMonth(c.LastDose):
		return errors.New(`last dose month must be "YYYY-MM"`)
	case c.BirthYear < minYear || c.BirthYear > maxYear:
		return fmt.Errorf("birth year must be %d to %d", minYear, maxYear)
	case c.Initials == "" || len(c.Initials) > maxInitialsBytes || !printable(c.Initials):
		return fmt.Errorf("initials must be 1 to %d bytes of printable UTF-8", maxInitialsBytes)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != zwj && r != zwnj {
			return false
		}
	}
	return true
}

func validID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !('0' <= id[i] && id[i] <= '9' || 'a' <= id[i] && id[i] <= 'f') {
			return false
		}
	}
	return true
}

// validMonth accepts "YYYY-MM" with a year from 1900 to 9999.
func validMonth(s string) bool {
	t, err := time.Parse("2006-01", s)
	return err == nil && t.Format("2006-01") == s && t.Year() >= minYear
}
