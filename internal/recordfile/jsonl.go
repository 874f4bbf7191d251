package recordfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/otpgate/otpgate/store"
)

// jsonParser turns one JSON Lines line into a row with encoding/json.
//
// Members are decoded into member values, which keep the raw JSON of the
// value and count how often the member appears: that lets a problem name
// the field and the JSON type found without quoting the value, and catches
// repeated members, which encoding/json would silently resolve to the last.
// Problem texts are built here from field names and JSON kinds, never from
// an encoding/json error text, which may quote the input.
//
// Member names match as encoding/json matches them, ignoring case.
type jsonParser struct {
	v     *validator
	raw   rawRow
	rec   jsonRecord
	dose  jsonDose
	items []json.RawMessage // elements of "doses"
	extra json.RawMessage   // a second value on the line
}

// member is one member of a JSON object as decoded: its raw value (nil
// when absent) and how many times it appears.
type member struct {
	raw json.RawMessage
	n   int
}

// UnmarshalJSON implements json.Unmarshaler. It is called once for every
// appearance of the member, null included.
func (m *member) UnmarshalJSON(b []byte) error {
	m.n++
	m.raw = append(m.raw[:0], b...)
	return nil
}

func (m *member) reset() { m.raw, m.n = m.raw[:0], 0 }

// kind names the JSON type of the member: "" when it is absent.
func (m *member) kind() string {
	if len(m.raw) == 0 {
		return ""
	}
	return kind(m.raw)
}

// str decodes a member whose kind is "string".
func (m *member) str() string {
	var s string
	if err := json.Unmarshal(m.raw, &s); err != nil {
		return "" // unreachable: the line has been decoded
	}
	return s
}

// jsonRecord is a line's object; its tags are fieldNames, plus doses.
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

// fields returns the scalar members in the order of fieldNames.
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

// jsonDose is an element of "doses".
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

func isRecordKey(k string) bool {
	for _, name := range fieldNames {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return strings.EqualFold(k, "doses")
}

func isDoseKey(k string) bool {
	for _, name := range [...]string{"dose", "vaccine", "date", "center"} {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
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
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	err := dec.Decode(rec)
	if prob, ok := syntaxProblem(err, len(line)); ok {
		r.add(prob)
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	// One value per line: a second Decode must find the end of the line.
	end := dec.InputOffset()
	switch err := dec.Decode(&p.extra); {
	case errors.Is(err, io.EOF):
	case err == nil:
		r.add("not valid JSON (at byte " + strconv.FormatInt(dec.InputOffset()-int64(len(p.extra))+1, 10) + ")")
		return store.ImportRow{Line: n, Problem: r.problemText()}
	default:
		prob, _ := syntaxProblem(err, len(line))
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
		// The only error left is a member not in jsonRecord.
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
		case f == int(fYear) && k == "number":
			// Still JSON text: the validator requires a whole number.
			r.val[f], r.has[f] = string(m.raw), true
		case f == int(fYear):
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
		p.doses(&rec.Doses)
	}
	return p.v.check(r, n) // adds to what the parser found
}

// syntaxProblem describes a Decode error that means the line is not JSON.
// It reports ok false for any other error.
func syntaxProblem(err error, lineLen int) (problem string, ok bool) {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return "not valid JSON (at byte " + strconv.FormatInt(se.Offset, 10) + ")", true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "not valid JSON (at byte " + strconv.Itoa(lineLen) + ")", true
	}
	return "", false
}

// unknownMembers reports the members of the JSON object obj that known
// rejects. encoding/json names only the first one, and only in an error
// text that quotes it, so the member names are read with its tokenizer.
func (p *jsonParser) unknownMembers(obj []byte, prefix string, known func(string) bool) {
	r := &p.raw
	found := false
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err == nil { // '{'
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			if key, _ := tok.(string); !known(key) {
				r.add(unknownField(prefix, key))
				found = true
			}
			if err := dec.Decode(&p.extra); err != nil { // the value
				break
			}
		}
	}
	if !found {
		r.add(prefix + "an unknown field") // unreachable: Decode found one
	}
}

func (p *jsonParser) doses(m *member) {
	r := &p.raw
	switch k := m.kind(); k {
	case "", "null":
		return
	case "array":
	default:
		r.problem("doses: must be an array, found %s", k)
		return
	}
	p.items = p.items[:0]
	if err := json.Unmarshal(m.raw, &p.items); err != nil {
		r.add("doses: not valid JSON") // unreachable: the line has been decoded
		return
	}
	for i, item := range p.items {
		if i == maxDoses {
			r.problem("doses: more than %d", maxDoses)
			return
		}
		p.dose1(i+1, item)
	}
}

// dose1 reads item, the element at 1-based position i of "doses".
func (p *jsonParser) dose1(i int, item []byte) {
	r := &p.raw
	if k := kind(item); k != "object" {
		r.problem("doses item %d: must be an object, found %s", i, k)
		return
	}
	d := rawDose{item: i}
	jd := &p.dose
	jd.reset()
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.DisallowUnknownFields()
	if err := dec.Decode(jd); err != nil {
		// The only possible error: a member not in jsonDose.
		p.unknownMembers(item, "doses item "+strconv.Itoa(i)+": ", isDoseKey)
		d.bad = true
	}
	for _, f := range [...]struct {
		name string
		m    *member
		dst  *string // nil for "dose"
	}{{"dose", &jd.Dose, nil}, {"vaccine", &jd.Vaccine, &d.vaccine}, {"date", &jd.Date, &d.date}, {"center", &jd.Center, &d.center}} {
		if f.m.n > 1 {
			r.problem("doses item %d: %s appears more than once", i, f.name)
			d.bad = true
			continue
		}
		switch k := f.m.kind(); {
		case k == "" || k == "null":
		case f.dst == nil && k == "number":
			num, err := strconv.Atoi(string(f.m.raw))
			if err != nil || num < 1 || num > maxDoses {
				r.problem("doses item %d: dose number must be 1 to %d", i, maxDoses)
				d.bad = true
				continue
			}
			d.number, d.numberSet = num, true
		case f.dst == nil:
			r.problem("doses item %d: dose must be a number, found %s", i, k)
			d.bad = true
		case k == "string":
			*f.dst = f.m.str()
		default:
			r.problem("doses item %d: %s must be a string, found %s", i, f.name, k)
			d.bad = true
		}
	}
	r.doses = append(r.doses, d)
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

// kind names the JSON type of a valid JSON value by its first byte.
func kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
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
