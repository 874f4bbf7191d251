package storetest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/kv"
)

// Whoever can write the storage (a stolen disk, a database administrator)
// cannot alter, remove, renumber or reorder audit entries unnoticed.
func testAuditVerifyCatchesTampering(t *testing.T, e Engine) {
	cases := []struct {
		name    string
		tamper  func(map[uint64][]byte) map[uint64][]byte
		wantSeq uint64
	}{
		{"altered", func(all map[uint64][]byte) map[uint64][]byte {
			var e store.AuditEntry
			_ = json.Unmarshal(all[3], &e)
			e.Requester = "tg:someone-else"
			b, _ := json.Marshal(e)
			return map[uint64][]byte{3: b}
		}, 3},
		{"removed", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{4: nil}
		}, 4},
		{"removed and renumbered", func(all map[uint64][]byte) map[uint64][]byte {
			out := map[uint64][]byte{}
			n := uint64(len(all))
			for i := uint64(4); i < n; i++ {
				var e store.AuditEntry
				_ = json.Unmarshal(all[i+1], &e)
				e.Seq = i
				b, _ := json.Marshal(e)
				out[i] = b
			}
			out[n] = nil
			return out
		}, 4},
		{"reordered", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{3: all[4], 4: all[3]}
		}, 3},
		{"last removed", func(all map[uint64][]byte) map[uint64][]byte {
			return map[uint64][]byte{uint64(len(all)): nil}
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc, clk := e.Fresh(t, true), NewClock()
			s := e.openStore(t, loc, clk)
			defer func() { _ = s.Close() }()
			Seed(t, s)
			tgt := Resolve(t, s, "9000000001")
			for i := 0; i < 3; i++ {
				clk.Add(time.Minute)
				Issue(t, s, "tg:1", tgt, "1", clk)
				Verify(s, "tg:1", "0")
			}
			n, err := s.VerifyAudit(context.Background())
			if err != nil || n < 6 {
				t.Fatalf("clean chain: %d %v", n, err)
			}
			_ = s.Close()
			e.tamperAudit(t, loc, c.tamper)
			s = e.openStore(t, loc, clk)
			_, err = s.VerifyAudit(context.Background())
			var p *store.AuditProblem
			if !errors.Is(err, store.ErrAuditBroken) || !errors.As(err, &p) {
				t.Fatalf("tampered chain: %v", err)
			}
			want := c.wantSeq
			if want == 0 {
				want = n
			}
			if p.Seq != want {
				t.Fatalf("first bad entry = %d (%s), want %d", p.Seq, p.Reason, want)
			}
		})
	}
}

// tamperAudit rewrites the stored audit entries of the closed store at
// loc, as someone with write access to the engine would: fn gets the
// entries by sequence number and returns those to write back (nil
// deletes). The keys are the store's layout: 'a' and the sequence number,
// big-endian.
func (e Engine) tamperAudit(t *testing.T, loc string, fn func(map[uint64][]byte) map[uint64][]byte) {
	t.Helper()
	b, err := e.Backend(t, loc, TestKeys(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := func(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'a'}, seq) }
	err = b.Update(context.Background(), func(txn kv.Txn) error {
		all := map[uint64][]byte{}
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte{'a'}})
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
				if err := txn.Delete(key(seq)); err != nil {
					return err
				}
				continue
			}
			if err := txn.Set(key(seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}
