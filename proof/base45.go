package proof

import (
	"errors"
	"strings"
)

// Base45 as in RFC 9285: every two bytes become three characters of a
// 45-character alphabet that fits a QR code's alphanumeric mode, and a
// trailing odd byte becomes two characters. No module on the proxy serves it,
// and it is short enough to write and test against the RFC's vectors.

const base45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// base45Value maps a byte to its digit value, or -1 outside the alphabet.
var base45Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(base45Alphabet); i++ {
		t[base45Alphabet[i]] = int8(i)
	}
	return t
}()

var errBase45 = errors.New("proof: invalid base45")

// encodeBase45 encodes b as RFC 9285 Base45.
func encodeBase45(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b)/2*3 + 2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[n/45%45])
		sb.WriteByte(base45Alphabet[n/(45*45)])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[n/45])
	}
	return sb.String()
}

// decodeBase45 decodes RFC 9285 Base45. It refuses, as the RFC requires, a
// character outside the alphabet, a length that leaves a single character,
// and a group whose value does not fit its bytes (above 65535 for three
// characters, above 255 for a trailing two). So every byte string has exactly
// one encoding that decodes.
func decodeBase45(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, errBase45
	}
	out := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		end := min(i+3, len(s))
		n, mul := 0, 1
		for j := i; j < end; j++ {
			v := base45Value[s[j]]
			if v < 0 {
				return nil, errBase45
			}
			n += int(v) * mul
			mul *= 45
		}
		if end-i == 3 {
			if n > 0xffff {
				return nil, errBase45
			}
			out = append(out, byte(n>>8), byte(n))
		} else {
			if n > 0xff {
				return nil, errBase45
			}
			out = append(out, byte(n))
		}
	}
	return out, nil
}
