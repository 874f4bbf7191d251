package proof

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veraison/go-cose"
)

// Why Verify refuses a proof. Compare with errors.Is: the errors returned
// wrap one of these with a detail that never quotes the input.
var (
	// ErrNotProof: not an otpgate proof at all, or a damaged one: empty or
	// too long, wrong prefix, invalid Base45, zlib that fails, inflates
	// past 4 KiB or has bytes after it, a COSE_Sign1 that is malformed,
	// untagged, not EdDSA, has other header parameters or is not in
	// deterministic encoding, and — once the signature holds — claims with
	// a key missing or one too many, of the wrong type or out of range.
	ErrNotProof = errors.New("not a proof")
	// ErrUnknownKey: well formed, but signed by a key that is not in the
	// KeySet (a forgery, or a key retired from the set).
	ErrUnknownKey = errors.New("signed by an unknown key")
	// ErrBadSignature: the signature does not verify with the key its kid
	// names: the proof was altered.
	ErrBadSignature = errors.New("bad signature")
	// ErrExpired: authentic, but now is at or past its expiry.
	ErrExpired = errors.New("expired")
	// ErrRevoked: authentic, but its id is on the revocation list.
	ErrRevoked = errors.New("revoked")
)

const (
	// MaxTextLen bounds the proof text that Verify reads, in bytes. Proofs
	// that otpgate issues are about 250; the largest possible about 500.
	MaxTextLen = 1024
	// maxInflated bounds the COSE message after decompression (a zlib bomb
	// stops there).
	maxInflated = 4 << 10
)

func notProof(detail string) error { return fmt.Errorf("%w: %s", ErrNotProof, detail) }

// Verify checks a proof text (as Issue returns it or a QR code holds it;
// white space around it is ignored) against the trusted keys and the
// revocation list at time now. The signature is checked before any claim is
// read. The outcomes:
//
//   - nil: the proof is authentic, unexpired and not revoked; the claims are
//     exactly what was issued.
//   - ErrNotProof, ErrUnknownKey, ErrBadSignature: nothing in the text can be
//     trusted, and the returned Claims are zero.
//   - ErrRevoked, ErrExpired: the proof is authentic and the returned Claims
//     are its claims (to say, for instance, when it expired), but they must
//     not be taken as current. A proof that is both is reported revoked.
func Verify(text string, keys KeySet, revoked Revocations, now time.Time) (Claims, error) {
	msg, err := unwrap(text)
	if err != nil {
		return Claims{}, err
	}
	kid := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte) // checked by unwrap
	key, ok := keys.lookup(kid)
	if !ok {
		return Claims{}, ErrUnknownKey
	}
	verifier, err := cose.NewVerifier(cose.AlgorithmEdDSA, key.pub)
	if err != nil {
		return Claims{}, fmt.Errorf("proof: %w", err)
	}
	if err := msg.Verify(nil, verifier); err != nil {
		return Claims{}, ErrBadSignature
	}
	c, err := decodeClaims(msg.Payload)
	if err != nil {
		return Claims{}, notProof("claims: " + err.Error())
	}
	switch {
	case revoked.Has(c.ID):
		return c, ErrRevoked
	case !now.Before(c.Expires):
		return c, ErrExpired
	}
	return c, nil
}

// unwrap undoes the text, Base45, zlib and COSE layers without trusting
// anything: the message it returns is well formed, has exactly alg EdDSA and
// an 8-byte kid in its protected header and nothing in the unprotected one,
// and is in its one deterministic encoding. Its signature is unchecked.
// Payload returns the CBOR claims inside a proof text WITHOUT checking its
// signature: for inspecting what a proof discloses (tests, audits of the
// format), never for trusting it. Errors wrap ErrNotProof.
func Payload(text string) ([]byte, error) {
	m, err := unwrap(text)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(m.Payload), nil
}

func unwrap(text string) (*cose.Sign1Message, error) {
	if len(text) > 2*MaxTextLen {
		return nil, notProof("too long")
	}
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, notProof("empty")
	case len(text) > MaxTextLen:
		return nil, notProof("too long")
	case !strings.HasPrefix(text, Prefix):
		return nil, notProof("no " + Prefix + " prefix")
	}
	compressed, err := decodeBase45(text[len(Prefix):])
	if err != nil {
		return nil, notProof("invalid base45")
	}
	raw, err := inflate(compressed)
	if err != nil {
		return nil, notProof("zlib: " + err.Error())
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		return nil, notProof("not a COSE_Sign1 message")
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmEdDSA {
		return nil, notProof("algorithm is not EdDSA")
	}
	kid, ok := msg.Headers.Protected[cose.HeaderLabelKeyID].([]byte)
	if !ok || len(kid) != kidSize {
		return nil, notProof("no 8-byte key id")
	}
	if len(msg.Headers.Protected) != 2 || len(msg.Headers.Unprotected) != 0 {
		return nil, notProof("unexpected header parameters")
	}
	// One encoding only: what Issue would have written for this kid,
	// payload and signature.
	want := newSign1(kid, msg.Payload)
	want.Signature = msg.Signature
	canon, err := want.MarshalCBOR()
	if err != nil || !bytes.Equal(canon, raw) {
		return nil, notProof("COSE message not in deterministic encoding")
	}
	return &msg, nil
}

// inflate decompresses a zlib stream of at most maxInflated bytes that ends
// exactly where b does.
func inflate(b []byte) ([]byte, error) {
	br := bytes.NewReader(b)
	zr, err := zlib.NewReader(br)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return nil, err
	}
	switch {
	case len(out) > maxInflated:
		return nil, errors.New("inflates past the limit")
	case br.Len() != 0:
		return nil, errors.New("data after the stream")
	}
	return out, nil
}
