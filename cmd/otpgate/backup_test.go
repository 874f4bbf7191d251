package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

const backupRows = `{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210","id_type":"aadhaar","id_number":"234123412341"}
{"reference_id":"12345678901235","name":"Vikram Verma","birth_year":1985,"gender":"M","mobile":"9876543210","id_type":"pan","id_number":"ABCDE1234F"}
`

// backupFixture imports two records into a new data directory and
// returns the master key, the environment pointing at it, and the audit
// export.
func backupFixture(t *testing.T) (master []byte, key, data string, audit string) {
	t.Helper()
	dir := t.TempDir()
	master = bytes.Repeat([]byte{9}, 32)
	key = "OTPGATE_MASTER_KEY=" + hex.EncodeToString(master)
	data = "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data")
	file := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(file, []byte(backupRows), 0o600); err != nil {
		t.Fatal(err)
	}
	e, _, errb := testEnv(key, data)
	if rc := run(context.Background(), []string{"import", file}, e); rc != 0 {
		t.Fatalf("import: %s", errb)
	}
	return master, key, data, auditExport(t, key, data)
}

func auditExport(t *testing.T, env ...string) string {
	t.Helper()
	e, out, errb := testEnv(env...)
	if rc := run(context.Background(), []string{"audit", "export"}, e); rc != 0 || out.String() == "" {
		t.Fatalf("audit export: %d %s", rc, errb)
	}
	return out.String()
}

func TestBackupAndRestoreCommands(t *testing.T) {
	ctx := context.Background()
	_, key, data, auditBefore := backupFixture(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "b.age")

	e, out, errb := testEnv(key, data)
	if rc := run(ctx, []string{"backup", "-o", file}, e); rc != 0 {
		t.Fatalf("backup: exit %d: %s", rc, errb)
	}
	if !regexp.MustCompile(`^backup written to .*b\.age: [\d.]+ [KM]?i?B, \d+ entries, in \d`).MatchString(out.String()) {
		t.Fatalf("backup output: %q", out)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}
	orig, _ := os.ReadFile(file)

	// Never overwrites.
	e, _, errb = testEnv(key, data)
	if rc := run(ctx, []string{"backup", "-o", file}, e); rc != 1 || !strings.Contains(errb.String(), "refusing to overwrite") {
		t.Fatalf("overwrite: exit %d: %s", rc, errb)
	}
	if now, _ := os.ReadFile(file); !bytes.Equal(now, orig) {
		t.Fatal("the existing backup was changed")
	}

	// Restore into a new directory: same records, same audit chain.
	data2 := "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data2")
	e, out, errb = testEnv(key, data2)
	if rc := run(ctx, []string{"restore", file}, e); rc != 0 {
		t.Fatalf("restore: exit %d: %s", rc, errb)
	}
	n := strings.Count(auditBefore, "\n")
	for _, want := range []string{"2 records", "audit chain intact: " + strconv.Itoa(n) + " entries\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("restore output lacks %q:\n%s", want, out)
		}
	}
	if got := auditExport(t, key, data2); got != auditBefore {
		t.Fatalf("audit export after restore differs:\n%s\nwant:\n%s", got, auditBefore)
	}

	// Not into a directory that holds data.
	e, _, errb = testEnv(key, data2)
	if rc := run(ctx, []string{"restore", file}, e); rc != 1 || !strings.Contains(errb.String(), "is not empty") {
		t.Fatalf("restore over data: exit %d: %s", rc, errb)
	}

	// Not with another master key, and nothing is left behind.
	data3 := filepath.Join(dir, "data3")
	e, _, errb = testEnv("OTPGATE_MASTER_KEY="+hex.EncodeToString(bytes.Repeat([]byte{3}, 32)), "OTPGATE_DATA_DIR="+data3)
	if rc := run(ctx, []string{"restore", file}, e); rc != 1 || !strings.Contains(errb.String(), "this backup was made with another master key") {
		t.Fatalf("restore with another key: exit %d: %s", rc, errb)
	}
	if _, err := os.Stat(data3); !os.IsNotExist(err) {
		t.Fatalf("%s exists after a refused restore", data3)
	}

	// A damaged file is refused.
	damaged := filepath.Join(dir, "damaged.age")
	bad := bytes.Clone(orig)
	bad[len(bad)-20] ^= 0x80
	os.WriteFile(damaged, bad, 0o600)
	e, _, errb = testEnv(key, "OTPGATE_DATA_DIR="+data3)
	if rc := run(ctx, []string{"restore", damaged}, e); rc != 1 || !strings.Contains(errb.String(), "damaged or was altered") {
		t.Fatalf("damaged restore: exit %d: %s", rc, errb)
	}
}

