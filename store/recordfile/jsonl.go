package recordfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/otpgate/otpgate/store"
)

// jsonParser turns one JSON Lines line into a row with encoding/json.
//
// Every member is decoded into a member, which keeps the raw JSON of the
// value and counts how often the member appears. That lets a problem name
// the field and the JSON type found without quoting the value, and catches
// repeated members, which encoding/json would silently resolve to the last.
// Problem texts are built here from field names and JSON kinds, never from
// the text of an encoding/json error, which may quote the input.
//
// Member names match as in encoding/json: exactly, or else ignoring case.
type jsonParser struct {
	v     *validator
	raw   rawRow
	lines streamDecoder // decodes the lines
	lists streamDecoder // decodes the values of doses
	src   bytes.Reader  // a value decoded on its own
	rec   jsonRecord
	doses []*jsonDose       // elements of doses
	pool  []*jsonDose       // backing array of doses, reused line to line
	items []json.RawMessage // elements of doses, when some are wrong
	item  jsonDose
	extra json.RawMessage // a value decoded only to be skipped or located
}

// member is one member of a JSON object: its raw value (empty when the
// member is absent) and how many times it appears.
type member struct {
	raw json.RawMessage
	n   int
}

// UnmarshalJSON implements json.Unmarshaler. encoding/json calls it for
// every appearance of the member, null included.
func (m *member) UnmarshalJSON(b []byte) error {
	m.n++
	m.raw = append(m.raw[:0], b...)
	return nil
}

func (m *member) reset() { m.raw, m.n = m.raw[:0], 0 }

// kind names the JSON type of the member, or is "" when it is absent.
func (m *member) kind() string {
	if len(m.raw) == 0 {
		return ""
	}
	return kind(m.raw)
}

// str decodes a member of kind "string".
func (m *member) str() string {
	if bytes.IndexByte(m.raw, '\\') < 0 {
		// No escapes: the string is the text between the quotes.
		return string(m.raw[1 : len(m.raw)-1])
	}
	var s string
	if err := json.Unmarshal(m.raw, &s); err != nil {
		return "" // unreachable: the line has been decoded
	}
	return s
}

// jsonRecord is the object on a line: the members named by fieldNames,
// and doses.
type jsonRecord struct {
	RefID     member `json:"reference_id"`
	Name      member `json:"name"`
	BirthYear member `json:"birth_year"`
	Gender    member `json:"gender"`
	Mobile    member `json:"mobile"`
	IDType    member `json:"id_type"`
	IDNumber  member `json:"id_number"`
	Doses     member `json:"doses"`
}

// fields returns the members named by fieldNames, in that order.
func (j *jsonRecord) fields() [nFields]*member {
	return [nFields]*member{fRef: &j.RefID, fName: &j.Name, fYear: &j.BirthYear, fGender: &j.Gender,
		fMobile: &j.Mobile, fIDType: &j.IDType, fIDNumber: &j.IDNumber}
}

func (j *jsonRecord) reset() {
	for _, m := range j.fields() {
		m.reset()
	}
	j.Doses.reset()
}

func isRecordKey(k string) bool {
	return fieldByName(k) != nFields || strings.EqualFold(k, "doses")
}

// jsonDose is an element of doses.
type jsonDose struct {
	Dose    member `json:"dose"`
	Vaccine member `json:"vaccine"`
	Date    member `json:"date"`
	Center  member `json:"center"`
}

func (d *jsonDose) reset() {
	d.Dose.reset()
	d.Vaccine.reset()
	d.Date.reset()
	d.Center.reset()
}

