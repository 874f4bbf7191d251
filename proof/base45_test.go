package proof

import (
	"bytes"
	"errors"
	"testing"
)

// Every example of RFC 9285 (4.3 encoding, 4.4 decoding), both ways, then
// edge cases worked out by hand.
var rfc9285Vectors = []struct{ raw, enc string }{
	{"AB", "BB8"},                  // 4.3
	{"Hello!!", "%69 VD92EX0"},     // 4.3
	{"base-45", "UJCLQE7W581"},     // 4.3
	{"ietf!", "QED8WEX0"},          // 4.4 (decoding example)
	{"", ""},                       // the empty string encodes to itself
	{"\x00", "00"},                 // a lone zero byte: two characters
	{"\x00\x00", "000"},            // a zero pair: three characters
	{"\xff\xff", "FGW"},            // the largest pair: 65535 = 15 + 16·45 + 32·45²
	{"\xff", "U5"},                 // the largest lone byte: 255 = 30 + 5·45
	{"\x01\x00\x01", "V5010"},      // 256 = 31 + 5·45, then 1
	{"\xfe\xff\xff\xfe", "TAWEGW"}, // 65279 = 29 + 10·45 + 32·45², 65534
}

func TestBase45RFC9285Vectors(t *testing.T) {
	for _, v := range rfc9285Vectors {
		if got := encodeBase45([]byte(v.raw)); got != v.enc {
			t.Errorf("encode(%q) = %q, want %q", v.raw, got, v.enc)
		}
		got, err := decodeBase45(v.enc)
		if err != nil {
			t.Errorf("decode(%q): %v", v.enc, err)
			continue
		}
		if string(got) != v.raw {
			t.Errorf("decode(%q) = %q, want %q", v.enc, got, v.raw)
		}
	}
}

func TestBase45RejectsInvalid(t *testing.T) {
	for _, s := range []string{
		"GGW",  // RFC 9285 section 6: 65536 does not fit two bytes
		":::",  // the largest triplet, 91124
		"GG",   // a trailing pair above 255 (16 + 16·45 = 736)
		"V5",   // 256: one more than a byte
		"A",    // a length that leaves one character
		"BB8A", // likewise after a full group
		"bb8",  // lower case is outside the alphabet
		"BB\n", // so is a newline
		"BB=",  // and padding
		"\xff\xfe\xfd",
	} {
		if b, err := decodeBase45(s); !errors.Is(err, errBase45) {
			t.Errorf("decode(%q) = %x, %v; want errBase45", s, b, err)
		}
	}
}

func TestBase45UsesOnlyTheAlphabet(t *testing.T) {
	all := make([]byte, 512)
	for i := range all {
		all[i] = byte(i * 7)
	}
	for _, c := range []byte(encodeBase45(all)) {
		if base45Value[c] < 0 {
			t.Fatalf("encoded output holds %q", c)
		}
	}
}

// FuzzBase45 checks that decoding never panics, that whatever decodes
// re-encodes to the very same text (one encoding per byte string), and that
// any bytes survive a round trip.
func FuzzBase45(f *testing.F) {
	for _, v := range rfc9285Vectors {
		f.Add([]byte(v.enc))
		f.Add([]byte(v.raw))
	}
	f.Add([]byte("GGW"))
	f.Add([]byte(":::"))
	f.Add([]byte("A"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if dec, err := decodeBase45(string(data)); err == nil {
			if enc := encodeBase45(dec); enc != string(data) {
				t.Fatalf("decode(%q) = %x re-encodes to %q", data, dec, enc)
			}
		}
		enc := encodeBase45(data)
		if len(enc) != len(data)/2*3+len(data)%2*2 {
			t.Fatalf("encode(%x) has length %d", data, len(enc))
		}
		dec, err := decodeBase45(enc)
		if err != nil || !bytes.Equal(dec, data) {
			t.Fatalf("round trip of %x: %x, %v", data, dec, err)
		}
	})
}
