package pgkv_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/otpgate/otpgate/internal/pgtest"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/kv"
	"github.com/otpgate/otpgate/store/pgkv"
	"github.com/otpgate/otpgate/store/storetest"
)

func openStore(t *testing.T, url string, clk *storetest.Clock) *store.Store {
	t.Helper()
	ks := storetest.Keys(t)
	db, err := open(t, url, ks.Rows)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Options{Backend: db, IndexKey: ks.Index, AuditKey: ks.Audit, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rawRows(t *testing.T, url string) (keys, values [][]byte) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT k, v FROM otpgate_kv")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		keys, values = append(keys, k), append(values, v)
	}
	return keys, values
}

// A database administrator reading every row sees no name, mobile, ID
// number, reference id or chat user in clear.
func TestNothingInClear(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	clk := storetest.NewClock()
	s := openStore(t, url, clk)
	rs := storetest.Seed(t, s)
	tgt := storetest.Resolve(t, s, "9000000001")
	storetest.Issue(t, s, "telegram:424242", tgt, "123456", clk)
	g, _, err := storetest.Verify(s, "telegram:424242", "123456")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(context.Background(), g.Ref(), tgt.Records[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleDeletion(context.Background(), store.Deletion{Due: time.Now(), ChatID: 424242, MessageID: 77}); err != nil {
		t.Fatal(err)
	}
	ks, vs := rawRows(t, url)
	if len(ks) < 10 {
		t.Fatalf("only %d rows", len(ks))
	}
	secrets := []string{"424242", "Asha", "Verma", "9000000001", "234123412341", "2341234", "10000000000001", "COVAXIN", "beneficiary", "released"}
	for _, r := range rs {
		secrets = append(secrets, r.Record.Mobile.E164()[1:])
	}
	for i := range ks {
		for _, sec := range secrets {
			if bytes.Contains(ks[i], []byte(sec)) || bytes.Contains(vs[i], []byte(sec)) {
				t.Fatalf("row %x holds %q in clear", ks[i], sec)
			}
		}
	}
}

// A value moved to another row (an administrator swapping two records)
// does not open: the key is bound into each value's seal.
func TestMovedValueRefused(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	db, err := open(t, url, storetest.Keys(t).Rows)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.Update(ctx, func(txn kv.Txn) error {
		if err := txn.Set([]byte("r1"), []byte("record one")); err != nil {
			return err
		}
		return txn.Set([]byte("r2"), []byte("record two"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool().Exec(ctx, "UPDATE otpgate_kv SET v = (SELECT v FROM otpgate_kv WHERE k = 'r1') WHERE k = 'r2'"); err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(txn kv.Txn) error {
		it, err := txn.Get([]byte("r2"))
		if err != nil {
			return err
		}
		_, err = it.ValueCopy(nil)
		return err
	})
	if !errors.Is(err, kv.ErrUnreadable) {
		t.Fatalf("a moved value read as %v, want ErrUnreadable", err)
	}
	// With another master key nothing opens either.
	other, err := pgkv.Open(ctx, pgkv.Options{URL: url, Key: storetest.TestKeys(t, 9).Rows})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = other.View(ctx, func(txn kv.Txn) error {
		it, err := txn.Get([]byte("r1"))
		if err != nil {
			return err
		}
		_, err = it.ValueCopy(nil)
		return err
	})
	if !errors.Is(err, kv.ErrUnreadable) {
		t.Fatalf("another key read a value: %v", err)
	}
}

// The database killed (SIGKILL) and restarted: counted guesses and
// consumed codes survive, and the store recovers on its own once the
// server is back.
func TestSurvivesDatabaseCrash(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	clk := storetest.NewClock()
	s := openStore(t, url, clk)
	storetest.Seed(t, s)
	tgt := storetest.Resolve(t, s, "9000000002")
	storetest.Issue(t, s, "tg:1", tgt, "111111", clk)
	for range 2 {
		if _, out, _ := storetest.Verify(s, "tg:1", "000000"); out != store.VerifyWrong {
			t.Fatal(out)
		}
	}
	storetest.Issue(t, s, "tg:2", tgt, "222222", clk)
	if _, out, err := storetest.Verify(s, "tg:2", "222222"); out != store.VerifyOK {
		t.Fatal(out, err)
	}
	audit, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("ping succeeds with the database down")
	}
	if _, _, err := storetest.Verify(s, "tg:1", "111111"); err == nil {
		t.Fatal("a verification succeeded with the database down")
	}
	srv.Restart(t)
	// The same store, without reopening: the pool reconnects.
	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the store did not reconnect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, out, _ := storetest.Verify(s, "tg:2", "222222"); out != store.VerifyUsed {
		t.Fatalf("the consumed code after the crash: %v", out)
	}
	// Two wrong guesses survived: the third kills the code (MaxAttempts 3).
	if _, out, _ := storetest.Verify(s, "tg:1", "000000"); out != store.VerifyWrong {
		t.Fatal(out)
	}
	if _, out, _ := storetest.Verify(s, "tg:1", "111111"); out != store.VerifyCodeDead {
		t.Fatalf("attempts after the crash: %v", out)
	}
	n, err := s.VerifyAudit(context.Background())
	if err != nil || n <= audit {
		t.Fatalf("audit after the crash: %d (had %d), %v", n, audit, err)
	}
}
