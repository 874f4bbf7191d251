package sample_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/otpgate/otpgate/internal/sample"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

func parse(t testing.TB, data []byte) []store.ImportRow {
	t.Helper()
	f, err := recordfile.New(bytes.NewReader(data), int64(len(data)), recordfile.Options{
		Format: recordfile.FormatJSONL,
		Now:    func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.ImportRow
	err = f.Rows(context.Background(), func(r store.ImportRow) error {
		if r.Problem != "" {
			t.Errorf("line %d: %s", r.Line, r.Problem)
		}
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestDemoParses(t *testing.T) {
	rows := parse(t, sample.Demo())
	if len(rows) != 12 {
		t.Fatalf("%d demo records, want 12", len(rows))
	}
	var (
		doses    = map[int]int{}
		genders  = map[string]bool{}
		idTypes  = map[string]bool{}
		vaccines = map[string]bool{}
		refs     = map[string]bool{}
		hindi    bool
	)
	for _, r := range rows {
		rec := r.Record
		doses[len(rec.Doses)]++
		genders[rec.Gender] = true
		idTypes[rec.IDType] = true
		refs[rec.RefID] = true
		if !strings.HasPrefix(rec.Mobile.E164(), "+9190000000") {
			t.Errorf("line %d: mobile outside the fake block", r.Line)
		}
		for _, c := range rec.Name {
			if unicode.Is(unicode.Devanagari, c) {
				hindi = true
			}
		}
		for _, d := range rec.Doses {
			vaccines[d.Vaccine] = true
			if !strings.HasSuffix(d.Center, "(sample)") {
				t.Errorf("line %d: centre %q not marked as sample", r.Line, d.Center)
			}
		}
	}
	for n := 0; n <= 3; n++ {
		if doses[n] == 0 {
			t.Errorf("no demo record with %d doses", n)
		}
	}
	for _, want := range []string{"M", "F", "O"} {
		if !genders[want] {
			t.Errorf("no demo record with gender %s", want)
		}
	}
	for _, want := range []string{"aadhaar", "pan", "voter_id"} {
		if !idTypes[want] {
			t.Errorf("no demo record with id_type %s", want)
		}
	}
	for _, want := range []string{"COVISHIELD", "COVAXIN", "CORBEVAX"} {
		if !vaccines[want] {
			t.Errorf("no demo dose of %s", want)
		}
	}
	if len(refs) != len(rows) {
		t.Errorf("reference ids repeat")
	}
	if !hindi {
		t.Errorf("no name in Devanagari")
	}
}

func TestDemoMobiles(t *testing.T) {
	got := sample.DemoMobiles()
	counts := map[string]int{}
	for _, r := range parse(t, sample.Demo()) {
		counts[strings.TrimPrefix(r.Record.Mobile.E164(), "+91")]++
	}
	if len(got) != len(counts) {
		t.Fatalf("%d mobiles, want %d", len(got), len(counts))
	}
	sizes := []int{}
	for _, m := range got {
		if len(m.Mobile) != 10 {
			t.Errorf("mobile %q is not 10 national digits", m.Mobile)
		}
		if counts[m.Mobile] != m.Beneficiaries {
			t.Errorf("mobile %s: %d beneficiaries, file has %d", m.Mobile, m.Beneficiaries, counts[m.Mobile])
		}
		sizes = append(sizes, m.Beneficiaries)
	}
	if !slices.Contains(sizes, 3) || !slices.Contains(sizes, 2) {
		t.Errorf("want a mobile with 3 and one with 2 beneficiaries, got %v", sizes)
	}
	got[0].Beneficiaries = 99
	if sample.DemoMobiles()[0].Beneficiaries == 99 {
		t.Error("DemoMobiles returns shared state")
	}
}

func TestWriteParses(t *testing.T) {
	const n = 20_000
	var buf bytes.Buffer
	if err := sample.Write(&buf, n, 7); err != nil {
		t.Fatal(err)
	}
	rows := parse(t, buf.Bytes())
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	refs := make(map[string]bool, n)
	perMobile := map[string]int{}
	idTypes := map[string]int{}
	doses := map[int]int{}
	for _, r := range rows {
		if refs[r.Record.RefID] {
			t.Fatalf("line %d: reference id repeats", r.Line)
		}
		refs[r.Record.RefID] = true
		perMobile[r.Record.Mobile.E164()]++
		idTypes[r.Record.IDType]++
		doses[len(r.Record.Doses)]++
	}
	shared, most := 0, 0
	for _, c := range perMobile {
		if c > 1 {
			shared++
		}
		most = max(most, c)
	}
	if most > store.MaxPerMobile || most > sample.MaxHousehold {
		t.Errorf("a mobile carries %d beneficiaries", most)
	}
	if shared == 0 || shared > len(perMobile)/2 {
		t.Errorf("%d of %d mobiles shared; want some, not most", shared, len(perMobile))
	}
	for _, typ := range []string{"", "aadhaar", "pan", "passport", "driving_licence", "voter_id", "ration_card", "other"} {
		if idTypes[typ] == 0 {
			t.Errorf("no record with id_type %q", typ)
		}
	}
	for k := 0; k <= 3; k++ {
		if doses[k] == 0 {
			t.Errorf("no record with %d doses", k)
		}
	}
}

func TestWriteDeterministic(t *testing.T) {
	gen := func(n int, seed uint64) []byte {
		var b bytes.Buffer
		if err := sample.Write(&b, n, seed); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := gen(2000, 42), gen(2000, 42)
	if !bytes.Equal(a, b) {
		t.Error("same seed, different output")
	}
	if bytes.Equal(a, gen(2000, 43)) {
		t.Error("different seeds, same output")
	}
	if got := gen(0, 42); len(got) != 0 {
		t.Errorf("n=0 wrote %d bytes", len(got))
	}
	if err := sample.Write(io.Discard, -1, 1); err == nil {
		t.Error("negative n accepted")
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteReportsWriteErrors(t *testing.T) {
	want := io.ErrClosedPipe
	if err := sample.Write(failWriter{want}, 100_000, 1); err != want {
		t.Errorf("err %v, want %v", err, want)
	}
}

func BenchmarkWrite(b *testing.B) {
	var n int64
	cw := &countWriter{}
	for b.Loop() {
		if err := sample.Write(cw, 100_000, 1); err != nil {
			b.Fatal(err)
		}
		n = cw.n
		cw.n = 0
	}
	b.SetBytes(n)
}

func BenchmarkParse(b *testing.B) {
	var buf bytes.Buffer
	if err := sample.Write(&buf, 100_000, 1); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	f, err := recordfile.New(bytes.NewReader(data), int64(len(data)), recordfile.Options{Format: recordfile.FormatJSONL})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := f.Rows(context.Background(), func(store.ImportRow) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
