package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

// Backup errors.
var (
	ErrBackupKey     = errors.New("store: this backup was made with another master key")
	ErrBackupCorrupt = errors.New("store: backup is damaged or was altered")
	ErrNotBackup     = errors.New("store: not an otpgate backup file")
	ErrRestoreTarget = errors.New("store: restore target must be an empty or absent directory")
)

// A backup file is one plaintext line, then an age file:
//
//	otpgate-backup v1 created=2026-01-02T03:04:05Z key=0123456789abcdef\n
//	age-encryption.org/v1 … (binary age payload)
//
// The line lets a wrong file be recognised, and a backup made with another
// master key be named as such, before any decryption. key= is a keyed
// fingerprint of the backup key (HMAC, so it reveals nothing about the key).
// The decrypted payload starts with the same line again, byte for byte, so
// the plaintext line is authenticated too; then comes Badger's own backup
// stream (Stream.Backup), which is unencrypted by design and never touches disk
// or the network outside age.
//
// Why age's scrypt recipient and not X25519: the backup key is a symmetric
// secret derived from the master key, and age's scrypt recipient is its
// symmetric mode — a file that decrypts under the passphrase can only have
// been made by someone who holds it (age documents this authentication
// property for scrypt; an X25519 file can be made by anyone who knows the
// public recipient). age offers no constructor for an X25519 identity from
// raw bytes either, only from its Bech32 text form. The passphrase is the hex
// of keys.Set.Backup, 256 bits from HKDF: scrypt's work factor exists to slow
// guessing of human passphrases and adds nothing here, so it is kept low and
// restores stay fast; the identity caps it so a crafted file cannot make
// restore burn memory.
const (
	backupMagic       = "otpgate-backup"
	backupVersion     = "v1"
	backupScryptLogN  = 10
	backupScryptMaxN  = 12
	backupKeyIDLen    = 8 // bytes of the fingerprint (16 hex characters)
	maxBackupLineSize = 256
)

// BackupStats describe a finished backup.
type BackupStats struct {
	Created time.Time
	// Bytes is the size of the backup file (header line and age payload).
	Bytes int64
	// Entries counts the key versions in the Badger stream (live keys,
	// their older versions still kept, and deletion markers); -1 if the
	// stream could not be parsed for counting, which Badger never causes.
	Entries int64
}

// RestoreStats describe a restored store, counted after the restore.
type RestoreStats struct {
	Created      time.Time // when the backup was made
	Bytes        int64     // size of the backup read
	Keys         int64     // live keys of every kind
	Records      int64
	Challenges   int64 // pending or recently used codes, not yet expired
	Grants       int64
	Counters     int64
	AuditEntries uint64 // the verified length of the audit chain
}

// backupHeader is the plaintext first line.
type backupHeader struct {
	Created time.Time
	KeyID   string
}

func (h backupHeader) line() string {
	return fmt.Sprintf("%s %s created=%s key=%s\n", backupMagic, backupVersion, h.Created.UTC().Format(time.RFC3339), h.KeyID)
}

func backupKeyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("otpgate/v1/backup-key-id"))
	return hex.EncodeToString(m.Sum(nil)[:backupKeyIDLen])
}

func checkBackupKey(key []byte) error {
	if len(key) != 32 {
		return fmt.Errorf("%w: backup key must be 32 bytes", ErrBadOptions)
	}
	return nil
}

