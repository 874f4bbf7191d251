package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/pii"
)

// ImportRow is one parsed row of an import file. Problem is set when the
// parser rejected the row; such rows are counted and reported, never written.
type ImportRow struct {
	Line    int
	Record  Record
	ID      pii.IDNumber // hashed for the index; only Record.IDLast4 is kept
	Problem string
}

// RowSource yields every row of an import, in file order, to fn. Import
// calls it twice (check, then write), so it must read the same rows each
// time; it stops early when fn returns an error, and returns that error.
type RowSource func(ctx context.Context, fn func(ImportRow) error) error

// ImportSummary counts what an import did.
type ImportSummary struct {
	Rows      int
	Added     int
	Updated   int
	Unchanged int
	Rejected  int
}

// ImportProblem is one rejected row.
type ImportProblem struct {
	Line   int
	Reason string
}

// ImportError lists the rows that stopped an import. When it is returned
// nothing was written.
type ImportError struct {
	Problems []ImportProblem // the first MaxImportProblems, in line order
	Total    int
}

// MaxImportProblems bounds how many problems an ImportError keeps.
const MaxImportProblems = 1000

func (e *ImportError) Error() string {
	return fmt.Sprintf("import: %d rejected rows; nothing was imported", e.Total)
}

func (e *ImportError) add(line int, reason string) {
	e.Total++
	if len(e.Problems) < MaxImportProblems {
		e.Problems = append(e.Problems, ImportProblem{Line: line, Reason: reason})
	}
}

// Import loads rows in two passes. The first checks every row and the file
// as a whole against what is stored (unique reference ids, at most
// MaxPerMobile beneficiaries per mobile); if anything is wrong it returns an
// *ImportError and writes nothing. The second writes in batches.
//
// Re-importing the same rows is idempotent: unchanged records are not
// rewritten. If the write pass is interrupted (crash, full disk), the store
// keeps a marker that InterruptedImport reports, and running the same import
// again completes it: the write pass is all-or-nothing per row, and rows
// already written count as unchanged.
func (s *Store) Import(ctx context.Context, src RowSource) (ImportSummary, error) {
	sum, err := s.checkImport(ctx, src)
	if err != nil {
		return sum, err
	}
	if err := s.setImportMarker(true); err != nil {
		return sum, err
	}
	if err := s.writeImport(ctx, src, &sum); err != nil {
		return sum, err
	}
	if err := s.setImportMarker(false); err != nil {
		return sum, err
	}
	err = s.Audit(ctx, AuditEntry{Event: EventImported,
		Outcome: fmt.Sprintf("rows=%d added=%d updated=%d unchanged=%d", sum.Rows, sum.Added, sum.Updated, sum.Unchanged)})
	return sum, err
}

// EventImported records an operator import.
const EventImported = "records_imported"

type mobileTally struct {
	count     uint8
	firstLine int32
}

