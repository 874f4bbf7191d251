package recordfile_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

// Fuzz targets for import files. The fuzzer rewrites whole files; the
// properties hold for every row of every file:
//
//   - no panic; a File reads the same rows on every pass (store.Import
//     reads it twice);
//   - each row is accepted with fields that satisfy SPEC §4, or rejected
//     with its line number, a reason and no data;
//   - a reason is printable ASCII without a run of six digits, and never
//     holds one of the personal values the seeds plant (fzMarkers): a
//     rejected value is described, never echoed;
//   - a row reads the same alone as among other rows (the parsers reuse
//     decoders and buffers line to line).

var fzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The seeds' personal values. None can pass for a field or column name
// (which a reason may quote: "unknown field \"address\""), so no reason may
// ever hold one, in any letter case.
const (
	fzRef    = "73914682550137"
	fzMobile = "9812345678"
	fzAadh   = "864213579024"
	fzPAN    = "MRKQZ7531X"
	fzName   = "Zorawar Markerson"
	fzNameHi = "ज़ोरावर मार्करसन"
)

var fzMarkers = []string{fzRef, fzMobile, "98123 45678", fzAadh, "8642 1357 9024", fzPAN, fzName, fzNameHi}

func fzJSONLine(fields ...string) string {
	// fields: key, raw JSON value, …
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < len(fields); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + fields[i] + `":` + fields[i+1])
	}
	b.WriteString("}")
	return b.String()
}

var fzGoodJSON = fzJSONLine("reference_id", `"`+fzRef+`"`, "name", `"`+fzName+`"`, "birth_year", "1961", "gender", `"M"`,
	"mobile", `"+91 98123 45678"`, "id_type", `"aadhaar"`, "id_number", `"8642 1357 9024"`,
	"doses", `[{"dose":1,"vaccine":"COVISHIELD","date":"2021-05-02","center":"PHC Rampur"},{"dose":2,"vaccine":"COVISHIELD","date":"2021-08-02","center":"UPHC Shivaji Nagar"}]`)

var fzGoodJSON2 = fzJSONLine("reference_id", `"७३९१४६८२५५०१३८"`, "name", `"`+fzNameHi+`"`, "birth_year", "1988", "gender", `"f"`,
	"mobile", `"०९८१२३-४५६७८"`, "id_type", `"PAN"`, "id_number", `"mrkqz7531x"`)

const fzCSVHeader = "reference_id,name,birth_year,gender,mobile,id_type,id_number,dose1_vaccine,dose1_date,dose1_center,dose2_vaccine,dose2_date,dose2_center"

var fzGoodCSV = fzRef + "," + fzName + ",1961,M,+91 98123 45678,aadhaar,8642 1357 9024,COVISHIELD,2021-05-02,PHC Rampur,COVAXIN,2021-08-02,\"CHC Bhadrak, Odisha\""
var fzGoodCSV2 = "७३९१४६८२५५०१३८,\"" + fzNameHi + "\",१९८८,f,०९८१२३-४५६७८,PAN,mrkqz7531x,,,,,,"