// Backup writes an encrypted, authenticated backup of everything in the
// store to w: records and indexes, challenges, grants, counters, the audit
// chain and its history index, scheduled deletions, links. It reads one
// Badger snapshot (one read transaction), so the store stays in use while
// it runs and the copy is consistent (the audit chain in it verifies). It
// streams: memory is bounded, not proportional to the database. key is
// keys.Set.Backup.
func (s *Store) Backup(ctx context.Context, w io.Writer, key []byte) (BackupStats, error) {
	if s.bdb == nil {
		return BackupStats{}, ErrNotBadger
	}
	if err := checkBackupKey(key); err != nil {
		return BackupStats{}, err
	}
	hdr := backupHeader{Created: s.now().UTC().Truncate(time.Second), KeyID: backupKeyID(key)}
	line := hdr.line()
	out := &countingWriter{ctx: ctx, w: w}
	if _, err := io.WriteString(out, line); err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	rcp, err := age.NewScryptRecipient(hex.EncodeToString(key))
	if err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	rcp.SetWorkFactor(backupScryptLogN)
	enc, err := age.Encrypt(out, rcp)
	if err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	if _, err := io.WriteString(enc, line); err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	counter := &entryCounter{w: enc}
	// Not DB.Backup: its stream runs several producers, each with a read
	// transaction of its own, so while the bot writes, key ranges would be
	// read at different moments (a backup could hold audit entries newer
	// than the chain head it holds). One producer reads through one
	// transaction: one snapshot. Stream.Backup runs with a background
	// context; ctx is honoured through out, whose writes fail once it ends.
	stream := s.bdb.NewStream()
	stream.LogPrefix = "otpgate backup"
	stream.NumGo = 1
	if _, err := stream.Backup(counter, 0); err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	// Close writes the final, authenticated chunk: without it a restore
	// sees a truncated file.
	if err := enc.Close(); err != nil {
		return BackupStats{}, fmt.Errorf("store: backup: %w", err)
	}
	st := BackupStats{Created: hdr.Created, Bytes: out.n, Entries: counter.n}
	if counter.bad {
		st.Entries = -1
	}
	return st, nil
}

// Restore creates a new store at opts.Dir from a backup made by Backup with
// the same key (keys.Set.Backup). opts.Dir must not exist or be an empty
// directory. The backup is loaded into a temporary directory beside it,
// reopened with opts, its audit chain verified, and only then renamed into
// place: a restore that fails for any reason leaves nothing behind.
//
// A backup made with another master key fails with ErrBackupKey; one that
// was truncated or has any byte changed fails with ErrBackupCorrupt (or
// ErrNotBackup when its first line is not an otpgate backup's); a broken
// audit chain fails with ErrAuditBroken.
func Restore(ctx context.Context, r io.Reader, opts Options, key []byte) (RestoreStats, error) {
	if err := opts.validate(); err != nil {
		return RestoreStats{}, err
	}
	if opts.InMemory || opts.ReadOnly {
		return RestoreStats{}, fmt.Errorf("%w: restore needs a directory to write", ErrBadOptions)
	}
	if err := checkBackupKey(key); err != nil {
		return RestoreStats{}, err
	}
	target := filepath.Clean(opts.Dir)
	if err := checkRestoreTarget(target); err != nil {
		return RestoreStats{}, err
	}

	in := &countingReader{ctx: ctx, r: r}
	br := bufio.NewReaderSize(in, 64<<10)
	hdr, line, err := readBackupHeader(br)
	if err != nil {
		return RestoreStats{}, err
	}
	plain, err := decryptBackup(br, hdr, key)
	if err != nil {
		return RestoreStats{}, err
	}
	src := &sourceReader{r: plain}
	pr := bufio.NewReaderSize(src, 64<<10)
	inner, err := pr.ReadString('\n')
	switch {
	case ctx.Err() != nil:
		return RestoreStats{}, ctx.Err()
	case src.err != nil:
		return RestoreStats{}, corrupt(src.err, "cannot decrypt")
	case err != nil || inner != line:
		return RestoreStats{}, corrupt(nil, "the header line does not match its encrypted copy")
	}

	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".restoring-")
	if err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()

	topts := opts
	topts.Dir = tmp
	if err := loadBackup(ctx, topts, pr, src); err != nil {
		return RestoreStats{}, err
	}
	st, err := verifyRestored(ctx, topts)
	if err != nil {
		return RestoreStats{}, err
	}
	st.Created, st.Bytes = hdr.Created, in.n

	if err := checkRestoreTarget(target); err != nil { // created meanwhile?
		return RestoreStats{}, err
	}
	if _, err := os.Stat(target); err == nil {
		if err := os.Remove(target); err != nil { // empty: Remove refuses otherwise
			return RestoreStats{}, fmt.Errorf("store: restore: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: %w", err)
	}
	done = true
	syncDir(filepath.Dir(target))
	return st, nil
}

