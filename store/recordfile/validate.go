package recordfile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// Limits from SPEC §4.
const (
	minBirthYear    = 1900
	maxNameRunes    = 100
	maxDoses        = 10
	maxVaccineRunes = 64
	maxCenterRunes  = 200
)

// idTypes are the accepted values of id_type.
var idTypes = []string{"aadhaar", "pan", "passport", "driving_licence", "voter_id", "ration_card", "other"}

// field is a scalar column of a record.
type field int

const (
	fRef field = iota
	fName
	fYear
	fGender
	fMobile
	fIDType
	fIDNumber
	nFields
)

var fieldNames = [nFields]string{"reference_id", "name", "birth_year", "gender", "mobile", "id_type", "id_number"}

// required fields must be present (a CSV column, a JSON member).
var required = [nFields]bool{fRef: true, fName: true, fYear: true, fGender: true, fMobile: true}

// maxProblems bounds how many reasons one row reports.
const maxProblems = 5

// rawRow is a row as read, before validation: strings as they appear in
// the file. Parsers fill it; validator.check turns it into an ImportRow.
type rawRow struct {
	val   [nFields]string
	has   [nFields]bool // present and not null
	bad   [nFields]bool // already reported by the parser (wrong type)
	doses []rawDose
	probs []string
	more  bool
}

type rawDose struct {
	item      int // 1-based position in the JSON array, or the CSV dose number
	number    int
	numberSet bool
	bad       bool // already reported by the parser
	vaccine   string
	date      string
	center    string
}

func (r *rawRow) reset() {
	*r = rawRow{doses: r.doses[:0], probs: r.probs[:0]}
}

// problem adds a reason. Callers pass only field names, limits and
// bounded numbers: never a value from the file.
func (r *rawRow) problem(format string, args ...any) {
	r.add(fmt.Sprintf(format, args...))
}

// add adds a reason that needs no formatting.
func (r *rawRow) add(reason string) {
	if len(r.probs) == maxProblems {
		r.more = true
		return
	}
	r.probs = append(r.probs, reason)
}

func (r *rawRow) problemText() string {
	s := strings.Join(r.probs, "; ")
	if r.more {
		s += "; and more"
	}
	return s
}

// validator applies the rules of SPEC §4. It holds the clock-derived
// bounds, fixed for one pass.
type validator struct {
	maxYear int
	today   string // YYYY-MM-DD; dose dates after it are in the future
}

func newValidator(now time.Time) *validator {
	return &validator{maxYear: now.Year(), today: now.Format(time.DateOnly)}
}

var idTypeSet = func() map[string]bool {
	m := make(map[string]bool, len(idTypes))
	for _, t := range idTypes {
		m[t] = true
	}
	return m
}()

// check validates r and returns the row for line n: a Record and ID, or a
// Problem and a zero Record.
func (v *validator) check(r *rawRow, n int) store.ImportRow {
	var (
		rec store.Record
		id  pii.IDNumber
	)
	val := func(f field) (string, bool) {
		s := strings.TrimSpace(r.val[f])
		if r.bad[f] {
			return "", false
		}
		if !r.has[f] || s == "" {
			if required[f] {
				r.problem("%s: missing", fieldNames[f])
			}
			return "", false
		}
		return s, true
	}

	if s, ok := val(fRef); ok {
		if ref, ok := parseReference(s); ok {
			rec.RefID = ref
		} else {
			r.problem("reference_id: must be exactly 14 digits")
		}
	}
	if s, ok := val(fName); ok {
		switch {
		case utf8.RuneCountInString(s) > maxNameRunes:
			r.problem("name: longer than %d characters", maxNameRunes)
		case hasControl(s):
			r.problem("name: contains control characters")
		default:
			rec.Name = s
		}
	}
	if s, ok := val(fYear); ok {
		y, err := parseInt(s)
		switch {
		case err != nil:
			r.problem("birth_year: must be a whole number")
		case y < minBirthYear && y > -10000:
			r.problem("birth_year: %d is before %d", y, minBirthYear)
		case y > v.maxYear && y < 10000:
			r.problem("birth_year: %d is after %d", y, v.maxYear)
		case y < minBirthYear || y > v.maxYear:
			// Too long to be a year: perhaps another column's value, so
			// not echoed.
			r.problem("birth_year: must be between %d and %d", minBirthYear, v.maxYear)
		default:
			rec.BirthYear = y
		}
	}
	if s, ok := val(fGender); ok {
		switch g := strings.ToUpper(s); g {
		case "M", "F", "O":
			rec.Gender = g
		default:
			r.problem("gender: must be M, F or O")
		}
	}
	if s, ok := val(fMobile); ok {
		m, err := pii.ParseMobile(s)
		if err != nil {
			r.problem("mobile: not a valid mobile number (+country code and number, or 10 digits for India)")
		} else {
			rec.Mobile = m
		}
	}
	id = v.checkID(r, &rec)
	rec.Doses = v.checkDoses(r)

	if len(r.probs) > 0 {
		return store.ImportRow{Line: n, Problem: r.problemText()}
	}
	return store.ImportRow{Line: n, Record: rec, ID: id}
}