// fzNasty are line-level hostile inputs, for both formats.
var fzNasty = []string{
	"",
	"\x00",
	"\x00\x00\x00\n\x00",
	"\xff\xfe" + fzGoodJSON,
	"\ufeff" + fzGoodJSON,
	fzGoodJSON + "\x00",
	strings.Replace(fzGoodJSON, fzName, "Zorawar\xff Markerson", 1),
	strings.Replace(fzGoodJSON, fzName, "Zorawar\u0000Markerson", 1),
	strings.Replace(fzGoodJSON, fzName, `Zorawar\u0000 Markerson`, 1),
	strings.Replace(fzGoodJSON, fzName, `Zorawar\ud800 Markerson`, 1),
	strings.Replace(fzGoodJSON, fzName, "\u202eZorawar Markerson", 1),
	strings.Replace(fzGoodJSON, fzName, "\u200fZorawar Markerson\u200e", 1),
	strings.Replace(fzGoodJSON, fzName, "Zorawar\u200bMarkerson", 1),
	strings.Replace(fzGoodJSON, "+91 98123 45678", "98123\u200b45678", 1),
	strings.Replace(fzGoodJSON, "+91 98123 45678", "𝟿𝟾𝟷𝟸𝟹𝟺𝟻𝟼𝟽𝟾", 1),
	strings.Replace(fzGoodJSON, "+91 98123 45678", "９８１２３４５６７８", 1),
	strings.Replace(fzGoodJSON, fzRef, "𝟟𝟛𝟡𝟙𝟜𝟞𝟠𝟚𝟝𝟝𝟘𝟙𝟛𝟟", 1),
	strings.Replace(fzGoodJSON, `"1961"`, `"१९६१"`, 1),
	strings.Replace(fzGoodJSON, "1961", "1e999", 1),
	strings.Replace(fzGoodJSON, "1961", "-0", 1),
	strings.Replace(fzGoodJSON, "1961", "98123456789012345678901234567890", 1),
	strings.Replace(fzGoodJSON, "1961", `"`+fzMobile+`"`, 1),
	strings.Replace(fzGoodJSON, `"dose":1`, `"dose":`+fzMobile, 1),
	strings.Replace(fzGoodJSON, `"dose":1`, `"dose":1,"`+fzPAN+`":1`, 1),
	strings.Replace(fzGoodJSON, `"dose":1`, `"dose":1,"`+fzName+`":1`, 1),
	strings.Replace(fzGoodJSON, `"gender":"M"`, `"gender":"`+fzName+`"`, 1),
	strings.Replace(fzGoodJSON, `"id_type":"aadhaar"`, `"id_type":"`+fzAadh+`"`, 1),
	strings.Replace(fzGoodJSON, `"id_type":"aadhaar"`, `"id_type":"pan"`, 1),
	strings.Replace(fzGoodJSON, `"reference_id"`, `"`+fzRef+`"`, 1),
	strings.Replace(fzGoodJSON, `"mobile"`, `"Mobile":"+91 98123 45679","MOBILE"`, 1),
	strings.Replace(fzGoodJSON, `"name"`, `"n\u0061me"`, 1),
	strings.Replace(fzGoodJSON, `"doses":[`, `"doses":[null,7,"`+fzMobile+`",[],`, 1),
	strings.Replace(fzGoodJSON, `"doses":[`, `"doses":[`+strings.Repeat(`{"dose":3,"vaccine":"X","date":"2021-01-01"},`, 11), 1),
	strings.Replace(fzGoodJSON, `"2021-05-02"`, `"2027-05-02"`, 1),
	strings.Replace(fzGoodJSON, `"2021-05-02"`, `"2021-02-29"`, 1),
	strings.Replace(fzGoodJSON, `"2021-05-02"`, `"`+fzAadh+`"`, 1),
	fzGoodJSON + " " + fzGoodJSON,
	fzGoodJSON + ` "` + fzMobile + `"`,
	fzGoodJSON + "}",
	`{"name":"` + fzName + `" "mobile":"` + fzMobile + `"}`,
	`{"name":"` + fzName,
	`"` + fzName + `"`,
	fzMobile,
	`[` + fzGoodJSON + `]`,
	`{"doses":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	strings.Repeat("{", 5000),
	`{"name":"` + strings.Repeat("अ", 101) + `"}`,
	`{"name":"` + strings.Repeat("x", 70000) + `"}`,
	"\r\n\r\n \t \r\n",
	fzRef + "," + fzName + ",1961,M," + fzMobile,
	fzRef + ",\"" + fzName + "\" x,1961,M," + fzMobile,
	fzRef + ",\"" + fzName + ",1961,M," + fzMobile,
	fzRef + "," + fzName + " \"Z\",1961,M," + fzMobile,
	strings.Repeat(",", 70000),
	strings.Repeat(",", 5000),
}

func FuzzJSONLines(f *testing.F) {
	f.Add([]byte(fzGoodJSON + "\n" + fzGoodJSON2 + "\n"))
	f.Add([]byte(fzGoodJSON + "\r\n\r\n" + fzGoodJSON2))
	f.Add([]byte("\ufeff" + fzGoodJSON + "\n\ufeff" + fzGoodJSON2 + "\n"))
	for _, s := range fzNasty {
		f.Add([]byte(s))
		f.Add([]byte(fzGoodJSON + "\n" + s + "\n" + fzGoodJSON2 + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFile(t, data, recordfile.FormatJSONL)
	})
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte(fzCSVHeader + "\n" + fzGoodCSV + "\n" + fzGoodCSV2 + "\n"))
	f.Add([]byte("\ufeff" + strings.ToUpper(fzCSVHeader) + "\r\n\r\n" + fzGoodCSV + "\r\n" + fzGoodCSV2))
	f.Add([]byte(" reference_id , name ,birth_year,gender,mobile\n" + fzRef + "," + fzName + ",1961,M," + fzMobile + "\n"))
	for _, h := range []string{
		"", "\n\n", "\xff", "\ufeff", fzGoodCSV, fzRef + "," + fzMobile,
		fzCSVHeader + ",address," + fzName + "," + fzMobile + "," + fzPAN + ",reference_id,dose11_vaccine,dose0_date,dose1_center",
		"reference_id,name,birth_year,gender", `"reference_id,name",birth_year`, `reference_id,"name`, "reference_id,na\"me",
		"reference_id\x00,name,birth_year,gender,mobile", strings.Repeat("reference_id,", 6000),
	} {
		f.Add([]byte(h + "\n" + fzGoodCSV + "\n"))
	}
	for _, s := range fzNasty {
		f.Add([]byte(fzCSVHeader + "\n" + s + "\n" + fzGoodCSV + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFile(t, data, recordfile.FormatCSV)
	})
}

