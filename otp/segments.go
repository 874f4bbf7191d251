package otp

import "unicode/utf16"

// gsm7 is the GSM 03.38 default alphabet; gsm7Ext its extension table,
// whose characters take two septets (an escape and the character).
const (
	gsm7    = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "^{}\\[~]|€\f"
)

// Segments reports how many SMS segments body takes and in which encoding:
// GSM-7 (160 septets in one segment, 153 per segment of a multipart
// message) when every character is in the GSM alphabet, UCS-2 otherwise
// (70 UTF-16 units in one, 67 per part) — every Indic text. Carriers bill
// per segment, so the default templates are kept to two.
func Segments(body string) (n int, encoding string) {
	septets, gsm := 0, true
	for _, r := range body {
		switch {
		case containsRune(gsm7, r):
			septets++
		case containsRune(gsm7Ext, r):
			septets += 2
		default:
			gsm = false
		}
	}
	if gsm {
		return parts(septets, 160, 153), "GSM-7"
	}
	return parts(len(utf16.Encode([]rune(body))), 70, 67), "UCS-2"
}

func parts(units, single, multi int) int {
	if units <= single {
		return 1
	}
	return (units + multi - 1) / multi
}

func containsRune(set string, r rune) bool {
	for _, c := range set {
		if c == r {
			return true
		}
	}
	return false
}
