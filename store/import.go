package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store/badgerkv"
	"github.com/otpgate/otpgate/store/kv"
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

// Import loads rows. Every row is checked, and the file as a whole against
// what is stored (unique reference ids, at most MaxPerMobile beneficiaries
// per mobile, counting those already stored); if anything is wrong it
// returns an *ImportError listing each rejected row with its line number
// and nothing is changed.
//
// Memory does not grow with the file: the whole-file checks stream keyed
// hashes and line numbers through a temporary, sorted Badger database
// (an external sort) instead of holding a tally in memory.
//
// Into a store that holds no records (a first load, the common bulk case)
// Import reads the file once: rows are parsed, hashed and written in one
// pass, and the whole-file checks run on the written indexes; if any fails,
// the records and indexes are dropped (the store held none before), the
// file is checked again to name every bad row, and the store is as it was.
// Into a store that holds records, a check pass comes first and a write
// pass follows, which compares each row with the stored record.
//
// Re-importing the same rows is idempotent: unchanged records are not
// rewritten. If the write pass is interrupted (crash, full disk), the store
// keeps a marker that InterruptedImport reports, and running the same import
// again completes it: the write pass is all-or-nothing per row, and rows
// already written count as unchanged (an interrupted first load is dropped
// and loaded again).
func (s *Store) Import(ctx context.Context, src RowSource) (ImportSummary, error) {
	marker, err := s.importMarker(ctx)
	if err != nil {
		return ImportSummary{}, err
	}
	if marker == markerFresh {
		// A first load was interrupted: the store held no records before it.
		if err := s.dropRecords(); err != nil {
			return ImportSummary{}, err
		}
	}
	empty, err := s.noRecords(ctx)
	if err != nil {
		return ImportSummary{}, err
	}
	var sum ImportSummary
	if empty && s.exclusive() {
		// Badger, held by this process alone: nobody reads a first load
		// before it is checked, so it is written and checked in one pass.
		sum, err = s.importFresh(ctx, src)
	} else {
		// Records stored, or an engine that replicas read while this
		// runs: check the whole file first, so that a bad file writes
		// nothing anybody could see.
		sum, err = s.checkImport(ctx, src, nil)
		if err == nil {
			err = s.setImportMarker(ctx, markerUpdate)
		}
		if err == nil {
			err = s.writeImport(ctx, src, &sum, empty)
		}
	}
	if err != nil {
		return sum, err
	}
	if err := s.setImportMarker(ctx, markerNone); err != nil {
		return sum, err
	}
	err = s.Audit(ctx, AuditEntry{Event: EventImported,
		Outcome: fmt.Sprintf("rows=%d added=%d updated=%d unchanged=%d", sum.Rows, sum.Added, sum.Updated, sum.Unchanged)})
	return sum, err
}

// EventImported records an operator import.
const EventImported = "records_imported"

// Values of the import marker.
const (
	markerNone   byte = 0
	markerUpdate byte = 1 // a write pass into a store with records
	markerFresh  byte = 2 // a first load: the store held no records before
)

// exclusive reports whether this process holds the state alone (Badger's
// directory lock) rather than sharing it with replicas that read it while
// an import runs.
func (s *Store) exclusive() bool { return s.bdb != nil }

// importWorkers hash, encode and write rows of a first load in parallel:
// HMACs and JSON encoding are most of the import's own CPU.
var importWorkers = max(2, runtime.GOMAXPROCS(0))

