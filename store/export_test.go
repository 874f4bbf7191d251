package store

import (
	"context"
	"encoding/binary"

	"github.com/otpgate/otpgate/store/kv"
)

// TamperAudit rewrites raw audit storage for tests of VerifyAudit: fn gets
// the stored entries keyed by sequence and returns the ones to write back
// (nil value deletes). It bypasses the chain on purpose.
func (s *Store) TamperAudit(fn func(map[uint64][]byte) map[uint64][]byte) error {
	return s.kv.Update(context.Background(), func(txn kv.Txn) error {
		all := map[uint64][]byte{}
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{pfxAudit}})
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			all[binary.BigEndian.Uint64(it.Item().Key()[1:])] = v
		}
		it.Close()
		for seq, v := range fn(all) {
			if v == nil {
				if err := txn.Delete(auditKey(seq)); err != nil {
					return err
				}
				continue
			}
			if err := txn.Set(auditKey(seq), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// FailAudit makes every later audit append fail with err (nil restores).
func (s *Store) FailAudit(err error) {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if err == nil {
		s.failAudit = nil
		return
	}
	s.failAudit = func() error { return err }
}
