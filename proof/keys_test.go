package proof

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSigningKey(t *testing.T) {
	want := testKey(7)
	seed := want.Seed()
	der, err := x509.MarshalPKCS8PrivateKey(want)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for name, in := range map[string]string{
		"hex":             hex.EncodeToString(seed),
		"upper-case hex":  strings.ToUpper(hex.EncodeToString(seed)),
		"base64":          base64.StdEncoding.EncodeToString(seed),
		"base64 unpadded": base64.RawStdEncoding.EncodeToString(seed),
		"base64url":       base64.URLEncoding.EncodeToString(seed),
		"with newline":    hex.EncodeToString(seed) + "\n",
		"PKCS#8 PEM":      pemKey,
	} {
		got, err := ParseSigningKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%s: a different key", name)
		}
	}
}

func TestParseSigningKeyErrorsNeverEchoTheKey(t *testing.T) {
	seed := testKey(7).Seed()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pubDER, _ := x509.MarshalPKIXPublicKey(testKey(7).Public())
	secretHex := hex.EncodeToString(seed)
	for name, in := range map[string]string{
		"empty":                "",
		"31 bytes hex":         secretHex[:62],
		"33 bytes hex":         secretHex + "ab",
		"hex with a bad digit": "zz" + secretHex[2:],
		"64-byte private key":  hex.EncodeToString(testKey(7)),
		"base64 of 31 bytes":   base64.StdEncoding.EncodeToString(seed[:31]),
		"ECDSA PKCS#8":         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})),
		"public key PEM":       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		"broken PEM":           "-----BEGIN PRIVATE KEY-----\n" + secretHex + "\n",
		"garbage in PEM":       string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: seed})),
	} {
		_, err := ParseSigningKey(in)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		msg := err.Error()
		for _, leak := range []string{secretHex[:16], secretHex[8:24], base64.StdEncoding.EncodeToString(seed)[:12]} {
			if strings.Contains(strings.ToLower(msg), strings.ToLower(leak)) {
				t.Errorf("%s: error %q repeats the key", name, msg)
			}
		}
	}
}

func TestParsePublicKey(t *testing.T) {
	pub := testKey(7).Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	for name, in := range map[string]string{
		"hex":    hex.EncodeToString(pub),
		"base64": base64.StdEncoding.EncodeToString(pub),
		"PEM":    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	} {
		k, err := ParsePublicKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !k.PublicKey().Equal(pub) || k.ID() != testSigner(t, 7).KeyID() {
			t.Errorf("%s: a different key", name)
		}
	}
	if _, err := ParsePublicKey(hex.EncodeToString(pub[:31])); err == nil {
		t.Error("31-byte key accepted")
	}
}

// The derived key is pinned: its label is part of what operators publish,
// and changing it would invalidate every proof in circulation.
func TestDeriveSigningKey(t *testing.T) {
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i)
	}
	k, err := DeriveSigningKey(master)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := DeriveSigningKey(master)
	if !k.Equal(again) {
		t.Fatal("not deterministic")
	}
	// Computed apart from Go: openssl kdf HKDF (SHA256, no salt, this info),
	// then openssl pkey -pubout of the seed.
	const want = "25174dcba510c557656fda0a9a7d59b1febd595d2f8d51170619c3217379079b"
	if got := hex.EncodeToString(k.Public().(ed25519.PublicKey)); got != want {
		t.Fatalf("derived public key %s, want %s", got, want)
	}
	if k.Equal(ed25519.NewKeyFromSeed(master)) {
		t.Fatal("the master key itself was used as the seed")
	}
	master[0] ^= 1
	other, _ := DeriveSigningKey(master)
	if k.Equal(other) {
		t.Fatal("two master keys derive one signing key")
	}
	if _, err := DeriveSigningKey(master[:31]); err == nil {
		t.Fatal("31-byte master key accepted")
	}
}

func TestNewSignerRefusesMalformedKeys(t *testing.T) {
	if _, err := NewSigner(testKey(1)[:63]); err == nil {
		t.Error("short key accepted")
	}
	bad := append(ed25519.PrivateKey(nil), testKey(1)...)
	copy(bad[32:], testKey(2)[32:]) // another key's public half
	if _, err := NewSigner(bad); err == nil {
		t.Error("mismatched public half accepted")
	}
}

func TestKeyID(t *testing.T) {
	s := testSigner(t, 1)
	pub := s.Public().PublicKey()
	// base64url of the first 8 bytes of SHA-256(pub): 11 characters.
	if id := s.KeyID(); len(id) != 11 || id != kidOf(pub).String() || id != s.Public().ID() {
		t.Fatalf("key id %q", id)
	}
	if (Key{}).ID() != "" {
		t.Fatal("zero Key has an id")
	}
}

