package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/storetest"
)

// backupOf returns a backup of s made with the test master key.
func backupOf(t *testing.T, s *store.Store) ([]byte, store.BackupStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := s.Backup(context.Background(), &buf, storetest.TestKeys(t, 7).Backup)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != int64(buf.Len()) {
		t.Fatalf("stats say %d bytes, wrote %d", st.Bytes, buf.Len())
	}
	return buf.Bytes(), st
}

func restore(t *testing.T, b []byte, ks keys.Set, dir string, clk *storetest.Clock) (store.RestoreStats, error) {
	t.Helper()
	return store.Restore(context.Background(), bytes.NewReader(b), options(t, ks, dir, clk), ks.Backup)
}

// rawDump reads every live key of a closed store directly from Badger:
// value and expiry, whatever the version.
func rawDump(t *testing.T, ks keys.Set, dir string) map[string]string {
	t.Helper()
	db, err := badger.Open(store.BadgerOptions(store.Options{Dir: dir, EncryptionKey: ks.Storage}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().KeyCopy(nil))] = fmt.Sprintf("%x exp=%d", v, it.Item().ExpiresAt())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNothingLeft fails when dir exists or anything else was left in
// its parent (a temporary restore directory).
func assertNothingLeft(t *testing.T, dir string, allowed ...string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left behind (%v)", dir, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range ents {
		ok := false
		for _, a := range allowed {
			ok = ok || e.Name() == a
		}
		if !ok {
			t.Fatalf("left behind in %s: %s", filepath.Dir(dir), e.Name())
		}
	}
}

func TestBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	ks := storetest.TestKeys(t, 7)
	clk := storetest.NewClock()
	srcDir := filepath.Join(t.TempDir(), "src")
	s := openStore(t, srcDir, clk)
	storetest.Seed(t, s)
	tgt := storetest.Resolve(t, s, "9000000002")

	// Two wrong guesses at one code: per-code attempts 2, per-mobile count 2.
	storetest.Issue(t, s, "tg:1", tgt, "121212", clk)
	for i := 0; i < 2; i++ {
		if _, out, _ := storetest.Verify(s, "tg:1", "000000"); out != store.VerifyWrong {
			t.Fatal(out)
		}
	}
	// A consumed code, its grant, a release, a history read, a link and a
	// scheduled deletion.
	clk.Add(61 * time.Second)
	storetest.Issue(t, s, "tg:2", tgt, "343434", clk)
	g, out, _ := storetest.Verify(s, "tg:2", "343434")
	if out != store.VerifyOK {
		t.Fatal(out)
	}
	before, err := s.Release(ctx, g.Ref(), tgt.Records[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.History(ctx, g.Ref(), 10); err != nil {
		t.Fatal(err)
	}
	link, err := s.CreateLink(ctx, "tg:9", "KX42", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	del := store.Deletion{Due: clk.Now().Add(10 * time.Minute).Truncate(time.Millisecond), ChatID: 42, MessageID: 7}
	if err := s.ScheduleDeletion(ctx, del); err != nil {
		t.Fatal(err)
	}

	var auditBefore bytes.Buffer
	nAudit, err := s.ExportAudit(ctx, &auditBefore)
	if err != nil {
		t.Fatal(err)
	}
	count, _ := s.Count(ctx)
	b, bst := backupOf(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("otpgate-backup v1 created=2026-01-02T03:05:06Z key=")) {
		t.Fatalf("header: %q", b[:80])
	}
	if bytes.Contains(b, []byte("Meena Iyer")) || bytes.Contains(b, []byte("records_imported")) {
		t.Fatal("backup holds plaintext")
	}

	// Restore into an existing empty directory.
	dstDir := filepath.Join(t.TempDir(), "dst")
	if err := os.Mkdir(dstDir, 0o700); err != nil {
		t.Fatal(err)
	}
	rst, err := restore(t, b, ks, dstDir, clk)
	if err != nil {
		t.Fatal(err)
	}
	if rst.Records != int64(count) || rst.AuditEntries != nAudit || rst.Grants != 1 || rst.Challenges != 2 || rst.Counters == 0 {
		t.Fatalf("restore stats %+v; want %d records, %d audit entries, 1 grant, 2 challenges, counters", rst, count, nAudit)
	}
	if bst.Entries < rst.Keys || rst.Keys == 0 || rst.Bytes != int64(len(b)) || !rst.Created.Equal(bst.Created) {
		t.Fatalf("backup %+v, restore %+v", bst, rst)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dstDir)); len(ents) != 1 {
		t.Fatalf("restore left %d entries beside the target", len(ents))
	}

	// Every key and value came back, TTLs included.
	src, dst := rawDump(t, ks, srcDir), rawDump(t, ks, dstDir)
	if len(src) == 0 || len(src) != len(dst) {
		t.Fatalf("%d keys before, %d after", len(src), len(dst))
	}
	for k, v := range src {
		if dst[k] != v {
			t.Fatalf("key %q: %s before, %s after", k, v, dst[k])
		}
	}

	// And the restored store behaves as the original would.
	r := openStore(t, dstDir, clk)
	defer r.Close()
	var auditAfter bytes.Buffer
	if n, err := r.ExportAudit(ctx, &auditAfter); err != nil || n != nAudit || !bytes.Equal(auditBefore.Bytes(), auditAfter.Bytes()) {
		t.Fatalf("audit export differs after restore (%d entries, %v)", n, err)
	}
	if n, _ := r.Count(ctx); n != count {
		t.Fatalf("Count = %d, want %d", n, count)
	}
	after, err := r.Release(ctx, g.Ref(), tgt.Records[0])
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Fatalf("release through the restored grant: %+v %v (want %+v)", after, err, before)
	}
	if _, out, _ := storetest.Verify(r, "tg:2", "343434"); out != store.VerifyUsed {
		t.Fatalf("consumed code after restore: %v", out)
	}
	if tag, err := r.RedeemLink(ctx, link, "tg:9"); err != nil || tag != "KX42" {
		t.Fatalf("link: %v", err)
	}
	if d, _ := r.DueDeletions(ctx, del.Due, 10); len(d) != 1 || d[0].ChatID != 42 {
		t.Fatalf("deletions: %+v", d)
	}
	if h, err := r.History(ctx, g.Ref(), 10); err != nil || len(h) == 0 {
		t.Fatalf("history: %v %v", h, err)
	}
	// The per-code attempts survived: one more wrong guess kills the code.
	if _, out, _ := storetest.Verify(r, "tg:1", "000000"); out != store.VerifyWrong {
		t.Fatal(out)
	}
	if _, out, _ := storetest.Verify(r, "tg:1", "121212"); out != store.VerifyCodeDead {
		t.Fatalf("attempts after restore: %v", out)
	}
	// The per-mobile count survived: 3 wrong so far, 7 more lock it.
	for i := 0; i < 7; i++ {
		clk.Add(61 * time.Second)
		req := "tg:x" + string(rune('a'+i))
		storetest.Issue(t, r, req, tgt, "1", clk)
		if _, out, _ := storetest.Verify(r, req, "0"); out != store.VerifyWrong {
			t.Fatal(out)
		}
	}
	clk.Add(61 * time.Second)
	if _, out, _ := r.Issue(ctx, store.IssueParams{Challenge: store.Challenge{Requester: "tg:y", Purpose: "beneficiary",
		MobileKey: tgt.MobileKey, MAC: []byte("1"), ExpiresAt: clk.Now().Add(time.Minute), MaxAttempts: 3},
		MobileWrong: storetest.Limits.Mobile, RequesterWrong: storetest.Limits.Requester}); out != store.IssueMobileLocked {
		t.Fatalf("mobile count after restore: %v", out)
	}
	if _, err := r.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreWithAnotherKey(t *testing.T) {
	s, clk := newStore(t)
	storetest.Seed(t, s)
	b, _ := backupOf(t, s)
	dir := filepath.Join(t.TempDir(), "data")
	_, err := restore(t, b, storetest.TestKeys(t, 8), dir, clk)
	if !errors.Is(err, store.ErrBackupKey) || !strings.Contains(err.Error(), "this backup was made with another master key") {
		t.Fatalf("restore with another key: %v", err)
	}
	assertNothingLeft(t, dir)
}

func TestRestoreRefusesDamage(t *testing.T) {
	s, clk := newStore(t)
	// Enough data for several 64 KiB age chunks, so damage near the end is
	// found while loading, after the temporary directory exists.
	var rs []store.ImportRow
	for i := 0; i < 600; i++ {
		rs = append(rs, storetest.Rec(t, fmt.Sprintf("3%013d", i), "Person Number "+strings.Repeat("x", 100), fmt.Sprintf("98%08d", i), fmt.Sprintf("4%011d", i)))
	}
	if _, err := s.Import(context.Background(), storetest.Rows(rs...)); err != nil {
		t.Fatal(err)
	}
	b, _ := backupOf(t, s)
	if len(b) < 3*64<<10 {
		t.Fatalf("backup is only %d bytes", len(b))
	}
	line := bytes.IndexByte(b, '\n') + 1
	ageHdr := bytes.Index(b, []byte("\n--- ")) + 1
	ageHdrEnd := ageHdr + bytes.IndexByte(b[ageHdr:], '\n') + 1

	type damage struct {
		name string
		b    []byte
	}
	flip := func(i int) damage {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return damage{fmt.Sprintf("flip byte %d", i), c}
	}
	var cases []damage
	for i := 0; i < line; i++ { // our header line
		cases = append(cases, flip(i))
	}
	for i := line; i < ageHdrEnd; i += 3 { // age's header: stanza, salt, work factor, MAC
		cases = append(cases, flip(i))
	}
	for _, i := range []int{ageHdrEnd, ageHdrEnd + 15, ageHdrEnd + 16, ageHdrEnd + 100, len(b) / 2, len(b) - 64<<10, len(b) - 17, len(b) - 1} {
		cases = append(cases, flip(i)) // nonce, first chunk, a middle chunk, the tag of the last
	}
	for _, n := range []int{0, 10, line - 1, line, ageHdrEnd, ageHdrEnd + 16, len(b) / 2, len(b) - 64<<10 - 17, len(b) - 1} {
		cases = append(cases, damage{fmt.Sprintf("truncated to %d", n), b[:n]})
	}
	cases = append(cases, damage{"trailing byte", append(bytes.Clone(b), 0)})

	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	ks := storetest.TestKeys(t, 7)
	for _, c := range cases {
		_, err := restore(t, c.b, ks, dir, clk)
		if !errors.Is(err, store.ErrBackupCorrupt) && !errors.Is(err, store.ErrNotBackup) {
			t.Fatalf("%s: err = %v, want ErrBackupCorrupt or ErrNotBackup", c.name, err)
		}
		assertNothingLeft(t, dir)
	}
	// The undamaged file restores, as a control.
	if _, err := restore(t, b, ks, dir, clk); err != nil {
		t.Fatalf("control: %v", err)
	}
}

func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	s, clk := newStore(t)
	storetest.Seed(t, s)
	b, _ := backupOf(t, s)
	ks := storetest.TestKeys(t, 7)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restore(t, b, ks, dir, clk); !errors.Is(err, store.ErrRestoreTarget) {
		t.Fatalf("non-empty dir: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("target changed: %d entries", len(ents))
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Fatalf("restore left %d entries beside the target", len(ents))
	}
	if _, err := restore(t, b, ks, filepath.Join(dir, "keep"), clk); !errors.Is(err, store.ErrRestoreTarget) {
		t.Fatalf("file as target: %v", err)
	}
	if _, err := store.Restore(context.Background(), strings.NewReader("PK\x03\x04 a zip file\n"), options(t, ks, filepath.Join(dir, "new"), clk), ks.Backup); !errors.Is(err, store.ErrNotBackup) {
		t.Fatalf("not a backup: %v", err)
	}
}

// TestBackupWhileWriting takes backups while audit entries, imports and
// code checks are being written: each backup is one consistent snapshot,
// so its audit chain verifies.
func TestBackupWhileWriting(t *testing.T) {
	s, clk := newStore(t)
	storetest.Seed(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := 0; w < 3; w++ {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var err error
				switch w {
				case 0:
					err = s.Audit(ctx, store.AuditEntry{Event: store.EventSessionEnded, Requester: fmt.Sprintf("tg:%d", i)})
				case 1:
					_, err = s.Import(ctx, storetest.Rows(storetest.Rec(t, fmt.Sprintf("5%013d", i), "Writer", fmt.Sprintf("97%08d", i), fmt.Sprintf("6%011d", i))))
				case 2:
					_, _, err = storetest.Verify(s, fmt.Sprintf("tg:v%d", i), "000000")
				}
				if err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		})
	}
	var last uint64
	for i := 0; i < 3; i++ {
		for n := writes.Load(); writes.Load() < n+20; {
			time.Sleep(time.Millisecond) // let the writers get ahead
		}
		b, _ := backupOf(t, s)
		dir := filepath.Join(t.TempDir(), "data")
		st, err := restore(t, b, storetest.TestKeys(t, 7), dir, clk)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("backup %d: %v", i, err)
		}
		if st.AuditEntries <= last {
			t.Errorf("backup %d has %d audit entries, the one before had %d", i, st.AuditEntries, last)
		}
		last = st.AuditEntries
	}
	cancel()
	wg.Wait()
}

func TestBackupStopsWithContext(t *testing.T) {
	s, _ := newStore(t)
	storetest.Seed(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Backup(ctx, &bytes.Buffer{}, storetest.TestKeys(t, 7).Backup); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v", err)
	}
	if _, err := s.Backup(context.Background(), &bytes.Buffer{}, []byte("short")); !errors.Is(err, store.ErrBadOptions) {
		t.Fatalf("short key: %v", err)
	}
}
