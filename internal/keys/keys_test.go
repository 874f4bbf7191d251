package keys

import (
	"bytes"
	"errors"
	"testing"
)

func TestDerive(t *testing.T) {
	master := bytes.Repeat([]byte{1}, MasterKeySize)
	a, err := Derive(master)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Derive(master)
	other, _ := Derive(bytes.Repeat([]byte{2}, MasterKeySize))
	all := [][]byte{a.Storage, a.Index, a.Code, a.Audit, a.Backup}
	for i, k := range all {
		if len(k) != 32 {
			t.Fatalf("key %d is %d bytes", i, len(k))
		}
		for j := i + 1; j < len(all); j++ {
			if bytes.Equal(k, all[j]) {
				t.Fatalf("keys %d and %d are equal: each use needs its own", i, j)
			}
		}
	}
	if !bytes.Equal(a.Storage, b.Storage) || !bytes.Equal(a.Code, b.Code) {
		t.Fatal("derivation is not deterministic: data written under one run could not be read by the next")
	}
	if bytes.Equal(a.Storage, other.Storage) {
		t.Fatal("another master key derived the same storage key")
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := Derive(make([]byte, n)); !errors.Is(err, ErrMasterKeySize) {
			t.Fatalf("a %d-byte master key: %v", n, err)
		}
	}
}