// importFresh loads rows into a store with no records in one pass.
func (s *Store) importFresh(ctx context.Context, src RowSource) (ImportSummary, error) {
	if err := s.setImportMarker(ctx, markerFresh); err != nil {
		return ImportSummary{}, err
	}
	var (
		sum     ImportSummary
		bad     ImportError
		written int
	)
	wb := s.kv.NewWriteBatch(ctx)
	defer wb.Cancel()
	rows := make(chan []ImportRow, 2*importWorkers)
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	for range importWorkers {
		wg.Go(func() {
			for batch := range rows {
				if gctx.Err() != nil {
					continue // drain
				}
				for i := range batch {
					if err := s.setRow(wb, &batch[i]); err != nil {
						errOnce.Do(func() { werr = err; cancel() })
						break
					}
				}
			}
		})
	}
	const batchRows = 256
	batch := make([]ImportRow, 0, batchRows)
	err := src(gctx, func(r ImportRow) error {
		sum.Rows++
		if r.Problem != "" {
			bad.add(r.Line, r.Problem)
		}
		if bad.Total > 0 {
			return nil // keep reading to count rows; write nothing more
		}
		written++
		batch = append(batch, r)
		if len(batch) == batchRows {
			select {
			case rows <- batch:
			case <-gctx.Done():
				return gctx.Err()
			}
			batch = make([]ImportRow, 0, batchRows)
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		select {
		case rows <- batch:
		case <-gctx.Done():
			err = gctx.Err()
		}
	}
	close(rows)
	wg.Wait()
	if werr != nil {
		err = werr // the workers' error, not the cancellation it caused
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		// Leave the store as it was; if even that fails, the marker stays
		// and the next Import drops the partial load.
		if derr := s.dropRecords(); derr == nil {
			_ = s.setImportMarker(ctx, markerNone)
		}
		return sum, fmt.Errorf("store: import write: %w", err)
	}
	ok := bad.Total == 0
	if ok {
		// Whole-file rules on what was written: a repeated reference id
		// left fewer records than rows; a mobile's index holds its rows.
		if ok, err = s.freshLoadConsistent(ctx, written); err != nil {
			return sum, err
		}
	}
	if !ok {
		if err := s.dropRecords(); err != nil {
			return sum, err
		}
		if err := s.setImportMarker(ctx, markerNone); err != nil {
			return sum, err
		}
		// Name every bad row, as a store without records sees the file.
		csum, err := s.checkImport(ctx, src, nil)
		if err == nil {
			// Unreachable unless the source changed between passes.
			return csum, errors.New("store: import: the rows changed between passes")
		}
		return csum, err
	}
	sum.Added = written
	return sum, s.sync()
}

// encodedRow is one row ready to write: the record with its ID key, its
// encoding, and the keyed hashes that index it.
type encodedRow struct {
	rec        Record
	val        []byte
	rh, mh, ih []byte // reference, mobile and (when given) ID number hashes
}

func (s *Store) encodeRow(r *ImportRow) (encodedRow, error) {
	e := encodedRow{rec: r.Record, rh: s.refHash(r.Record.RefID), mh: s.mobileHash(r.Record.Mobile)}
	if r.ID != "" {
		e.ih = s.idHash(r.ID)
		e.rec.IDKey = hex.EncodeToString(e.ih)
	}
	var err error
	e.val, err = encodeRecord(&e.rec)
	return e, err
}

// writes are the record and its index entries, after the removals in
// before: one group, which a reader sees whole or not at all.
func (e encodedRow) writes(before ...kv.Write) []kv.Write {
	g := append(before, kv.Write{Key: join([]byte{pfxRecord}, e.rh), Value: e.val},
		kv.Write{Key: join([]byte{pfxMobileIdx}, e.mh, e.rh)})
	if e.ih != nil {
		g = append(g, kv.Write{Key: join([]byte{pfxIDIdx}, e.ih, e.rh)})
	}
	return g
}

// setRow writes one row's record and index entries.
func (s *Store) setRow(wb kv.WriteBatch, r *ImportRow) error {
	e, err := s.encodeRow(r)
	if err != nil {
		return err
	}
	return wb.Write(e.writes()...)
}

// freshLoadConsistent reports whether a first load of rows records obeys
// the whole-file rules: as many records as rows (no repeated reference id)
// and no mobile with more than MaxPerMobile. Keys only, in key order.
func (s *Store) freshLoadConsistent(ctx context.Context, rows int) (bool, error) {
	ok := true
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		n := 0
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxRecord}})
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		it.Close()
		if n != rows {
			ok = false
			return nil
		}
		it = txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxMobileIdx}})
		defer it.Close()
		var (
			cur   []byte
			count int
		)
		i := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if i++; i%65536 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			k := it.Item().Key()
			if len(k) != 1+2*hashLen {
				continue
			}
			if bytes.Equal(cur, k[1:1+hashLen]) {
				if count++; count > MaxPerMobile {
					ok = false
					return nil
				}
				continue
			}
			cur, count = append(cur[:0], k[1:1+hashLen]...), 1
		}
		return nil
	})
	return ok, err
}

