package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

// Sizes of what otpgate's import writes into PostgreSQL for one record
// (store/import.go, encodedRow.set; store/pgkv seals every value): the
// record under r + ref hash, and empty values under m + mobile hash + ref
// hash and, when the row has an ID number, i + ID hash + ref hash. pgkv
// seals a value as nonce ‖ ciphertext ‖ tag.
const (
	hashBytes     = 16
	recordKeyLen  = 1 + hashBytes
	indexKeyLen   = 1 + 2*hashBytes
	sealOverhead  = 12 + 16 // AES-GCM nonce and tag
	idKeyHexChars = 2 * hashBytes
)

// pgSettings are the server settings the benchmark reports.
var pgSettings = []string{"fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_wal_size", "checkpoint_timeout"}

// benchPGImport measures `otpgate import` into PostgreSQL next to a plain
// COPY of the same rows, on a throwaway PostgreSQL 15 server of its own
// with durable settings (fsync=on, synchronous_commit=on).
//
// The baseline is the rows otpgate writes, the same number and sizes (key
// and sealed value of each record and index entry, see the constants
// above) of random bytes, as otpgate's keyed hashes and ciphertext are:
// built into a binary COPY file before timing and streamed in one COPY
// into a table without index or constraint, plain (k bytea, v bytea); and,
// to show what the primary key costs, into plain_pk (k bytea PRIMARY KEY,
// v bytea). After both, the benchmark checks that otpgate_kv holds exactly
// as many record and index rows, of as many key and value bytes, as plain.
func benchPGImport(args []string) error {
	fs := flag.NewFlagSet("pgimport", flag.ContinueOnError)
	n := fs.Int("n", 1_000_000, "records to generate")
	var set settingsFlag
	fs.Var(&set, "set", "a further PostgreSQL setting, name=value (repeatable), e.g. -set shared_buffers=1GB")
	statements := fs.Int("statements", 0, "print the server's top `k` statements of each side by total time (pg_stat_statements)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *statements > 0 {
		set = append(set, "shared_preload_libraries=pg_stat_statements", "track_io_timing=on")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A second interrupt ends the process at once (the server dies with it).
	context.AfterFunc(ctx, stop)

	start := time.Now()
	dir, file, err := generate(*n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, _ := os.Stat(file)
	fmt.Printf("generated %d records (%.0f MB) in %.1fs\n", *n, float64(st.Size())/1e6, time.Since(start).Seconds())
	if err := ctx.Err(); err != nil {
		return err
	}

	start = time.Now()
	copyFile := filepath.Join(dir, "rows.pgcopy")
	rows, err := writeCopyFile(ctx, file, copyFile)
	if err != nil {
		return err
	}
	fmt.Printf("baseline rows: %d (%.2f per record), keys %.0f MB, values %.0f MB, written to a binary COPY file in %.1fs\n",
		rows.rows, float64(rows.rows)/float64(*n), float64(rows.keyBytes)/1e6, float64(rows.valBytes)/1e6, time.Since(start).Seconds())

	srv, err := pgtest.StartServer(pgtest.Options{Durable: true, Settings: set})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := srv.Close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "bench: stopping PostgreSQL:", cerr)
		}
	}()
	admin, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	var shown []string
	for _, name := range pgSettings {
		var v string
		if err := admin.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			return err
		}
		shown = append(shown, name+"="+v)
	}
	var version string
	if err := admin.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}
	fmt.Printf("PostgreSQL %s, throwaway server on a Unix socket in %s: %s; each run after a CHECKPOINT\n",
		version, os.TempDir(), strings.Join(shown, " "))
	if _, err := admin.Exec(ctx, "CREATE DATABASE bench"); err != nil {
		return err
	}
	url := srv.URL("bench")
	if err := execOn(ctx, url, "CREATE TABLE plain (k bytea, v bytea); CREATE TABLE plain_pk (k bytea PRIMARY KEY, v bytea)"); err != nil {
		return err
	}
	if *statements > 0 {
		if err := execOn(ctx, url, "CREATE EXTENSION pg_stat_statements"); err != nil {
			return err
		}
	}

	type side struct{ name, mode, table string }
	sides := []side{
		{"COPY into plain (k bytea, v bytea)", "child-pgcopy", "plain"},
		{"COPY into plain_pk (k bytea PRIMARY KEY, v bytea)", "child-pgcopy", "plain_pk"},
		{"otpgate import (store.Import, pgkv)", "child-pgimport", "otpgate_kv"},
	}
	var (
		res  [3]result
		size [3]int64
	)
	var tableRows int64
	for i, sd := range sides {
		if _, err := admin.Exec(ctx, "CHECKPOINT"); err != nil {
			return err
		}
		if *statements > 0 {
			if err := execOn(ctx, url, "SELECT pg_stat_statements_reset()"); err != nil {
				return err
			}
		}
		var lsn0 string
		if err := admin.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn0); err != nil {
			return err
		}
		cpu0, load0 := serverCPU(srv.Pid()), loadAverage()
		var childArgs []string
		if sd.mode == "child-pgcopy" {
			childArgs = []string{url, sd.table, copyFile, strconv.Itoa(*n)}
		} else {
			childArgs = []string{url, file, filepath.Join(dir, "otpgate-scratch")}
		}
		if err := runChildContext(ctx, &res[i], sd.mode, childArgs...); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			return err
		}
		if err := waitBackends(ctx, admin); err != nil {
			return err
		}
		cpu, load1 := serverCPU(srv.Pid())-cpu0, loadAverage()
		var wal int64
		if err := admin.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint", lsn0).Scan(&wal); err != nil {
			return err
		}
		if err := queryOn(ctx, url, "SELECT pg_total_relation_size($1), (SELECT count(*) FROM "+sd.table+")", []any{sd.table}, &size[i], &tableRows); err != nil {
			return err
		}
		r := res[i]
		fmt.Printf("%-50s %8d records %8d rows %7.1fs %8.0f records/s  peak RSS %5.0f MB (anonymous %5.0f MB, Go heap %5.0f MB)  table %6.1f MB  WAL %6.1f MB  CPU: bench %5.1fs, PostgreSQL %5.1fs  load %.1f→%.1f\n",
			sd.name, r.Records, tableRows, r.Seconds, r.rate(), r.PeakRSSMB, r.PeakAnonMB, r.PeakHeapMB, float64(size[i])/1e6, float64(wal)/1e6, r.CPUSeconds, cpu, load0, load1)
		if *statements > 0 {
			if err := printStatements(ctx, url, *statements); err != nil {
				return err
			}
		}
	}
	if err := sameRows(ctx, url); err != nil {
		return err
	}
	fmt.Printf("otpgate import into PostgreSQL runs at %.2fx the plain COPY rate (%.2fx COPY into a table with a primary key), with %.2fx its peak RSS; its table is %.2fx plain's (%.2fx plain_pk's)\n",
		res[2].rate()/res[0].rate(), res[2].rate()/res[1].rate(), res[2].PeakRSSMB/res[0].PeakRSSMB,
		float64(size[2])/float64(size[0]), float64(size[2])/float64(size[1]))
	fmt.Printf("baseline: one COPY (FORMAT binary) per table of the rows otpgate writes, the same count and sizes (keys %d B for a record, %d B for an index entry; values the record's JSON + %d B of AES-GCM, %d B for an index entry), random bytes prepared before timing; durability: fsync=on, synchronous_commit=on on every side\n",
		recordKeyLen, indexKeyLen, sealOverhead, sealOverhead)
	return nil
}

