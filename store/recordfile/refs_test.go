package recordfile

import (
	"context"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/store"
)

func refsOf(t *testing.T, in string) []store.RefRow {
	t.Helper()
	var out []store.RefRow
	if err := readRefs(context.Background(), strings.NewReader(in), func(r store.RefRow) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRefs(t *testing.T) {
	rows := refsOf(t, "reference_id\r\n10000000000001\n\n  10000000000002  \n\"10000000000003\"\n"+
		`{"reference_id":"10000000000004","name":"x"}`+"\n१००००००००००००५\nabc\n1234\n{\"name\":\"x\"}\n{broken\n")
	want := []store.RefRow{
		{Line: 2, RefID: "10000000000001"}, {Line: 4, RefID: "10000000000002"}, {Line: 5, RefID: "10000000000003"},
		{Line: 6, RefID: "10000000000004"}, {Line: 7, RefID: "10000000000005"},
		{Line: 8, Problem: "reference_id: must be exactly 14 digits"}, {Line: 9, Problem: "reference_id: must be exactly 14 digits"},
		{Line: 10, Problem: "reference_id: missing"}, {Line: 11, Problem: "not a reference id, nor a JSON object with one"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	for _, r := range rows {
		if strings.Contains(r.Problem, "1234") || strings.Contains(r.Problem, "abc") {
			t.Errorf("a problem quotes the line: %q", r.Problem)
		}
	}
}

func FuzzRefs(f *testing.F) {
	f.Add("10000000000001\n")
	f.Add(`{"reference_id":"10000000000004"}` + "\n")
	f.Add("reference_id\n\xff\xfe\n")
	f.Fuzz(func(t *testing.T, in string) {
		_ = readRefs(context.Background(), strings.NewReader(in), func(r store.RefRow) error {
			if (r.RefID == "") == (r.Problem == "") {
				t.Fatalf("row %+v: exactly one of RefID and Problem must be set", r)
			}
			if r.RefID != "" && len(r.RefID) != 14 {
				t.Fatalf("ref %q", r.RefID)
			}
			return nil
		})
	})
}