// dropRecords deletes every record and index entry. Only a first load,
// into a store that held no records, uses it to undo itself.
func (s *Store) dropRecords() error {
	if err := s.kv.DropPrefix(context.Background(), []byte{pfxRecord}, []byte{pfxMobileIdx}, []byte{pfxIDIdx}); err != nil {
		return fmt.Errorf("store: import undo: %w", err)
	}
	return s.sync()
}

func (s *Store) noRecords(ctx context.Context) (bool, error) {
	var empty bool
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		var err error
		empty, err = isEmpty(txn, pfxRecord)
		return err
	})
	return empty, err
}

// checkImport checks every row and the file as a whole against what is
// stored, in bounded memory: the keyed hash of each row's reference id
// and mobile, with its line number, go into a temporary Badger database,
// which sorts them; walking it in key order finds repeated reference ids
// and counts each mobile's rows, and a merge with the stored mobile index
// (also in key order) adds the beneficiaries already stored.
// With absent set (a replacement: the file is the complete set), stored
// records the file does not name do not count towards a mobile's limit,
// and once the file passes, absent receives their keyed reference hashes.
func (s *Store) checkImport(ctx context.Context, src RowSource, absent *[][]byte) (ImportSummary, error) {
	var (
		sum ImportSummary
		bad ImportError
	)
	tmp, cleanup, err := s.openScratch()
	if err != nil {
		return sum, err
	}
	defer cleanup()
	wb := tmp.NewWriteBatch(ctx)
	defer wb.Cancel()
	err = src(ctx, func(r ImportRow) error {
		sum.Rows++
		if r.Problem != "" {
			bad.add(r.Line, r.Problem)
			return nil
		}
		var line [4]byte
		binary.BigEndian.PutUint32(line[:], uint32(r.Line))
		rh := s.refHash(r.Record.RefID)
		if err := wb.Set(join([]byte{scratchRef}, rh, line[:]), nil); err != nil {
			return err
		}
		return wb.Set(join([]byte{scratchMobile}, s.mobileHash(r.Record.Mobile), line[:]), rh)
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return sum, err
	}
	err = tmp.View(ctx, func(scratch kv.Txn) error {
		return s.kv.View(ctx, func(txn kv.Txn) error {
			if err := s.checkScratch(ctx, scratch, txn, &bad, absent != nil); err != nil || bad.Total > 0 || absent == nil {
				return err
			}
			return collectAbsent(ctx, scratch, txn, absent)
		})
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

// Key prefixes of the scratch database.
const (
	scratchRef    = 'R' // R + ref hash + line → nil
	scratchMobile = 'M' // M + mobile hash + line → ref hash
	scratchDup    = 'D' // D + line → nil: a row whose reference id repeats
)

// openScratch opens a temporary database for checkImport: in memory for
// an in-memory store, otherwise in a directory inside the data directory
// (same disk, same permissions), removed by cleanup. It holds only keyed
// hashes and line numbers, nothing personal, so it is not encrypted.
func (s *Store) openScratch() (*badgerkv.DB, func(), error) {
	opts := badger.DefaultOptions("").WithInMemory(true)
	dir := ""
	if s.dir != "" {
		var err error
		if dir, err = os.MkdirTemp(s.dir, "import-check-"); err != nil {
			return nil, nil, fmt.Errorf("store: import check: %w", err)
		}
		opts = badger.DefaultOptions(dir)
	}
	// Small and bounded like the store's own options; no compression: keys
	// are random hashes.
	opts = opts.WithLogger(nil).WithMemTableSize(16 << 20).WithNumMemtables(2).
		WithNumLevelZeroTables(3).WithNumLevelZeroTablesStall(8).WithBaseTableSize(2 << 20).
		WithBlockCacheSize(8 << 20).WithIndexCacheSize(8 << 20).WithNumCompactors(2).
		WithCompression(options.None).WithMetricsEnabled(false).WithDetectConflicts(false)
	opts.TableSizeMultiplier = 1
	db, err := badger.Open(opts)
	if err != nil {
		if dir != "" {
			os.RemoveAll(dir)
		}
		return nil, nil, fmt.Errorf("store: import check: %w", err)
	}
	return badgerkv.New(db), func() {
		_ = db.Close()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

func scratchLine(k []byte) int { return int(binary.BigEndian.Uint32(k[len(k)-4:])) }

// checkScratch walks the sorted scratch keys. The rules and their wording
// are those of a row-by-row check in file order: a reference id's first
// row stands and every later one repeats it; on each mobile the first
// MaxPerMobile rows (not counting repeats) stand and later ones are
// refused; a mobile whose rows and stored beneficiaries (those the file
// does not name) exceed MaxPerMobile is reported at its first row.
//
// fileOnly (a replacement) counts a mobile's rows in the file alone.
func (s *Store) checkScratch(ctx context.Context, scratch, txn kv.Txn, bad *ImportError, fileOnly bool) error {
	// Repeated reference ids: same ref hash, in line order.
	dups := map[int]bool{} // lines of repeats; bounded below
	var (
		prev      []byte
		firstLine int
	)
	it := scratch.NewIterator(kv.IteratorOptions{Prefix: []byte{scratchRef}})
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		h := k[1 : 1+hashLen]
		if bytes.Equal(prev, h) {
			bad.add(scratchLine(k), fmt.Sprintf("reference_id repeats line %d", firstLine))
			if len(dups) < 1<<16 {
				dups[scratchLine(k)] = true
			}
			continue
		}
		prev, firstLine = append(prev[:0], h...), scratchLine(k)
	}
	it.Close()

	stored := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxMobileIdx}})
	defer stored.Close()
	refs := scratch.NewIterator(kv.IteratorOptions{Prefix: []byte{scratchRef}})
	defer refs.Close()
	inFile := func(rh []byte) bool {
		p := join([]byte{scratchRef}, rh)
		refs.Seek(p)
		return refs.ValidForPrefix(p)
	}
	var (
		group         []byte
		count         int
		first         int
		storedStarted bool
	)
	flush := func() error {
		if group == nil || count > MaxPerMobile || fileOnly {
			return nil
		}
		// Beneficiaries already stored on this mobile count too, unless
		// this file names them (and so re-places them).
		p := join([]byte{pfxMobileIdx}, group)
		n := count
		// Groups come in key order: the stored index is walked forward,
		// and sought only when it is behind this group (a Seek is a query
		// on PostgreSQL; into an empty store, none is made).
		if !storedStarted {
			stored.Rewind()
			storedStarted = true
		}
		if stored.Valid() && bytes.Compare(stored.Item().Key(), p) < 0 {
			stored.Seek(p)
		}
		for ; stored.ValidForPrefix(p); stored.Next() {
			k := stored.Item().Key()
			if len(k) == len(p)+hashLen && !inFile(k[len(p):]) {
				n++
			}
		}
		if n > MaxPerMobile {
			bad.add(first, fmt.Sprintf("mobile would have %d beneficiaries with those already stored; at most %d are allowed", n, MaxPerMobile))
		}
		return nil
	}
	it = scratch.NewIterator(kv.IteratorOptions{Prefix: []byte{scratchMobile}})
	defer it.Close()
	i := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if i++; i%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Item().Key()
		h, line := k[1:1+hashLen], scratchLine(k)
		if !bytes.Equal(group, h) {
			if err := flush(); err != nil {
				return err
			}
			group, count, first = append(group[:0], h...), 0, line
		}
		if dups[line] {
			continue
		}
		if count >= MaxPerMobile {
			bad.add(line, fmt.Sprintf("mobile already has %d beneficiaries in this file (from line %d); at most %d are allowed", MaxPerMobile, first, MaxPerMobile))
		}
		count++ // past MaxPerMobile: the stored ones need not be counted
	}
	return flush()
}

// collectAbsent appends the reference hash of every stored record whose
// reference the scratch database (the file) does not hold: both walks are
// in key order.
func collectAbsent(ctx context.Context, scratch, txn kv.Txn, absent *[][]byte) error {
	refs := scratch.NewIterator(kv.IteratorOptions{Prefix: []byte{scratchRef}})
	defer refs.Close()
	it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxRecord}})
	defer it.Close()
	i := 0
	for it.Rewind(); it.Valid(); it.Next() {
		if i++; i%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Item().Key()
		if len(k) != 1+hashLen {
			continue
		}
		p := join([]byte{scratchRef}, k[1:])
		refs.Seek(p)
		if !refs.ValidForPrefix(p) {
			*absent = append(*absent, bytes.Clone(k[1:]))
		}
	}
	return nil
}