func checkRestoreTarget(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is a file", ErrRestoreTarget, dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%w: %s is not empty", ErrRestoreTarget, dir)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

func corrupt(cause error, detail string) error {
	if cause != nil {
		return fmt.Errorf("%w: %s: %w", ErrBackupCorrupt, detail, cause)
	}
	return fmt.Errorf("%w: %s", ErrBackupCorrupt, detail)
}

// readBackupHeader reads and parses the plaintext first line.
func readBackupHeader(br *bufio.Reader) (backupHeader, string, error) {
	var line []byte
	for len(line) <= maxBackupLineSize {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return backupHeader{}, "", fmt.Errorf("%w (the file is empty)", ErrNotBackup)
			}
			if bytes.HasPrefix(line, []byte(backupMagic+" ")) || strings.HasPrefix(backupMagic+" ", string(line)) {
				return backupHeader{}, "", corrupt(nil, "the file ends inside its header")
			}
			break
		}
		if err != nil {
			return backupHeader{}, "", fmt.Errorf("store: restore: %w", err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	if !bytes.HasPrefix(line, []byte(backupMagic+" ")) {
		return backupHeader{}, "", fmt.Errorf("%w (it does not start with %q)", ErrNotBackup, backupMagic)
	}
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return backupHeader{}, "", corrupt(nil, "header line too long")
	}
	f := strings.Fields(string(line))
	if len(f) != 4 {
		return backupHeader{}, "", corrupt(nil, "malformed header line")
	}
	if f[1] != backupVersion {
		return backupHeader{}, "", corrupt(nil, fmt.Sprintf("unknown format version %q", f[1]))
	}
	created, ok1 := strings.CutPrefix(f[2], "created=")
	keyID, ok2 := strings.CutPrefix(f[3], "key=")
	t, err := time.Parse(time.RFC3339, created)
	if !ok1 || !ok2 || err != nil || len(keyID) != 2*backupKeyIDLen {
		return backupHeader{}, "", corrupt(nil, "malformed header line")
	}
	h := backupHeader{Created: t, KeyID: keyID}
	if h.line() != string(line) {
		return backupHeader{}, "", corrupt(nil, "malformed header line")
	}
	return h, string(line), nil
}

// decryptBackup opens the age payload and tells a wrong key from damage.
// age cannot: a changed byte in its recipient stanza looks exactly like
// another passphrase. The fingerprint in the header can: when it is ours,
// our key should have worked, so the file was altered; when it is not and
// our key fails, the backup belongs to another master key. (When the
// fingerprint was altered but our key works, the encrypted copy of the
// header line no longer matches, and Restore reports damage.)
func decryptBackup(r io.Reader, hdr backupHeader, key []byte) (io.Reader, error) {
	id, err := age.NewScryptIdentity(hex.EncodeToString(key))
	if err != nil {
		return nil, fmt.Errorf("store: restore: %w", err)
	}
	id.SetMaxWorkFactor(backupScryptMaxN)
	plain, err := age.Decrypt(r, id)
	var noMatch *age.NoIdentityMatchError
	switch {
	case err == nil:
		return plain, nil
	case errors.As(err, &noMatch) && !hmac.Equal([]byte(hdr.KeyID), []byte(backupKeyID(key))):
		return nil, ErrBackupKey
	default:
		return nil, corrupt(ageError{err}, "cannot decrypt")
	}
}

// ageError keeps an error of age.Decrypt for errors.Is and errors.As but
// prints only its first line, cut short: age quotes the file's header lines
// (up to 2 MiB of them) and may add a line advising other tools.
type ageError struct{ err error }

