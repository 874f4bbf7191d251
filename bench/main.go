// Command bench measures otpgate against a baseline taken in the same
// run.
//
//	go run ./bench import -n 1000000
//
// generates n synthetic records, loads them once with raw Badger WriteBatch
// (same encryption and tuning as the store, key = reference id, value = the
// record's line) and once through `otpgate import`'s path (parse, validate,
// check, hash, index, write), each in a child process of its own so that
// peak memory is its own, and prints both rates, their ratio and the peak
// RSS of each.
//
//	go run ./bench pgimport -n 1000000
//
// starts a throwaway PostgreSQL 15 server (fsync=on, synchronous_commit=on)
// and loads n synthetic records through `otpgate import`'s path into it
// (OTPGATE_DATABASE_URL: store.Import on pgkv), next to one COPY of the
// same rows (count and sizes of every key and sealed value otpgate writes)
// into a plain table, and into one with a primary key; each in a child
// process, it prints the rates, their ratio, peak RSS, the CPU time of the
// bench process and of PostgreSQL, table sizes and WAL written.
//
//	go run ./bench serve -n 1000000
//
// imports n records, starts otpgate through its composition root in a
// child process on that directory, runs whole flows in it and prints its
// RSS after warm-up and at peak, and the p50/p99 of one whole flow next to
// one raw synced Badger transaction.
//
//	go run ./bench telegram -users 1000
//
// starts a burst of users who each do the whole beneficiary flow against a
// fake Bot API that enforces Telegram's limits, and prints the total time
// next to the floor implied by 30 messages/s, the 429s received, the flows
// lost and peak RSS.
//
//	go run ./bench backup -n 1000000
//
// imports n records, then times otpgate's encrypted backup and its restore
// next to Badger's own (unencrypted) backup of the same database.
//
//	go run ./bench soak -duration 6m
//
// runs whole flows without pause, with value-log GC every 30 s, and prints
// what the store holds and its disk use: short-lived state must level off.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/internal/sample"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: go run ./bench import [-n N] | pgimport [-n N] [-set name=value] [-statements K] | serve [-n N] [-trips N] | telegram [-users N] | backup [-n N] | soak [-duration D]")
	}
	switch args[0] {
	case "import":
		return benchImport(args[1:])
	case "telegram":
		return benchTelegram(args[1:])
	case "backup":
		return benchBackup(args[1:])
	case "soak":
		return benchSoak(args[1:])
	case "serve":
		return benchServe(args[1:])
	case "child-baseline", "child-import":
		return child(args[0], args[1], args[2])
	case "pgimport":
		return benchPGImport(args[1:])
	case "child-pgcopy", "child-pgimport":
		return childPG(args[0], args[1:])
	case "child-serve":
		trips, err := strconv.Atoi(args[3])
		if err != nil {
			return err
		}
		url := ""
		if len(args) > 4 {
			url = args[4]
		}
		return childServe(args[1], args[2], trips, url)
	}
	return fmt.Errorf("unknown benchmark %q", args[0])
}