func isDoseKey(k string) bool {
	for _, name := range [...]string{"dose", "vaccine", "date", "center"} {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// decoder returns a Decoder of b alone that rejects unknown members.
func (p *jsonParser) decoder(b []byte) *json.Decoder {
	p.src.Reset(b)
	dec := json.NewDecoder(&p.src)
	dec.DisallowUnknownFields()
	return dec
}

// streamDecoder decodes values given one at a time with a single
// json.Decoder that rejects unknown members, so that its buffers serve
// every line: the Decoder reads them as one stream of JSON values, fed to
// it value by value. After an error, or if b holds more than blanks after
// its value, the Decoder is dropped: a syntax error sticks to it, and text
// it has buffered would begin the next value.
type streamDecoder struct {
	src bytes.Reader
	dec *json.Decoder
	fed int64 // bytes read by dec before the current value
}

// decode decodes the value at the start of b into v and returns the
// offset in b just past it.
func (s *streamDecoder) decode(b []byte, v any) (int, error) {
	if s.dec == nil {
		s.src.Reset(nil)
		s.dec = json.NewDecoder(&s.src)
		s.dec.DisallowUnknownFields()
		s.fed = 0
	}
	s.src.Reset(b)
	err := s.dec.Decode(v)
	end := int(s.dec.InputOffset() - s.fed)
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Counted from the start of the stream; dec, which keeps the
			// error, is dropped.
			se.Offset -= s.fed
		}
		s.dec = nil
	} else if s.src.Len() > 0 || len(bytes.TrimLeft(b[end:], " \t\r\n")) > 0 {
		s.dec = nil
	}
	s.fed += int64(len(b))
	return end, err
}

