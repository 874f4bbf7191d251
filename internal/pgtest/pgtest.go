// Package pgtest starts a real, throwaway PostgreSQL 15 server for tests:
// the installed Debian binaries (/usr/lib/postgresql/15/bin), a fresh
// cluster in a temporary directory, a private Unix socket and no TCP port.
// No mock, no container, no download.
//
// One server per test binary and one database per test keep tests isolated
// and fast:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) } // in one test file of the package
//
//	func TestX(t *testing.T) {
//		url := pgtest.Shared(t).NewDatabase(t)
//		conn, err := pgx.Connect(ctx, url)
//		…
//	}
//
// Crash tests start a server of their own with Start and use Kill, Stop and
// Restart on it (never on the shared one, which other tests are using); a
// package that only uses Start needs no TestMain. A Start costs about a
// second (initdb); NewDatabase a fraction of one.
//
// The cluster and socket directories are made under os.TempDir() ($TMPDIR),
// and removed by the cleanups; a test binary killed outright leaves them
// behind (pgtest-data-*, pgtest-sock-*), but not its server.
//
// When the tests run as root (as in CI), initdb and postgres run as the
// postgres OS user, which the postgresql-15 package creates. The server is
// the test binary's child process with a parent-death signal, so a test
// binary that crashes or is killed never leaves a server behind.
//
// Outside a test (the bench command), StartServer starts a server and
// Close stops it; Options choose PostgreSQL's own durable settings instead
// of the tests' fsync=off.
//
// This package is for tests and benchmarks only: _test.go files and bench
// import it, production code never (internal/layout checks that the shipped
// binary does not link it).
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir holds the PostgreSQL 15 binaries of the Debian package postgresql-15.
const BinDir = "/usr/lib/postgresql/15/bin"

const (
	startTimeout = 60 * time.Second // includes crash recovery after Kill
	stopTimeout  = 30 * time.Second // fast shutdown before falling back to SIGKILL
	logName      = "pgtest.log"     // the server's output, in the cluster directory
)

// Server is one PostgreSQL server: a cluster directory, a socket directory
// and, while it runs, the postmaster as a child process of the test binary.
type Server struct {
	dir, sockDir string
	cred         *syscall.Credential // nil unless running as root
	opts         Options

	mu   sync.Mutex
	cmd  *exec.Cmd     // the running postmaster, nil when stopped
	done chan struct{} // closed when cmd has been waited for
	last int           // pid of the last postmaster, kept after it exits

	dbSeq atomic.Int64
}

// Start initializes a fresh cluster, starts a server on it (the tests'
// settings: Options{}) and waits until it accepts connections. A cleanup
// stops the server and removes its directories. It fails the test if
// PostgreSQL 15 is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartServer(Options{})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// Options configure StartServer.
type Options struct {
	// Durable runs the server with PostgreSQL's own settings for
	// durability and memory (fsync=on, full_page_writes=on, the default
	// shared_buffers) instead of the tests' fsync=off,
	// full_page_writes=off and shared_buffers=64MB, which lose committed
	// work in a power cut and make a throughput figure meaningless.
	// synchronous_commit is on either way.
	Durable bool
	// Settings are further server settings, "name=value" each, passed to
	// postgres as -c after the ones above (a later one wins).
	Settings []string
}

// args are the postgres settings of o, as -c arguments.
func (o Options) args() []string {
	set := []string{
		"listen_addresses=", // no TCP: nothing to collide with
		"synchronous_commit=on", "max_connections=200",
	}
	if o.Durable {
		set = append(set, "fsync=on", "full_page_writes=on")
	} else {
		set = append(set, "fsync=off", "full_page_writes=off", "shared_buffers=64MB")
	}
	set = append(set, o.Settings...)
	var args []string
	for _, kv := range set {
		args = append(args, "-c", kv)
	}
	return args
}