// maxIsolated bounds how many rows of one input are also read alone.
const maxIsolated = 8

func fzOpts(format recordfile.Format) recordfile.Options {
	return recordfile.Options{Format: format, Now: func() time.Time { return fzNow }}
}

func readAll(t *testing.T, f *recordfile.File) []store.ImportRow {
	t.Helper()
	var rows []store.ImportRow
	if err := f.Rows(context.Background(), func(r store.ImportRow) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatalf("Rows: %v", err)
	}
	return rows
}

func checkFile(t *testing.T, data []byte, format recordfile.Format) {
	// Detection never fails on a non-empty file, and never panics.
	if a, err := recordfile.New(bytes.NewReader(data), int64(len(data)), fzOpts(recordfile.FormatAuto)); err == nil {
		if a.Format() != recordfile.FormatJSONL && a.Format() != recordfile.FormatCSV {
			t.Fatalf("detected format %v", a.Format())
		}
	} else {
		checkFileErr(t, err)
	}

	f, err := recordfile.New(bytes.NewReader(data), int64(len(data)), fzOpts(format))
	if err != nil {
		if format != recordfile.FormatCSV {
			t.Fatalf("New: %v", err)
		}
		checkFileErr(t, err)
		return
	}
	rows := readAll(t, f)
	if again := readAll(t, f); !reflect.DeepEqual(rows, again) {
		t.Fatalf("a second pass read other rows:\n%+v\n%+v", rows, again)
	}
	lines := bytes.Split(data, []byte("\n"))
	header := 0
	if format == recordfile.FormatCSV {
		header = firstNonBlank(lines)
	}
	prev := 0
	for i, r := range rows {
		if r.Line <= prev || r.Line > len(lines) || r.Line <= header {
			t.Fatalf("row %d: line %d after %d (file of %d lines, header on %d)", i, r.Line, prev, len(lines), header)
		}
		prev = r.Line
		if r.Problem != "" {
			checkRejected(t, r)
		} else {
			checkAccepted(t, r)
		}
		if i >= maxIsolated || strings.HasPrefix(r.Problem, "line too long") {
			continue
		}
		// The same line alone (at the same line number, so that only the
		// first line loses a byte order mark) reads the same.
		var alone []byte
		if header > 0 {
			alone = append(alone, bytes.Repeat([]byte("\n"), header-1)...)
			alone = append(alone, lines[header-1]...)
			alone = append(alone, '\n')
			alone = append(alone, bytes.Repeat([]byte("\n"), r.Line-header-1)...)
		} else {
			alone = append(alone, bytes.Repeat([]byte("\n"), r.Line-1)...)
		}
		alone = append(alone, lines[r.Line-1]...)
		f1, err := recordfile.New(bytes.NewReader(alone), int64(len(alone)), fzOpts(format))
		if err != nil {
			t.Fatalf("line %d alone: %v", r.Line, err)
		}
		got := readAll(t, f1)
		if len(got) != 1 || !reflect.DeepEqual(got[0], r) {
			t.Fatalf("line %d reads differently alone:\n among others: %+v\n alone:         %+v", r.Line, r, got)
		}
	}
}

// firstNonBlank returns the 1-based number of the first line with more
// than blanks, as the CSV header is found, or 0.
func firstNonBlank(lines [][]byte) int {
	for i, l := range lines {
		if i == 0 {
			l = bytes.TrimPrefix(l, []byte("\ufeff"))
		}
		if len(bytes.Trim(l, " \t\r")) > 0 {
			return i + 1
		}
	}
	return 0
}

