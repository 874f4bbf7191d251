package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/pii"
)

// Fuzz targets for the one place a backup file is parsed: Restore, and the
// plaintext header line it reads first. Garbage must never restore
// anything, never panic, never leave a directory behind, and fail with one
// of the documented errors in a short, single-line text.

const fzHeader = "otpgate-backup v1 created=2026-01-02T03:04:05Z key=0123456789abcdef\n"

var fzHeaderSeeds = []string{
	fzHeader,
	strings.TrimSuffix(fzHeader, "\n"),
	strings.Replace(fzHeader, "\n", "\r\n", 1),
	fzHeader + "age-encryption.org/v1\n",
	"otpgate-backup v2 created=2026-01-02T03:04:05Z key=0123456789abcdef\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05+05:30 key=0123456789abcdef\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05.999Z key=0123456789abcdef\n",
	"otpgate-backup v1 created=2026-02-30T03:04:05Z key=0123456789abcdef\n",
	"otpgate-backup v1 created=9999-12-31T23:59:59Z key=0123456789abcdef\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05Z key=0123456789abcde\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05Z key=0123456789abcdefg\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05Z key=zzzzzzzzzzzzzzzz\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05Z  key=0123456789abcdef\n",
	"otpgate-backup\tv1 created=2026-01-02T03:04:05Z key=0123456789abcdef\n",
	"otpgate-backup v1 key=0123456789abcdef created=2026-01-02T03:04:05Z\n",
	"otpgate-backup v1 created=2026-01-02T03:04:05Z key=0123456789abcdef extra\n",
	"otpgate-backup " + strings.Repeat("v", 300) + "\n",
	"otpgate-backup " + strings.Repeat("\x01", 200) + " created= key=\n", // an 860-character error, quoting the version
	"otpgate-backup \x00\xff\u202e\u200b v1\n",
	"otpgate-backup " + strings.Repeat("\n", 3),
	"otpgate-backup ",
	"otpgate-backu",
	"otpgate-backup",
	"OTPGATE-BACKUP v1 created=2026-01-02T03:04:05Z key=0123456789abcdef\n",
	"\ufeff" + fzHeader,
	"age-encryption.org/v1\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 10\n",
	"PK\x03\x04",
	"\x1f\x8b\x08",
	"",
	"\n",
	"\x00",
	strings.Repeat("A", 100000),
}

// maxErrText bounds an error's text. The header's version field is quoted
// (%q) when unknown, so a junk line of maxBackupLineSize bytes can show up
// to four times that, escaped; anything longer came from elsewhere.
const maxErrText = 4*maxBackupLineSize + 100

// checkErrText fails unless err is one of want and its text is a single
// printable line of bounded length: what an operator reads when a restore
// fails.
func checkErrText(t *testing.T, err error, want ...error) {
	t.Helper()
	ok := false
	for _, w := range want {
		ok = ok || errors.Is(err, w)
	}
	if !ok {
		t.Fatalf("error %v, want one of %v", err, want)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "store: ") || len(msg) > maxErrText || !utf8.ValidString(msg) ||
		strings.ContainsFunc(msg, func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }) {
		t.Fatalf("unclear error text %q", msg)
	}
}

func FuzzBackupHeader(f *testing.F) {
	for _, s := range fzHeaderSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		br := bufio.NewReaderSize(src, 64<<10)
		h, line, err := readBackupHeader(br)
		if err != nil {
			if line != "" || h != (backupHeader{}) {
				t.Fatalf("error %v with a header %+v / %q", err, h, line)
			}
			checkErrText(t, err, ErrNotBackup, ErrBackupCorrupt)
			return
		}
		// Accepted: the one canonical form of a header, read to its end
		// and not a byte further (the age payload follows it).
		if line != h.line() || !bytes.HasPrefix(data, []byte(line)) || len(line) > maxBackupLineSize+1 {
			t.Fatalf("accepted %q as %+v (%q)", data, h, line)
		}
		if consumed := len(data) - src.Len() - br.Buffered(); consumed != len(line) {
			t.Fatalf("header of %d bytes, but %d read", len(line), consumed)
		}
		if len(h.KeyID) != 2*backupKeyIDLen || h.Created.Location() != time.UTC || !h.Created.Equal(h.Created.Truncate(time.Second)) {
			t.Fatalf("accepted header %+v", h)
		}
	})
}

