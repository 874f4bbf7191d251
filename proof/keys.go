package proof

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// kidSize is the length of a key id: the first 8 bytes of SHA-256 of the raw
// 32-byte public key.
const kidSize = 8

type kid [kidSize]byte

func kidOf(pub ed25519.PublicKey) kid {
	sum := sha256.Sum256(pub)
	return kid(sum[:kidSize])
}

func (k kid) String() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// Key is an Ed25519 public key that verifies proofs.
type Key struct {
	pub ed25519.PublicKey
	id  kid
}

// NewKey wraps an Ed25519 public key. It fails only when pub is not
// ed25519.PublicKeySize bytes.
func NewKey(pub ed25519.PublicKey) (Key, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Key{}, fmt.Errorf("proof: an Ed25519 public key is %d bytes, not %d", ed25519.PublicKeySize, len(pub))
	}
	pub = bytes.Clone(pub)
	return Key{pub: pub, id: kidOf(pub)}, nil
}

// ID is the key id as published in the JWKS: base64url, without padding, of
// the first 8 bytes of SHA-256 of the raw public key. It is "" for the zero
// Key.
func (k Key) ID() string {
	if k.pub == nil {
		return ""
	}
	return k.id.String()
}

// PublicKey returns a copy of the raw key.
func (k Key) PublicKey() ed25519.PublicKey { return bytes.Clone(k.pub) }

// KeySet is the public keys a verifier trusts: the current signing key and
// the older ones kept so that proofs signed before a rotation still verify.
// Its zero value is an empty set, which verifies nothing. A KeySet is
// immutable and safe for concurrent use.
type KeySet struct {
	keys []Key // sorted by id
}

// NewKeySet makes a set of keys. A key given twice counts once. It fails
// only for the zero Key, or for two different keys with the same id (which
// SHA-256 makes practically impossible).
func NewKeySet(keys ...Key) (KeySet, error) {
	var out []Key
	for _, k := range keys {
		if k.pub == nil {
			return KeySet{}, errors.New("proof: zero Key in a key set")
		}
		i, found := slices.BinarySearchFunc(out, k.id, func(e Key, id kid) int { return bytes.Compare(e.id[:], id[:]) })
		if found {
			if !out[i].pub.Equal(k.pub) {
				return KeySet{}, fmt.Errorf("proof: two keys share the id %s", k.id)
			}
			continue
		}
		out = slices.Insert(out, i, k)
	}
	return KeySet{keys: out}, nil
}

// KeySetOf is NewKeySet over the public halves of signing keys, for a
// process that holds its current and previous private keys.
func KeySetOf(privs ...ed25519.PrivateKey) (KeySet, error) {
	keys := make([]Key, 0, len(privs))
	for _, p := range privs {
		if len(p) != ed25519.PrivateKeySize {
			return KeySet{}, errors.New("proof: malformed Ed25519 private key")
		}
		k, err := NewKey(p.Public().(ed25519.PublicKey))
		if err != nil {
			return KeySet{}, err
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys...)
}

// Keys returns the keys, ordered by id.
func (s KeySet) Keys() []Key { return slices.Clone(s.keys) }

// Len is the number of keys.
func (s KeySet) Len() int { return len(s.keys) }

func (s KeySet) lookup(id []byte) (Key, bool) {
	if len(id) != kidSize {
		return Key{}, false
	}
	i, found := slices.BinarySearchFunc(s.keys, id, func(e Key, id []byte) int { return bytes.Compare(e.id[:], id) })
	if !found {
		return Key{}, false
	}
	return s.keys[i], true
}

// jwk is one key of a JWKS as RFC 8037 defines it for Ed25519.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	D   string `json:"d,omitempty"` // only to refuse it
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

// MarshalJSON encodes the set as a JWKS (RFC 7517, with RFC 8037's OKP keys):
//
//	{"keys":[{"kty":"OKP","crv":"Ed25519","x":"<base64url key>",
//	          "kid":"<base64url 8-byte id>","alg":"EdDSA","use":"sig"}]}
func (s KeySet) MarshalJSON() ([]byte, error) {
	out := jwks{Keys: make([]jwk, 0, len(s.keys))}
	for _, k := range s.keys {
		out.Keys = append(out.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.pub),
			Kid: k.id.String(), Alg: "EdDSA", Use: "sig",
		})
	}
	return json.Marshal(out)
}

// UnmarshalJSON is ParseKeySet.
func (s *KeySet) UnmarshalJSON(data []byte) error {
	set, err := ParseKeySet(data)
	if err != nil {
		return err
	}
	*s = set
	return nil
}

