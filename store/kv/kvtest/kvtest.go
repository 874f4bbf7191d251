// Package kvtest is the conformance suite of the persistence contract
// (store/kv): every engine runs it in its own tests. It checks what the
// store's logic relies on — isolation (no lost update, one winner when
// several create the same key), atomicity, order of iteration, expiry,
// snapshots and bulk writes. Only tests import it.
package kvtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store/kv"
)

// Run runs the suite; open returns a new, empty engine that the suite closes.
func Run(t *testing.T, open func(t *testing.T) kv.Backend) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, kv.Backend)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"FailedTransactionWritesNothing", testFailedTransactionWritesNothing},
		{"NoLostUpdate", testNoLostUpdate},
		{"OneCreatorWins", testOneCreatorWins},
		{"IterationOrder", testIterationOrder},
		{"IteratorSeesOwnWrites", testIteratorSeesOwnWrites},
		{"ReadTxnIsASnapshot", testReadTxnIsASnapshot},
		{"Expiry", testExpiry},
		{"WriteBatch", testWriteBatch},
		{"DropPrefix", testDropPrefix},
		{"Clock", testClock},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			c.fn(t, b)
		})
	}
}

var ctx = context.Background()

func get(t *testing.T, b kv.Backend, key string) (string, error) {
	t.Helper()
	var out string
	err := b.View(ctx, func(txn kv.Txn) error {
		it, err := txn.Get([]byte(key))
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		out = string(v)
		return err
	})
	return out, err
}