type result struct {
	Records   int     `json:"records"`
	Seconds   float64 `json:"seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// PeakAnonMB is the largest anonymous (heap, stacks, Badger arenas)
	// resident set sampled: VmHWM also counts pages of the memory-mapped
	// tables and logs, which the kernel can drop at any time.
	PeakAnonMB float64 `json:"peak_anon_mb"`
	PeakHeapMB float64 `json:"peak_heap_mb"`
	// CPUSeconds is the process's user and system CPU time.
	CPUSeconds float64 `json:"cpu_seconds"`
}

func (r result) rate() float64 { return float64(r.Records) / r.Seconds }

func benchImport(args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	n := fs.Int("n", 1_000_000, "records to generate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	dir, file, err := generate(*n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, _ := os.Stat(file)
	fmt.Printf("generated %d records (%.0f MB) in %.1fs\n", *n, float64(st.Size())/1e6, time.Since(start).Seconds())

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var res [2]result
	for i, mode := range []string{"child-baseline", "child-import"} {
		db := filepath.Join(dir, mode)
		cmd := exec.Command(self, mode, file, db)
		cmd.Env = append(os.Environ(), "OTPBENCH_CHILD=1")
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("%s: %w: %s", mode, err, ee.Stderr)
			}
			return fmt.Errorf("%s: %w", mode, err)
		}
		if err := json.Unmarshal(out, &res[i]); err != nil {
			return fmt.Errorf("%s: %w: %s", mode, err, out)
		}
		du, _ := dirSize(db)
		fmt.Printf("%-22s %8d records %6.1fs %7.0f records/s  peak RSS %5.0f MB (anonymous %5.0f MB, Go heap %5.0f MB)  data %4.0f MB\n",
			map[string]string{"child-baseline": "raw Badger WriteBatch", "child-import": "otpgate import"}[mode],
			res[i].Records, res[i].Seconds, res[i].rate(), res[i].PeakRSSMB, res[i].PeakAnonMB, res[i].PeakHeapMB, float64(du)/1e6)
	}
	fmt.Printf("otpgate import runs at %.2fx the raw WriteBatch rate, with %.2fx its peak RSS (%.2fx its anonymous memory)\n",
		res[1].rate()/res[0].rate(), res[1].PeakRSSMB/res[0].PeakRSSMB, res[1].PeakAnonMB/res[0].PeakAnonMB)
	return nil
}

func child(mode, file, dir string) error {
	opts, _ := benchOptions(dir)
	return measure(mode, func(r *result) (err error) {
		if mode == "child-baseline" {
			r.Records, err = baseline(file, opts)
		} else {
			r.Records, err = otpgateImport(file, opts)
		}
		return err
	})
}

// measure runs fn, a child process's work, and prints its result as JSON:
// what fn reports (the records, at least), the time it took and the
// process's peak memory.
// OTPBENCH_CPUPROFILE and OTPBENCH_MEMPROFILE name profiles to write
// (suffixed with the mode).
func measure(mode string, fn func(*result) error) error {
	if path := os.Getenv("OTPBENCH_CPUPROFILE"); path != "" {
		pf, err := os.Create(path + "." + mode)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	stopSampling := sampleMemory()
	start := time.Now()
	var r result
	err := fn(&r)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if path := os.Getenv("OTPBENCH_MEMPROFILE"); path != "" {
		if pf, err := os.Create(path + "." + mode); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(pf, 0)
			pf.Close()
		}
	}
	anon, heap := stopSampling()
	r.Seconds, r.PeakRSSMB, r.PeakAnonMB, r.PeakHeapMB = secs, statusMB("VmHWM:"), anon, heap
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	pprof.StopCPUProfile()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// generate writes n synthetic records (JSON Lines) into a new temporary
// directory, which the caller removes.
func generate(n int) (dir, file string, err error) {
	dir, err = os.MkdirTemp("", "otpbench-")
	if err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "records.jsonl")
	f, err := os.Create(file)
	if err == nil {
		err = errors.Join(sample.Write(f, n, 1), f.Close())
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return dir, file, nil
}

// benchOptions opens stores under dir with a fixed benchmark key.
func benchOptions(dir string) (store.Options, keys.Set) {
	master, _ := hex.DecodeString(benchMasterKey)
	ks, err := keys.Derive(master)
	if err != nil {
		panic(err) // a constant 32-byte key always derives
	}
	return store.Options{Dir: dir, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit}, ks
}

// baseline writes each line under its reference id with a WriteBatch: the
// floor any import into this database pays (I/O, encryption, LSM).
func baseline(file string, o store.Options) (int, error) {
	db, err := badger.Open(store.BadgerOptions(o))
	if err != nil {
		return 0, err
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	wb := db.NewWriteBatch()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.Index(line, []byte(`"reference_id":"`))
		if i < 0 {
			return n, errors.New("baseline: line without reference_id")
		}
		key := append([]byte("r"), line[i+16:i+30]...)
		if err := wb.Set(key, bytes.Clone(line)); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	if err := wb.Flush(); err != nil {
		return n, err
	}
	if err := db.Sync(); err != nil {
		return n, err
	}
	return n, db.Close()
}

// otpgateImport is `otpgate import`'s path: the app's store, the record
// file's parser and validator, the store's import.
func otpgateImport(file string, o store.Options) (int, error) {
	a, err := newApp(o.Dir, app.Deps{Channel: app.ChannelNone}, nil)
	if err != nil {
		return 0, err
	}
	s := a.Store
	f, err := recordfile.Open(file, recordfile.Options{})
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sum, err := s.Import(context.Background(), f.Rows)
	if err != nil {
		return 0, err
	}
	if sum.Added != sum.Rows {
		return 0, fmt.Errorf("import added %d of %d rows", sum.Added, sum.Rows)
	}
	return sum.Rows, a.Stop()
}

// sampleMemory records, every 50 ms until stopped, the largest anonymous
// resident set and Go heap seen.
func sampleMemory() (stop func() (anonMB, heapMB float64)) {
	var anon, heap float64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			anon = max(anon, statusMB("RssAnon:"))
			runtime.ReadMemStats(&ms)
			heap = max(heap, float64(ms.HeapInuse)/(1<<20))
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (float64, float64) { close(done); <-finished; return anon, heap }
}

// statusMB reads one kB field of /proc/self/status (Linux) in MB.
func statusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// dirSize is the disk space used under dir: allocated blocks, not apparent
// sizes (Badger preallocates its logs sparsely).
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	return n, err
}
