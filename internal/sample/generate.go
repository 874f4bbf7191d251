package sample

import (
	"bufio"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"
)

// Write writes n synthetic beneficiaries as JSON Lines, the same n lines
// for the same seed. Reference ids are unique 14-digit numbers; people are
// grouped in households that share a mobile (most have one member, some
// two to four, none more than MaxHousehold); ID types cover every accepted
// type plus records without an ID; each has zero to three doses dated in
// 2021–2023. Lines are built by hand and buffered, so a million records
// take a second or two; the randomness is math/rand/v2, fine for fake data
// and never used for anything secret.
func Write(w io.Writer, n int, seed uint64) error {
	if n < 0 {
		return errors.New("sample: negative record count")
	}
	g := newGenerator(seed)
	bw := bufio.NewWriterSize(w, 256<<10)
	buf := make([]byte, 0, 1024)
	for i := 0; i < n; {
		size := min(g.householdSize(), n-i)
		mobile := g.mobile()
		surname := g.pick(surnames)
		for range size {
			buf = g.appendRecord(buf[:0], uint64(i), mobile, surname)
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			i++
		}
	}
	return bw.Flush()
}

// MaxHousehold is the most beneficiaries Write puts on one mobile.
const MaxHousehold = 4

const (
	refSpace    = 10_000_000_000_000 // 13 digits after a leading 1
	mobileSpace = 4_000_000_000      // national numbers 6000000000..9999999999
)

type generator struct {
	rng              *rand.Rand
	refMul, refAdd   uint64
	mobMul, mobAdd   uint64
	households       uint64
	dates            []string // dates[k] is firstDose + k days
	firstDoseMaxDays int
}

var firstDose = time.Date(2021, 1, 16, 0, 0, 0, 0, time.UTC) // India's first COVID-19 dose

func newGenerator(seed uint64) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	// Affine maps x -> (x*mul + add) mod space are bijections when mul is
	// coprime with space (both are 2^a·5^b here): unique ids that look random.
	g.refMul, g.refAdd = g.coprime(refSpace), g.rng.Uint64N(refSpace)
	g.mobMul, g.mobAdd = g.coprime(mobileSpace), g.rng.Uint64N(mobileSpace)
	const days = 3 * 365
	g.dates = make([]string, days)
	for k := range g.dates {
		g.dates[k] = firstDose.AddDate(0, 0, k).Format(time.DateOnly)
	}
	g.firstDoseMaxDays = 540
	return g
}

func (g *generator) coprime(space uint64) uint64 {
	for {
		m := g.rng.Uint64N(space) | 1
		if m%5 != 0 && m > 1 {
			return m
		}
	}
}

func mulAddMod(x, mul, add, m uint64) uint64 {
	hi, lo := bits.Mul64(x%m, mul)
	_, r := bits.Div64(hi%m, lo, m)
	return (r + add) % m
}

// householdSize: 1 for about 80% of mobiles, 2 to MaxHousehold for the rest.
func (g *generator) householdSize() int {
	switch p := g.rng.IntN(100); {
	case p < 80:
		return 1
	case p < 91:
		return 2
	case p < 97:
		return 3
	default:
		return MaxHousehold
	}
}

func (g *generator) mobile() uint64 {
	h := g.households
	g.households++
	return 6_000_000_000 + mulAddMod(h, g.mobMul, g.mobAdd, mobileSpace)
}

func (g *generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *generator) appendRecord(b []byte, i, mobile uint64, surname string) []byte {
	b = append(b, `{"reference_id":"`...)
	b = strconv.AppendUint(b, refSpace+mulAddMod(i, g.refMul, g.refAdd, refSpace), 10)

	var first string
	gender := "M"
	switch p := g.rng.IntN(100); {
	case p < 48:
		first = g.pick(maleNames)
	case p < 96:
		first, gender = g.pick(femaleNames), "F"
	default:
		first, gender = g.pick(otherNames), "O"
	}
	b = append(b, `","name":`...)
	b = appendJSONString(b, first+" "+surname)
	b = append(b, `,"birth_year":`...)
	b = strconv.AppendInt(b, int64(1935+g.rng.IntN(78)), 10)
	b = append(b, `,"gender":"`...)
	b = append(b, gender...)
	b = append(b, `","mobile":"+91`...)
	b = strconv.AppendUint(b, mobile, 10)
	b = append(b, '"')
	b = g.appendID(b)
	b = append(b, `,"doses":[`...)
	b = g.appendDoses(b)
	b = append(b, "]}\n"...)
	return b
}

