package recordfile_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestJSONLineShapes covers line shapes beyond TestValidationProblems: text
// after the object, repeated members in any letter case, unknown and
// malformed dose elements. Each bad line sits between good ones.
func TestJSONLineShapes(t *testing.T) {
	good := goodLine(t)
	body := strings.TrimSuffix(good, "}")
	cases := []struct {
		name, line, want string
	}{
		{"text after the object", good + ` x`, fmt.Sprintf("not valid JSON (at byte %d)", len(good)+2)},
		{"closing brace too many", good + `}`, fmt.Sprintf("not valid JSON (at byte %d)", len(good)+1)},
		{"two objects", good + ` {}`, fmt.Sprintf("not valid JSON (at byte %d)", len(good)+2)},
		{"personal value after the object", good + ` "9876543210"`, "not valid JSON"},
		{"blanks after the object", good + " \t ", ""},
		{"syntax error after a value", `{"name":"Asha Verma" "mobile":"9876543210"}`, "not valid JSON (at byte 22)"},
		{"ends early", `{"name":"Asha Verma","mobile":`, "not valid JSON (at byte 30)"},
		{"null", `null`, "not a JSON object"},
		{"number", `9876543210`, "not a JSON object"},
		{"two unknown fields", body + `,"address":"12 MG Road","pin_code":"226001"}`, `unknown field "address"; unknown field "pin_code"`},
		{"repeated member, other case", body + `,"Mobile":"+919876543219"}`, "mobile: appears more than once"},
		{"repeated null member", body + `,"name":null}`, "name: appears more than once"},
		{"doses twice", body + `,"doses":null}`, "doses: appears more than once"},
		{"dose element null", strings.Replace(good, `"doses":[`, `"doses":[null,`, 1), "doses item 1: must be an object, found null"},
		{"unknown field in second dose", strings.Replace(good, `]`, `,{"batch":"X1","date":"2021-08-02","dose":2,"vaccine":"COVISHIELD"}]`, 1), `doses item 2: unknown field "batch"`},
		{"dose unknown field named by a value", strings.Replace(good, `"dose":1`, `"dose":1,"9876543210":1`, 1), "doses item 1: an unknown field"},
		{"dose member repeated", strings.Replace(good, `"dose":1`, `"dose":1,"Vaccine":"COVAXIN"`, 1), "doses item 1: vaccine appears more than once"},
		{"dose vaccine number", strings.Replace(good, `"vaccine":"COVISHIELD"`, `"vaccine":9876543210`, 1), "doses item 1: vaccine must be a string, found number"},
		{"dose number fraction", strings.Replace(good, `"dose":1`, `"dose":1.5`, 1), "doses item 1: dose number must be 1 to 10"},
		{"dose empty object", strings.Replace(good, `"doses":[`, `"doses":[{},`, 1), "doses item 1: dose number missing"},
		{"birth_year exponent", strings.Replace(good, `"birth_year":1987`, `"birth_year":1.987e3`, 1), "birth_year: must be a whole number"},
		{"escaped member name", strings.Replace(good, `"name":`, `"n\u0061me":`, 1), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			other := strings.Replace(good, "12345678901234", "12345678901299", 1)
			rows := collect(t, open(t, "in.jsonl", good+"\n\n"+tc.line+"\n"+other+"\n"))
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
			if tc.want == "" {
				if bad.Problem != "" {
					t.Errorf("problem %q, want none", bad.Problem)
				}
				return
			}
			if !strings.Contains(bad.Problem, tc.want) {
				t.Errorf("problem %q, want it to contain %q", bad.Problem, tc.want)
			}
			if bad.Record.RefID != "" || bad.ID != "" {
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

// TestJSONLinesRecover interleaves good and bad lines: every bad line is
// reported with positions counted from its own start, and decoding goes on
// unharmed after it.
func TestJSONLinesRecover(t *testing.T) {
	good := goodLine(t)
	bad := []struct{ line, want string }{
		{`{"a" 1}`, "not valid JSON (at byte 6)"},
		{good + ` x`, fmt.Sprintf("not valid JSON (at byte %d)", len(good)+2)},
		{`  {"name":`, "not valid JSON (at byte 10)"},
		{`[1,2]`, "a JSON array"},
		{strings.Replace(good, `{"`, `{"address":"x","`, 1), `unknown field "address"`},
		{strings.Replace(good, `"dose":1`, `"batch":1,"dose":1`, 1), `doses item 1: unknown field "batch"`},
		{strings.Replace(good, `"doses":[`, `"doses":[7,`, 1), "doses item 1: must be an object, found number"},
		{`"x"`, "not a JSON object"},
		{`9876543210`, "not a JSON object"},
	}
	var sb strings.Builder
	type want struct {
		line    int
		problem string
	}
	var wants []want
	line := 0
	for i := range 3 * len(bad) {
		ref := fmt.Sprintf("%014d", 10_000_000_000_000+i)
		sb.WriteString(strings.Replace(good, "12345678901234", ref, 1) + "  \n")
		line++
		wants = append(wants, want{line, ""})
		b := bad[i%len(bad)]
		sb.WriteString(b.line + "\n")
		line++
		wants = append(wants, want{line, b.want})
	}
	rows := collect(t, open(t, "in.jsonl", sb.String()))
	if len(rows) != len(wants) {
		t.Fatalf("%d rows, want %d", len(rows), len(wants))
	}
	for i, w := range wants {
		r := rows[i]
		if r.Line != w.line {
			t.Errorf("row %d: line %d, want %d", i, r.Line, w.line)
		}
		switch {
		case w.problem == "" && r.Problem != "":
			t.Errorf("line %d: unexpected problem %q", r.Line, r.Problem)
		case w.problem == "" && len(r.Record.Doses) != 1:
			t.Errorf("line %d: record %+v", r.Line, r.Record)
		case !strings.Contains(r.Problem, w.problem):
			t.Errorf("line %d: problem %q, want it to contain %q", r.Line, r.Problem, w.problem)
		}
	}
}

// TestCSVRowsRecover puts malformed CSV rows between good ones.
func TestCSVRowsRecover(t *testing.T) {
	header := "reference_id,name,birth_year,gender,mobile\n"
	goodRow := func(i int) string {
		return fmt.Sprintf("%014d,\"Verma, Asha\",1987,F,9876543210\n", 10_000_000_000_000+i)
	}
	bad := []struct{ row, want string }{
		{"12345678901234,Asha \"V\" Verma,1987,F,9876543210\n", "not valid CSV: a quote"},
		{"12345678901234,\"Asha Verma,1987,F,9876543210\n", "not valid CSV: a quoted field is not closed"},
		{"12345678901234,\"Asha\" Verma,1987,F,9876543210\n", "not valid CSV: text after the closing quote"},
		{"12345678901234,\"Asha\"\"\" Verma,1987,F,9876543210\n", "not valid CSV: text after the closing quote"},
		{"12345678901234,Asha Verma,1987,F\n", "has 4 fields; the header has 5"},
	}
	content := header
	var want []string
	for i := range 2 * len(bad) {
		content += goodRow(i) + bad[i%len(bad)].row
		want = append(want, "", bad[i%len(bad)].want)
	}
	rows := collect(t, open(t, "in.csv", content))
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		if r.Line != i+2 {
			t.Errorf("row %d: line %d, want %d", i, r.Line, i+2)
		}
		if want[i] == "" {
			if r.Problem != "" || r.Record.Name != "Verma, Asha" {
				t.Errorf("line %d: %+v", r.Line, r)
			}
			continue
		}
		if !strings.Contains(r.Problem, want[i]) {
			t.Errorf("line %d: problem %q, want %q", r.Line, r.Problem, want[i])
		}
		for _, s := range secrets {
			if strings.Contains(r.Problem, s) {
				t.Errorf("problem %q echoes %q", r.Problem, s)
			}
		}
	}
}