func TestBackupDefaultName(t *testing.T) {
	_, key, data, _ := backupFixture(t)
	dir := t.TempDir()
	t.Chdir(dir)
	e, _, errb := testEnv(key, data)
	if rc := run(context.Background(), []string{"backup"}, e); rc != 0 {
		t.Fatalf("backup: %s", errb)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || !regexp.MustCompile(`^otpgate-backup-\d{8}T\d{6}Z\.age$`).MatchString(ents[0].Name()) {
		t.Fatalf("files: %v", ents)
	}
}

// TestBackupWhileServing holds the data directory as serve would: backup
// explains the two ways out, and with OTPGATE_OPS_LISTEN fetches the backup
// from the running process.
func TestBackupWhileServing(t *testing.T) {
	ctx := context.Background()
	master, key, data, auditBefore := backupFixture(t)
	ks, _ := keys.Derive(master)
	st, err := store.Open(store.Options{Dir: strings.TrimPrefix(data, "OTPGATE_DATA_DIR="),
		EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "live.age")

	e, _, errb := testEnv(key, data)
	if rc := run(ctx, []string{"backup", "-o", file}, e); rc != 1 ||
		!strings.Contains(errb.String(), "OTPGATE_OPS_LISTEN") || !strings.Contains(errb.String(), "stop serve") {
		t.Fatalf("locked, no ops address: exit %d: %s", rc, errb)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}

	srv := httptest.NewServer(app.BackupHandler(st, ks, nil))
	defer srv.Close()
	e, out, errb := testEnv(key, data, "OTPGATE_OPS_LISTEN="+strings.TrimPrefix(srv.URL, "http://"))
	if rc := run(ctx, []string{"backup", "-o", file}, e); rc != 0 {
		t.Fatalf("live backup: exit %d: %s", rc, errb)
	}
	if !strings.Contains(errb.String(), "fetching the backup from it") || !strings.Contains(out.String(), "backup written to") {
		t.Fatalf("live backup output:\n%s\n%s", out, errb)
	}

	data2 := "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data2")
	e, _, errb = testEnv(key, data2)
	if rc := run(ctx, []string{"restore", file}, e); rc != 0 {
		t.Fatalf("restore: %s", errb)
	}
	if got := auditExport(t, key, data2); got != auditBefore {
		t.Fatal("audit export after a live backup differs")
	}

	// Another master key: the running process refuses the token.
	other := "OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{4}, 32))
	e, _, errb = testEnv(other, data, "OTPGATE_OPS_LISTEN="+strings.TrimPrefix(srv.URL, "http://"))
	if rc := run(ctx, []string{"backup", "-o", filepath.Join(dir, "other.age")}, e); rc != 1 || !strings.Contains(errb.String(), "another OTPGATE_MASTER_KEY") {
		t.Fatalf("another key, live: exit %d: %s", rc, errb)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.age.partial")); !os.IsNotExist(err) {
		t.Fatal("partial file left after a refused live backup")
	}
}

func TestBackupUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		rc   int
	}{
		{[]string{"backup", "extra"}, exitUsage},
		{[]string{"restore"}, exitUsage},
		{[]string{"restore", "a", "b"}, exitUsage},
		{[]string{"backup", "-h"}, 0},
		{[]string{"restore", "-h"}, 0},
	} {
		e, _, errb := testEnv()
		if rc := run(context.Background(), c.args, e); rc != c.rc {
			t.Errorf("%v: exit %d, want %d: %s", c.args, rc, c.rc, errb)
		}
	}
	e, _, errb := testEnv()
	if rc := run(context.Background(), []string{"backup"}, e); rc != 1 || !strings.Contains(errb.String(), "OTPGATE_MASTER_KEY") {
		t.Fatalf("backup without a key: exit %d: %s", rc, errb)
	}
}

func TestBackupToStandardOutput(t *testing.T) {
	dir := t.TempDir()
	key := "OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{6}, 32))
	file := filepath.Join(dir, "in.jsonl")
	os.WriteFile(file, []byte(`{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210"}`+"\n"), 0o600)
	e, _, errb := testEnv(key, "OTPGATE_DATA_DIR="+filepath.Join(dir, "data"))
	if rc := run(context.Background(), []string{"import", file}, e); rc != 0 {
		t.Fatalf("import: %s", errb)
	}
	e, out, errb := testEnv(key, "OTPGATE_DATA_DIR="+filepath.Join(dir, "data"))
	if rc := run(context.Background(), []string{"backup", "-o", "-"}, e); rc != 0 {
		t.Fatalf("backup -o -: %s", errb)
	}
	backup := filepath.Join(dir, "b.age")
	os.WriteFile(backup, []byte(out.String()), 0o600)
	e, out, errb = testEnv(key, "OTPGATE_DATA_DIR="+filepath.Join(dir, "restored"))
	if rc := run(context.Background(), []string{"restore", backup}, e); rc != 0 || !strings.Contains(out.String(), "audit chain intact") {
		t.Fatalf("restore of a backup from standard output: %s %s", out, errb)
	}
}
