package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/jackc/pgx/v5"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/recordfile"
)

// benchServe imports n generated records (in a child process, as
// `otpgate import` would), then starts otpgate through its composition root
// in another child process on that data directory and runs whole flows in
// it: code request → SMS → verify → summaries → release → logout. It
// prints the child's resident memory after a warm-up of a few flows and at
// its peak, and the latency of one whole flow (p50, p99) next to one raw
// Badger transaction synced to disk in the same process, with the same
// options and encryption.
//
// With -postgres the state is in a throwaway, durable PostgreSQL instead
// (fsync and synchronous_commit on), as replicas run it; the baseline is
// then one raw INSERT of 256 bytes committed on its own.
func benchServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	n := fs.Int("n", 1_000_000, "records to generate and import")
	trips := fs.Int("trips", 500, "whole flows to time after the warm-up")
	postgres := fs.Bool("postgres", false, "keep the state in a throwaway PostgreSQL instead of Badger")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, file, err := generate(*n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if *postgres {
		return benchServePG(file, dir, *n, *trips)
	}
	db := filepath.Join(dir, "db")
	var imp result
	if err := runChild(&imp, "child-import", file, db); err != nil {
		return err
	}
	fmt.Printf("imported %d records in %.1fs (%.0f records/s, peak RSS %.0f MB)\n", imp.Records, imp.Seconds, imp.rate(), imp.PeakRSSMB)
	var sr serveResult
	if err := runChild(&sr, "child-serve", file, db, strconv.Itoa(*trips)); err != nil {
		return err
	}
	fmt.Printf("otpgate serve on %d records: RSS after %d warm-up flows %.0f MB (anonymous %.0f MB, Go heap %.0f MB); peak RSS %.0f MB (anonymous %.0f MB, Go heap %.0f MB)\n",
		*n, warmupFlows, sr.WarmRSSMB, sr.WarmAnonMB, sr.WarmHeapMB, sr.PeakRSSMB, sr.PeakAnonMB, sr.PeakHeapMB)
	fmt.Printf("whole flow (in-process, %d trips): p50 %.2f ms  p99 %.2f ms   raw synced Badger txn: p50 %.2f ms  p99 %.2f ms\n",
		sr.Trips, sr.FlowP50ms, sr.FlowP99ms, sr.RawP50ms, sr.RawP99ms)
	return nil
}

// warmupFlows run before the memory is read and the timing starts.
const warmupFlows = 3

type serveResult struct {
	WarmRSSMB, WarmAnonMB, WarmHeapMB float64
	PeakRSSMB, PeakAnonMB, PeakHeapMB float64
	Trips                             int
	FlowP50ms, FlowP99ms              float64
	RawP50ms, RawP99ms                float64
}

// runChild runs this binary in mode with args and decodes its JSON result.
func runChild(out any, mode string, args ...string) error {
	return runChildContext(context.Background(), out, mode, args...)
}

// runChildContext is runChild, killing the child when ctx is done; the
// child is killed too if this process dies.
func runChildContext(ctx context.Context, out any, mode string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{mode}, args...)...)
	cmd.Env = append(os.Environ(), "OTPBENCH_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	b, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s: %w: %s", mode, err, ee.Stderr)
		}
		return fmt.Errorf("%s: %w", mode, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w: %s", mode, err, b)
	}
	return nil
}