func (e ageError) Error() string {
	s, _, _ := strings.Cut(e.err.Error(), "\n")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

func (e ageError) Unwrap() error { return e.err }

// loadBackup loads the decrypted Badger stream into a fresh database at
// opts.Dir. Badger is opened directly: Open would write its key check
// before the backup's own copy arrives.
func loadBackup(ctx context.Context, opts Options, r io.Reader, src *sourceReader) error {
	db, err := badger.Open(BadgerOptions(opts))
	if err != nil {
		return fmt.Errorf("store: restore: open %s: %w", opts.Dir, err)
	}
	loadErr := db.Load(r, 256)
	closeErr := db.Close()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case src.err != nil:
		// age failed a chunk: the payload was altered or cut short.
		return corrupt(src.err, "cannot decrypt")
	case errors.Is(loadErr, io.ErrUnexpectedEOF):
		return corrupt(loadErr, "the backup stream ends early")
	case loadErr != nil:
		return fmt.Errorf("store: restore: load: %w", loadErr)
	case closeErr != nil:
		return fmt.Errorf("store: restore: %w", closeErr)
	}
	return nil
}

// verifyRestored opens the restored store as the program will, checks the
// audit chain and counts what came back.
func verifyRestored(ctx context.Context, opts Options) (RestoreStats, error) {
	s, err := Open(opts)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: reopen: %w", err)
	}
	defer s.Close()
	var st RestoreStats
	n, err := s.VerifyAudit(ctx)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: the backup's audit chain: %w", err)
	}
	st.AuditEntries = n
	c, err := s.Census(ctx)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("store: restore: count: %w", err)
	}
	st.Keys, st.Records, st.Challenges, st.Grants, st.Counters = c.Keys, c.Records, c.Challenges, c.Grants, c.Counters
	if err := s.Close(); err != nil {
		return RestoreStats{}, err
	}
	return st, nil
}

// syncDir makes a rename durable; best effort, as not every system can
// sync a directory.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}

// countingWriter counts bytes and stops writing once ctx ends.
type countingWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countingReader counts bytes and stops reading once ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// sourceReader remembers the first error of the decrypting reader, so
// Restore can tell damage (age refusing a chunk) from a failure to write.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

// entryCounter passes Badger's backup stream through and counts its
// entries without holding it: the stream is a series of frames, each an
// 8-byte little-endian length and a protobuf KVList of that length whose
// field 1 occurs once per entry. Badger writes a frame's length and body in
// separate calls; any other split is handled too.
type entryCounter struct {
	w    io.Writer
	n    int64
	bad  bool
	hdr  [8]byte
	nhdr int
	need uint64 // body bytes of the current frame still to come
	body []byte // the body so far, only when it arrives in pieces
}

const maxCountedFrame = 1 << 32

func (c *entryCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if !c.bad {
		c.scan(p[:n])
	}
	return n, err
}

func (c *entryCounter) scan(p []byte) {
	for len(p) > 0 && !c.bad {
		if c.nhdr < len(c.hdr) {
			k := copy(c.hdr[c.nhdr:], p)
			c.nhdr += k
			p = p[k:]
			if c.nhdr == len(c.hdr) {
				c.need = binary.LittleEndian.Uint64(c.hdr[:])
				if c.need > maxCountedFrame {
					c.bad = true
				}
				if c.need == 0 {
					c.nhdr = 0
				}
			}
			continue
		}
		k := int(min(c.need, uint64(len(p))))
		chunk := p[:k]
		p = p[k:]
		c.need -= uint64(k)
		switch {
		case c.need == 0 && len(c.body) == 0:
			c.countList(chunk)
		case c.need == 0:
			c.countList(append(c.body, chunk...))
			c.body = c.body[:0]
		default:
			c.body = append(c.body, chunk...)
		}
		if c.need == 0 {
			c.nhdr = 0
		}
	}
}

func (c *entryCounter) countList(b []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			c.bad = true
			return
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			c.bad = true
			return
		}
		if num == 1 && typ == protowire.BytesType {
			c.n++
		}
		b = b[m:]
	}
}
