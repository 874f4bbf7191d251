package proof

import (
	"bytes"
	"compress/zlib"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/veraison/go-cose"
)

// Prefix starts every proof text. The digit is the format version.
const Prefix = "OTPG1:"

// Facts is what a proof is made from: the part of a record it may state.
// Only the initials of Name ever reach the proof.
type Facts struct {
	Status Status
	Doses  int
	// LastDose is the date of the last dose, zero when Doses is 0. Only its
	// year and month (in its own location) reach the proof.
	LastDose  time.Time
	BirthYear int
	Name      string
}

// String keeps a record's fields out of logs and error messages.
func (Facts) String() string { return "<proof facts>" }

// LogValue keeps a record's fields out of slog output.
func (Facts) LogValue() slog.Value { return slog.StringValue("<proof facts>") }

// Signer issues proofs with one Ed25519 key. It is safe for concurrent use.
type Signer struct {
	key    Key
	signer cose.Signer
}

// NewSigner makes a Signer from an Ed25519 private key (see ParseSigningKey
// and DeriveSigningKey). It fails when priv is not a well-formed Ed25519
// private key, including one whose public half does not match its seed.
func NewSigner(priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("proof: malformed Ed25519 private key")
	}
	if !ed25519.NewKeyFromSeed(priv.Seed()).Equal(priv) {
		return nil, errors.New("proof: Ed25519 private key's public half does not match its seed")
	}
	key, err := NewKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	s, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		return nil, fmt.Errorf("proof: %w", err)
	}
	return &Signer{key: key, signer: s}, nil
}

// KeyID is the id of the signing key, as in the JWKS and in every proof's
// protected header.
func (s *Signer) KeyID() string { return s.key.ID() }

// Public is the key that verifies this Signer's proofs: publish it (in a
// KeySet) before issuing with it.
func (s *Signer) Public() Key { return s.key }

// Issue makes a proof of facts, issued by issuer at now and valid for ttl.
// It returns the claims exactly as Verify will return them (times in UTC,
// truncated to the second; a fresh random 8-byte id) and the proof text,
// Prefix followed by Base45, which QRCode draws.
//
// It fails, and issues nothing, when the facts do not fit a proof: a status
// that does not match the dose count (none exactly when there is no dose),
// more than 32 doses, a last dose date missing with doses or present without,
// a year outside 1900..9999, a name without a letter; or when issuer is empty,
// longer than 64 bytes or not printable, or ttl is under a second. Errors
// never hold the facts.
func (s *Signer) Issue(f Facts, issuer string, now time.Time, ttl time.Duration) (Claims, string, error) {
	if ttl < time.Second {
		return Claims{}, "", errors.New("proof: ttl must be at least a second")
	}
	var id [idBytes]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Claims{}, "", fmt.Errorf("proof: random id: %w", err)
	}
	iat := time.Unix(now.Unix(), 0).UTC()
	c := Claims{
		Issuer:    issuer,
		IssuedAt:  iat,
		Expires:   time.Unix(iat.Add(ttl).Unix(), 0).UTC(),
		ID:        hex.EncodeToString(id[:]),
		Status:    f.Status,
		Doses:     f.Doses,
		BirthYear: f.BirthYear,
		Initials:  Initials(f.Name),
	}
	if !f.LastDose.IsZero() {
		c.LastDose = f.LastDose.Format("2006-01")
	}
	payload, err := encodeClaims(c)
	if err != nil {
		return Claims{}, "", fmt.Errorf("proof: cannot issue: %w", err)
	}
	cose, err := s.sign(payload)
	if err != nil {
		return Claims{}, "", err
	}
	text, err := wrap(cose)
	if err != nil {
		return Claims{}, "", err
	}
	return c, text, nil
}

// sign returns the tagged COSE_Sign1 message of payload, with alg and kid
// in the protected header and an empty unprotected header.
func (s *Signer) sign(payload []byte) ([]byte, error) {
	msg := newSign1(s.key.id[:], payload)
	if err := msg.Sign(rand.Reader, nil, s.signer); err != nil {
		return nil, fmt.Errorf("proof: sign: %w", err)
	}
	return msg.MarshalCBOR()
}

func newSign1(kid, payload []byte) *cose.Sign1Message {
	msg := cose.NewSign1Message()
	msg.Headers.Protected[cose.HeaderLabelAlgorithm] = cose.AlgorithmEdDSA
	msg.Headers.Protected[cose.HeaderLabelKeyID] = kid
	msg.Payload = payload
	return msg
}

// wrap compresses a COSE message and writes it as proof text.
func wrap(cose []byte) (string, error) {
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(cose); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return Prefix + encodeBase45(buf.Bytes()), nil
}