func (v *validator) checkID(r *rawRow, rec *store.Record) pii.IDNumber {
	if r.bad[fIDType] || r.bad[fIDNumber] {
		return ""
	}
	typ := strings.ToLower(strings.TrimSpace(r.val[fIDType]))
	num := strings.TrimSpace(r.val[fIDNumber])
	switch {
	case typ == "" && num == "":
		return ""
	case typ == "":
		r.problem("id_type: missing (id_number is given)")
		return ""
	case !idTypeSet[typ]:
		r.problem("id_type: must be one of %s", strings.Join(idTypes, ", "))
		return ""
	case num == "":
		r.problem("id_number: missing (id_type is given)")
		return ""
	}
	id, ok := pii.NormalizeID(num)
	if !ok {
		r.problem("id_number: not a valid ID number (4 to 32 letters and digits)")
		return ""
	}
	switch typ {
	case "aadhaar":
		if len(id) != 12 || !allASCIIDigits(string(id)) {
			r.problem("id_number: an aadhaar number has exactly 12 digits")
			return ""
		}
	case "pan":
		if !isPAN(string(id)) {
			r.problem("id_number: a pan has the form AAAAA9999A")
			return ""
		}
	}
	rec.IDType = typ
	rec.IDLast4 = id.Last4()
	return id
}

func (v *validator) checkDoses(r *rawRow) []store.Dose {
	if len(r.doses) == 0 {
		return nil
	}
	if len(r.doses) > maxDoses {
		r.problem("doses: more than %d", maxDoses)
		return nil
	}
	var (
		seen  [maxDoses + 1]bool
		doses = make([]store.Dose, 0, len(r.doses))
	)
	for _, d := range r.doses {
		if d.bad {
			continue
		}
		switch {
		case !d.numberSet:
			r.problem("doses item %d: dose number missing", d.item)
			continue
		case d.number < 1 || d.number > maxDoses:
			r.problem("doses item %d: dose number must be 1 to %d", d.item, maxDoses)
			continue
		case seen[d.number]:
			r.problem("dose %d: appears more than once", d.number)
			continue
		}
		seen[d.number] = true
		num := d.number
		out := store.Dose{Number: d.number}
		ok := true
		vac := strings.TrimSpace(d.vaccine)
		switch {
		case vac == "":
			r.problem("dose %d vaccine: missing", num)
			ok = false
		case utf8.RuneCountInString(vac) > maxVaccineRunes:
			r.problem("dose %d vaccine: longer than %d characters", num, maxVaccineRunes)
			ok = false
		case hasControl(vac):
			r.problem("dose %d vaccine: contains control characters", num)
			ok = false
		}
		out.Vaccine = vac
		date := strings.TrimSpace(d.date)
		switch {
		case date == "":
			r.problem("dose %d date: missing", num)
			ok = false
		case !isDate(date):
			r.problem("dose %d date: not a date in the form YYYY-MM-DD", num)
			ok = false
		case date > v.today:
			r.problem("dose %d date: in the future", num)
			ok = false
		}
		out.Date = date
		center := strings.TrimSpace(d.center)
		switch {
		case utf8.RuneCountInString(center) > maxCenterRunes:
			r.problem("dose %d center: longer than %d characters", num, maxCenterRunes)
			ok = false
		case hasControl(center):
			r.problem("dose %d center: contains control characters", num)
			ok = false
		}
		out.Center = center
		if ok {
			doses = append(doses, out)
		}
	}
	slices.SortFunc(doses, func(a, b store.Dose) int { return a.Number - b.Number })
	return doses
}

// parseReference accepts exactly 14 decimal digits in any script.
func parseReference(s string) (string, bool) {
	if len(s) == 14 && allASCIIDigits(s) {
		return s, true // the common case, without a copy
	}
	n := 0
	for _, c := range s {
		if !unicode.IsDigit(c) {
			return "", false
		}
		n++
	}
	if n != 14 {
		return "", false
	}
	d, ok := pii.Digits(s)
	return d, ok && len(d) == 14
}

// parseInt reads an optionally negative whole number written in any
// script's decimal digits.
func parseInt(s string) (int, error) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	if body == "" || len(body) > 64 {
		return 0, strconv.ErrSyntax
	}
	for _, c := range body {
		if !unicode.IsDigit(c) {
			return 0, strconv.ErrSyntax
		}
	}
	d, ok := pii.Digits(body)
	if !ok {
		return 0, strconv.ErrSyntax
	}
	if len(d) > 9 {
		d = "999999999" // out of every range; avoids overflow
	}
	n, err := strconv.Atoi(d)
	if neg {
		n = -n
	}
	return n, err
}

func isDate(s string) bool {
	if len(s) != len(time.DateOnly) {
		return false
	}
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

func isPAN(s string) bool {
	if len(s) != 10 {
		return false
	}
	for i := 0; i < 10; i++ {
		c := s[i]
		letter := c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		if (i < 5 || i == 9) && !letter || (i >= 5 && i < 9) && !digit {
			return false
		}
	}
	return true
}

func allASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// hasControl reports control characters and the invisible characters that
// reorder or break text in a chat (bidi overrides, line separators). Joiners
// (ZWJ, ZWNJ) stay allowed: Indic scripts need them.
func hasControl(s string) bool {
	for _, c := range s {
		switch {
		case unicode.IsControl(c),
			c == '\u2028', c == '\u2029',
			c >= '\u202A' && c <= '\u202E',
			c >= '\u2066' && c <= '\u2069',
			c == '\uFEFF':
			return true
		}
	}
	return false
}

// safeName returns a quoted field or column name if it looks like one
// (short, letters, digits and underscores, few digits), and "" otherwise,
// so that a value misplaced where a name belongs is never echoed.
func safeName(s string) string {
	if s == "" || len(s) > 40 {
		return ""
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9':
			digits++
		default:
			return ""
		}
	}
	if digits > 3 {
		return ""
	}
	return strconv.Quote(s)
}
