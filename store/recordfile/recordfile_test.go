package recordfile_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func opts() recordfile.Options {
	return recordfile.Options{Now: func() time.Time { return testNow }}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, name, content string) *recordfile.File {
	t.Helper()
	f, err := recordfile.Open(writeFile(t, name, content), opts())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func collect(t *testing.T, f *recordfile.File) []store.ImportRow {
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

const goodJSONL = `{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210","id_type":"aadhaar","id_number":"1234 1234 1234","doses":[{"dose":2,"vaccine":"COVISHIELD","date":"2021-08-02","center":"PHC Rampur"},{"dose":1,"vaccine":"COVISHIELD","date":"2021-05-02","center":"PHC Rampur"}]}
{"reference_id":"१२३४५६७८९०१२३५","name":"राजेश कुमार","birth_year":1950,"gender":"m","mobile":"+९१ ९८७६५ ४३२११","id_type":"PAN","id_number":"abcpd1234e"}

{"reference_id":"12345678901236","name":"Kiran, \"KT\" Tiwari","birth_year":2001,"gender":"O","mobile":"98765-43212","doses":[{"dose":1,"vaccine":"COVAXIN","date":"2022-01-10"}]}
`

const goodCSV = "\uFEFFreference_id,name,birth_year,gender,mobile,id_type,id_number,dose1_vaccine,dose1_date,dose1_center,dose2_vaccine,dose2_date,dose2_center\n" +
	"12345678901234,Asha Verma,1987,F,+919876543210,aadhaar,1234 1234 1234,COVISHIELD,2021-05-02,PHC Rampur,COVISHIELD,2021-08-02,PHC Rampur\n" +
	"१२३४५६७८९०१२३५,राजेश कुमार,1950,m,+९१ ९८७६५ ४३२११,PAN,abcpd1234e,,,,,,\n" +
	"\n" +
	"12345678901236,\"Kiran, \"\"KT\"\" Tiwari\",2001,O,98765-43212,,,COVAXIN,2022-01-10,,,,\n"

func wantRecords() []store.Record {
	return []store.Record{
		{RefID: "12345678901234", Name: "Asha Verma", BirthYear: 1987, Gender: "F", Mobile: "+919876543210",
			IDType: "aadhaar", IDLast4: "1234", Doses: []store.Dose{
				{Number: 1, Vaccine: "COVISHIELD", Date: "2021-05-02", Center: "PHC Rampur"},
				{Number: 2, Vaccine: "COVISHIELD", Date: "2021-08-02", Center: "PHC Rampur"},
			}},
		{RefID: "12345678901235", Name: "राजेश कुमार", BirthYear: 1950, Gender: "M", Mobile: "+919876543211",
			IDType: "pan", IDLast4: "234E"},
		{RefID: "12345678901236", Name: `Kiran, "KT" Tiwari`, BirthYear: 2001, Gender: "O", Mobile: "+919876543212",
			Doses: []store.Dose{{Number: 1, Vaccine: "COVAXIN", Date: "2022-01-10"}}},
	}
}

func TestJSONLAndCSVGiveSameRecords(t *testing.T) {
	wantIDs := []pii.IDNumber{"123412341234", "ABCPD1234E", ""}
	for _, tc := range []struct {
		name, file, content string
		format              recordfile.Format
		lines               []int
	}{
		{"jsonl", "in.jsonl", goodJSONL, recordfile.FormatJSONL, []int{1, 2, 4}},
		{"csv", "in.csv", goodCSV, recordfile.FormatCSV, []int{2, 3, 5}},
		{"jsonl crlf, no final newline", "in.jsonl", strings.TrimSuffix(strings.ReplaceAll(goodJSONL, "\n", "\r\n"), "\r\n"), recordfile.FormatJSONL, []int{1, 2, 4}},
		{"csv crlf", "in.csv", strings.ReplaceAll(goodCSV, "\n", "\r\n"), recordfile.FormatCSV, []int{2, 3, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, tc.file, tc.content)
			if f.Format() != tc.format {
				t.Fatalf("format %v, want %v", f.Format(), tc.format)
			}
			rows := collect(t, f)
			if len(rows) != 3 {
				t.Fatalf("%d rows, want 3: %+v", len(rows), rows)
			}
			var got []store.Record
			for i, r := range rows {
				if r.Problem != "" {
					t.Errorf("line %d: unexpected problem %q", r.Line, r.Problem)
				}
				if r.Line != tc.lines[i] {
					t.Errorf("row %d: line %d, want %d", i, r.Line, tc.lines[i])
				}
				if r.ID != wantIDs[i] {
					t.Errorf("row %d: ID %q, want %q", i, r.ID.Value(), wantIDs[i].Value())
				}
				got = append(got, r.Record)
			}
			if want := wantRecords(); !reflect.DeepEqual(got, want) {
				t.Errorf("records differ:\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// base is a valid record; each validation case changes one thing.
func base() map[string]any {
	return map[string]any{
		"reference_id": "12345678901234", "name": "Asha Verma", "birth_year": 1987, "gender": "F",
		"mobile": "+919876543210", "id_type": "aadhaar", "id_number": "123412341234",
		"doses": []any{map[string]any{"dose": 1, "vaccine": "COVISHIELD", "date": "2021-05-02", "center": "PHC Rampur"}},
	}
}

// personal values of base and of the cases: no problem text may contain them.
var secrets = []string{"12345678901234", "Asha", "Verma", "9876543210", "98765", "123412341234", "1234123412",
	"1234567890123", "5876543210", "12341234123", "ABCDE12345", "abc$%^", "0987654321", "ssn-number"}

func TestValidationProblems(t *testing.T) {
	dose := func(kv ...any) map[string]any {
		d := map[string]any{"dose": 1, "vaccine": "COVISHIELD", "date": "2021-05-02", "center": "PHC Rampur"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(d, kv[i].(string))
			} else {
				d[kv[i].(string)] = kv[i+1]
			}
		}
		return d
	}
	set := func(kv ...any) func(map[string]any) {
		return func(m map[string]any) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(m, kv[i].(string))
				} else {
					m[kv[i].(string)] = kv[i+1]
				}
			}
		}
	}
	long := func(r string, n int) string { return strings.Repeat(r, n) }
	cases := []struct {
		name string
		edit func(map[string]any)
		raw  string // used instead of edit when set
		want string
	}{
		{name: "ref 13 digits", edit: set("reference_id", "1234567890123"), want: "reference_id: must be exactly 14 digits"},
		{name: "ref letters", edit: set("reference_id", "1234567890123A"), want: "reference_id: must be exactly 14 digits"},
		{name: "ref spaced", edit: set("reference_id", "1234567 8901234"), want: "reference_id: must be exactly 14 digits"},
		{name: "ref missing", edit: set("reference_id", nil), want: "reference_id: missing"},
		{name: "ref number", edit: set("reference_id", 12345678901234), want: "reference_id: must be a string, found number"},
		{name: "name blank", edit: set("name", "   "), want: "name: missing"},
		{name: "name null", edit: set("name", nil), want: "name: missing"},
		{name: "name too long", edit: set("name", long("अ", 101)), want: "name: longer than 100 characters"},
		{name: "name control", edit: set("name", "Asha\u0007 Verma"), want: "name: contains control characters"},
		{name: "name newline", edit: set("name", "Asha\nVerma"), want: "name: contains control characters"},
		{name: "name bidi", edit: set("name", "\u202eAsha Verma"), want: "name: contains control characters"},
		{name: "year early", edit: set("birth_year", 1850), want: "birth_year: 1850 is before 1900"},
		{name: "year future", edit: set("birth_year", 2027), want: "birth_year: 2027 is after 2026"},
		{name: "year huge", edit: set("birth_year", 9876543210), want: "birth_year: must be between 1900 and 2026"},
		{name: "year string", edit: set("birth_year", "1987"), want: "birth_year: must be a number, found string"},
		{name: "year fraction", edit: set("birth_year", 1987.5), want: "birth_year: must be a whole number"},
		{name: "year missing", edit: set("birth_year", nil), want: "birth_year: missing"},
		{name: "gender", edit: set("gender", "X"), want: "gender: must be M, F or O"},
		{name: "gender word", edit: set("gender", "female"), want: "gender: must be M, F or O"},
		{name: "mobile short", edit: set("mobile", "12345"), want: "mobile: not a valid mobile number"},
		{name: "mobile not indian mobile", edit: set("mobile", "+91 5876543210"), want: "mobile: not a valid mobile number"},
		{name: "mobile leading zero national", edit: set("mobile", "0987654321"), want: "mobile: not a valid mobile number"},
		{name: "mobile number type", edit: set("mobile", 9876543210), want: "mobile: must be a string, found number"},
		{name: "mobile missing", edit: set("mobile", nil), want: "mobile: missing"},
		{name: "id_type unknown", edit: set("id_type", "ssn"), want: "id_type: must be one of aadhaar, pan, passport, driving_licence, voter_id, ration_card, other"},
		{name: "id_type without number", edit: set("id_number", nil), want: "id_number: missing (id_type is given)"},
		{name: "id_number without type", edit: set("id_type", ""), want: "id_type: missing (id_number is given)"},
		{name: "aadhaar 11 digits", edit: set("id_number", "12341234123"), want: "id_number: an aadhaar number has exactly 12 digits"},
		{name: "aadhaar letters", edit: set("id_number", "1234123412AB"), want: "id_number: an aadhaar number has exactly 12 digits"},
		{name: "pan pattern", edit: set("id_type", "pan", "id_number", "ABCDE12345"), want: "id_number: a pan has the form AAAAA9999A"},
		{name: "id_number symbols", edit: set("id_type", "other", "id_number", "abc$%^"), want: "id_number: not a valid ID number"},
		{name: "id_number type", edit: set("id_number", true), want: "id_number: must be a string, found boolean"},
		{name: "dose zero", edit: set("doses", []any{dose("dose", 0)}), want: "doses item 1: dose number must be 1 to 10"},
		{name: "dose eleven", edit: set("doses", []any{dose(), dose("dose", 11)}), want: "doses item 2: dose number must be 1 to 10"},
		{name: "dose missing number", edit: set("doses", []any{dose("dose", nil)}), want: "doses item 1: dose number missing"},
		{name: "dose repeated", edit: set("doses", []any{dose(), dose()}), want: "dose 1: appears more than once"},
		{name: "dose string number", edit: set("doses", []any{dose("dose", "1")}), want: "doses item 1: dose must be a number, found string"},
		{name: "dose no vaccine", edit: set("doses", []any{dose("vaccine", " ")}), want: "dose 1 vaccine: missing"},
		{name: "dose long vaccine", edit: set("doses", []any{dose("vaccine", long("V", 65))}), want: "dose 1 vaccine: longer than 64 characters"},
		{name: "dose bad date", edit: set("doses", []any{dose("date", "2021-02-30")}), want: "dose 1 date: not a date in the form YYYY-MM-DD"},
		{name: "dose slash date", edit: set("doses", []any{dose("date", "2021/05/02")}), want: "dose 1 date: not a date in the form YYYY-MM-DD"},
		{name: "dose short date", edit: set("doses", []any{dose("date", "2021-5-2")}), want: "dose 1 date: not a date in the form YYYY-MM-DD"},
		{name: "dose future", edit: set("doses", []any{dose("date", "2026-03-02")}), want: "dose 1 date: in the future"},
		{name: "dose no date", edit: set("doses", []any{dose("date", nil)}), want: "dose 1 date: missing"},
		{name: "dose long center", edit: set("doses", []any{dose("center", long("क", 201))}), want: "dose 1 center: longer than 200 characters"},
		{name: "dose unknown field", edit: set("doses", []any{dose("batch", "X1")}), want: `doses item 1: unknown field "batch"`},
		{name: "dose not object", edit: set("doses", []any{1}), want: "doses item 1: must be an object, found number"},
		{name: "doses not array", edit: set("doses", "COVISHIELD"), want: "doses: must be an array, found string"},
		{name: "too many doses", edit: set("doses", []any{dose("dose", 1), dose("dose", 2), dose("dose", 3), dose("dose", 4),
			dose("dose", 5), dose("dose", 6), dose("dose", 7), dose("dose", 8), dose("dose", 9), dose("dose", 10), dose("dose", 10)}), want: "doses: more than 10"},
		{name: "unknown field", edit: set("address", "12 MG Road"), want: `unknown field "address"`},
		{name: "unknown field named by a value", edit: set("9876543210", "x"), want: "an unknown field"},
		{name: "duplicate member", raw: `{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210","mobile":"+919876543219"}`, want: "mobile: appears more than once"},
		{name: "array", raw: `[{"reference_id":"12345678901234"}]`, want: "a JSON array, not an object"},
		{name: "string", raw: `"12345678901234"`, want: "not a JSON object"},
		{name: "broken json", raw: `{"reference_id":"12345678901234","name":"Asha Verma",`, want: "not valid JSON"},
		{name: "not utf-8", raw: "{\"reference_id\":\"12345678901234\",\"name\":\"Asha \xff Verma\"}", want: "not valid UTF-8"},
		{name: "line too long", raw: `{"name":"` + long("A", 70000) + `"}`, want: "line too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.raw
			if line == "" {
				m := base()
				tc.edit(m)
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				line = string(b)
			}
			// A good row, a blank line, the bad row, a good row: the bad
			// row must be reported on line 3 and not disturb line 4.
			good := goodLine(t)
			f := open(t, "in.jsonl", good+"\n\n"+line+"\n"+strings.Replace(good, "12345678901234", "12345678901299", 1)+"\n")
			rows := collect(t, f)
			if len(rows) != 3 {
				t.Fatalf("%d rows, want 3", len(rows))
			}
			if rows[0].Problem != "" || rows[2].Problem != "" || rows[2].Line != 4 {
				t.Fatalf("neighbouring rows disturbed: %+v / %+v", rows[0], rows[2])
			}
			bad := rows[1]
			if bad.Line != 3 {
				t.Errorf("line %d, want 3", bad.Line)
			}
			if !strings.Contains(bad.Problem, tc.want) {
				t.Errorf("problem %q, want it to contain %q", bad.Problem, tc.want)
			}
			if !reflect.DeepEqual(bad.Record, store.Record{}) || bad.ID != "" {
				t.Errorf("rejected row carries data: %+v", bad)
			}
			for _, s := range secrets {
				if strings.Contains(bad.Problem, s) {
					t.Errorf("problem %q echoes the personal value %q", bad.Problem, s)
				}
			}
		})
	}
}

func goodLine(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(base())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidNormalisation(t *testing.T) {
	cases := []struct {
		name string
		line string
		want store.Record
		id   pii.IDNumber
	}{
		{"lower-case gender and id type, national mobile",
			`{"reference_id":"12345678901234","name":"  Asha Verma ","birth_year":1900,"gender":"f","mobile":"9876543210","id_type":"Voter_ID","id_number":"xyz0000001","doses":null}`,
			store.Record{RefID: "12345678901234", Name: "Asha Verma", BirthYear: 1900, Gender: "F", Mobile: "+919876543210", IDType: "voter_id", IDLast4: "0001"},
			"XYZ0000001"},
		{"Devanagari digits, no id, empty doses, this year",
			`{"reference_id":"१२३४५६७८९०१२३४","name":"सुनीता देवी","birth_year":2026,"gender":"F","mobile":"९८७६५४३२१०","id_type":"","id_number":"","doses":[]}`,
			store.Record{RefID: "12345678901234", Name: "सुनीता देवी", BirthYear: 2026, Gender: "F", Mobile: "+919876543210"},
			""},
		{"dose today, escaped name",
			`{"reference_id":"12345678901234","name":"Asha \u0056erma","birth_year":1987,"gender":"F","mobile":"+919876543210","doses":[{"dose":3,"vaccine":"CORBEVAX","date":"2026-03-01"}]}`,
			store.Record{RefID: "12345678901234", Name: "Asha Verma", BirthYear: 1987, Gender: "F", Mobile: "+919876543210",
				Doses: []store.Dose{{Number: 3, Vaccine: "CORBEVAX", Date: "2026-03-01"}}},
			""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows := collect(t, open(t, "in.jsonl", tc.line))
			if len(rows) != 1 || rows[0].Problem != "" {
				t.Fatalf("rows %+v", rows)
			}
			if !reflect.DeepEqual(rows[0].Record, tc.want) {
				t.Errorf("record\n got %#v\nwant %#v", rows[0].Record, tc.want)
			}
			if rows[0].ID != tc.id {
				t.Errorf("ID %q, want %q", rows[0].ID.Value(), tc.id.Value())
			}
		})
	}
}

func TestCSVRowProblems(t *testing.T) {
	header := "reference_id,name,birth_year,gender,mobile,id_type,id_number,dose1_vaccine,dose1_date,dose1_center\n"
	cases := []struct {
		name, row, want string
	}{
		{"field count", "12345678901234,Asha Verma,1987,F,9876543210,,\n", "has 7 fields; the header has 10"},
		{"unterminated quote", "12345678901234,\"Asha Verma,1987,F,9876543210,,,,,\n", "not valid CSV: a quoted field is not closed"},
		{"bare quote", "12345678901234,Asha \"V\" Verma,1987,F,9876543210,,,,,\n", "not valid CSV: a quote"},
		{"text after quote", "12345678901234,\"Asha\" Verma,1987,F,9876543210,,,,,\n", "not valid CSV: text after the closing quote"},
		{"date without vaccine", "12345678901234,Asha Verma,1987,F,9876543210,,,,2021-05-02,PHC\n", "dose 1: date or center given without a vaccine"},
		{"bad year text", "12345678901234,Asha Verma,19x7,F,9876543210,,,,,\n", "birth_year: must be a whole number"},
		{"bad mobile", "12345678901234,Asha Verma,1987,F,98765,,,,,\n", "mobile: not a valid mobile number"},
		{"empty name", "12345678901234,,1987,F,9876543210,,,,,\n", "name: missing"},
		{"not utf-8", "12345678901234,Asha \xfe Verma,1987,F,9876543210,,,,,\n", "not valid UTF-8"},
		{"bad dose date", "12345678901234,Asha Verma,1987,F,9876543210,,,COVAXIN,02-05-2021,\n", "dose 1 date: not a date"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows := collect(t, open(t, "in.csv", header+"\n"+tc.row))
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			if rows[0].Line != 3 {
				t.Errorf("line %d, want 3", rows[0].Line)
			}
			if !strings.Contains(rows[0].Problem, tc.want) {
				t.Errorf("problem %q, want %q", rows[0].Problem, tc.want)
			}
			for _, s := range secrets {
				if strings.Contains(rows[0].Problem, s) {
					t.Errorf("problem %q echoes %q", rows[0].Problem, s)
				}
			}
		})
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	cases := []struct {
		name, header string
		want         []string
		notWant      []string
	}{
		{"unknown columns", "reference_id,name,birth_year,gender,mobile,address,Pin_Code\n",
			[]string{`unknown columns: "address", "pin_code"`}, nil},
		{"missing columns", "reference_id,name,gender\n",
			[]string{"missing columns: birth_year, mobile"}, nil},
		{"dose group incomplete", "reference_id,name,birth_year,gender,mobile,dose2_vaccine,dose3_date\n",
			[]string{"missing columns: dose2_date, dose3_vaccine"}, nil},
		{"dose eleven", "reference_id,name,birth_year,gender,mobile,dose11_vaccine,dose11_date\n",
			[]string{`unknown columns: "dose11_vaccine", "dose11_date"`}, nil},
		{"repeated", "reference_id,name,birth_year,gender,mobile,Mobile\n",
			[]string{`repeated columns: "mobile"`}, nil},
		{"data line instead of header", "12345678901234,Asha Verma,1987,F,+919876543210\n",
			[]string{"the first line is not a header"}, []string{"12345678901234", "Asha", "9876543210"}},
		{"value among column names", "reference_id,name,birth_year,gender,mobile,9876543210\n",
			[]string{"unknown columns: column 6"}, []string{"9876543210"}},
		{"empty", "", []string{"the file is empty"}, nil},
		{"only blank lines", "\n\n  \n", []string{"the file is empty"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recordfile.Open(writeFile(t, "in.csv", tc.header), opts())
			if !errors.Is(err, recordfile.ErrHeader) {
				t.Fatalf("err %v, want ErrHeader", err)
			}
			var he *recordfile.HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("err %T, want *HeaderError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want %q", err, w)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q echoes %q", err, s)
				}
			}
		})
	}
}

