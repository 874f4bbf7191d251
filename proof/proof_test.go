package proof

import (
	"bytes"
	"compress/zlib"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/skip2/go-qrcode"
)

var t0 = time.Date(2026, 5, 1, 10, 30, 15, 123456789, time.FixedZone("IST", 5*3600+1800))

const issuer = "otpgate.example.in"

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testSigner(t testing.TB, seed byte) *Signer {
	t.Helper()
	s, err := NewSigner(testKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keySet(t testing.TB, signers ...*Signer) KeySet {
	t.Helper()
	var keys []Key
	for _, s := range signers {
		keys = append(keys, s.Public())
	}
	ks, err := NewKeySet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func typicalFacts() Facts {
	return Facts{
		Status:    StatusFull,
		Doses:     2,
		LastDose:  time.Date(2021, 8, 14, 0, 0, 0, 0, time.UTC),
		BirthYear: 1987,
		Name:      "Asha Verma",
	}
}

func issue(t testing.TB, s *Signer, f Facts) (Claims, string) {
	t.Helper()
	c, text, err := s.Issue(f, issuer, t0, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c, text
}

// coseOf undoes the text, Base45 and zlib layers of a proof.
func coseOf(t testing.TB, text string) []byte {
	t.Helper()
	z, err := decodeBase45(strings.TrimPrefix(text, Prefix))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := inflate(z)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rewrap compresses a COSE message into proof text without checking it.
func rewrap(t testing.TB, cose []byte) string {
	t.Helper()
	text, err := wrap(cose)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestRoundTripThroughQRCode(t *testing.T) {
	s := testSigner(t, 1)
	want, text := issue(t, s, typicalFacts())

	if want != (Claims{
		Issuer:    issuer,
		IssuedAt:  time.Date(2026, 5, 1, 5, 0, 15, 0, time.UTC),
		Expires:   time.Date(2026, 5, 31, 5, 0, 15, 0, time.UTC),
		ID:        want.ID,
		Status:    StatusFull,
		Doses:     2,
		LastDose:  "2021-08",
		BirthYear: 1987,
		Initials:  "A.V.",
	}) {
		t.Fatalf("issued claims %#v", want)
	}
	if !validID(want.ID) {
		t.Fatalf("id %q is not 16 lower-case hex digits", want.ID)
	}

	png, err := QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("QRCode did not return a PNG")
	}
	scanned, err := DecodeImage(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	if scanned != text {
		t.Fatalf("scanned %q, issued %q", scanned, text)
	}

	// The verifier knows only what is published.
	published, err := keySet(t, s).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeySet(published)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(scanned, keys, Revocations{}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("verified %#v, issued %#v", got, want)
	}
}

func TestQRCodeIsLevelQ(t *testing.T) {
	_, text := issue(t, testSigner(t, 1), typicalFacts())
	png, err := QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	// Turned as DecodeImage turns it, for the codes gozxing misreads upright.
	src := gozxing.NewLuminanceSourceFromImage(img)
	var res *gozxing.Result
	for turn := 0; res == nil && turn < 4; turn++ {
		bmp, _ := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
		res, _ = zxqr.NewQRCodeReader().Decode(bmp, nil)
		src, _ = src.RotateCounterClockwise()
	}
	if res == nil {
		t.Fatal("gozxing cannot read the code")
	}
	if ec := res.GetResultMetadata()[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL]; ec != "Q" {
		t.Fatalf("error correction level %v, want Q", ec)
	}
}

// TestTypicalSize records the sizes of a typical proof and keeps them from
// growing unnoticed: the QR code must stay one a phone reads easily.
func TestTypicalSize(t *testing.T) {
	_, text, err := testSigner(t, 1).Issue(typicalFacts(), "otpgate", t0, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cose := coseOf(t, text)
	var msg struct {
		_                                    struct{} `cbor:",toarray"`
		Protected, Unprotected, Payload, Sig cbor.RawMessage
	}
	if err := cbor.Unmarshal(cose[1:], &msg); err != nil { // after tag 18
		t.Fatal(err)
	}
	var payload []byte
	if err := cbor.Unmarshal(msg.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	z, _ := decodeBase45(strings.TrimPrefix(text, Prefix))
	q, err := qrcode.New(text, qrcode.High)
	if err != nil {
		t.Fatal(err)
	}
	// zlib cannot shrink 146 bytes that are mostly key id, random id and
	// signature: compress/zlib stores them, 16 bytes larger (stream header,
	// two block headers, checksum). That is the price of layering as the EU
	// certificate does.
	t.Logf("CBOR claims %d B, COSE_Sign1 %d B, zlib %d B, text %d chars (Base45 %d), QR version %d at level Q",
		len(payload), len(cose), len(z), len(text), len(text)-len(Prefix), q.VersionNumber)
	if len(text) > 250 || q.VersionNumber > 11 {
		t.Errorf("a typical proof has grown: %d chars, QR version %d", len(text), q.VersionNumber)
	}
}

func keysOf(t *testing.T, m map[any]any) []int64 {
	t.Helper()
	var ks []int64
	for k := range m {
		i, ok := k.(int64)
		if !ok {
			t.Fatalf("map key %#v is not an integer", k)
		}
		ks = append(ks, i)
	}
	slices.Sort(ks)
	return ks
}

// TestWireFormat pins the format that other verifiers implement: a tagged
// COSE_Sign1 with {alg: EdDSA, kid} protected and nothing unprotected, and
// claims with the listed keys only.
func TestWireFormat(t *testing.T) {
	s := testSigner(t, 1)
	for _, tc := range []struct {
		name        string
		facts       Facts
		privateKeys []int64
	}{
		{"vaccinated", typicalFacts(), []int64{1, 2, 3, 4, 5}},
		{"no dose", Facts{Status: StatusNone, BirthYear: 1990, Name: "Ravi"}, []int64{1, 2, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, text := issue(t, s, tc.facts)
			if !strings.HasPrefix(text, "OTPG1:") {
				t.Fatalf("text %q lacks the prefix", text)
			}
			cose := coseOf(t, text)
			dm, _ := cbor.DecOptions{IntDec: cbor.IntDecConvertSigned, DefaultMapType: reflect.TypeOf(map[any]any(nil))}.DecMode()
			var tag cbor.Tag
			if err := dm.Unmarshal(cose, &tag); err != nil || tag.Number != 18 {
				t.Fatalf("not tagged COSE_Sign1 (tag %d): %v", tag.Number, err)
			}
			arr, ok := tag.Content.([]any)
			if !ok || len(arr) != 4 {
				t.Fatalf("COSE_Sign1 content %#v", tag.Content)
			}
			var prot map[any]any
			if err := dm.Unmarshal(arr[0].([]byte), &prot); err != nil {
				t.Fatal(err)
			}
			pub := s.Public().PublicKey()
			sum := sha256.Sum256(pub)
			if !reflect.DeepEqual(prot, map[any]any{int64(1): int64(-8), int64(4): sum[:8]}) {
				t.Fatalf("protected header %#v, want {1: -8, 4: SHA-256(pub)[:8]}", prot)
			}
			if u := arr[1].(map[any]any); len(u) != 0 {
				t.Fatalf("unprotected header %#v, want empty", u)
			}
			if sig := arr[3].([]byte); len(sig) != ed25519.SignatureSize {
				t.Fatalf("signature of %d bytes", len(sig))
			}

			var claims map[any]any
			if err := dm.Unmarshal(arr[2].([]byte), &claims); err != nil {
				t.Fatal(err)
			}
			if got := keysOf(t, claims); !slices.Equal(got, []int64{-65537, 1, 4, 6, 7}) {
				t.Fatalf("claim keys %v, want iss 1, exp 4, iat 6, cti 7 and private -65537", got)
			}
			id, _ := hex.DecodeString(c.ID)
			want := map[any]any{
				int64(1): issuer,
				int64(4): c.Expires.Unix(),
				int64(6): c.IssuedAt.Unix(),
				int64(7): id,
			}
			for k, v := range want {
				if !reflect.DeepEqual(claims[k], v) {
					t.Errorf("claim %v = %#v, want %#v", k, claims[k], v)
				}
			}
			private := claims[int64(-65537)].(map[any]any)
			if got := keysOf(t, private); !slices.Equal(got, tc.privateKeys) {
				t.Fatalf("private claim keys %v, want %v", got, tc.privateKeys)
			}
			wantPrivate := map[any]any{
				int64(1): int64(c.Status), int64(2): int64(c.Doses),
				int64(4): int64(c.BirthYear), int64(5): c.Initials,
			}
			if c.LastDose != "" {
				wantPrivate[int64(3)] = c.LastDose
			}
			if !reflect.DeepEqual(private, wantPrivate) {
				t.Fatalf("private claim %#v, want %#v", private, wantPrivate)
			}
			// Deterministic encoding: re-encoding changes nothing.
			again, _ := encMode.Marshal(claims)
			if !bytes.Equal(again, arr[2].([]byte)) {
				t.Fatal("payload is not in core deterministic encoding")
			}
		})
	}
}

func TestStatus(t *testing.T) {
	for _, st := range []Status{StatusNone, StatusPartial, StatusFull} {
		got, err := ParseStatus(st.String())
		if err != nil || got != st {
			t.Errorf("ParseStatus(%q) = %v, %v", st.String(), got, err)
		}
	}
	if s := Status(7).String(); s != "Status(7)" {
		t.Errorf("Status(7) = %q", s)
	}
	for _, s := range []string{"", "Full", "complete", "Status(1)"} {
		if _, err := ParseStatus(s); err == nil {
			t.Errorf("ParseStatus(%q) accepted", s)
		}
	}
}

func TestProofIDsAreRandom(t *testing.T) {
	s := testSigner(t, 1)
	seen := map[string]bool{}
	for range 50 {
		c, _ := issue(t, s, typicalFacts())
		if seen[c.ID] {
			t.Fatalf("id %s issued twice", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestIssueRefusesWhatAProofCannotSay(t *testing.T) {
	s := testSigner(t, 1)
	day := time.Date(2021, 5, 2, 0, 0, 0, 0, time.UTC)
	ok := typicalFacts()
	for _, tc := range []struct {
		name   string
		facts  Facts
		issuer string
		ttl    time.Duration
	}{
		{"status none with doses", Facts{Status: StatusNone, Doses: 1, LastDose: day, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"status full without dose", Facts{Status: StatusFull, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"unknown status", Facts{Status: 3, Doses: 1, LastDose: day, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"doses without a date", Facts{Status: StatusPartial, Doses: 1, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"a date without doses", Facts{Status: StatusNone, LastDose: day, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"too many doses", Facts{Status: StatusFull, Doses: 33, LastDose: day, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"negative doses", Facts{Status: StatusFull, Doses: -1, LastDose: day, BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"dose before 1900", Facts{Status: StatusPartial, Doses: 1, LastDose: time.Date(1899, 1, 1, 0, 0, 0, 0, time.UTC), BirthYear: 1980, Name: "Asha Verma"}, issuer, time.Hour},
		{"birth year 1899", Facts{Status: StatusNone, BirthYear: 1899, Name: "Asha Verma"}, issuer, time.Hour},
		{"no birth year", Facts{Status: StatusNone, Name: "Asha Verma"}, issuer, time.Hour},
		{"name without letters", Facts{Status: StatusNone, BirthYear: 1980, Name: "12 34"}, issuer, time.Hour},
		{"no issuer", ok, "", time.Hour},
		{"issuer with a newline", ok, "otpgate\n", time.Hour},
		{"issuer too long", ok, strings.Repeat("x", 65), time.Hour},
		{"no ttl", ok, issuer, 0},
		{"negative ttl", ok, issuer, -time.Hour},
		{"sub-second ttl", ok, issuer, 999 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, text, err := s.Issue(tc.facts, tc.issuer, t0, tc.ttl)
			if err == nil {
				t.Fatalf("issued %q", text)
			}
			if c != (Claims{}) || text != "" {
				t.Fatal("a refused issue returned a proof")
			}
			if strings.Contains(err.Error(), "Asha") || strings.Contains(err.Error(), "Verma") {
				t.Fatalf("error %q quotes the name", err)
			}
		})
	}
}

func TestFactsAndClaimsStayOutOfLogs(t *testing.T) {
	c, _ := issue(t, testSigner(t, 1), typicalFacts())
	for _, s := range []string{typicalFacts().String(), c.String(), c.LogValue().String()} {
		for _, field := range []string{"Asha", "A.V.", "1987", "2021"} {
			if strings.Contains(s, field) {
				t.Errorf("%q shows %q", s, field)
			}
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := testSigner(t, 1)
	keys := keySet(t, s)
	want, text := issue(t, s, typicalFacts())
	now := t0.Add(time.Hour)

	check := func(t *testing.T, text string, keys KeySet, revoked Revocations, now time.Time, sentinel error) Claims {
		t.Helper()
		c, err := Verify(text, keys, revoked, now)
		if !errors.Is(err, sentinel) {
			t.Fatalf("Verify = %v, want %v", err, sentinel)
		}
		return c
	}

	t.Run("valid until the second of expiry", func(t *testing.T) {
		if _, err := Verify(text, keys, Revocations{}, want.Expires.Add(-time.Nanosecond)); err != nil {
			t.Fatal(err)
		}
		if c := check(t, text, keys, Revocations{}, want.Expires, ErrExpired); c != want {
			t.Fatalf("expired proof's claims %#v", c)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		rev, err := NewRevocations(t0, "0123456789abcdef", strings.ToUpper(want.ID))
		if err != nil {
			t.Fatal(err)
		}
		if c := check(t, text, keys, rev, now, ErrRevoked); c != want {
			t.Fatalf("revoked proof's claims %#v", c)
		}
		check(t, text, keys, rev, want.Expires.Add(time.Hour), ErrRevoked) // revoked wins over expired
		other, _ := NewRevocations(t0, "0123456789abcdef")
		if _, err := Verify(text, keys, other, now); err != nil {
			t.Fatalf("another proof's revocation: %v", err)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		_, forged := issue(t, testSigner(t, 2), typicalFacts())
		if c := check(t, forged, keys, Revocations{}, now, ErrUnknownKey); c != (Claims{}) {
			t.Fatal("claims of an unverified proof returned")
		}
		check(t, text, KeySet{}, Revocations{}, now, ErrUnknownKey)
	})
	t.Run("signature altered", func(t *testing.T) {
		cose := coseOf(t, text)
		cose[len(cose)-1] ^= 1 // the signature is the last field
		check(t, rewrap(t, cose), keys, Revocations{}, now, ErrBadSignature)
	})
	t.Run("claims altered under a valid signature", func(t *testing.T) {
		cose := coseOf(t, text)
		// The birth year 1987 = 0x19 0x07 c3 in the payload: make it 1988.
		i := bytes.Index(cose, []byte{0x04, 0x19, 0x07, 0xc3})
		if i < 0 {
			t.Fatal("birth year not found in the payload")
		}
		cose[i+3]++
		check(t, rewrap(t, cose), keys, Revocations{}, now, ErrBadSignature)
	})
	t.Run("kid altered", func(t *testing.T) {
		cose := coseOf(t, text)
		kid := s.key.id
		i := bytes.Index(cose, kid[:])
		cose[i] ^= 0x80
		check(t, rewrap(t, cose), keys, Revocations{}, now, ErrUnknownKey)
	})
	t.Run("signed by another key under this kid", func(t *testing.T) {
		other := testSigner(t, 2)
		msg := newSign1(s.key.id[:], payloadOf(t, coseOf(t, text)))
		if err := msg.Sign(nil, nil, other.signer); err != nil {
			t.Fatal(err)
		}
		cose, _ := msg.MarshalCBOR()
		check(t, rewrap(t, cose), keys, Revocations{}, now, ErrBadSignature)
	})

	// One character changed anywhere: never accepted, whatever layer notices.
	t.Run("every single character altered", func(t *testing.T) {
		classes := map[string]int{}
		for i := range len(text) {
			for _, repl := range []byte{'0', 'Z', ':'} {
				if text[i] == repl {
					continue
				}
				altered := text[:i] + string(repl) + text[i+1:]
				_, err := Verify(altered, keys, Revocations{}, now)
				switch {
				case err == nil:
					t.Fatalf("accepted with position %d changed to %q", i, repl)
				case errors.Is(err, ErrNotProof):
					classes["not a proof"]++
				case errors.Is(err, ErrBadSignature), errors.Is(err, ErrUnknownKey):
					classes["signature"]++
				default:
					t.Fatalf("position %d changed to %q: %v", i, repl, err)
				}
				if i < len(Prefix) && !errors.Is(err, ErrNotProof) {
					t.Fatalf("prefix changed at %d: %v, want ErrNotProof", i, err)
				}
			}
		}
		t.Logf("outcomes of %d-character alterations: %v", len(text), classes)
	})
	for name, i := range map[string]int{"prefix": 2, "first": len(Prefix), "middle": len(text) / 2, "last": len(text) - 1} {
		t.Run("altered at the "+name, func(t *testing.T) {
			repl := byte('A')
			if text[i] == repl {
				repl = 'B'
			}
			if _, err := Verify(text[:i]+string(repl)+text[i+1:], keys, Revocations{}, now); err == nil {
				t.Fatal("accepted")
			}
		})
	}

	t.Run("garbage", func(t *testing.T) {
		for _, g := range []string{
			"", "   \n", "hello", Prefix, "HC1:" + text[len(Prefix):], "otpg1:" + text[len(Prefix):],
			Prefix + "A", Prefix + "a" + text[len(Prefix)+1:], text[:len(text)-1], text + "00",
			Prefix + encodeBase45([]byte("not zlib at all")),
			strings.Repeat("OTPG1:", 200),
			"\x00\xff" + text,
		} {
			if _, err := Verify(g, keys, Revocations{}, now); !errors.Is(err, ErrNotProof) {
				t.Errorf("Verify(%.40q) = %v, want ErrNotProof", g, err)
			}
		}
	})
	t.Run("huge input refused at once", func(t *testing.T) {
		huge := Prefix + strings.Repeat("0", 4<<20)
		start := time.Now()
		if _, err := Verify(huge, keys, Revocations{}, now); !errors.Is(err, ErrNotProof) {
			t.Fatalf("Verify = %v", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("took %v over 4 MiB", d)
		}
		if _, err := Verify(Prefix+strings.Repeat("0", MaxTextLen), keys, Revocations{}, now); !errors.Is(err, ErrNotProof) {
			t.Fatal("a text past MaxTextLen was read")
		}
	})
	t.Run("surrounding white space is ignored", func(t *testing.T) {
		if _, err := Verify("  "+text+"\r\n", keys, Revocations{}, now); err != nil {
			t.Fatal(err)
		}
	})
}

func payloadOf(t testing.TB, cose []byte) []byte {
	t.Helper()
	var msg struct {
		_                                    struct{} `cbor:",toarray"`
		Protected, Unprotected, Payload, Sig cbor.RawMessage
	}
	if err := cbor.Unmarshal(cose[1:], &msg); err != nil {
		t.Fatal(err)
	}
	var p []byte
	if err := cbor.Unmarshal(msg.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestVerifyRefusesAZlibBomb(t *testing.T) {
	keys := keySet(t, testSigner(t, 1))
	// 64 KiB of zeros squeeze into a text that passes the length check.
	bomb := Prefix + encodeBase45(zlibOf(make([]byte, 64<<10)))
	if len(bomb) > MaxTextLen {
		t.Fatalf("bomb of %d chars does not test the inflate limit", len(bomb))
	}
	if _, err := Verify(bomb, keys, Revocations{}, t0); !errors.Is(err, ErrNotProof) {
		t.Fatalf("Verify = %v", err)
	}

	// inflate stops at its limit instead of allocating what the stream says.
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range 8 {
		zw.Write(zeros)
	}
	zw.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := inflate(buf.Bytes())
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("inflated 8 MiB")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("inflating an 8 MiB bomb allocated %d KiB", grew>>10)
	}
}

func TestVerifyRefusesDataAfterTheZlibStream(t *testing.T) {
	s := testSigner(t, 1)
	_, text := issue(t, s, typicalFacts())
	z := append(zlibOf(coseOf(t, text)), 0)
	if _, err := Verify(Prefix+encodeBase45(z), keySet(t, s), Revocations{}, t0); !errors.Is(err, ErrNotProof) {
		t.Fatalf("Verify = %v", err)
	}
}

// Validly signed messages that are still not proofs: the signature is
// checked, then the shape.
func TestVerifyRefusesSignedMessagesOfAnotherShape(t *testing.T) {
	s := testSigner(t, 1)
	keys := keySet(t, s)
	c, _ := issue(t, s, typicalFacts())
	id, _ := hex.DecodeString(c.ID)
	base := func() map[any]any {
		return map[any]any{
			1: issuer, 4: c.Expires.Unix(), 6: c.IssuedAt.Unix(), 7: id,
			-65537: map[any]any{1: 2, 2: 2, 3: "2021-08", 4: 1987, 5: "A.V."},
		}
	}
	signed := func(t *testing.T, v any) string {
		t.Helper()
		payload, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		cose, err := s.sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		return rewrap(t, cose)
	}
	// The unaltered map verifies, so each case below fails for its change.
	if _, err := Verify(signed(t, base()), keys, Revocations{}, t0); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	private := func(m map[any]any) map[any]any { return m[-65537].(map[any]any) }
	for _, tc := range []struct {
		name   string
		change func(m map[any]any)
	}{
		{"extra claim", func(m map[any]any) { m[2] = "someone" }},
		{"extra private claim", func(m map[any]any) { m[-65538] = 1 }},
		{"mobile smuggled into the private map", func(m map[any]any) { private(m)[6] = "+919876543210" }},
		{"missing iss", func(m map[any]any) { delete(m, 1) }},
		{"missing exp", func(m map[any]any) { delete(m, 4) }},
		{"missing iat", func(m map[any]any) { delete(m, 6) }},
		{"missing cti", func(m map[any]any) { delete(m, 7) }},
		{"missing private claim", func(m map[any]any) { delete(m, -65537) }},
		{"missing status", func(m map[any]any) { delete(private(m), 1) }},
		{"missing doses", func(m map[any]any) { delete(private(m), 2) }},
		{"missing last dose", func(m map[any]any) { delete(private(m), 3) }},
		{"missing birth year", func(m map[any]any) { delete(private(m), 4) }},
		{"missing initials", func(m map[any]any) { delete(private(m), 5) }},
		{"string keys", func(m map[any]any) { m["iss"] = m[1]; delete(m, 1) }},
		{"iss not a string", func(m map[any]any) { m[1] = 7 }},
		{"exp a float", func(m map[any]any) { m[4] = float64(c.Expires.Unix()) }},
		{"exp before iat", func(m map[any]any) { m[4] = c.IssuedAt.Unix() - 1 }},
		{"cti of 16 bytes", func(m map[any]any) { m[7] = append(id, id...) }},
		{"cti a string", func(m map[any]any) { m[7] = c.ID }},
		{"status 3", func(m map[any]any) { private(m)[1] = 3 }},
		{"negative doses", func(m map[any]any) { private(m)[2] = -1 }},
		{"bad month", func(m map[any]any) { private(m)[3] = "2021-13" }},
		{"full date", func(m map[any]any) { private(m)[3] = "2021-08-14" }},
		{"birth year 1899", func(m map[any]any) { private(m)[4] = 1899 }},
		{"empty initials", func(m map[any]any) { private(m)[5] = "" }},
		{"claims an array", func(m map[any]any) {
			for k := range m {
				delete(m, k)
			}
			m[0] = []any{issuer}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.change(m)
			if _, err := Verify(signed(t, m), keys, Revocations{}, t0); !errors.Is(err, ErrNotProof) {
				t.Fatalf("Verify = %v, want ErrNotProof", err)
			}
		})
	}

	// Well-formed but not the deterministic encoding: a birth year as a
	// 4-byte integer.
	t.Run("non-shortest integer", func(t *testing.T) {
		good, _ := encMode.Marshal(base())
		i := bytes.Index(good, []byte{0x04, 0x19, 0x07, 0xc3})
		bad := slices.Concat(good[:i+1], []byte{0x1a, 0, 0, 0x07, 0xc3}, good[i+4:])
		cose, err := s.sign(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(rewrap(t, cose), keys, Revocations{}, t0); !errors.Is(err, ErrNotProof) {
			t.Fatalf("Verify = %v", err)
		}
	})
}

func TestVerifyRefusesOtherCOSEShapes(t *testing.T) {
	s := testSigner(t, 1)
	keys := keySet(t, s)
	_, text := issue(t, s, typicalFacts())
	payload := payloadOf(t, coseOf(t, text))
	for _, tc := range []struct {
		name  string
		build func() []byte
	}{
		{"untagged", func() []byte { return coseOf(t, text)[1:] }},
		{"extra unprotected header", func() []byte {
			msg := newSign1(s.key.id[:], payload)
			msg.Headers.Unprotected[int64(99)] = "x"
			msg.Sign(nil, nil, s.signer)
			b, _ := msg.MarshalCBOR()
			return b
		}},
		{"kid moved to the unprotected header", func() []byte {
			msg := newSign1(s.key.id[:], payload)
			delete(msg.Headers.Protected, int64(4))
			msg.Headers.Unprotected[int64(4)] = s.key.id[:]
			msg.Sign(nil, nil, s.signer)
			b, _ := msg.MarshalCBOR()
			return b
		}},
		{"extra protected header", func() []byte {
			msg := newSign1(s.key.id[:], payload)
			msg.Headers.Protected[int64(3)] = "application/cwt"
			msg.Sign(nil, nil, s.signer)
			b, _ := msg.MarshalCBOR()
			return b
		}},
		{"trailing byte", func() []byte { return append(coseOf(t, text), 0) }},
		{"a CBOR map", func() []byte { b, _ := encMode.Marshal(map[int]int{1: 2}); return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(rewrap(t, tc.build()), keys, Revocations{}, t0); !errors.Is(err, ErrNotProof) {
				t.Fatalf("Verify = %v, want ErrNotProof", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old, current := testSigner(t, 1), testSigner(t, 2)
	_, fromOld := issue(t, old, typicalFacts())
	_, fromCurrent := issue(t, current, typicalFacts())

	both, err := KeySetOf(testKey(2), testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	// Through the published form, as a verifier elsewhere gets it.
	published, _ := both.MarshalJSON()
	both, err = ParseKeySet(published)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{fromOld, fromCurrent} {
		if _, err := Verify(text, both, Revocations{}, t0); err != nil {
			t.Fatalf("with both keys: %v", err)
		}
	}
	if _, err := Verify(fromOld, keySet(t, current), Revocations{}, t0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old proof once its key is retired: %v", err)
	}
}

// FuzzVerify: any input is refused with one of the documented errors, and
// nothing panics.
func FuzzVerify(f *testing.F) {
	s := testSigner(f, 1)
	keys := keySet(f, s)
	claims, text := issue(f, s, typicalFacts())
	noDose, none := issue(f, s, Facts{Status: StatusNone, BirthYear: 1990, Name: "रवि"})
	claims.ID, noDose.ID = "", "" // compared without: see below
	f.Add(text)
	f.Add(none)
	f.Add(text[:len(text)-3])
	f.Add(Prefix)
	f.Add("")
	f.Add("HC1:" + text[len(Prefix):])
	f.Add(Prefix + encodeBase45(zlibOf(make([]byte, 8<<10))))
	f.Add(Prefix + encodeBase45(zlibOf([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})))
	f.Add(Prefix + encodeBase45(zlibOf(coseOf(f, text)[:40])))
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Verify(in, keys, Revocations{}, t0)
		switch {
		case err == nil:
			// Only the issued proofs verify (perhaps with white space around
			// them, or in another zlib stream of the same message). Their ids
			// differ from one fuzzing process to the next: each issues anew.
			c.ID = ""
			if c != claims && c != noDose {
				t.Fatalf("accepted %q as %#v", in, c)
			}
		case errors.Is(err, ErrNotProof), errors.Is(err, ErrUnknownKey), errors.Is(err, ErrBadSignature),
			errors.Is(err, ErrExpired), errors.Is(err, ErrRevoked):
		default:
			t.Fatalf("Verify(%q) = %v: not a documented outcome", in, err)
		}
	})
}