// childServe is the serving process: the app as serve builds it (console
// channel, the code sender replaced by a phone that hands codes straight
// to the flow), on the imported directory.
//
// With url, the state is in that PostgreSQL database instead of dir.
func childServe(file, dir string, trips int, url string) error {
	mobiles, err := fileMobiles(file, warmupFlows+trips)
	if err != nil {
		return err
	}
	stopSampling := sampleMemory()
	ph := newPhone()
	a, err := newApp(dir, app.Deps{Channel: app.ChannelConsole, Sender: ph, Logger: slog.New(slog.DiscardHandler)},
		func(c *config.Config) {
			c.ResendCooldown = time.Nanosecond
			c.RequestsPerRequesterHour, c.SendsPerMobileHour, c.SendsPerMobileDay = 1_000_000, 1_000_000, 1_000_000
			c.SendsPerPrefixHour, c.GlobalSMSPerHour = 1_000_000, 1_000_000
			if url != "" {
				c.DatabaseURL = config.NewSecret(url)
			}
		})
	if err != nil {
		return err
	}
	defer a.Stop()
	ctx := context.Background()
	raw := func() ([]time.Duration, error) {
		if url != "" {
			return rawSyncedPG(ctx, url, trips)
		}
		return rawSyncedTxns(filepath.Join(filepath.Dir(dir), "raw-txn"), trips)
	}
	r, err := flowsAndRaw(ctx, a, ph, mobiles, trips, raw)
	if err != nil {
		return err
	}
	r.PeakAnonMB, r.PeakHeapMB = stopSampling()
	r.PeakRSSMB = statusMB("VmHWM:")
	return json.NewEncoder(os.Stdout).Encode(r)
}

// benchServePG is benchServe over a throwaway PostgreSQL: the records are
// imported through the store, as `otpgate import` does, then a child
// process serves and times the flows.
func benchServePG(file, dir string, n, trips int) error {
	ctx := context.Background()
	srv, err := pgtest.StartServer(pgtest.Options{Durable: true})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := execOn(ctx, srv.URL("postgres"), "CREATE DATABASE flows"); err != nil {
		return err
	}
	url := srv.URL("flows")
	start := time.Now()
	a, err := newApp(dir, app.Deps{Channel: app.ChannelNone, Logger: slog.New(slog.DiscardHandler)},
		func(c *config.Config) { c.DatabaseURL = config.NewSecret(url) })
	if err != nil {
		return err
	}
	f, err := recordfile.Open(file, recordfile.Options{})
	if err != nil {
		_ = a.Stop()
		return err
	}
	sum, err := a.Store.Import(ctx, f.Rows)
	f.Close()
	if err := errors.Join(err, a.Stop()); err != nil {
		return err
	}
	fmt.Printf("imported %d records into PostgreSQL in %.1fs\n", sum.Added, time.Since(start).Seconds())
	var sr serveResult
	if err := runChild(&sr, "child-serve", file, filepath.Join(dir, "unused"), strconv.Itoa(trips), url); err != nil {
		return err
	}
	fmt.Printf("otpgate serve on %d records in PostgreSQL: RSS after %d warm-up flows %.0f MB; peak RSS %.0f MB\n",
		n, warmupFlows, sr.WarmRSSMB, sr.PeakRSSMB)
	fmt.Printf("whole flow (in-process, %d trips): p50 %.2f ms  p99 %.2f ms   raw committed PostgreSQL INSERT: p50 %.2f ms  p99 %.2f ms\n",
		sr.Trips, sr.FlowP50ms, sr.FlowP99ms, sr.RawP50ms, sr.RawP99ms)
	return nil
}

