package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

func testImportRejectsAndChangesNothing(t *testing.T, e Engine) {
	s, _ := newStore(t, e)
	Seed(t, s)
	before, _ := s.Count(context.Background())
	auditBefore, _ := s.VerifyAudit(context.Background())

	var rs []store.ImportRow
	rs = append(rs, Rec(t, "20000000000001", "New Person", "9100000001", "345634563456"))
	rs = append(rs, store.ImportRow{Problem: "mobile: not a valid Indian mobile number"})
	rs = append(rs, Rec(t, "20000000000001", "Duplicate", "9100000002", "345634563457"))
	// Seven on one new mobile: the seventh is refused.
	for i := 0; i < 7; i++ {
		rs = append(rs, Rec(t, fmt.Sprintf("2100000000000%d", i), "Family", "9100000003", fmt.Sprintf("45674567456%d", i)))
	}
	// Four more on a stored mobile that has two already.
	for i := 0; i < 5; i++ {
		rs = append(rs, Rec(t, fmt.Sprintf("2200000000000%d", i), "Relative", "9000000001", fmt.Sprintf("56785678567%d", i)))
	}
	_, err := s.Import(context.Background(), Rows(rs...))
	var ie *store.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want *ImportError", err)
	}
	want := []int{2, 3, 10, 11}
	if ie.Total != len(want) {
		t.Fatalf("problems = %+v", ie.Problems)
	}
	for i, p := range ie.Problems {
		if p.Line != want[i] {
			t.Errorf("problem %d at line %d (%s), want line %d", i, p.Line, p.Reason, want[i])
		}
	}
	after, _ := s.Count(context.Background())
	auditAfter, _ := s.VerifyAudit(context.Background())
	if after != before || auditAfter != auditBefore {
		t.Fatalf("a rejected import changed the store: %d→%d records, %d→%d audit entries", before, after, auditBefore, auditAfter)
	}
	if _, err := s.Resolve(context.Background(), pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, "9100000001")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a row of the rejected file is findable: %v", err)
	}
}

func testImportIdempotentAndUpdates(t *testing.T, e Engine) {
	s, _ := newStore(t, e)
	rs := Seed(t, s)
	ctx := context.Background()

	sum, err := s.Import(ctx, Rows(rs...))
	if err != nil || sum.Unchanged != 3 || sum.Added != 0 || sum.Updated != 0 {
		t.Fatalf("re-import = %+v, %v", sum, err)
	}
	// Move Meena to a new mobile and a new ID: the old indexes must go.
	moved := Rec(t, "10000000000003", "Meena Iyer", "9000000009", "999988887777")
	sum, err = s.Import(ctx, Rows(moved))
	if err != nil || sum.Updated != 1 {
		t.Fatalf("update = %+v, %v", sum, err)
	}
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, "9000000002")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old mobile still resolves: %v", err)
	}
	oldID, _ := pii.NormalizeID("234123412343")
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindIDNumber, ID: oldID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old ID still resolves: %v", err)
	}
	newID, _ := pii.NormalizeID("9999 8888 7777")
	tgt, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindIDNumber, ID: newID})
	if err != nil || tgt.Mobile != Mobile(t, "9000000009") {
		t.Fatalf("new ID: %v %v", tgt.Mobile, err)
	}
	tgt, err = s.Resolve(ctx, pii.Identifier{Kind: pii.KindReference, Ref: "10000000000003"})
	if err != nil || len(tgt.Records) != 1 {
		t.Fatalf("by reference: %v", err)
	}
	if n, _ := s.Count(ctx); n != 3 {
		t.Fatalf("count = %d", n)
	}
	if bad, _ := s.InterruptedImport(); bad {
		t.Fatal("marker left after a finished import")
	}
}

