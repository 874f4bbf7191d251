// Package keys derives every secret otpgate uses from the one master key, so
// that an operator keeps a single secret outside the database and each use
// gets a key of its own (HKDF-SHA256 with a distinct label per purpose).
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// MasterKeySize is the length of OTPGATE_MASTER_KEY once decoded.
const MasterKeySize = 32

// ErrMasterKeySize is returned for a master key that is not 32 bytes.
var ErrMasterKeySize = fmt.Errorf("master key must be %d bytes", MasterKeySize)

// Set holds the derived keys. Each is 32 bytes.
type Set struct {
	Storage []byte // Badger encryption at rest (AES-256)
	Index   []byte // HMAC for index keys: mobiles, reference ids, ID numbers
	Code    []byte // HMAC over one-time codes
	Audit   []byte // HMAC chaining the audit log
	Backup  []byte // key of the backup files' encryption
	Rows    []byte // PostgreSQL: AES-256-GCM of every stored value
}

// Derive expands master into a Set. The labels are part of the on-disk
// format: changing one makes existing data unreadable.
func Derive(master []byte) (Set, error) {
	if len(master) != MasterKeySize {
		return Set{}, ErrMasterKeySize
	}
	var s Set
	for _, d := range []struct {
		dst   *[]byte
		label string
	}{
		{&s.Storage, "otpgate/v1/storage"},
		{&s.Index, "otpgate/v1/index-hmac"},
		{&s.Code, "otpgate/v1/code-hmac"},
		{&s.Audit, "otpgate/v1/audit-hmac"},
		{&s.Backup, "otpgate/v1/backup-aead"},
		{&s.Rows, "otpgate/v1/pg-rows-aead"},
	} {
		k, err := hkdf.Key(sha256.New, master, nil, d.label, 32)
		if err != nil {
			return Set{}, fmt.Errorf("derive %s: %w", d.label, err)
		}
		*d.dst = k
	}
	return s, nil
}