// checkText fails when a reason or error could be quoting the file:
// anything but printable ASCII (and the ellipsis of the header hint), a run
// of six digits, or a planted personal value.
func checkText(t *testing.T, what, s string) {
	t.Helper()
	run := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			run++
			if run >= 6 {
				t.Fatalf("%s %q holds a run of digits", what, s)
			}
			continue
		case c == '…':
		case c < ' ' || c > '~':
			t.Fatalf("%s %q holds %U, which can only come from the file", what, s, c)
		}
		run = 0
	}
	low := strings.ToLower(s)
	for _, m := range fzMarkers {
		if strings.Contains(low, strings.ToLower(m)) {
			t.Fatalf("%s %q echoes the personal value %q", what, s, m)
		}
	}
}

func checkFileErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, recordfile.ErrFormat) && !errors.Is(err, recordfile.ErrHeader) {
		t.Fatalf("error %v is neither ErrFormat nor ErrHeader", err)
	}
	var he *recordfile.HeaderError
	if errors.As(err, &he) && he.Line < 1 {
		t.Fatalf("header error on line %d", he.Line)
	}
	checkText(t, "error", err.Error())
}

func checkRejected(t *testing.T, r store.ImportRow) {
	t.Helper()
	if !reflect.DeepEqual(r.Record, store.Record{}) || r.ID != "" {
		t.Fatalf("line %d: rejected (%s) but carries data: %+v", r.Line, r.Problem, r)
	}
	checkText(t, "problem", r.Problem)
}

var fzIDTypes = []string{"aadhaar", "pan", "passport", "driving_licence", "voter_id", "ration_card", "other"}

func checkAccepted(t *testing.T, r store.ImportRow) {
	t.Helper()
	rec := r.Record
	bad := func(why string) {
		t.Helper()
		t.Fatalf("line %d accepted with %s: %+v (ID %q)", r.Line, why, rec, r.ID.Value())
	}
	if len(rec.RefID) != 14 || strings.Trim(rec.RefID, "0123456789") != "" {
		bad("a bad reference_id")
	}
	if rec.Name == "" || rec.Name != strings.TrimSpace(rec.Name) || utf8.RuneCountInString(rec.Name) > 100 || !utf8.ValidString(rec.Name) ||
		strings.ContainsFunc(rec.Name, func(c rune) bool {
			return unicode.IsControl(c) || c == '\u2028' || c == '\u2029' || c >= '\u202A' && c <= '\u202E' || c >= '\u2066' && c <= '\u2069' || c == '\uFEFF'
		}) {
		bad("a bad name")
	}
	if rec.BirthYear < 1900 || rec.BirthYear > fzNow.Year() {
		bad("a bad birth_year")
	}
	if rec.Gender != "M" && rec.Gender != "F" && rec.Gender != "O" {
		bad("a bad gender")
	}
	if m, err := pii.ParseMobile(rec.Mobile.E164()); err != nil || m != rec.Mobile || !strings.HasPrefix(rec.Mobile.E164(), "+") {
		bad("a bad mobile")
	}
	switch {
	case rec.IDType == "":
		if r.ID != "" || rec.IDLast4 != "" {
			bad("an ID number but no id_type")
		}
	case !slices.Contains(fzIDTypes, rec.IDType):
		bad("a bad id_type")
	default:
		if n, ok := pii.NormalizeID(r.ID.Value()); !ok || n != r.ID || rec.IDLast4 != r.ID.Last4() {
			bad("a bad ID number")
		}
		if rec.IDType == "aadhaar" && (len(r.ID) != 12 || strings.Trim(r.ID.Value(), "0123456789") != "") {
			bad("a bad aadhaar number")
		}
	}
	if rec.IDKey != "" {
		bad("an ID key (the store sets it)")
	}
	today := fzNow.Format(time.DateOnly)
	for i, d := range rec.Doses {
		if d.Number < 1 || d.Number > 10 || i > 0 && d.Number <= rec.Doses[i-1].Number {
			bad("doses out of order")
		}
		if _, err := time.Parse(time.DateOnly, d.Date); err != nil || d.Date > today {
			bad("a bad dose date")
		}
		if d.Vaccine == "" || d.Vaccine != strings.TrimSpace(d.Vaccine) || utf8.RuneCountInString(d.Vaccine) > 64 || utf8.RuneCountInString(d.Center) > 200 {
			bad("a bad dose")
		}
	}
}
