package recordfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/otpgate/otpgate/store"
)

// jsonParser turns one JSON Lines line into a row. It checks the syntax
// with encoding/json, then walks the object itself: that is several times
// faster than reflection for a million rows, rejects duplicate members
// (which encoding/json silently resolves to the last), and lets every
// problem name its field without quoting the value.
type jsonParser struct {
	v   *validator
	raw rawRow
}

func (p *jsonParser) row(line []byte, n int) store.ImportRow {
	r := &p.raw
	r.reset()
	switch {
	case !utf8.Valid(line):
		r.add("not valid UTF-8")
	case !json.Valid(line):
		r.add(syntaxProblem(line))
	default:
		s := scanner{b: line}
		s.ws()
		switch s.b[s.i] {
		case '{':
			p.record(&s)
			return p.v.check(r, n) // adds to what the walk found
		case '[':
			r.problem("a JSON array, not an object: write one object per line")
		default:
			r.problem("not a JSON object")
		}
	}
	return store.ImportRow{Line: n, Problem: r.problemText()}
}

func syntaxProblem(line []byte) string {
	var se *json.SyntaxError
	if err := json.Unmarshal(line, new(json.RawMessage)); errors.As(err, &se) {
		return "not valid JSON (at byte " + strconv.FormatInt(se.Offset, 10) + ")"
	}
	return "not valid JSON"
}

const dosesBit = 1 << nFields

func (p *jsonParser) record(s *scanner) {
	r := &p.raw
	var seen uint32
	s.members(func(k, v []byte) {
		key := keyBytes(k)
		f := fieldByName(key)
		bit := uint32(1) << f
		if f == nFields {
			if string(key) != "doses" {
				r.add(unknownField("", string(key)))
				return
			}
			bit = dosesBit
		}
		if seen&bit != 0 {
			r.problem("%s: appears more than once", key)
			return
		}
		seen |= bit
		switch {
		case f == nFields:
			p.doses(v)
		case f == fYear:
			switch kind(v) {
			case "number":
				r.val[f], r.has[f] = string(v), true
			case "null":
			default:
				r.problem("birth_year: must be a number, found %s", kind(v))
				r.bad[f] = true
			}
		default:
			switch kind(v) {
			case "string":
				r.val[f], r.has[f] = decodeString(v), true
			case "null":
			default:
				r.problem("%s: must be a string, found %s", fieldNames[f], kind(v))
				r.bad[f] = true
			}
		}
	})
}

func (p *jsonParser) doses(v []byte) {
	r := &p.raw
	switch kind(v) {
	case "null":
		return
	case "array":
	default:
		r.problem("doses: must be an array, found %s", kind(v))
		return
	}
	item := 0
	s := scanner{b: v}
	s.elements(func(e []byte) {
		item++
		if item > maxDoses {
			if item == maxDoses+1 {
				r.problem("doses: more than %d", maxDoses)
			}
			return
		}
		d := rawDose{item: item}
		if kind(e) != "object" {
			r.problem("doses item %d: must be an object, found %s", item, kind(e))
			return
		}
		var seen uint8
		es := scanner{b: e}
		es.members(func(k, v []byte) {
			key := keyBytes(k)
			var bit uint8
			var dst *string
			switch string(key) {
			case "dose":
				bit = 1
			case "vaccine":
				bit, dst = 2, &d.vaccine
			case "date":
				bit, dst = 4, &d.date
			case "center":
				bit, dst = 8, &d.center
			default:
				r.add(unknownField("doses item "+strconv.Itoa(item)+": ", string(key)))
				d.bad = true
				return
			}
			if seen&bit != 0 {
				r.problem("doses item %d: %s appears more than once", item, key)
				d.bad = true
				return
			}
			seen |= bit
			if dst == nil { // "dose"
				switch kind(v) {
				case "number":
					n, err := strconv.Atoi(string(v))
					if err != nil || n < 1 || n > maxDoses {
						r.problem("doses item %d: dose number must be 1 to %d", item, maxDoses)
						d.bad = true
						return
					}
					d.number, d.numberSet = n, true
				case "null":
				default:
					r.problem("doses item %d: dose must be a number, found %s", item, kind(v))
					d.bad = true
				}
				return
			}
			switch kind(v) {
			case "string":
				*dst = decodeString(v)
			case "null":
			default:
				r.problem("doses item %d: %s must be a string, found %s", item, key, kind(v))
				d.bad = true
			}
		})
		r.doses = append(r.doses, d)
	})
}

func fieldByName(key []byte) field {
	for f, name := range fieldNames {
		if string(key) == name {
			return field(f)
		}
	}
	return nFields
}

func unknownField(prefix, key string) string {
	if q := safeName(key); q != "" {
		return prefix + "unknown field " + q
	}
	return prefix + "an unknown field"
}

// kind names the JSON type of a valid value by its first byte.
func kind(v []byte) string {
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// keyBytes returns the member name of a valid JSON string token, without
// allocating unless it holds escapes.
func keyBytes(tok []byte) []byte {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body
	}
	return []byte(decodeString(tok))
}

// decodeString decodes a valid JSON string token.
func decodeString(tok []byte) string {
	body := tok[1 : len(tok)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body)
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "" // unreachable: the line passed json.Valid
	}
	return s
}

// scanner walks JSON text that json.Valid has accepted, so it needs no
// error handling of its own.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value returns the value that starts at s.i and moves past it.
func (s *scanner) value() []byte {
	start := s.i
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
	walk:
		for {
			c := s.b[s.i]
			if c == '"' {
				s.skipString()
				continue
			}
			s.i++
			switch c {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			if depth == 0 {
				break walk
			}
		}
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.b[start:s.i]
			}
			s.i++
		}
	}
	return s.b[start:s.i]
}

func (s *scanner) skipString() {
	s.i++ // opening quote
	for {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return
		default:
			s.i++
		}
	}
}

// members calls fn with each key (a string token) and value of the object
// at s.i, and moves past it.
func (s *scanner) members(fn func(key, val []byte)) {
	s.i++ // '{'
	s.ws()
	if s.b[s.i] == '}' {
		s.i++
		return
	}
	for {
		s.ws()
		k := s.value()
		s.ws()
		s.i++ // ':'
		s.ws()
		v := s.value()
		fn(k, v)
		s.ws()
		c := s.b[s.i]
		s.i++
		if c == '}' {
			return
		}
	}
}

// elements calls fn with each element of the array at s.i, and moves past it.
func (s *scanner) elements(fn func(val []byte)) {
	s.i++ // '['
	s.ws()
	if s.b[s.i] == ']' {
		s.i++
		return
	}
	for {
		s.ws()
		fn(s.value())
		s.ws()
		c := s.b[s.i]
		s.i++
		if c == ']' {
			return
		}
	}
}