// A first load (no records stored) is written in one pass and undone if
// the file breaks a rule: every bad row is still named, nothing stays.
func testImportFirstLoadRejectsAndChangesNothing(t *testing.T, e Engine) {
	for _, dir := range []bool{false, true} {
		t.Run(fmt.Sprintf("on disk %v", dir), func(t *testing.T) {
			var s *store.Store
			if dir {
				s = e.openStore(t, e.Fresh(t, true), &Clock{})
				t.Cleanup(func() { _ = s.Close() })
			} else {
				s, _ = newStore(t, e)
			}
			ctx := context.Background()
			auditBefore, _ := s.VerifyAudit(ctx)
			var rs []store.ImportRow
			rs = append(rs, Rec(t, "30000000000001", "First", "9300000001", "345634563451")) // line 1
			for i := range 7 {                                                               // lines 2-8: the seventh on one mobile is refused (line 8)
				rs = append(rs, Rec(t, fmt.Sprintf("3100000000000%d", i), "Family", "9300000002", fmt.Sprintf("45674567451%d", i)))
			}
			rs = append(rs, Rec(t, "30000000000001", "Repeat", "9300000003", "345634563452")) // line 9 repeats line 1
			rs = append(rs, store.ImportRow{Problem: "gender: must be M, F or O"})            // line 10
			_, err := s.Import(ctx, Rows(rs...))
			var ie *store.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want *ImportError", err)
			}
			want := []int{8, 9, 10}
			if ie.Total != len(want) {
				t.Fatalf("problems = %+v", ie.Problems)
			}
			for i, p := range ie.Problems {
				if p.Line != want[i] {
					t.Errorf("problem %d at line %d (%s), want line %d", i, p.Line, p.Reason, want[i])
				}
			}
			if n, _ := s.Count(ctx); n != 0 {
				t.Fatalf("a rejected first load left %d records", n)
			}
			if a, _ := s.VerifyAudit(ctx); a != auditBefore {
				t.Fatalf("audit %d → %d", auditBefore, a)
			}
			if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, "9300000002")}); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a row of the rejected file resolves: %v", err)
			}
			if bad, _ := s.InterruptedImport(); bad {
				t.Fatal("marker left after a rejected import")
			}
			// The good part alone loads, and loads again unchanged.
			good := rs[:7]
			sum, err := s.Import(ctx, Rows(good...))
			if err != nil || sum.Added != 7 {
				t.Fatalf("first load = %+v, %v", sum, err)
			}
			sum, err = s.Import(ctx, Rows(good...))
			if err != nil || sum.Unchanged != 7 || sum.Added != 0 {
				t.Fatalf("re-import = %+v, %v", sum, err)
			}
			// One more on the mobile that now has six stored is refused,
			// at its line, and changes nothing.
			_, err = s.Import(ctx, Rows(rs[7]))
			if !errors.As(err, &ie) || ie.Total != 1 || ie.Problems[0].Line != 1 {
				t.Fatalf("seventh across file and store: %v %+v", err, ie)
			}
			if n, _ := s.Count(ctx); n != 7 {
				t.Fatalf("count = %d", n)
			}
		})
	}
}

// An interrupted write leaves the marker; the same import again completes
// it, for a first load (undone and redone) and for an update.
func testImportInterruptedResumes(t *testing.T, e Engine) {
	s, _ := newStore(t, e)
	ctx := context.Background()
	var rs []store.ImportRow
	for i := range 600 {
		rs = append(rs, Rec(t, fmt.Sprintf("400000000%05d", i), "Person", fmt.Sprintf("94000%05d", i), fmt.Sprintf("5678%08d", i)))
	}
	failing := func(after int) store.RowSource {
		return func(ctx context.Context, fn func(store.ImportRow) error) error {
			for i, r := range rs {
				if i == after {
					return errors.New("disk on fire")
				}
				r.Line = i + 1
				if err := fn(r); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if _, err := s.Import(ctx, failing(500)); err == nil {
		t.Fatal("a failing source imported")
	}
	// A failed first load undoes itself.
	if n, _ := s.Count(ctx); n != 0 {
		t.Fatalf("a failed first load left %d records", n)
	}
	if sum, err := s.Import(ctx, Rows(rs[:300]...)); err != nil || sum.Added != 300 {
		t.Fatalf("load = %+v, %v", sum, err)
	}
	// An update interrupted in its write pass keeps the marker.
	if _, err := s.Import(ctx, failingWrite(rs)); err == nil {
		t.Fatal("a failing write pass imported")
	}
	if bad, _ := s.InterruptedImport(); !bad {
		t.Fatal("no marker after an interrupted write pass")
	}
	sum, err := s.Import(ctx, Rows(rs...))
	if err != nil || sum.Added+sum.Unchanged != 600 || sum.Unchanged < 300 {
		t.Fatalf("resumed = %+v, %v", sum, err)
	}
	if bad, _ := s.InterruptedImport(); bad {
		t.Fatal("marker left after the import completed")
	}
	if n, _ := s.Count(ctx); n != 600 {
		t.Fatalf("count = %d", n)
	}
}

// failingWrite passes the check pass and fails the write pass halfway.
func failingWrite(rs []store.ImportRow) store.RowSource {
	pass := 0
	return func(ctx context.Context, fn func(store.ImportRow) error) error {
		pass++
		for i, r := range rs {
			if pass == 2 && i == len(rs)/2 {
				return errors.New("power cut")
			}
			r.Line = i + 1
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}
