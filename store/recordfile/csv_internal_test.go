package recordfile

import (
	"reflect"
	"testing"
)

func TestSplitCSV(t *testing.T) {
	cases := []struct {
		line string
		want []string
		err  error
	}{
		{"", []string{""}, nil},
		{"a", []string{"a"}, nil},
		{"a,b,", []string{"a", "b", ""}, nil},
		{",,", []string{"", "", ""}, nil},
		{`"",x`, []string{"", "x"}, nil},
		{`"a,b","c""d"`, []string{"a,b", `c"d`}, nil},
		{`" spaced ",x`, []string{" spaced ", "x"}, nil},
		{`"""quoted"""`, []string{`"quoted"`}, nil},
		{`x,"open`, nil, errUnterminate},
		{`"a"b`, nil, errAfterQuote},
		{`a"b`, nil, errBareQuote},
		{"राम,श्याम", []string{"राम", "श्याम"}, nil},
	}
	for _, tc := range cases {
		got, err := splitCSV([]byte(tc.line), nil)
		if err != tc.err {
			t.Errorf("splitCSV(%q): err %v, want %v", tc.line, err, tc.err)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitCSV(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"address":        `"address"`,
		"dose11_vaccine": `"dose11_vaccine"`,
		"9876543210":     "",
		"Asha Verma":     "",
		"":               "",
		"a_very_long_column_name_that_goes_on_and_on": "",
		"x\"y": "",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