func set(t *testing.T, b kv.Backend, kvs ...string) {
	t.Helper()
	err := b.Update(ctx, func(txn kv.Txn) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := txn.Set([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// update retries fn on conflicts, as the store does.
func update(b kv.Backend, fn func(kv.Txn) error) error {
	for range 1000 {
		err := b.Update(ctx, fn)
		if !errors.Is(err, kv.ErrConflict) {
			return err
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
	}
	return errors.New("kvtest: too many conflicts")
}

func testGetSetDelete(t *testing.T, b kv.Backend) {
	if _, err := get(t, b, "k"); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	set(t, b, "k", "v1")
	set(t, b, "k", "v2", "\x00binary\xff", "\x01\x02")
	if v, err := get(t, b, "k"); err != nil || v != "v2" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if v, err := get(t, b, "\x00binary\xff"); err != nil || v != "\x01\x02" {
		t.Fatalf("binary key = %q, %v", v, err)
	}
	set(t, b, "empty", "")
	if v, err := get(t, b, "empty"); err != nil || v != "" {
		t.Fatalf("empty value = %q, %v", v, err)
	}
	if err := b.Update(ctx, func(txn kv.Txn) error { return txn.Delete([]byte("k")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, b, "k"); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if err := b.Update(ctx, func(txn kv.Txn) error { return txn.Delete([]byte("never there")) }); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	// Delete then re-create in one transaction.
	err := b.Update(ctx, func(txn kv.Txn) error {
		if _, err := txn.Get([]byte("empty")); err != nil {
			return err
		}
		if err := txn.Delete([]byte("empty")); err != nil {
			return err
		}
		return txn.Set([]byte("empty"), []byte("again"))
	})
	if v, gerr := get(t, b, "empty"); err != nil || gerr != nil || v != "again" {
		t.Fatalf("re-created = %q, %v, %v", v, err, gerr)
	}
}

func testFailedTransactionWritesNothing(t *testing.T, b kv.Backend) {
	set(t, b, "a", "1")
	boom := errors.New("boom")
	err := b.Update(ctx, func(txn kv.Txn) error {
		if err := txn.Set([]byte("a"), []byte("2")); err != nil {
			return err
		}
		if err := txn.Set([]byte("b"), []byte("2")); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if v, _ := get(t, b, "a"); v != "1" {
		t.Fatalf("a = %q after a failed transaction", v)
	}
	if _, err := get(t, b, "b"); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("b written by a failed transaction: %v", err)
	}
}

// Concurrent read-modify-write of one key never loses an increment.
func testNoLostUpdate(t *testing.T, b kv.Backend) {
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				err := update(b, func(txn kv.Txn) error {
					n := 0
					it, err := txn.Get([]byte("counter"))
					switch {
					case errors.Is(err, kv.ErrKeyNotFound):
					case err != nil:
						return err
					default:
						if err := it.Value(func(v []byte) error { _, err := fmt.Sscan(string(v), &n); return err }); err != nil {
							return err
						}
					}
					return txn.Set([]byte("counter"), []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if v, err := get(t, b, "counter"); err != nil || v != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s, %v; want %d", v, err, workers*each)
	}
}

// Several transactions that each create a missing key if it is still
// missing: exactly one of them creates it.
func testOneCreatorWins(t *testing.T, b kv.Backend) {
	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			created := false
			err := update(b, func(txn kv.Txn) error {
				created = false
				_, err := txn.Get([]byte("claim"))
				if err == nil {
					return nil
				}
				if !errors.Is(err, kv.ErrKeyNotFound) {
					return err
				}
				created = true
				return txn.Set([]byte("claim"), []byte(fmt.Sprint(i)))
			})
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	v, _ := get(t, b, "claim")
	if len(winners) != 1 || v != fmt.Sprint(winners[0]) {
		t.Fatalf("winners = %v, stored %q: want exactly one", winners, v)
	}
}

func keysOf(t *testing.T, b kv.Backend, o kv.IteratorOptions, seek []byte) []string {
	t.Helper()
	var out []string
	err := b.View(ctx, func(txn kv.Txn) error {
		it := txn.NewIterator(o)
		defer it.Close()
		if seek != nil {
			it.Seek(seek)
		} else {
			it.Rewind()
		}
		for ; it.ValidForPrefix(o.Prefix); it.Next() {
			out = append(out, string(it.Item().KeyCopy(nil)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Byte order, prefixes with 0x00 and 0xff, reverse, Seek, and more keys
// than an engine loads at once.
func testIterationOrder(t *testing.T, b kv.Backend) {
	var want []string
	err := b.Update(ctx, func(txn kv.Txn) error {
		for i := range 700 {
			k := fmt.Sprintf("p\xff%c%03d", byte(i%3)*0x7f, i)
			want = append(want, k)
			if err := txn.Set([]byte(k), []byte{byte(i)}); err != nil {
				return err
			}
		}
		for _, k := range []string{"o", "p", "q", "p\xfe", "\xff\xff"} {
			if err := txn.Set([]byte(k), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	pfx := []byte("p\xff")
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: pfx}, nil); !slices.Equal(got, want) {
		t.Fatalf("forward: %d keys, first %q; want %d", len(got), first(got), len(want))
	}
	rev := slices.Clone(want)
	slices.Reverse(rev)
	// Reverse iteration starts from a seek past the prefix, as Badger needs.
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: pfx, Reverse: true}, append(slices.Clone(pfx), 0xff, 0xff)); !slices.Equal(got, rev) {
		t.Fatalf("reverse: %d keys, first %q; want %d from %q", len(got), first(got), len(rev), rev[0])
	}
	mid := want[350]
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: pfx}, []byte(mid)); !slices.Equal(got, want[350:]) {
		t.Fatalf("seek: %d keys from %q", len(got), first(got))
	}
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: pfx, Reverse: true}, []byte(mid)); !slices.Equal(got, rev[349:]) {
		t.Fatalf("reverse seek: %d keys from %q", len(got), first(got))
	}
	all := keysOf(t, b, kv.IteratorOptions{}, nil)
	if len(all) != 705 || all[0] != "o" || all[len(all)-1] != "\xff\xff" || !slices.IsSorted(all) {
		t.Fatalf("all keys: %d, %q … %q", len(all), first(all), all[len(all)-1])
	}
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: []byte("\xff\xff")}, nil); len(got) != 1 {
		t.Fatalf("an all-0xff prefix: %q", got)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func testIteratorSeesOwnWrites(t *testing.T, b kv.Backend) {
	set(t, b, "w1", "old", "w3", "x")
	err := b.Update(ctx, func(txn kv.Txn) error {
		if err := txn.Set([]byte("w2"), []byte("new")); err != nil {
			return err
		}
		if err := txn.Delete([]byte("w3")); err != nil {
			return err
		}
		var got []string
		it := txn.NewIterator(kv.IteratorOptions{Prefix: []byte("w")})
		for it.Rewind(); it.Valid(); it.Next() {
			got = append(got, string(it.Item().Key()))
		}
		it.Close()
		if !slices.Equal(got, []string{"w1", "w2"}) {
			return fmt.Errorf("iterator in the writing transaction sees %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testReadTxnIsASnapshot(t *testing.T, b kv.Backend) {
	set(t, b, "s", "before")
	r, err := b.NewReadTxn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Discard()
	if _, err := r.Get([]byte("s")); err != nil {
		t.Fatal(err)
	}
	set(t, b, "s", "after", "s2", "new")
	it, err := r.Get([]byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := it.ValueCopy(nil); string(v) != "before" {
		t.Fatalf("the snapshot sees a later write: %q", v)
	}
	if _, err := r.Get([]byte("s2")); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("the snapshot sees a later key: %v", err)
	}
}

// A key written with a TTL is gone for Get and iterators once it passed.
// Badger counts TTLs in whole seconds, hence the wait.
func testExpiry(t *testing.T, b kv.Backend) {
	err := b.Update(ctx, func(txn kv.Txn) error {
		if err := txn.SetEntry(kv.NewEntry([]byte("t/short"), []byte("1")).WithTTL(time.Second)); err != nil {
			return err
		}
		return txn.SetEntry(kv.NewEntry([]byte("t/long"), []byte("2")).WithTTL(time.Hour))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, b, "t/short"); err != nil {
		t.Fatalf("before its TTL: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := get(t, b, "t/short"); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("after its TTL: %v", err)
	}
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: []byte("t/")}, nil); !slices.Equal(got, []string{"t/long"}) {
		t.Fatalf("iterator after the TTL: %q", got)
	}
	// An expired key can be written again, and a write clears the TTL.
	set(t, b, "t/short", "3")
	if v, err := get(t, b, "t/short"); err != nil || v != "3" {
		t.Fatalf("rewritten = %q, %v", v, err)
	}
}

func testWriteBatch(t *testing.T, b kv.Backend) {
	wb := b.NewWriteBatch(ctx)
	const n = 20000
	var wg sync.WaitGroup
	for w := range 4 { // Set is safe for concurrent use
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				if err := wb.Set(fmt.Appendf(nil, "b/%05d", i), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 2 {
		if err := wb.Delete(fmt.Appendf(nil, "b/%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Set([]byte("b/00001"), []byte("last")); err != nil {
		t.Fatal(err)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	wb.Cancel() // safe after Flush
	got := keysOf(t, b, kv.IteratorOptions{Prefix: []byte("b/")}, nil)
	if len(got) != n/2 || got[0] != "b/00001" {
		t.Fatalf("after the batch: %d keys from %q", len(got), first(got))
	}
	if v, _ := get(t, b, "b/00001"); v != "last" {
		t.Fatalf("the last write of a key did not win: %q", v)
	}
	// Sets over keys an earlier transaction or an earlier part of the
	// batch wrote: the last write wins.
	set(t, b, "o/00003", "from a transaction")
	wb = b.NewWriteBatch(ctx)
	for round := range 2 {
		for i := range 10000 {
			if err := wb.Set(fmt.Appendf(nil, "o/%05d", i), fmt.Appendf(nil, "round %d", round)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"o/00003", "o/00000", "o/09999"} {
		if v, err := get(t, b, k); err != nil || v != "round 1" {
			t.Fatalf("%s after overwriting batches = %q, %v", k, v, err)
		}
	}
	if got := keysOf(t, b, kv.IteratorOptions{Prefix: []byte("o/")}, nil); len(got) != 10000 {
		t.Fatalf("%d keys after overwriting batches", len(got))
	}
	// A cancelled batch need not write anything, and must not fail later use.
	wb = b.NewWriteBatch(ctx)
	_ = wb.Set([]byte("c/1"), []byte("x"))
	wb.Cancel()
	set(t, b, "c/2", "y")
}

func testDropPrefix(t *testing.T, b kv.Backend) {
	set(t, b, "r1", "", "r2", "", "m1", "", "x", "")
	if err := b.DropPrefix(ctx, []byte("r"), []byte("m")); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, b, kv.IteratorOptions{}, nil); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("after DropPrefix: %q", got)
	}
}

func testClock(t *testing.T, b kv.Backend) {
	if d := b.Now().Sub(time.Now()).Abs(); d > 5*time.Second {
		t.Fatalf("the engine's clock is %v off this machine's", d)
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}
