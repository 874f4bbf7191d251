package recordfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCSVEdges(t *testing.T) {
	cases := []struct {
		line string
		want []string
		err  error
	}{
		{`"a" ,b`, nil, errAfterQuote},
		{"x,\"open\r", nil, errUnterminate},
		{`x,"ab""`, nil, errUnterminate},
		{`"a",`, []string{"a", ""}, nil},
		{"\"a\rb\",c", []string{"a\rb", "c"}, nil},
		{` "a"`, nil, errBareQuote},
	}
	s := newCSVSplitter() // one splitter for all: errors must not stick
	for _, tc := range cases {
		got, err := s.split([]byte(tc.line), nil)
		if err != tc.err {
			t.Errorf("split(%q): err %v, want %v", tc.line, err, tc.err)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("split(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// The members of jsonRecord must be fieldNames, in order, and doses.
func TestJSONRecordNames(t *testing.T) {
	typ := reflect.TypeFor[jsonRecord]()
	var names []string
	for i := range typ.NumField() {
		names = append(names, typ.Field(i).Tag.Get("json"))
	}
	if got, want := strings.Join(names, ","), strings.Join(fieldNames[:], ",")+",doses"; got != want {
		t.Errorf("jsonRecord members %s, want %s", got, want)
	}
	var rec jsonRecord
	v := reflect.ValueOf(&rec).Elem()
	for f, m := range rec.fields() {
		if v.Field(f).Addr().Interface().(*member) != m {
			t.Errorf("fields()[%d] is not member %s", f, fieldNames[f])
		}
	}
}
