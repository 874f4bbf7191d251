package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// RefRows is a removal source of refs, numbered from line 1; a ref that
// is not 14 digits is a row with a problem, as the file parser reports it.
func RefRows(refs ...string) store.RefSource {
	return func(ctx context.Context, fn func(store.RefRow) error) error {
		for i, r := range refs {
			row := store.RefRow{Line: i + 1, RefID: r}
			if len(r) != 14 {
				row = store.RefRow{Line: i + 1, Problem: "reference_id: must be exactly 14 digits"}
			}
			if err := fn(row); err != nil {
				return err
			}
		}
		return nil
	}
}

func countRecords(t *testing.T, s *store.Store) int {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testRemoveRecords(t *testing.T, e Engine) {
	s, clk := newStore(t, e)
	ctx := context.Background()
	Seed(t, s)
	tgt := Resolve(t, s, "9000000002")
	Issue(t, s, "tg:1", tgt, "313131", clk)
	g, _, _ := Verify(s, "tg:1", "313131")

	// A bad file removes nothing, and names every bad line.
	_, err := s.Remove(ctx, RefRows("10000000000001", "12345", "19999999999999", "10000000000001"))
	var ie *store.ImportError
	if !errors.As(err, &ie) || ie.Total != 3 || ie.Problems[0].Line != 2 || ie.Problems[1].Line != 3 || ie.Problems[2].Line != 4 {
		t.Fatalf("bad removal file: %v %+v", err, ie)
	}
	if n := countRecords(t, s); n != 3 {
		t.Fatalf("a refused removal left %d of 3 records", n)
	}

	sum, err := s.Remove(ctx, RefRows("10000000000001", "10000000000003"))
	if err != nil || sum.Removed != 2 || sum.Rows != 2 {
		t.Fatalf("remove = %+v, %v", sum, err)
	}
	if n := countRecords(t, s); n != 1 {
		t.Fatalf("%d records left, want 1", n)
	}
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, "9000000002")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a removed record's mobile resolves: %v", err)
	}
	if left := Resolve(t, s, "9000000001"); len(left.Records) != 1 {
		t.Fatalf("the mobile with two records has %d", len(left.Records))
	}
	// A grant minted before the removal releases nothing of the record.
	if v, err := s.Release(ctx, g.Ref(), tgt.Records[0]); err == nil || v.Name != "" {
		t.Fatalf("a removed record released: %+v %v", v, err)
	}
	// Audited with counts only.
	es, _ := s.AuditEntries(ctx, func(a store.AuditEntry) bool { return a.Event == store.EventRemoved })
	if len(es) != 1 || es[0].Outcome != "rows=2 removed=2" || len(es[0].Records) != 0 {
		t.Fatalf("audit = %+v", es)
	}
	// Removing again: they are not stored any more.
	if _, err := s.Remove(ctx, RefRows("10000000000001")); !errors.As(err, &ie) {
		t.Fatalf("removing an absent record: %v", err)
	}
}

func testReplaceRecords(t *testing.T, e Engine) {
	s, _ := newStore(t, e)
	ctx := context.Background()
	rs := Seed(t, s)

	// A bad file changes nothing.
	bad := rs[1]
	bad.Problem = "gender: must be M, F or O"
	if _, err := s.Replace(ctx, Rows(rs[0], bad)); err == nil {
		t.Fatal("a bad replacement file was accepted")
	}
	if n := countRecords(t, s); n != 3 {
		t.Fatalf("a refused replacement left %d records", n)
	}

	changed := rs[1]
	changed.Record.Name = "Ravi K. Verma"
	fresh := Rec(t, "10000000000009", "Nisha Rao", "9000000009", "234123412349")
	sum, err := s.Replace(ctx, Rows(changed, fresh))
	if err != nil || sum.Added != 1 || sum.Updated != 1 || sum.Removed != 2 {
		t.Fatalf("replace = %+v, %v", sum, err)
	}
	if n := countRecords(t, s); n != 2 {
		t.Fatalf("%d records after the replacement, want 2", n)
	}
	if _, err := s.Resolve(ctx, pii.Identifier{Kind: pii.KindMobile, Mobile: Mobile(t, "9000000002")}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a record absent from the file is still stored: %v", err)
	}
	// The same file again changes nothing.
	if sum, err := s.Replace(ctx, Rows(changed, fresh)); err != nil || sum.Unchanged != 2 || sum.Removed != 0 {
		t.Fatalf("replace again = %+v, %v", sum, err)
	}
	es, _ := s.AuditEntries(ctx, func(a store.AuditEntry) bool { return a.Event == store.EventReplaced })
	if len(es) != 2 || !strings.Contains(es[0].Outcome, "removed=2") || strings.Contains(es[0].Outcome, "1000000000") {
		t.Fatalf("audit = %+v", es)
	}

	// A mobile's limit counts the file alone: the stored records it leaves
	// out are going.
	var full, next []store.ImportRow
	for i := range store.MaxPerMobile {
		full = append(full, Rec(t, fmt.Sprintf("2000000000000%d", i), "Family", "9000000077", fmt.Sprintf("34563456345%d", i)))
		next = append(next, Rec(t, fmt.Sprintf("2100000000000%d", i), "Family", "9000000077", fmt.Sprintf("45674567456%d", i)))
	}
	if _, err := s.Replace(ctx, Rows(full...)); err != nil {
		t.Fatal(err)
	}
	if sum, err := s.Replace(ctx, Rows(next...)); err != nil || sum.Added != store.MaxPerMobile || sum.Removed != store.MaxPerMobile {
		t.Fatalf("replacing a full mobile's records: %+v, %v", sum, err)
	}
}