// StartServer is Start outside a test (the bench command): it initializes
// a fresh cluster, starts a server on it with o's settings and waits until
// it accepts connections. The caller must Close it; if the process dies
// first, the server is killed with it (a parent-death signal) but its
// directories stay behind. On error nothing is left behind.
func StartServer(o Options) (*Server, error) {
	s, err := start(o)
	if err != nil {
		if s != nil {
			s.Close()
		}
		return nil, err
	}
	return s, nil
}

// start initializes the cluster and starts the server. On failure after
// the directories exist it returns the server too, so that the caller can
// remove them.
func start(o Options) (*Server, error) {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, b)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 is not installed (%s/%s: %v); install it: apt-get install postgresql-15", BinDir, b, errors.Unwrap(err))
		}
	}
	s := &Server{opts: o}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the server must run as the postgres OS user, and there is none (%v); install postgresql-15 (apt-get install postgresql-15), which creates it", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: it sits under directories (0700, root) that the
	// postgres user cannot enter.
	var err error
	if s.dir, err = s.mkdir("pgtest-data-"); err != nil {
		return nil, err
	}
	if s.sockDir, err = s.mkdir("pgtest-sock-"); err != nil {
		s.removeDirs()
		return nil, err
	}
	initdb := s.command(filepath.Join(BinDir, "initdb"), "-D", s.dir, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return s, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return s, s.run()
}

// mkdir makes a 0700 directory under os.TempDir(), owned by the server's
// user.
func (s *Server) mkdir(prefix string) (string, error) {
	d, err := os.MkdirTemp(os.TempDir(), prefix)
	if err != nil {
		return "", err
	}
	// Resolved, as /proc/PID/cwd shows it (see processes).
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	if s.cred != nil {
		if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.Remove(d)
			return "", err
		}
	}
	return d, nil
}

