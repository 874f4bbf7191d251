package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

// syncBuffer collects output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testEnv(extra ...string) (env, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	return env{stdin: strings.NewReader(""), stdout: out, stderr: errb, environ: extra}, out, errb
}

var smsCode = regexp.MustCompile(`SMS to \+91\*+(\d{4}): (\d{6}) `)

// TestDemoReleasesOnlyAfterTheCode chats with the demo as a person would:
// it reads the code off the "phone" line and types it back.
func TestDemoReleasesOnlyAfterTheCode(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	e := env{stdin: inR, stdout: outW, stderr: io.Discard}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), []string{"demo"}, e); outW.Close() }()

	lines := make(chan string, 1000)
	var transcript syncBuffer
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			transcript.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitFor := func(re *regexp.Regexp) []string {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("demo ended before %v:\n%s", re, transcript.String())
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("no %v in:\n%s", re, transcript.String())
			}
		}
	}
	say := func(s string) { t.Helper(); io.WriteString(inW, s+"\n") }

	waitFor(regexp.MustCompile(`Registered mobiles to try`))
	say("/lookup 9876543210") // not registered: the same answer, no SMS
	waitFor(regexp.MustCompile(`If this number is registered`))
	say("/lookup 9000000002")
	waitFor(regexp.MustCompile(`If this number is registered`))
	sms := waitFor(smsCode)
	if sms[1] != "0002" {
		t.Fatalf("SMS went to …%s, want the registered mobile …0002", sms[1])
	}
	code := sms[2]
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	say(wrong)
	waitFor(regexp.MustCompile(`That code didn't work`))
	say("/lookup 9000000002") // within the cooldown: same answer, no new SMS, the first code still stands
	waitFor(regexp.MustCompile(`If this number is registered`))
	say(code)
	waitFor(regexp.MustCompile(`Choose a beneficiary`))
	waitFor(regexp.MustCompile(`\[2\] `))
	say("2")
	waitFor(regexp.MustCompile(`^bot> Name: `))
	waitFor(regexp.MustCompile(`Reference ID: \d{14}`))
	inW.Close()
	if rc := <-done; rc != 0 {
		t.Fatalf("demo exit %d:\n%s", rc, transcript.String())
	}
	for range lines {
	}
	tr := transcript.String()
	if n := len(smsCode.FindAllString(tr, -1)); n != 1 {
		t.Fatalf("%d SMS sent, want 1 (unknown number and cooldown send none):\n%s", n, tr)
	}
	// Nothing about the record appeared before the code was typed.
	before, _, _ := strings.Cut(tr, "Choose a beneficiary")
	if strings.Contains(before, "Name:") || strings.Contains(before, "Reference ID") {
		t.Fatalf("record fields before the code:\n%s", tr)
	}
}

func TestDemoWithOwnRecordsAndBadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "r.csv")
	os.WriteFile(good, []byte("reference_id,name,birth_year,gender,mobile,id_type,id_number,dose1_vaccine,dose1_date,dose1_center\n"+
		"77770000000001,Test Person,1990,F,9111111111,pan,ABCDE1234F,COVAXIN,2021-06-01,CHC Test\n"), 0o600)
	e, out, _ := testEnv()
	e.stdin = strings.NewReader("/lookup 9111111111\n")
	if rc := run(context.Background(), []string{"demo", "-records", good}, e); rc != 0 {
		t.Fatalf("exit %d: %s", rc, out)
	}
	if !strings.Contains(out.String(), "SMS to +91******1111") {
		t.Fatalf("no SMS for the file's record:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"reference_id":"1","name":"X"}`+"\n"), 0o600)
	e, out, errb := testEnv()
	if rc := run(context.Background(), []string{"demo", "-records", bad}, e); rc != 1 {
		t.Fatalf("bad file: exit %d", rc)
	}
	if !strings.Contains(out.String(), "line 1:") || !strings.Contains(errb.String(), "nothing was imported") {
		t.Fatalf("bad file output:\n%s\n%s", out, errb)
	}
}

func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	key := "OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	data := "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data")
	file := filepath.Join(dir, "in.jsonl")
	rows := `{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210","id_type":"aadhaar","id_number":"234123412341","doses":[{"dose":1,"vaccine":"COVISHIELD","date":"2021-05-02","center":"PHC Rampur"}]}
{"reference_id":"12345678901235","name":"Vikram Verma","birth_year":1985,"gender":"M","mobile":"9876543210","id_type":"pan","id_number":"ABCDE1234F"}
`
	os.WriteFile(file, []byte(rows), 0o600)

	e, out, errb := testEnv(key, data)
	if rc := run(context.Background(), []string{"import", file}, e); rc != 0 {
		t.Fatalf("import: exit %d\n%s%s", rc, out, errb)
	}
	if !strings.Contains(out.String(), "2 added") {
		t.Fatalf("summary: %s", out)
	}
	e, out, _ = testEnv(key, data)
	run(context.Background(), []string{"import", file}, e)
	if !strings.Contains(out.String(), "0 added, 0 updated, 2 unchanged") {
		t.Fatalf("re-import is not idempotent: %s", out)
	}

	// A file with bad rows: every one listed, nothing imported.
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"reference_id":"22222222222222","name":"New One","birth_year":1990,"gender":"F","mobile":"9123456789","id_type":"aadhaar","id_number":"345634563456"}
{"reference_id":"22222222222223","name":"Bad Mobile","birth_year":1990,"gender":"F","mobile":"12345","id_type":"aadhaar","id_number":"345634563457"}
not json
{"reference_id":"22222222222224","name":"Old","birth_year":1850,"gender":"X","mobile":"9123456780","id_type":"aadhaar","id_number":"345634563458"}
`), 0o600)
	e, out, errb = testEnv(key, data)
	if rc := run(context.Background(), []string{"import", bad}, e); rc != 1 {
		t.Fatalf("bad import: exit %d", rc)
	}
	for _, want := range []string{"line 2:", "line 3:", "line 4:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "line 1:") || strings.Contains(out.String(), "12345") {
		t.Errorf("reported a good line, or echoed a value:\n%s", out)
	}
	e, out, _ = testEnv(key, data)
	run(context.Background(), []string{"audit", "verify"}, e)
	if !strings.Contains(out.String(), "audit chain intact") {
		t.Fatalf("audit verify: %s", out)
	}
	// The first row of the bad file was not imported: re-importing the good
	// file still finds exactly its two records unchanged.
	e, out, _ = testEnv(key, data)
	run(context.Background(), []string{"import", file}, e)
	if !strings.Contains(out.String(), "2 unchanged") {
		t.Fatalf("store changed by a rejected file: %s", out)
	}

	// Wrong key: a clear refusal.
	e, _, errb = testEnv("OTPGATE_MASTER_KEY="+hex.EncodeToString(bytes.Repeat([]byte{2}, 32)), data)
	if rc := run(context.Background(), []string{"import", file}, e); rc != 1 || !strings.Contains(errb.String(), "another key") {
		t.Fatalf("wrong key: %s", errb)
	}
}

func TestConfigProblemsListedTogether(t *testing.T) {
	e, _, errb := testEnv("OTPGATE_OTP_TTL=forever", "OTPGATE_SMS_PROVIDER=pigeon", "OTPGATE_MASTER_KEY=short")
	if rc := run(context.Background(), []string{"import", "x.jsonl"}, e); rc != 1 {
		t.Fatalf("exit %d", rc)
	}
	for _, v := range []string{"OTPGATE_OTP_TTL", "OTPGATE_SMS_PROVIDER", "OTPGATE_MASTER_KEY"} {
		if !strings.Contains(errb.String(), v) {
			t.Errorf("%s not named in:\n%s", v, errb)
		}
	}
	if strings.Contains(errb.String(), "short") {
		t.Errorf("secret value echoed:\n%s", errb)
	}
	e, out, _ := testEnv()
	if rc := run(context.Background(), []string{"config"}, e); rc != 0 || !strings.Contains(out.String(), "OTPGATE_MASTER_KEY") {
		t.Fatalf("config: %d\n%s", rc, out)
	}
}

func TestUsage(t *testing.T) {
	e, out, errb := testEnv()
	if rc := run(context.Background(), []string{"help"}, e); rc != 0 || !strings.Contains(out.String(), "demo") {
		t.Fatalf("help: %d %s", rc, out)
	}
	if rc := run(context.Background(), []string{"frobnicate"}, e); rc != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown: %d %s", rc, errb)
	}
}

func TestAuditVerifyNamesTheAlteredEntry(t *testing.T) {
	dir := t.TempDir()
	master := bytes.Repeat([]byte{5}, 32)
	key := "OTPGATE_MASTER_KEY=" + hex.EncodeToString(master)
	data := "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data")
	file := filepath.Join(dir, "in.jsonl")
	os.WriteFile(file, []byte(`{"reference_id":"12345678901234","name":"Asha Verma","birth_year":1987,"gender":"F","mobile":"+919876543210","id_type":"aadhaar","id_number":"234123412341"}`+"\n"), 0o600)
	for i := 0; i < 3; i++ { // three imports: three audit entries
		e, _, errb := testEnv(key, data)
		if rc := run(context.Background(), []string{"import", file}, e); rc != 0 {
			t.Fatalf("import: %s", errb)
		}
	}
	e, out, _ := testEnv(key, data)
	if rc := run(context.Background(), []string{"audit", "export"}, e); rc != 0 || strings.Count(out.String(), "\n") != 3 {
		t.Fatalf("export: %d\n%s", rc, out)
	}

	// Someone with the key edits entry 2 directly in Badger.
	ks, _ := keys.Derive(master)
	db, err := badger.Open(store.BadgerOptions(store.Options{Dir: filepath.Join(dir, "data"), EncryptionKey: ks.Storage}))
	if err != nil {
		t.Fatal(err)
	}
	k := []byte{'a', 0, 0, 0, 0, 0, 0, 0, 2}
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, _ := item.ValueCopy(nil)
		return txn.Set(k, bytes.Replace(v, []byte("records_imported"), []byte("records_deleted!"), 1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e, _, errb := testEnv(key, data)
	if rc := run(context.Background(), []string{"audit", "verify"}, e); rc != 1 || !strings.Contains(errb.String(), "BROKEN at entry 2") {
		t.Fatalf("verify after tampering: exit %d, %s", rc, errb)
	}
}

func TestImportRemoveAndReplace(t *testing.T) {
	dir := t.TempDir()
	key := "OTPGATE_MASTER_KEY=" + hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	data := "OTPGATE_DATA_DIR=" + filepath.Join(dir, "data")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	row := func(ref, name, mobile string) string {
		return `{"reference_id":"` + ref + `","name":"` + name + `","birth_year":1987,"gender":"F","mobile":"` + mobile + `","id_type":"aadhaar","id_number":"2341234123` + ref[12:] + `"}` + "\n"
	}
	cmd := func(args ...string) (int, string, string) {
		e, out, errb := testEnv(key, data)
		rc := run(context.Background(), args, e)
		return rc, out.String(), errb.String()
	}
	all := write("all.jsonl", row("12345678901201", "Asha", "9876543201")+row("12345678901202", "Ravi", "9876543202")+row("12345678901203", "Meena", "9876543203"))
	if rc, out, errb := cmd("import", all); rc != 0 {
		t.Fatalf("import: %d %s %s", rc, out, errb)
	}

	// A bad removal list: every bad line named, nothing removed.
	badList := write("bad.txt", "reference_id\n12345678901201\n99999999999999\nnot-an-id\n12345678901201\n")
	rc, out, errb := cmd("import", "--remove", badList)
	if rc != 1 || !strings.Contains(errb, "nothing was removed") {
		t.Fatalf("bad removal: %d %s %s", rc, out, errb)
	}
	for _, want := range []string{"line 3: reference_id: no stored record has it", "line 4:", "line 5: reference_id repeats line 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "99999999999999") || strings.Contains(out, "not-an-id") {
		t.Errorf("a problem quotes the file:\n%s", out)
	}
	if _, out, _ := cmd("import", all); !strings.Contains(out, "3 unchanged") {
		t.Fatalf("a refused removal changed the store: %s", out)
	}

	list := write("remove.txt", "12345678901201\n")
	if rc, out, errb := cmd("import", "--remove", list); rc != 0 || !strings.Contains(out, "removed 1 records (1 lines)") {
		t.Fatalf("remove: %d %s %s", rc, out, errb)
	}
	// The file is the complete set: Meena goes, Ravi changes, Nisha comes.
	set := write("set.jsonl", row("12345678901202", "Ravi K", "9876543202")+row("12345678901204", "Nisha", "9876543204"))
	if rc, out, errb := cmd("import", "--replace", set); rc != 0 || !strings.Contains(out, "1 added, 1 updated, 0 unchanged, 1 removed") {
		t.Fatalf("replace: %d %s %s", rc, out, errb)
	}
	if _, out, _ := cmd("import", "--replace", set); !strings.Contains(out, "0 added, 0 updated, 2 unchanged, 0 removed") {
		t.Fatalf("replace again: %s", out)
	}
	if rc, _, errb := cmd("import", "--replace", "--remove", set); rc != 2 || !strings.Contains(errb, "exclude each other") {
		t.Fatalf("both flags: %d %s", rc, errb)
	}
	if _, out, _ := cmd("audit", "verify"); !strings.Contains(out, "audit chain intact") {
		t.Fatalf("audit verify: %s", out)
	}
}
