package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpgate/otpgate/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestDatabasesAreIsolated: two databases of the shared server do not see
// each other's tables, and each is dropped when its test ends.
func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	var names []string
	t.Run("two", func(t *testing.T) {
		urlA, urlB := srv.NewDatabase(t), srv.NewDatabase(t)
		if urlA == urlB {
			t.Fatalf("the same database twice: %s", urlA)
		}
		a, b := connect(t, urlA), connect(t, urlB)
		mustExec(t, a, "CREATE TABLE items (v text)")
		mustExec(t, a, "INSERT INTO items VALUES ('only in a')")
		if n := count(t, a, "SELECT count(*) FROM items"); n != 1 {
			t.Fatalf("a has %d rows, want 1", n)
		}
		if n := count(t, b, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'items'"); n != 0 {
			t.Fatalf("b sees a's table")
		}
		mustExec(t, b, "CREATE TABLE items (v text)") // no clash
		if n := count(t, b, "SELECT count(*) FROM items"); n != 0 {
			t.Fatalf("b has %d rows, want 0", n)
		}
		for _, c := range []*pgx.Conn{a, b} {
			names = append(names, c.Config().Database)
		}
	})
	// The subtest's cleanups dropped both, although its connections were
	// still open when the drop ran (WITH (FORCE)).
	admin := connect(t, srv.URL("postgres"))
	if n := count(t, admin, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names); n != 0 {
		t.Fatalf("%d of %v still exist after their test", n, names)
	}
}

// TestKillRestart: a committed row survives SIGKILL of the postmaster and
// crash recovery; an uncommitted one does not.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	conn := connect(t, url)
	mustExec(t, conn, "CREATE TABLE items (v text)")
	mustExec(t, conn, "INSERT INTO items VALUES ('committed')")
	open := connect(t, url)
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO items VALUES ('uncommitted')"); err != nil {
		t.Fatal(err)
	}

	pid := srv.Pid()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if srv.Pid() != 0 {
		t.Fatalf("Pid after Kill = %d, want 0", srv.Pid())
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postmaster %d still alive after Kill", pid)
	}
	if c, err := pgx.Connect(ctx, url); err == nil {
		c.Close(ctx)
		t.Fatal("the killed server accepts connections")
	}
	if _, err := os.Stat(srv.Dir() + "/postmaster.pid"); err != nil {
		t.Fatalf("no stale postmaster.pid after SIGKILL (so this is not a crash): %v", err)
	}

	srv.Restart(t)
	if srv.Pid() == 0 || srv.Pid() == pid {
		t.Fatalf("Pid after Restart = %d (before: %d)", srv.Pid(), pid)
	}
	conn = connect(t, url)
	var got []string
	rows, err := conn.Query(ctx, "SELECT v FROM items")
	if err != nil {
		t.Fatal(err)
	}
	got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "committed" {
		t.Fatalf("rows after crash recovery = %q, want [committed]", got)
	}
	log, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "automatic recovery in progress") {
		t.Fatalf("no crash recovery in the log:\n%s", log)
	}
}

// TestStopRestart: a fast shutdown, then a start on the same cluster; a
// restart of a running server; a start that fails.
func TestStopRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	conn := connect(t, url)
	mustExec(t, conn, "CREATE TABLE items (v text)")
	mustExec(t, conn, "INSERT INTO items VALUES ('x')")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if srv.Pid() != 0 {
		t.Fatalf("Pid after Stop = %d", srv.Pid())
	}
	if err := srv.Stop(); err != nil { // stopping twice is harmless
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Dir() + "/postmaster.pid"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid after a clean shutdown: %v", err)
	}
	srv.Restart(t)
	if n := count(t, connect(t, url), "SELECT count(*) FROM items"); n != 1 {
		t.Fatalf("%d rows after restart, want 1", n)
	}
	// Restart of a running server stops it first.
	pid := srv.Pid()
	srv.Restart(t)
	if srv.Pid() == pid {
		t.Fatal("Restart of a running server kept the old postmaster")
	}
	if n := count(t, connect(t, url), "SELECT count(*) FROM items"); n != 1 {
		t.Fatalf("%d rows after the second restart, want 1", n)
	}
	// A start that fails carries the server's own words.
	t.Run("failed start shows the log", func(t *testing.T) {
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(srv.Dir(), "postgresql.auto.conf")
		good, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, append(slices.Clip(good), "shared_buffers = 'lots'\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		ft := &fatalTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); srv.Restart(ft) }()
		<-done
		if !strings.Contains(ft.msg, "postgres exited during startup") || !strings.Contains(ft.msg, `invalid value for parameter "shared_buffers"`) {
			t.Fatalf("failure message without the server log's reason:\n%s", ft.msg)
		}
		if srv.Pid() != 0 {
			t.Fatalf("Pid after a failed start = %d", srv.Pid())
		}
		if err := os.WriteFile(conf, good, 0o600); err != nil {
			t.Fatal(err)
		}
		srv.Restart(t)
	})
}

// TestShared: one server per test process.
func TestShared(t *testing.T) {
	a, b := pgtest.Shared(t), pgtest.Shared(t)
	if a != b || a.Pid() == 0 {
		t.Fatalf("Shared: %p (pid %d), then %p", a, a.Pid(), b)
	}
	if !strings.HasPrefix(a.URL("x"), "postgres://postgres@/x?host="+a.SocketDir()+"&") {
		t.Fatalf("URL = %s", a.URL("x"))
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing's does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestStartServer: outside a test, a durable server with extra settings,
// and Close stops it and leaves nothing behind.
func TestStartServer(t *testing.T) {
	t.Parallel()
	srv, err := pgtest.StartServer(pgtest.Options{Durable: true, Settings: []string{"work_mem=7MB"}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.Close()
		}
	})
	conn := connect(t, srv.URL("postgres"))
	for name, want := range map[string]string{"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on", "work_mem": "7MB", "shared_buffers": "128MB"} {
		var got string
		if err := conn.QueryRow(context.Background(), "SHOW "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	conn.Close(context.Background())
	pid, dir, sock := srv.Pid(), srv.Dir(), srv.SocketDir()
	closed = true
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postmaster %d still alive after Close", pid)
	}
	for _, d := range []string{dir, sock} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Close: %v", d, err)
		}
	}
}

// TestTestSettings: Shared (and Start) run the tests' fast, non-durable settings.
func TestTestSettings(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.Shared(t).URL("postgres"))
	for name, want := range map[string]string{"fsync": "off", "full_page_writes": "off", "synchronous_commit": "on", "shared_buffers": "64MB", "listen_addresses": ""} {
		var got string
		if err := conn.QueryRow(context.Background(), "SHOW "+name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}