// fzKeys derives the test keys from a one-byte master.
func fzKeys(t testing.TB, seed byte) keys.Set {
	ks, err := keys.Derive(bytes.Repeat([]byte{seed}, keys.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func fzOptions(ks keys.Set, dir string) Options {
	return Options{Dir: dir, InMemory: dir == "", EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
}

// fzBackup returns a backup of a small store made with ks.
func fzBackup(t testing.TB, ks keys.Set) []byte {
	s, err := Open(fzOptions(ks, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Import(context.Background(), func(ctx context.Context, fn func(ImportRow) error) error {
		for i, m := range []string{"9000000001", "9000000002"} {
			mob, _ := pii.ParseMobile(m)
			id, _ := pii.NormalizeID(fmt.Sprintf("23412341234%d", i))
			err := fn(ImportRow{Line: i + 1, ID: id, Record: Record{RefID: fmt.Sprintf("1000000000000%d", i), Name: "Asha Verma",
				BirthYear: 1980, Gender: "F", Mobile: mob, IDType: "aadhaar", IDLast4: id.Last4()}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(context.Background(), &buf, ks.Backup); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzRestore(f *testing.F) {
	ks := fzKeys(f, 7)
	good := fzBackup(f, ks)
	other := fzBackup(f, fzKeys(f, 8))
	line := bytes.IndexByte(good, '\n') + 1
	ageHdrEnd := bytes.Index(good, []byte("\n--- ")) + 1
	ageHdrEnd += bytes.IndexByte(good[ageHdrEnd:], '\n') + 1
	f.Add(good)
	f.Add(other)
	for _, n := range []int{1, line - 1, line, line + 1, ageHdrEnd - 1, ageHdrEnd, ageHdrEnd + 16, len(good) - 17, len(good) - 1} {
		f.Add(good[:n])
	}
	f.Add(append(bytes.Clone(good), '\n'))
	f.Add(append(bytes.Clone(good[:line]), other[bytes.IndexByte(other, '\n')+1:]...)) // our header, their payload
	f.Add(append(bytes.Clone(other[:bytes.IndexByte(other, '\n')+1]), good[line:]...)) // their header, our payload
	f.Add(bytes.Replace(good, []byte(" 10\n"), []byte(" 22\n"), 1))                    // scrypt work factor over the cap
	f.Add(bytes.Replace(good, []byte(" 10\n"), []byte(" 99\n"), 1))
	f.Add(bytes.Replace(good, []byte("-> scrypt"), []byte("-> X25519"), 1))
	f.Add(bytes.Replace(good, []byte("created=2026"), []byte("created=2025"), 1))
	for _, s := range fzHeaderSeeds {
		f.Add([]byte(s))
		f.Add(append([]byte(s), good[line:]...))
	}

	parent := f.TempDir()
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := filepath.Join(parent, fmt.Sprintf("data%d", n.Add(1)))
		st, err := Restore(context.Background(), bytes.NewReader(data), fzOptions(ks, dir), ks.Backup)
		if bytes.Equal(data, good) && err != nil {
			t.Fatalf("the good backup: %v", err)
		}
		if err == nil {
			// Only a backup made with our key restores: age, asked on its
			// own, must authenticate all of it (fuzz workers each make their
			// own, so the one seeded may not be this process's good).
			if !authentic(data, ks.Backup) || st.Records != 2 {
				t.Fatalf("restored %+v from a file that is not a backup", st)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			return
		}
		if st != (RestoreStats{}) {
			t.Fatalf("failed (%v) with stats %+v", err, st)
		}
		checkErrText(t, err, ErrNotBackup, ErrBackupCorrupt, ErrBackupKey)
		ents, _ := os.ReadDir(parent)
		if len(ents) != 0 {
			t.Fatalf("left behind after %v: %s", err, ents[0].Name())
		}
	})
}

// authentic reports whether data is a header line and an age file that
// decrypts, to its end, under key, starting with the same header line.
func authentic(data, key []byte) bool {
	line, payload, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return false
	}
	id, err := age.NewScryptIdentity(hex.EncodeToString(key))
	if err != nil {
		return false
	}
	r, err := age.Decrypt(bytes.NewReader(payload), id)
	if err != nil {
		return false
	}
	plain, err := io.ReadAll(r)
	return err == nil && bytes.HasPrefix(plain, append(line, '\n'))
}
