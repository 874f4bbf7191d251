package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/otpgate/otpgate/store/kv"
)

// Removing records: by a list of reference ids (Remove), or by importing
// a file that is the complete set, which removes every stored record the
// file does not name (Replace). Both check the whole file before writing
// anything, remove a record with its index entries as one group (a reader
// sees the record or nothing, never half), and are audited with counts,
// never ids. The accesses already audited stay in the chain and in the
// history of whoever made them.

// RefRow is one line of a removal file.
type RefRow struct {
	Line    int
	RefID   string
	Problem string // set when the line is not a reference id
}

// RefSource yields every row of a removal file, in order, to fn; Remove
// calls it twice (check, then write), so it must read the same rows each
// time.
type RefSource func(ctx context.Context, fn func(RefRow) error) error

// RemoveSummary counts what a removal did.
type RemoveSummary struct {
	Rows    int
	Removed int
	// Gone counts references already absent when an interrupted removal
	// is run again: they were removed by the first run.
	Gone int
}

// Audit events of removals.
const (
	EventRemoved  = "records_removed"
	EventReplaced = "records_replaced"
)

// markerRemove: a removal's write pass began and did not finish.
const markerRemove byte = 3

// Remove deletes the records whose reference ids src lists. Every line
// must be a reference id of a stored record, named once; otherwise each
// bad line is reported (an *ImportError) and nothing is removed. If the
// write pass is interrupted, running the same removal again completes it:
// references already removed then count as Gone, not as problems.
func (s *Store) Remove(ctx context.Context, src RefSource) (RemoveSummary, error) {
	marker, err := s.importMarker(ctx)
	if err != nil {
		return RemoveSummary{}, err
	}
	resuming := marker == markerRemove
	var (
		sum  RemoveSummary
		bad  ImportError
		seen = map[string]int{} // ref hash → first line; a removal list is short next to the records
		rhs  [][]byte
	)
	err = s.kv.View(ctx, func(txn kv.Txn) error {
		return src(ctx, func(r RefRow) error {
			sum.Rows++
			if r.Problem != "" {
				bad.add(r.Line, r.Problem)
				return nil
			}
			rh := s.refHash(r.RefID)
			if first, ok := seen[string(rh)]; ok {
				bad.add(r.Line, fmt.Sprintf("reference_id repeats line %d", first))
				return nil
			}
			seen[string(rh)] = r.Line
			_, err := getRecord(txn, rh)
			switch {
			case errors.Is(err, ErrNotFound) && resuming:
				sum.Gone++
				return nil
			case errors.Is(err, ErrNotFound):
				bad.add(r.Line, "reference_id: no stored record has it")
				return nil
			case err != nil:
				return err
			}
			rhs = append(rhs, rh)
			return nil
		})
	})
	if err != nil {
		return sum, err
	}
	if bad.Total > 0 {
		sortProblems(bad.Problems)
		return sum, &bad
	}
	if err := s.setImportMarker(ctx, markerRemove); err != nil {
		return sum, err
	}
	if sum.Removed, err = s.removeRecords(ctx, rhs); err != nil {
		return sum, err
	}
	if err := s.setImportMarker(ctx, markerNone); err != nil {
		return sum, err
	}
	return sum, s.Audit(ctx, AuditEntry{Event: EventRemoved,
		Outcome: fmt.Sprintf("rows=%d removed=%d", sum.Rows, sum.Removed+sum.Gone)})
}

// removeRecords deletes each record and its index entries as one group,
// and returns how many it found to delete.
func (s *Store) removeRecords(ctx context.Context, rhs [][]byte) (int, error) {
	read, err := s.kv.NewReadTxn(ctx)
	if err != nil {
		return 0, err
	}
	defer read.Discard()
	wb := s.kv.NewWriteBatch(ctx)
	defer wb.Cancel()
	n := 0
	for i, rh := range rhs {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
		rec, err := getRecord(read, rh)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		g := []kv.Write{
			{Key: join([]byte{pfxRecord}, rh), Delete: true},
			{Key: join([]byte{pfxMobileIdx}, s.mobileHash(rec.Mobile), rh), Delete: true},
		}
		if rec.IDKey != "" {
			g = append(g, kv.Write{Key: join([]byte{pfxIDIdx}, mustHex(rec.IDKey), rh), Delete: true})
		}
		if err := wb.Write(g...); err != nil {
			return n, fmt.Errorf("store: remove: %w", err)
		}
		n++
	}
	if err := wb.Flush(); err != nil {
		return n, fmt.Errorf("store: remove: %w", err)
	}
	return n, s.sync()
}

// ReplaceSummary counts what a replacement did.
type ReplaceSummary struct {
	ImportSummary
	Removed int
}

// Replace makes the stored records exactly those of src: rows are
// imported as Import does, and every stored record src does not name is
// removed. The whole file is checked first (with a mobile's limit counted
// over the file alone, since the records it leaves out go); a bad file
// changes nothing. Interrupted, the same replacement run again completes
// it.
func (s *Store) Replace(ctx context.Context, src RowSource) (ReplaceSummary, error) {
	var (
		sum    ReplaceSummary
		absent [][]byte
	)
	if marker, err := s.importMarker(ctx); err != nil {
		return sum, err
	} else if marker == markerFresh {
		// A first load was interrupted: the store held no records before it.
		if err := s.dropRecords(); err != nil {
			return sum, err
		}
	}
	empty, err := s.noRecords(ctx)
	if err != nil {
		return sum, err
	}
	if sum.ImportSummary, err = s.checkImport(ctx, src, &absent); err != nil {
		return sum, err
	}
	if err := s.setImportMarker(ctx, markerUpdate); err != nil {
		return sum, err
	}
	if err := s.writeImport(ctx, src, &sum.ImportSummary, empty); err != nil {
		return sum, err
	}
	if sum.Removed, err = s.removeRecords(ctx, absent); err != nil {
		return sum, err
	}
	if err := s.setImportMarker(ctx, markerNone); err != nil {
		return sum, err
	}
	return sum, s.Audit(ctx, AuditEntry{Event: EventReplaced,
		Outcome: fmt.Sprintf("rows=%d added=%d updated=%d unchanged=%d removed=%d", sum.Rows, sum.Added, sum.Updated, sum.Unchanged, sum.Removed)})
}