// printStatements prints the k statements of the last run that took the
// most time in the server, with their I/O.
func printStatements(ctx context.Context, url string, k int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT calls, total_exec_time, rows, shared_blks_hit, shared_blks_read, shared_blks_written,
		blk_read_time, blk_write_time, wal_bytes::bigint, regexp_replace(left(query, 110), '\s+', ' ', 'g')
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'SELECT pg_total_relation_size%' ORDER BY total_exec_time DESC LIMIT $1`, k)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			calls, nrows, hit, read, written, wal int64
			total, readMS, writeMS                float64
			query                                 string
		)
		if err := rows.Scan(&calls, &total, &nrows, &hit, &read, &written, &readMS, &writeMS, &wal, &query); err != nil {
			return err
		}
		fmt.Printf("    %8.0f ms %6d calls %9d rows  blocks hit %9d read %8d (%6.0f ms) written %8d (%6.0f ms)  WAL %6.0f MB  %s\n",
			total, calls, nrows, hit, read, readMS, written, writeMS, float64(wal)/1e6, query)
	}
	return rows.Err()
}

// serverCPU is the CPU time (user and system) of the PostgreSQL server
// rooted at the postmaster pid so far: its own, that of the backends it
// has reaped, and that of its live children (checkpointer, WAL writer, …).
func serverCPU(pid int) float64 {
	total := procCPU(pid, true)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			total += procCPU(child, false)
		}
	}
	return total
}

// procStat returns the fields of /proc/pid/stat after the command name,
// from the state (field 3) on.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procCPU is utime+stime of pid (and cutime+cstime, with children), in
// seconds (Linux counts 100 ticks a second).
func procCPU(pid int, children bool) float64 {
	f := procStat(pid)
	if len(f) < 15 {
		return 0
	}
	fields := f[11:13] // utime, stime (fields 14, 15)
	if children {
		fields = f[11:15] // and cutime, cstime
	}
	var ticks float64
	for _, v := range fields {
		n, _ := strconv.ParseFloat(v, 64)
		ticks += n
	}
	return ticks / 100
}

// waitBackends waits until the benchmark's child has no backend left (they
// exit after its connections close), so that serverCPU counts them.
func waitBackends(ctx context.Context, admin *pgx.Conn) error {
	for range 100 {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the postmaster reaps them
	return nil
}

// loadAverage is the 1-minute load average.
func loadAverage() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// settingsFlag collects -set name=value.
type settingsFlag []string

func (s *settingsFlag) String() string { return strings.Join(*s, " ") }
func (s *settingsFlag) Set(v string) error {
	if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
		return fmt.Errorf("%q is not name=value", v)
	}
	*s = append(*s, v)
	return nil
}

func execOn(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func queryOn(ctx context.Context, url, sql string, args []any, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// rowStats are the count and sizes of a set of rows.
type rowStats struct {
	rows, keyBytes, valBytes int64
}

// sameRows checks that the baseline holds what otpgate wrote: as many
// record and index rows (keys starting r, m, i), of as many key and value
// bytes. A change to what the import writes must change the baseline too.
func sameRows(ctx context.Context, url string) error {
	const stats = "SELECT count(*), coalesce(sum(octet_length(k)), 0)::bigint, coalesce(sum(octet_length(v)), 0)::bigint FROM "
	var p, o rowStats
	if err := queryOn(ctx, url, stats+"plain", nil, &p.rows, &p.keyBytes, &p.valBytes); err != nil {
		return err
	}
	if err := queryOn(ctx, url, stats+"otpgate_kv WHERE get_byte(k, 0) IN (ascii('r'), ascii('m'), ascii('i'))", nil, &o.rows, &o.keyBytes, &o.valBytes); err != nil {
		return err
	}
	if p != o {
		return fmt.Errorf("the baseline is not what otpgate writes: plain has %d rows (keys %d B, values %d B), otpgate_kv %d record and index rows (keys %d B, values %d B); update bench/pgimport.go",
			p.rows, p.keyBytes, p.valBytes, o.rows, o.keyBytes, o.valBytes)
	}
	fmt.Printf("checked: otpgate_kv holds the baseline's %d rows, keys %d B, values %d B (plus its metadata and audit rows)\n", o.rows, o.keyBytes, o.valBytes)
	return nil
}

// writeCopyFile writes, in PostgreSQL's binary COPY format, the rows
// otpgate's import writes for the records of file (parsed as `otpgate
// import` parses it), with random bytes of their sizes.
func writeCopyFile(ctx context.Context, file, out string) (rowStats, error) {
	var st rowStats
	rf, err := recordfile.Open(file, recordfile.Options{})
	if err != nil {
		return st, err
	}
	defer rf.Close()
	f, err := os.Create(out)
	if err != nil {
		return st, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("PGCOPY\n\xff\r\n\x00")
	w.Write(make([]byte, 8)) // flags, header extension length
	rng := rand.NewChaCha8([32]byte{'o', 't', 'p', 'g', 'a', 't', 'e'})
	buf := make([]byte, 0, 4096)
	field := func(prefix byte, n int) {
		buf = binary.BigEndian.AppendUint32(buf[:0], uint32(n))
		if prefix != 0 {
			buf = append(buf, prefix)
			n--
		}
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		rng.Read(buf[start:])
		w.Write(buf)
	}
	row := func(prefix byte, keyLen, valLen int) {
		w.Write([]byte{0, 2}) // two columns
		field(prefix, keyLen)
		field(0, valLen)
		st.rows++
		st.keyBytes += int64(keyLen)
		st.valBytes += int64(valLen)
	}
	err = rf.Rows(ctx, func(r store.ImportRow) error {
		if r.Problem != "" {
			return fmt.Errorf("line %d: %s", r.Line, r.Problem)
		}
		rec := r.Record
		if r.ID != "" {
			rec.IDKey = strings.Repeat("0", idKeyHexChars) // hex of the ID's keyed hash
		}
		js, err := json.Marshal(&rec) // the store's record encoding
		if err != nil {
			return err
		}
		row('r', recordKeyLen, len(js)+sealOverhead)
		row('m', indexKeyLen, sealOverhead)
		if r.ID != "" {
			row('i', indexKeyLen, sealOverhead)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	w.Write([]byte{0xff, 0xff}) // trailer
	if err := w.Flush(); err != nil {
		return st, err
	}
	return st, f.Close()
}

// childPG is one timed side of pgimport, in a process of its own.
func childPG(mode string, args []string) error {
	switch mode {
	case "child-pgcopy":
		if len(args) != 4 {
			return errors.New("child-pgcopy URL TABLE FILE RECORDS")
		}
		records, err := strconv.Atoi(args[3])
		if err != nil {
			return err
		}
		return measure(mode, func(r *result) error {
			r.Records = records
			return copyRows(args[0], args[1], args[2])
		})
	case "child-pgimport":
		if len(args) != 3 {
			return errors.New("child-pgimport URL FILE SCRATCH-DIR")
		}
		return measure(mode, func(r *result) (err error) {
			r.Records, err = otpgatePGImport(args[0], args[1], args[2])
			return err
		})
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// copyRows streams a binary COPY file into table: the floor of loading
// these rows into PostgreSQL.
func copyRows(url, table, file string) error {
	ctx := context.Background()
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.PgConn().CopyFrom(ctx, bufio.NewReaderSize(f, 1<<20), "COPY "+pgx.Identifier{table}.Sanitize()+" (k, v) FROM STDIN (FORMAT binary)")
	return err
}

// otpgatePGImport is `otpgate import` with OTPGATE_DATABASE_URL set: the
// app's store (pgkv under store.Open, as internal/app opens it), the record
// file's parser and validator, the store's import.
func otpgatePGImport(url, file, scratch string) (int, error) {
	a, err := newApp(scratch, app.Deps{Channel: app.ChannelNone}, nil, "OTPGATE_DATABASE_URL="+url)
	if err != nil {
		return 0, err
	}
	f, err := recordfile.Open(file, recordfile.Options{})
	if err != nil {
		return 0, errors.Join(err, a.Stop())
	}
	defer f.Close()
	sum, err := a.Store.Import(context.Background(), f.Rows)
	if err != nil {
		return 0, errors.Join(err, a.Stop())
	}
	if sum.Added != sum.Rows {
		return 0, errors.Join(fmt.Errorf("import added %d of %d rows", sum.Added, sum.Rows), a.Stop())
	}
	return sum.Rows, a.Stop()
}