func (g *generator) appendID(b []byte) []byte {
	var typ string
	switch p := g.rng.IntN(100); {
	case p < 50:
		typ = "aadhaar"
	case p < 65:
		typ = "pan"
	case p < 77:
		typ = "voter_id"
	case p < 85:
		typ = "driving_licence"
	case p < 90:
		typ = "passport"
	case p < 94:
		typ = "ration_card"
	case p < 97:
		typ = "other"
	default:
		return b // no ID on record
	}
	b = append(b, `,"id_type":"`...)
	b = append(b, typ...)
	b = append(b, `","id_number":"`...)
	switch typ {
	case "aadhaar": // 12 digits, never starting 0 or 1
		b = append(b, byte('2'+g.rng.IntN(8)))
		b = g.digits(b, 11)
	case "pan": // AAAPA9999A: the fourth letter P marks a person
		b = g.letters(b, 3)
		b = append(b, 'P')
		b = g.letters(b, 1)
		b = g.digits(b, 4)
		b = g.letters(b, 1)
	case "voter_id": // EPIC: 3 letters, 7 digits
		b = g.letters(b, 3)
		b = g.digits(b, 7)
	case "driving_licence": // state, RTO, year, number
		b = append(b, g.pick(stateCodes)...)
		b = g.digits(b, 2)
		b = strconv.AppendInt(b, int64(1995+g.rng.IntN(28)), 10)
		b = g.digits(b, 7)
	case "passport": // a letter, 7 digits
		b = g.letters(b, 1)
		b = g.digits(b, 7)
	case "ration_card":
		b = append(b, "RC"...)
		b = g.digits(b, 10)
	default:
		b = append(b, "OT"...)
		b = g.letters(b, 2)
		b = g.digits(b, 6)
	}
	return append(b, '"')
}

func (g *generator) digits(b []byte, n int) []byte {
	for range n {
		b = append(b, byte('0'+g.rng.IntN(10)))
	}
	return b
}

func (g *generator) letters(b []byte, n int) []byte {
	for range n {
		b = append(b, byte('A'+g.rng.IntN(26)))
	}
	return b
}

func (g *generator) appendDoses(b []byte) []byte {
	var n int
	switch p := g.rng.IntN(100); {
	case p < 10:
		return b
	case p < 25:
		n = 1
	case p < 75:
		n = 2
	default:
		n = 3
	}
	vaccine := "COVISHIELD"
	switch p := g.rng.IntN(100); {
	case p < 20:
		vaccine = "COVAXIN"
	case p < 28:
		vaccine = "CORBEVAX"
	}
	center := g.pick(centers)
	day := g.rng.IntN(g.firstDoseMaxDays)
	for k := 1; k <= n; k++ {
		switch k {
		case 2:
			day += 28 + g.rng.IntN(57)
		case 3:
			day += 180 + g.rng.IntN(181)
			if g.rng.IntN(4) == 0 {
				center = g.pick(centers)
			}
		}
		if k > 1 {
			b = append(b, ',')
		}
		b = append(b, `{"dose":`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `,"vaccine":"`...)
		b = append(b, vaccine...)
		b = append(b, `","date":"`...)
		b = append(b, g.dates[min(day, len(g.dates)-1)]...)
		b = append(b, `","center":`...)
		b = appendJSONString(b, center)
		b = append(b, '}')
	}
	return b
}

// appendJSONString appends s as a JSON string. The name lists need no
// escaping, but a future edit to them must not produce broken lines.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			b = append(b, s[i:i+size]...)
			i += size
			continue
		}
		i++
	}
	return append(b, '"')
}

var (
	maleNames = []string{"Aarav", "Amit", "Anil", "Arjun", "Deepak", "Harish", "Imran", "Manoj",
		"Mohan", "Naveen", "Pradeep", "Rahul", "Rajesh", "Ramesh", "Sandeep", "Suresh", "Vijay", "Vikram",
		"राहुल", "सुरेश"}
	femaleNames = []string{"Aisha", "Anjali", "Asha", "Deepa", "Geeta", "Kavita", "Lakshmi", "Meena",
		"Neha", "Pooja", "Priya", "Rekha", "Savita", "Shanti", "Sunita", "Usha", "Vandana", "Zoya",
		"सुनीता", "गीता"}
	otherNames = []string{"Kiran", "Ashwini", "Jyoti", "Sonu", "Preet"}
	surnames   = []string{"Sharma", "Verma", "Yadav", "Gupta", "Singh", "Kumar", "Patel", "Reddy", "Iyer",
		"Nair", "Khan", "Qureshi", "Das", "Bose", "Patil", "Joshi", "Mishra", "Tiwari", "Chauhan", "Kaur",
		"शर्मा", "यादव"}
	centers = []string{"PHC Rampur (sample)", "CHC Sitapur (sample)", "PHC Phulpur (sample)",
		"UPHC Ward 12 Lucknow (sample)", "District Hospital Barabanki (sample)", "PHC Malihabad (sample)",
		"CHC Bakshi Ka Talab (sample)", "Urban PHC Aliganj (sample)", "PHC Nagram (sample)",
		"Government School Camp Rampur (sample)"}
	stateCodes = []string{"UP", "MH", "DL", "KA", "TN", "WB", "RJ", "BR", "GJ", "MP"}
)