func TestCSVHeaderOnLaterLine(t *testing.T) {
	content := "\n\nreference_id,name,birth_year,gender,mobile\n12345678901234,Asha Verma,1987,F,9876543210\n"
	rows := collect(t, open(t, "in.csv", content))
	if len(rows) != 1 || rows[0].Line != 4 || rows[0].Problem != "" {
		t.Fatalf("rows %+v", rows)
	}
}

func TestFormatDetection(t *testing.T) {
	csv := "reference_id,name,birth_year,gender,mobile\n"
	jsonl := goodJSONL
	cases := []struct {
		file, content string
		format        recordfile.Format
		want          recordfile.Format
		err           error
	}{
		{"a.jsonl", jsonl, recordfile.FormatAuto, recordfile.FormatJSONL, nil},
		{"a.NDJSON", jsonl, recordfile.FormatAuto, recordfile.FormatJSONL, nil},
		{"a.json", jsonl, recordfile.FormatAuto, recordfile.FormatJSONL, nil},
		{"a.csv", csv, recordfile.FormatAuto, recordfile.FormatCSV, nil},
		{"a.txt", "\uFEFF\n  " + jsonl, recordfile.FormatAuto, recordfile.FormatJSONL, nil},
		{"a.txt", "\uFEFF" + csv, recordfile.FormatAuto, recordfile.FormatCSV, nil},
		{"a.data", jsonl, recordfile.FormatJSONL, recordfile.FormatJSONL, nil},
		{"a.jsonl", csv, recordfile.FormatCSV, recordfile.FormatCSV, nil},
		{"a.txt", "", recordfile.FormatAuto, 0, recordfile.ErrFormat},
		{"a.jsonl", "", recordfile.FormatAuto, recordfile.FormatJSONL, nil}, // empty JSON Lines: no rows
		{"a.csv", jsonl, recordfile.Format(7), 0, recordfile.ErrFormat},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.format.String(), func(t *testing.T) {
			o := opts()
			o.Format = tc.format
			f, err := recordfile.Open(writeFile(t, tc.file, tc.content), o)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Format() != tc.want {
				t.Errorf("format %v, want %v", f.Format(), tc.want)
			}
		})
	}
	for _, s := range []string{"auto", "JSONL", "ndjson", "json", "csv", ""} {
		if _, err := recordfile.ParseFormat(s); err != nil {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if _, err := recordfile.ParseFormat("xml"); !errors.Is(err, recordfile.ErrFormat) {
		t.Errorf("ParseFormat(xml): %v", err)
	}
}

func TestRowsTwiceAndProgress(t *testing.T) {
	var calls []string
	o := opts()
	o.Progress = func(pass int, read, total int64) {
		calls = append(calls, fmt.Sprintf("%d:%d/%d", pass, read, total))
	}
	p := writeFile(t, "in.csv", goodCSV)
	f, err := recordfile.Open(p, o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := collect(t, f)
	second := collect(t, f)
	if !reflect.DeepEqual(first, second) || len(first) != 3 {
		t.Fatalf("passes differ:\n%+v\n%+v", first, second)
	}
	size := int64(len(goodCSV))
	want := []string{fmt.Sprintf("1:%d/%d", size, size), fmt.Sprintf("2:%d/%d", size, size)}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("progress calls %v, want %v", calls, want)
	}

	// A file rewritten between passes must not be read as if unchanged.
	if err := os.WriteFile(p, []byte(goodCSV+"12345678901237,Asha Verma,1987,F,9876543210,,,,,,,,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = f.Rows(context.Background(), func(store.ImportRow) error { return nil })
	if !errors.Is(err, recordfile.ErrChanged) {
		t.Errorf("after rewrite: %v, want ErrChanged", err)
	}
}

func TestRowsStops(t *testing.T) {
	f := open(t, "in.jsonl", goodJSONL)
	stop := errors.New("stop")
	n := 0
	err := f.Rows(context.Background(), func(store.ImportRow) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d rows, want stop after 1", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Rows(ctx, func(store.ImportRow) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestNewFromReader(t *testing.T) {
	f, err := recordfile.New(strings.NewReader(goodJSONL), int64(len(goodJSONL)), opts())
	if err != nil {
		t.Fatal(err)
	}
	if f.Format() != recordfile.FormatJSONL {
		t.Fatalf("format %v", f.Format())
	}
	rows := collect(t, f)
	if len(rows) != 3 || rows[2].Problem != "" {
		t.Fatalf("rows %+v", rows)
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

// RowSource compatibility: callers pass f.Rows to store.Import.
var _ store.RowSource = (*recordfile.File)(nil).Rows

func TestLargeFileStreams(t *testing.T) {
	n := 200_000
	if testing.Short() {
		n = 20_000
	}
	p := filepath.Join(t.TempDir(), "big.jsonl")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	for i := range n {
		fmt.Fprintf(w, `{"reference_id":"%014d","name":"Person %d","birth_year":%d,"gender":"F","mobile":"+91%010d","id_type":"aadhaar","id_number":"%012d","doses":[{"dose":1,"vaccine":"COVAXIN","date":"2021-06-01","center":"PHC Rampur (sample)"}]}`+"\n",
			10_000_000_000_000+i, i%1000, 1930+i%90, 6_000_000_000+i, 200_000_000_000+i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	var passes []int
	o := opts()
	o.Progress = func(pass int, read, total int64) { passes = append(passes, pass) }
	f, err := recordfile.Open(p, o)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc
	var peak uint64
	rows, last := 0, 0
	err = f.Rows(context.Background(), func(r store.ImportRow) error {
		rows++
		if r.Problem != "" {
			return fmt.Errorf("line %d: %s", r.Line, r.Problem)
		}
		if r.Line != last+1 {
			return fmt.Errorf("line %d after %d", r.Line, last)
		}
		last = r.Line
		if rows%20_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
	// Holding every row would take well over 100 MiB for 200k rows; a
	// streaming reader stays near its line buffer plus garbage.
	if peak > baseHeap+48<<20 {
		t.Errorf("heap grew by %d MiB while streaming", (peak-baseHeap)>>20)
	}
	if len(passes) < 2 || passes[0] != 1 {
		t.Errorf("progress calls %v", passes)
	}
}
