package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

func TestImportRejectsAndChangesNothing(t *testing.T) {
	s, _ := newStore(t)
	seed(t, s)
	before, _ := s.Count(context.Background())
	auditBefore, _ := s.VerifyAudit(context.Background())

	var rs []store.ImportRow
	rs = append(rs, rec(t, "20000000000001", "New Person", "9100000001", "345634563456"))
	rs = append(rs, store.ImportRow{Problem: "mobile: not a valid Indian mobile number"})
	rs = append(rs, rec(t, "20000000000001", "Duplicate", "9100000002", "345634563457"))
	// Seven on one new mobile: the seventh is refused.
	for i := 0; i < 7; i++ {
		rs = append(rs, rec(t, fmt.Sprintf("2100000000000%d", i), "Family", "9100000003", fmt.Sprintf("45674567456%d", i)))
	}
	// Four more on a stored mobile that has two already.
	for i := 0; i < 5; i++ {
		rs = append(rs, rec(t, fmt.Sprintf("2200000000000%d", i), "Relative", "9000000001", fmt.Sprintf("56785678567%d", i)))
	}
	_, err := s.Import(context.Background(), rows(rs...))
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
	if _, err := s.Resolve(context.Background(), pii.Identifier{Kind: pii.KindMobile, Mobile: mobile(t, "9100000001")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a row of the rejected file is findable: %v", err)
	}
}

func TestImportIdempotentAndUpdates(t *testing.T) {
	s, _ := newStore(t)
	rs := seed(t, s)
	ctx := context.Background()

	sum, err := s.Import(ctx, rows(rs...))
	if err != nil || sum.Unchanged != 3 || sum.Added != 0 || sum.Updated != 0 {
		t.Fatalf("re-import = %+v, %v", sum, err)
	}
	// Move Meena to a new mobile and a new ID: the old indexes must go.
	moved := rec(t, "10000000000003", "Meena Iyer", "9000000009", "999988887777")
	sum, err = s.Import(ctx, rows(moved))
	if err != nil || sum.Updated != 1 {
		t.Fatalf("update = %+v, %v", sum, err)
	}
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindMobile, Mobile: mobile(t, "9000000002")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old mobile still resolves: %v", err)
	}
	oldID, _ := pii.NormalizeID("234123412343")
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindIDNumber, ID: oldID}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old ID still resolves: %v", err)
	}
	newID, _ := pii.NormalizeID("9999 8888 7777")
	tgt, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindIDNumber, ID: newID})
	if err != nil || tgt.Mobile != mobile(t, "9000000009") {
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