// flowsAndRaw runs the warm-up flows, reads the memory, times trips flows
// and then the raw baseline.
func flowsAndRaw(ctx context.Context, a *app.App, ph *phone, mobiles []pii.Mobile, trips int, raw func() ([]time.Duration, error)) (serveResult, error) {
	var r serveResult
	for i := range warmupFlows {
		if err := phoneFlow(ctx, a.OTP, a.Store, ph, fmt.Sprintf("warm:%d", i), mobiles[i]); err != nil {
			return r, fmt.Errorf("warm-up flow: %w", err)
		}
	}
	runtime.GC()
	r.WarmRSSMB, r.WarmAnonMB = statusMB("VmRSS:"), statusMB("RssAnon:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.WarmHeapMB = float64(ms.HeapInuse) / (1 << 20)
	flows := make([]time.Duration, 0, trips)
	for i := range trips {
		start := time.Now()
		if err := phoneFlow(ctx, a.OTP, a.Store, ph, fmt.Sprintf("trip:%d", i), mobiles[warmupFlows+i]); err != nil {
			return r, fmt.Errorf("flow %d: %w", i, err)
		}
		flows = append(flows, time.Since(start))
	}
	base, err := raw()
	if err != nil {
		return r, err
	}
	r.Trips = trips
	r.FlowP50ms, r.FlowP99ms = percentile(flows, 50), percentile(flows, 99)
	r.RawP50ms, r.RawP99ms = percentile(base, 50), percentile(base, 99)
	return r, nil
}

// rawSyncedPG times n INSERTs of 256 bytes into a plain table, each
// committed on its own (synchronous_commit on): the floor of a durable
// write to the database.
func rawSyncedPG(ctx context.Context, url string, n int) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS raw_txn (k text PRIMARY KEY, v bytea)"); err != nil {
		return nil, err
	}
	val := make([]byte, 256)
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if _, err := conn.Exec(ctx, "INSERT INTO raw_txn VALUES ($1, $2)", fmt.Sprintf("k%08d", i), val); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// phoneFlow is one whole beneficiary flow with the code taken from the
// phone as soon as it is sent (no polling, so the time is the program's).
func phoneFlow(ctx context.Context, svc *otp.Service, st *store.Store, ph *phone, requester string, m pii.Mobile) error {
	codes := ph.expect(m.E164())
	_, err := svc.Request(ctx, otp.Request{Requester: requester, Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: m},
		Audience: store.AudienceBeneficiary, Lang: "en"})
	if err != nil {
		return err
	}
	var code string
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		return errors.New("no code")
	}
	g, err := svc.Verify(ctx, requester, store.AudienceBeneficiary, pii.Code(code))
	if err != nil {
		return err
	}
	sums, err := st.Summaries(ctx, g.Ref())
	if err != nil {
		return err
	}
	if _, err := st.Release(ctx, g.Ref(), sums[0].Handle); err != nil {
		return err
	}
	return st.EndGrant(ctx, g.Ref())
}

// rawSyncedTxns times n raw Badger transactions of one 256-byte write each,
// each followed by a sync, with the store's options and encryption: the
// floor of any write that must survive a power cut.
func rawSyncedTxns(dir string, n int) ([]time.Duration, error) {
	opts, _ := benchOptions(dir)
	db, err := badger.Open(store.BadgerOptions(opts))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	val := make([]byte, 256)
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(fmt.Sprintf("k%08d", i)), val) })
		if err == nil {
			err = db.Sync()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

func percentile(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}

// fileMobiles returns up to k distinct mobiles of the file's records.
func fileMobiles(file string, k int) ([]pii.Mobile, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[pii.Mobile]bool{}
	var out []pii.Mobile
	for sc.Scan() && len(out) < k {
		var row struct {
			Mobile string `json:"mobile"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, err
		}
		m, err := pii.ParseMobile(row.Mobile)
		if err != nil || seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
	}
	if len(out) < k {
		return nil, fmt.Errorf("the file has %d distinct mobiles, %d needed", len(out), k)
	}
	return out, sc.Err()
}

var sixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

// phone is an otp.Sender that hands each code to whoever expects one for
// that number.
type phone struct {
	mu   sync.Mutex
	want map[string]chan string
}

func newPhone() *phone { return &phone{want: map[string]chan string{}} }

func (p *phone) expect(mobile string) <-chan string {
	c := make(chan string, 1)
	p.mu.Lock()
	p.want[mobile] = c
	p.mu.Unlock()
	return c
}

func (p *phone) Send(_ context.Context, to pii.Mobile, body string) error {
	p.mu.Lock()
	c := p.want[to.E164()]
	delete(p.want, to.E164())
	p.mu.Unlock()
	if c != nil {
		c <- sixDigits.FindString(body)
	}
	return nil
}