// command runs name as the server's user, in the cluster directory (the
// test's working directory may be closed to that user), killed when the
// test binary dies. (Linux sends the parent-death signal when the OS thread
// that started the child ends; Go ends a thread only when a goroutine that
// locked it returns without unlocking, so do not call Start or Restart from
// such a goroutine.)
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run starts the postmaster on the existing cluster and waits until it
// accepts connections.
func (s *Server) run() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server is already running")
	}
	if err := s.removeStaleLocks(); err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, logName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	if s.cred != nil {
		// The server's user reads every file of its cluster (pg_basebackup).
		if err := logf.Chown(int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	logStart, _ := logf.Seek(0, 2)
	cmd := s.command(filepath.Join(BinDir, "postgres"), append([]string{"-D", s.dir, "-k", s.sockDir}, s.opts.args()...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done, s.last = cmd, done, cmd.Process.Pid

	fail := func(format string, args ...any) error {
		return fmt.Errorf(format+"\nserver log (%s):\n%s", append(args, logPath, tail(logPath, logStart))...)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		// Connecting fails while the server starts up or recovers from a
		// crash ("the database system is starting up").
		err := ping(s.URL("postgres"))
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fail("postgres exited during startup: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			s.cmd = nil
			return fail("postgres did not accept connections within %v: %v", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// tail returns the end of the log written since offset from.
func tail(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if from <= int64(len(b)) {
		b = b[from:]
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
		b = append([]byte("…\n"), b...)
	}
	return string(b)
}

// removeStaleLocks removes the lock files (postmaster.pid, and the socket's
// .lock) of a postmaster that is gone: the last one this Server ran, or any
// process that no longer exists. Called with s.mu held and no server
// running.
func (s *Server) removeStaleLocks() error {
	for _, f := range []string{filepath.Join(s.dir, "postmaster.pid"), filepath.Join(s.sockDir, ".s.PGSQL.5432.lock")} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil {
			continue // not ours to judge: postgres will complain
		}
		if pid == s.last || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// URL is a connection URL (for pgx and libpq) for database db over the
// server's Unix socket, as user postgres (trust authentication).
func (s *Server) URL(db string) string {
	host := strings.ReplaceAll(url.QueryEscape(s.sockDir), "%2F", "/")
	return "postgres://postgres@/" + url.PathEscape(db) + "?host=" + host + "&sslmode=disable"
}

// NewDatabase creates a database with a name of its own and returns its URL.
// A cleanup drops it (WITH (FORCE): open connections do not keep it).
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := s.dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if s.Pid() == 0 {
			return // stopped by the test; its cluster goes with the server
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// dbName is "t<seq>_<test name>", lower case letters, digits and
// underscores, at most 63 bytes (PostgreSQL's identifier limit).
func (s *Server) dbName(test string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", s.dbSeq.Add(1))
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Dir is the cluster (data) directory. The server's log is the file
// pgtest.log in it.
func (s *Server) Dir() string { return s.dir }

// SocketDir is the directory of the server's Unix socket.
func (s *Server) SocketDir() string { return s.sockDir }

// LogFile is the path of the server's log (every start appends to it).
func (s *Server) LogFile() string { return filepath.Join(s.dir, logName) }

// Pid is the postmaster's process ID, or 0 when the server is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0 // exited on its own
	default:
		return s.cmd.Process.Pid
	}
}

// Kill crashes the server: SIGKILL to the postmaster. It returns once the
// postmaster has exited, its orphaned backends (which exit on their own when
// the postmaster dies) are gone too and the socket no longer accepts
// connections. Restart then runs crash recovery. Killing a stopped server
// does nothing.
func (s *Server) Kill() error {
	return s.halt(syscall.SIGKILL)
}

// Stop shuts the server down (fast shutdown: SIGINT; open sessions are
// disconnected, committed work is checkpointed) and waits for it. After
// stopTimeout it falls back to SIGKILL. Stopping a stopped server does
// nothing.
func (s *Server) Stop() error {
	return s.halt(syscall.SIGINT)
}

func (s *Server) halt(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	var err error
	select {
	case <-done:
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("postgres did not stop within %v of %v; killed it", stopTimeout, sig)
	}
	s.cmd = nil
	if werr := s.waitGone(); werr != nil {
		return werr
	}
	return err
}

// waitGone waits until no process of the cluster is left (postgres
// processes run in the cluster directory, so /proc/PID/cwd names it) and the
// socket refuses connections. A restart while orphaned backends still hold
// the old shared memory would fail.
func (s *Server) waitGone() error {
	deadline := time.Now().Add(stopTimeout)
	for {
		left := s.processes()
		err := ping(s.URL("postgres"))
		if len(left) == 0 && err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of the cluster still running %v after the postmaster exited (socket accepts: %v)", left, err == nil)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processes lists the processes whose working directory is the cluster
// directory.
func (s *Server) processes() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == s.dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Restart starts the server again on the same cluster and socket, and waits
// until it accepts connections; after Kill that includes crash recovery. A
// running server is stopped (fast) first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
	if err := s.run(); err != nil {
		t.Fatalf("pgtest: restart: %v", err)
	}
}

// Close stops the server (fast shutdown) and removes its directories.
// Start's cleanup calls it; after StartServer the caller does.
func (s *Server) Close() error {
	err := s.Stop()
	s.removeDirs()
	return err
}

func (s *Server) removeDirs() {
	for _, d := range []string{s.dir, s.sockDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
}

var shared struct {
	once    sync.Once
	srv     *Server
	err     error
	mainRan atomic.Bool
}

// Shared returns the test process's one shared server, started on first use.
// If it fails to start, every caller fails with the same message. The
// package's TestMain must be Main, which stops the server once the tests
// have run:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Tests share the server, not databases: each takes its own with
// NewDatabase. Do not Kill, Stop or Restart the shared server.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !shared.mainRan.Load() {
		t.Fatal("pgtest: Shared needs the package's TestMain to be pgtest.Main: func TestMain(m *testing.M) { pgtest.Main(m) }")
	}
	shared.once.Do(func() {
		shared.srv, shared.err = StartServer(Options{})
	})
	if shared.err != nil {
		t.Fatalf("pgtest: shared server: %v", shared.err)
	}
	return shared.srv
}

// Main is a TestMain: it runs the tests, then stops the shared server (if
// one was started) and removes its directories.
func Main(m *testing.M) {
	shared.mainRan.Store(true)
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping the shared server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}