func (s *Store) checkImport(ctx context.Context, src RowSource) (ImportSummary, error) {
	var (
		sum     ImportSummary
		bad     ImportError
		refs    = make(map[[hashLen]byte]int32)
		mobiles = make(map[[hashLen]byte]*mobileTally)
	)
	err := src(ctx, func(r ImportRow) error {
		sum.Rows++
		if r.Problem != "" {
			bad.add(r.Line, r.Problem)
			return nil
		}
		rh := [hashLen]byte(s.refHash(r.Record.RefID))
		if first, dup := refs[rh]; dup {
			bad.add(r.Line, fmt.Sprintf("reference_id repeats line %d", first))
			return nil
		}
		refs[rh] = int32(r.Line)
		mh := [hashLen]byte(s.mobileHash(r.Record.Mobile))
		t := mobiles[mh]
		if t == nil {
			t = &mobileTally{firstLine: int32(r.Line)}
			mobiles[mh] = t
		}
		if t.count == MaxPerMobile {
			bad.add(r.Line, fmt.Sprintf("mobile already has %d beneficiaries in this file (from line %d); at most %d are allowed", MaxPerMobile, t.firstLine, MaxPerMobile))
			return nil
		}
		t.count++
		return nil
	})
	if err != nil {
		return sum, err
	}
	// Beneficiaries already stored on a mobile count too, unless this file
	// moves them (every stored ref named in the file is re-placed by it).
	err = s.db.View(func(txn *badger.Txn) error {
		if empty, err := isEmpty(txn, pfxRecord); err != nil || empty {
			return err
		}
		for mh, t := range mobiles {
			if err := ctx.Err(); err != nil {
				return err
			}
			stored, err := indexRefs(txn, pfxMobileIdx, mh[:])
			if err != nil {
				return err
			}
			n := int(t.count)
			for _, ref := range stored {
				if _, inFile := refs[[hashLen]byte(ref)]; !inFile {
					n++
				}
			}
			if n > MaxPerMobile {
				bad.add(int(t.firstLine), fmt.Sprintf("mobile would have %d beneficiaries with those already stored; at most %d are allowed", n, MaxPerMobile))
			}
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	sum.Rejected = bad.Total
	if bad.Total > 0 {
		sortProblems(bad.Problems)
		return sum, &bad
	}
	return sum, nil
}

func sortProblems(p []ImportProblem) {
	// Insertion into line order; the list is short and nearly sorted.
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].Line < p[j-1].Line; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

func isEmpty(txn *badger.Txn, pfx byte) (bool, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfx}})
	defer it.Close()
	it.Rewind()
	return !it.Valid(), nil
}

func (s *Store) writeImport(ctx context.Context, src RowSource, sum *ImportSummary) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	read := s.db.NewTransaction(false) // snapshot from before this pass
	defer read.Discard()
	empty, err := isEmpty(read, pfxRecord)
	if err != nil {
		return err
	}
	err = src(ctx, func(r ImportRow) error {
		if sum.Rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec := r.Record
		rh := s.refHash(rec.RefID)
		mh := s.mobileHash(rec.Mobile)
		var ih []byte
		if r.ID != "" {
			ih = s.idHash(r.ID)
			rec.IDKey = hex.EncodeToString(ih)
		}
		val, err := encodeRecord(&rec)
		if err != nil {
			return err
		}
		rkey := join([]byte{pfxRecord}, rh)
		existed := false
		if !empty {
			old, err := getRecord(read, rh)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			default:
				oldVal, _ := encodeRecord(&old)
				if bytes.Equal(oldVal, val) {
					sum.Unchanged++
					return nil
				}
				existed = true
				if old.Mobile != rec.Mobile {
					if err := wb.Delete(join([]byte{pfxMobileIdx}, s.mobileHash(old.Mobile), rh)); err != nil {
						return err
					}
				}
				if old.IDKey != "" && old.IDKey != rec.IDKey {
					if err := wb.Delete(join([]byte{pfxIDIdx}, mustHex(old.IDKey), rh)); err != nil {
						return err
					}
				}
			}
		}
		if existed {
			sum.Updated++
		} else {
			sum.Added++
		}
		if err := wb.Set(rkey, val); err != nil {
			return err
		}
		if err := wb.Set(join([]byte{pfxMobileIdx}, mh, rh), nil); err != nil {
			return err
		}
		if ih != nil {
			if err := wb.Set(join([]byte{pfxIDIdx}, ih, rh), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: import write: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: import flush: %w", err)
	}
	return s.sync()
}

func (s *Store) setImportMarker(on bool) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		if on {
			return txn.Set(keyMetaImport, []byte{1})
		}
		return txn.Delete(keyMetaImport)
	})
	if err != nil {
		return fmt.Errorf("store: import marker: %w", err)
	}
	return s.sync()
}

// InterruptedImport reports whether an import's write pass began and did
// not finish. Running that import again completes it.
func (s *Store) InterruptedImport() (bool, error) {
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(keyMetaImport)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}