func (p *jsonParser) row(line []byte, n int) store.ImportRow {
	r := &p.raw
	r.reset()
	if !utf8.Valid(line) {
		r.add("not valid UTF-8")
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	rec := &p.rec
	rec.reset()
	end, err := p.lines.decode(line, rec)
	if prob, ok := syntaxProblem(err, 0, len(line)); ok {
		r.add(prob)
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	// One value per line: nothing but blanks may follow it. If something
	// does, a Decode of the rest says where it goes wrong.
	if rest := line[end:]; len(bytes.TrimLeft(rest, " \t\r")) > 0 {
		dec := p.decoder(rest)
		prob, ok := syntaxProblem(dec.Decode(&p.extra), end, len(line))
		if !ok { // a second value
			start := end + int(dec.InputOffset()) - len(p.extra)
			prob = "not valid JSON (at byte " + strconv.Itoa(start+1) + ")"
		}
		r.add(prob)
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	switch kind(bytes.TrimLeft(line[:end], " \t\r")) {
	case "object":
	case "array":
		r.add("a JSON array, not an object: write one object per line")
		return store.ImportRow{Line: n, Problem: r.problemText()}
	default:
		r.add("not a JSON object")
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	if err != nil {
		// Every member decodes into a member, so the error is an unknown
		// one. The rest of the object has been decoded all the same.
		p.unknownMembers(line, "", isRecordKey)
	}
	for f, m := range rec.fields() {
		if m.n > 1 {
			r.problem("%s: appears more than once", fieldNames[f])
			r.bad[f] = true
			continue
		}
		switch k := m.kind(); {
		case k == "" || k == "null":
		case field(f) == fYear && k == "number":
			// The validator requires a whole number in range.
			r.val[f], r.has[f] = string(m.raw), true
		case field(f) == fYear:
			r.problem("birth_year: must be a number, found %s", k)
			r.bad[f] = true
		case k == "string":
			r.val[f], r.has[f] = m.str(), true
		default:
			r.problem("%s: must be a string, found %s", fieldNames[f], k)
			r.bad[f] = true
		}
	}
	if rec.Doses.n > 1 {
		r.add("doses: appears more than once")
	} else {
		p.readDoses(&rec.Doses)
	}
	return p.v.check(r, n) // adds to what the parser found
}

// syntaxProblem describes a Decode error that means the line is not JSON,
// giving only its position; base is where the decoded text starts in the
// line. ok is false for any other error.
func syntaxProblem(err error, base, lineLen int) (problem string, ok bool) {
	if err == nil {
		return "", false
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se): // Offset counts the byte in error
		return "not valid JSON (at byte " + strconv.FormatInt(int64(base)+se.Offset, 10) + ")", true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON (at byte " + strconv.Itoa(lineLen) + ")", true
	}
	return "", false
}

// unknownMembers reports the members of the JSON object obj that known
// rejects. encoding/json names only the first of them, and only in an
// error text that quotes it, so the names are read with its tokenizer.
func (p *jsonParser) unknownMembers(obj []byte, prefix string, known func(string) bool) {
	found := false
	p.src.Reset(obj)
	dec := json.NewDecoder(&p.src)
	if _, err := dec.Token(); err == nil { // '{'
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if key, _ := tok.(string); !known(key) {
				p.raw.add(unknownField(prefix, key))
				found = true
			}
			if err := dec.Decode(&p.extra); err != nil { // skip the value
				break
			}
		}
	}
	if !found {
		p.raw.add(prefix + "an unknown field") // unreachable
	}
}

// readDoses reads the member doses.
func (p *jsonParser) readDoses(m *member) {
	r, raw := &p.raw, m.raw
	switch k := m.kind(); k {
	case "", "null":
		return
	case "array":
	default:
		r.problem("doses: must be an array, found %s", k)
		return
	}
	// Common case: all elements are objects with known members. They are
	// decoded into the jsonDose values of pool; a null element is nil.
	for i, d := range p.pool {
		if d == nil {
			p.pool[i] = new(jsonDose)
		} else {
			d.reset()
		}
	}
	p.doses = p.pool[:0]
	_, err := p.lists.decode(raw, &p.doses)
	if cap(p.doses) > cap(p.pool) {
		p.pool = p.doses[:cap(p.doses)]
	}
	if err == nil && !slices.Contains(p.doses, nil) {
		for i, d := range p.doses {
			if i == maxDoses {
				r.problem("doses: more than %d", maxDoses)
				return
			}
			p.dose(i+1, d, false)
		}
		return
	}
	// Otherwise take the elements one by one to say which is wrong.
	p.items = p.items[:0]
	if err := json.Unmarshal(raw, &p.items); err != nil {
		r.add("doses: not valid JSON") // unreachable: the line has been decoded
		return
	}
	for i, item := range p.items {
		if i == maxDoses {
			r.problem("doses: more than %d", maxDoses)
			return
		}
		if k := kind(item); k != "object" {
			r.problem("doses item %d: must be an object, found %s", i+1, k)
			continue
		}
		d := &p.item
		d.reset()
		bad := false
		if err := p.decoder(item).Decode(d); err != nil {
			// As for the record: an unknown member.
			p.unknownMembers(item, "doses item "+strconv.Itoa(i+1)+": ", isDoseKey)
			bad = true
		}
		p.dose(i+1, d, bad)
	}
}

// dose adds jd, the element at 1-based position i of doses; bad means a
// problem with it has been reported already.
func (p *jsonParser) dose(i int, jd *jsonDose, bad bool) {
	r := &p.raw
	d := rawDose{item: i, bad: bad}
	switch k := jd.Dose.kind(); {
	case jd.Dose.n > 1:
		r.problem("doses item %d: dose appears more than once", i)
		d.bad = true
	case k == "" || k == "null":
	case k == "number":
		num, err := strconv.Atoi(string(jd.Dose.raw))
		if err != nil || num < 1 || num > maxDoses {
			r.problem("doses item %d: dose number must be 1 to %d", i, maxDoses)
			d.bad = true
			break
		}
		d.number, d.numberSet = num, true
	default:
		r.problem("doses item %d: dose must be a number, found %s", i, k)
		d.bad = true
	}
	d.vaccine = p.doseString(i, "vaccine", &jd.Vaccine, &d.bad)
	d.date = p.doseString(i, "date", &jd.Date, &d.bad)
	d.center = p.doseString(i, "center", &jd.Center, &d.bad)
	r.doses = append(r.doses, d)
}

// doseString returns the string value of member name of the element at
// position i of doses, or sets *bad and reports why there is none.
func (p *jsonParser) doseString(i int, name string, m *member, bad *bool) string {
	switch k := m.kind(); {
	case m.n > 1:
		p.raw.problem("doses item %d: %s appears more than once", i, name)
	case k == "" || k == "null":
		return ""
	case k == "string":
		return m.str()
	default:
		p.raw.problem("doses item %d: %s must be a string, found %s", i, name, k)
	}
	*bad = true
	return ""
}

// fieldByName returns the field named name, ignoring case, or nFields.
func fieldByName(name string) field {
	for f, fn := range fieldNames {
		if strings.EqualFold(name, fn) {
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

// kind names the JSON type of a valid JSON value by its first byte.
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