func TestKeySetJWKS(t *testing.T) {
	a, b := testSigner(t, 1), testSigner(t, 2)
	set := keySet(t, a, b, a) // a duplicate counts once
	if set.Len() != 2 {
		t.Fatalf("%d keys", set.Len())
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 {
		t.Fatalf("JWKS %s", data)
	}
	for _, k := range doc.Keys {
		s := a
		if k["kid"] == b.KeyID() {
			s = b
		}
		want := map[string]string{
			"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
			"kid": s.KeyID(),
			"x":   base64.RawURLEncoding.EncodeToString(s.Public().PublicKey()),
		}
		if !reflect.DeepEqual(k, want) {
			t.Errorf("JWK %v, want %v", k, want)
		}
	}

	var back KeySet
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, set) {
		t.Fatal("JWKS round trip changed the set")
	}
}

func TestParseKeySet(t *testing.T) {
	s := testSigner(t, 1)
	x := base64.RawURLEncoding.EncodeToString(s.Public().PublicKey())
	kid := s.KeyID()
	ok := func(extra string) string {
		return `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `"` + extra + `}]}`
	}
	for name, tc := range map[string]struct {
		in   string
		keys int
	}{
		"full":           {ok(`,"kid":"` + kid + `","alg":"EdDSA","use":"sig"`), 1},
		"minimal":        {ok(""), 1},
		"other kty":      {`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`, 0},
		"other curve":    {`{"keys":[{"kty":"OKP","crv":"X25519","x":"` + x + `"}]}`, 0},
		"empty":          {`{"keys":[]}`, 0},
		"and an RSA key": {`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}]}`, 1},
	} {
		set, err := ParseKeySet([]byte(tc.in))
		if err != nil || set.Len() != tc.keys {
			t.Errorf("%s: %d keys, %v", name, set.Len(), err)
		}
	}
	for name, in := range map[string]string{
		"not JSON":       `{"keys":`,
		"wrong kid":      ok(`,"kid":"AAAAAAAAAAA"`),
		"wrong alg":      ok(`,"alg":"ES256"`),
		"wrong use":      ok(`,"use":"enc"`),
		"private key":    ok(`,"d":"` + base64.RawURLEncoding.EncodeToString(testKey(1).Seed()) + `"`),
		"short x":        `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
		"padded x":       `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + base64.URLEncoding.EncodeToString(s.Public().PublicKey()) + `"}]}`,
		"standard b64 x": `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + strings.NewReplacer("-", "+", "_", "/").Replace(x) + `+"}]}`,
	} {
		if _, err := ParseKeySet([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRevocations(t *testing.T) {
	when := time.Date(2026, 5, 1, 10, 0, 0, 0, time.FixedZone("IST", 19800))
	r, err := NewRevocations(when, "FEDCBA9876543210", "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Has("fedcba9876543210") || !r.Has("0123456789abcdef") || r.Has("0000000000000000") || r.Len() != 2 {
		t.Fatalf("list %v", r.IDs())
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"revoked":["0123456789abcdef","fedcba9876543210"],"updated":"2026-05-01T04:30:00Z"}`
	if string(data) != want {
		t.Fatalf("JSON %s, want %s", data, want)
	}
	back, err := ParseRevocations(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.IDs(), r.IDs()) || !back.Updated().Equal(r.Updated()) {
		t.Fatalf("round trip: %v %v", back.IDs(), back.Updated())
	}

	more, err := r.With(when.Add(time.Hour), "1111111111111111")
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 || more.Len() != 3 || !more.Updated().Equal(when.Add(time.Hour)) {
		t.Fatal("With changed the original or lost an id")
	}

	if empty, _ := json.Marshal(Revocations{}); string(empty) != `{"revoked":[]}` {
		t.Fatalf("empty list %s", empty)
	}
	for _, in := range []string{
		`{"revoked":["0123"]}`,
		`{"revoked":["0123456789abcdeg"]}`,
		`{"revoked":["0123456789abcdef"],"unrevoked":[]}`,
		`{"updated":"2026-05-01T04:30:00Z"}`,
		`{"revoked":[],"updated":"yesterday"}`,
		`{"revoked":[]} {}`,
		`[]`,
	} {
		if _, err := ParseRevocations([]byte(in)); err == nil {
			t.Errorf("ParseRevocations(%s) accepted", in)
		}
	}
	if _, err := NewRevocations(when, "not an id"); err == nil || !strings.Contains(err.Error(), "not an id") {
		t.Errorf("error %v does not name the bad id", err)
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrNotProof, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrRevoked, ErrBadImage, ErrNoQRCode}
	for i, a := range all {
		for j, b := range all {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v is %v", a, b)
			}
		}
	}
}