// ParseKeySet reads a JWKS as MarshalJSON writes it. Keys of another type or
// curve are skipped (RFC 7517 section 5). It fails on malformed JSON, on an
// Ed25519 key whose x is not 32 bytes of unpadded base64url, whose kid
// differs from the one computed from x, whose alg is not EdDSA or whose use
// is not sig, and on any private key material ("d"): a JWKS that holds a
// private key has been published by mistake.
func ParseKeySet(data []byte) (KeySet, error) {
	var in jwks
	if err := json.Unmarshal(data, &in); err != nil {
		return KeySet{}, fmt.Errorf("proof: key set: %w", err)
	}
	var keys []Key
	for i, j := range in.Keys {
		if j.D != "" {
			return KeySet{}, fmt.Errorf("proof: key set: key %d holds private key material", i)
		}
		if j.Kty != "OKP" || j.Crv != "Ed25519" {
			continue
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(j.X)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return KeySet{}, fmt.Errorf("proof: key set: key %d: x is not a base64url Ed25519 public key", i)
		}
		k, _ := NewKey(raw)
		switch {
		case j.Kid != "" && j.Kid != k.ID():
			return KeySet{}, fmt.Errorf("proof: key set: key %d: kid %q is not the key's id %s", i, j.Kid, k.ID())
		case j.Alg != "" && j.Alg != "EdDSA":
			return KeySet{}, fmt.Errorf("proof: key set: key %d: alg %q, want EdDSA", i, j.Alg)
		case j.Use != "" && j.Use != "sig":
			return KeySet{}, fmt.Errorf("proof: key set: key %d: use %q, want sig", i, j.Use)
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys...)
}

// The errors of ParseSigningKey and ParsePublicKey name the form that was
// expected and never repeat the input.
var (
	errKeyForm    = errors.New("proof: signing key must be a 32-byte Ed25519 seed in hex or base64, or a PKCS#8 PEM Ed25519 private key")
	errPubKeyForm = errors.New("proof: public key must be 32 bytes of Ed25519 key in hex or base64, or a PEM PUBLIC KEY (PKIX)")
)

// ParseSigningKey reads an Ed25519 private key from configuration: a 32-byte
// seed written as 64 hex digits or as base64 (standard or URL alphabet,
// padded or not), or a PEM "PRIVATE KEY" block holding a PKCS#8 Ed25519 key
// (what `openssl genpkey -algorithm ed25519` writes). Surrounding white space
// is ignored. Errors describe the expected form and never echo the key.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		der, err := pemBlock(s, "PRIVATE KEY")
		if err != nil {
			return nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, errors.New("proof: signing key: the PEM block is not a valid PKCS#8 private key")
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("proof: signing key: PKCS#8 key is %T, not Ed25519", k)
		}
		return priv, nil
	}
	seed, ok := decodeKeyBytes(s, ed25519.SeedSize)
	if !ok {
		return nil, errKeyForm
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads an Ed25519 public key, for instance a retired key
// kept for verification: 32 bytes as 64 hex digits or base64, or a PEM
// "PUBLIC KEY" block (PKIX, what `openssl pkey -pubout` writes).
func ParsePublicKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		der, err := pemBlock(s, "PUBLIC KEY")
		if err != nil {
			return Key{}, err
		}
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return Key{}, errors.New("proof: public key: the PEM block is not a valid PKIX public key")
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return Key{}, fmt.Errorf("proof: public key: PKIX key is %T, not Ed25519", k)
		}
		return NewKey(pub)
	}
	raw, ok := decodeKeyBytes(s, ed25519.PublicKeySize)
	if !ok {
		return Key{}, errPubKeyForm
	}
	return NewKey(raw)
}

func pemBlock(s, typ string) ([]byte, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("proof: key: malformed PEM")
	}
	if b.Type != typ {
		return nil, fmt.Errorf("proof: key: PEM block is %q, want %q", b.Type, typ)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("proof: key: text after the PEM block")
	}
	return b.Bytes, nil
}

// decodeKeyBytes decodes hex or any base64 flavour of exactly n bytes.
func decodeKeyBytes(s string, n int) ([]byte, bool) {
	if len(s) == 2*n {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil && len(b) == n {
			return b, true
		}
	}
	return nil, false
}

// signingKeyInfo is the HKDF label of the proof signing key. It is part of
// the published key: changing it changes every derived key.
const signingKeyInfo = "otpgate proof signing key v1"

// DeriveSigningKey derives the proof signing key from otpgate's master key
// (OTPGATE_MASTER_KEY) with HKDF-SHA256 under its own label, so that the
// operator keeps one secret. The key changes exactly when the master key
// does; an operator who wants to rotate the signing key alone configures one
// with ParseSigningKey instead. It fails for a master key shorter than 32
// bytes.
func DeriveSigningKey(master []byte) (ed25519.PrivateKey, error) {
	if len(master) < 32 {
		return nil, errors.New("proof: master key must be at least 32 bytes")
	}
	seed, err := hkdf.Key(sha256.New, master, nil, signingKeyInfo, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("proof: derive signing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