func sortProblems(p []ImportProblem) {
	slices.SortStableFunc(p, func(a, b ImportProblem) int { return a.Line - b.Line })
}

func isEmpty(txn kv.Txn, pfx byte) (bool, error) {
	it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfx}})
	defer it.Close()
	it.Rewind()
	return !it.Valid(), nil
}

// writeImport is the write pass after a check pass. fresh says the store
// held no records when the import began: nothing to compare with.
func (s *Store) writeImport(ctx context.Context, src RowSource, sum *ImportSummary, fresh bool) error {
	wb := s.kv.NewWriteBatch(ctx)
	defer wb.Cancel()
	read, err := s.kv.NewReadTxn(ctx) // snapshot from before this pass
	if err != nil {
		return err
	}
	defer read.Discard()
	err = src(ctx, func(r ImportRow) error {
		if sum.Rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e, err := s.encodeRow(&r)
		if err != nil {
			return err
		}
		if fresh {
			sum.Added++
			return wb.Write(e.writes()...)
		}
		rec, val, rh := e.rec, e.val, e.rh
		old, err := getRecord(read, rh)
		switch {
		case errors.Is(err, ErrNotFound):
			sum.Added++
			return wb.Write(e.writes()...)
		case err != nil:
			return err
		}
		oldVal, _ := encodeRecord(&old)
		if bytes.Equal(oldVal, val) {
			sum.Unchanged++
			return nil
		}
		sum.Updated++
		var drop []kv.Write
		if old.Mobile != rec.Mobile {
			drop = append(drop, kv.Write{Key: join([]byte{pfxMobileIdx}, s.mobileHash(old.Mobile), rh), Delete: true})
		}
		if old.IDKey != "" && old.IDKey != rec.IDKey {
			drop = append(drop, kv.Write{Key: join([]byte{pfxIDIdx}, mustHex(old.IDKey), rh), Delete: true})
		}
		return wb.Write(e.writes(drop...)...)
	})
	if err != nil {
		return fmt.Errorf("store: import write: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: import flush: %w", err)
	}
	return s.sync()
}

func (s *Store) setImportMarker(ctx context.Context, m byte) error {
	err := s.kv.Update(ctx, func(txn kv.Txn) error {
		if m != markerNone {
			return txn.Set(keyMetaImport, []byte{m})
		}
		return txn.Delete(keyMetaImport)
	})
	if err != nil {
		return fmt.Errorf("store: import marker: %w", err)
	}
	return s.sync()
}

func (s *Store) importMarker(ctx context.Context) (byte, error) {
	m := markerNone
	err := s.kv.View(ctx, func(txn kv.Txn) error {
		item, err := txn.Get(keyMetaImport)
		if errors.Is(err, kv.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			m = markerUpdate
			if len(v) == 1 && (v[0] == markerFresh || v[0] == markerRemove) {
				m = v[0]
			}
			return nil
		})
	})
	return m, err
}

// InterruptedImport reports whether an import's write pass began and did
// not finish. Running that import again completes it.
func (s *Store) InterruptedImport() (bool, error) {
	m, err := s.importMarker(context.Background())
	return m != markerNone, err
}
