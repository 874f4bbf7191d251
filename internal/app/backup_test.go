package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

func backupTestKeys(t *testing.T, seed byte) keys.Set {
	t.Helper()
	ks, err := keys.Derive(bytes.Repeat([]byte{seed}, keys.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func backupStoreOptions(ks keys.Set, dir string) store.Options {
	return store.Options{Dir: dir, InMemory: dir == "", EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit}
}

// backupTestStore is an in-memory store with a few audit entries.
func backupTestStore(t *testing.T, ks keys.Set) *store.Store {
	t.Helper()
	st, err := store.Open(backupStoreOptions(ks, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, r := range []string{"tg:1", "tg:2", "tg:3"} {
		if err := st.Audit(context.Background(), store.AuditEntry{Event: store.EventSessionEnded, Requester: r}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// restoreBackupBytes restores b into a new directory and returns its audit length.
func restoreBackupBytes(t *testing.T, b []byte, ks keys.Set) uint64 {
	t.Helper()
	st, err := store.Restore(context.Background(), bytes.NewReader(b), backupStoreOptions(ks, filepath.Join(t.TempDir(), "data")), ks.Backup)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	return st.AuditEntries
}

func TestBackupToken(t *testing.T) {
	a, b := BackupToken(backupTestKeys(t, 1)), BackupToken(backupTestKeys(t, 2))
	if len(a) != 64 || a == b || a != BackupToken(backupTestKeys(t, 1)) {
		t.Fatalf("tokens %q %q", a, b)
	}
}

func TestBackupHandler(t *testing.T) {
	ks := backupTestKeys(t, 1)
	srv := httptest.NewServer(BackupHandler(backupTestStore(t, ks), ks, nil))
	defer srv.Close()

	cases := []struct {
		name   string
		method string
		auth   string
		want   int
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized},
		{"another key's token", http.MethodGet, "Bearer " + BackupToken(backupTestKeys(t, 2)), http.StatusUnauthorized},
		{"token without scheme", http.MethodGet, BackupToken(ks), http.StatusUnauthorized},
		{"token with a suffix", http.MethodGet, "Bearer " + BackupToken(ks) + "0", http.StatusUnauthorized},
		{"POST", http.MethodPost, "Bearer " + BackupToken(ks), http.StatusMethodNotAllowed},
		{"GET with the token", http.MethodGet, "Bearer " + BackupToken(ks), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+"/backup", nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.want)
			}
			if c.want != http.StatusOK {
				if bytes.Contains(body, []byte("otpgate-backup")) {
					t.Fatal("backup sent without the token")
				}
				return
			}
			if resp.Trailer.Get(backupStatusTrailer) != "ok" {
				t.Fatalf("trailer %q", resp.Trailer.Get(backupStatusTrailer))
			}
			if n := restoreBackupBytes(t, body, ks); n != 3 {
				t.Fatalf("restored %d audit entries, want 3", n)
			}
		})
	}
}

func TestFetchBackup(t *testing.T) {
	ks := backupTestKeys(t, 1)
	srv := httptest.NewServer(BackupHandler(backupTestStore(t, ks), ks, nil))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	var buf bytes.Buffer
	if err := FetchBackup(ctx, addr, ks, &buf); err != nil {
		t.Fatal(err)
	}
	if n := restoreBackupBytes(t, buf.Bytes(), ks); n != 3 {
		t.Fatalf("restored %d audit entries, want 3", n)
	}

	if err := FetchBackup(ctx, addr, backupTestKeys(t, 2), io.Discard); !errors.Is(err, ErrBackupForbidden) {
		t.Fatalf("another key: %v", err)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := strings.TrimPrefix(closed.URL, "http://")
	if err := FetchBackup(ctx, closedAddr, ks, io.Discard); !errors.Is(err, ErrOpsUnreachable) || !strings.Contains(err.Error(), "/backup") {
		t.Fatalf("no /backup: %v", err)
	}
	closed.Close()
	if err := FetchBackup(ctx, closedAddr, ks, io.Discard); !errors.Is(err, ErrOpsUnreachable) {
		t.Fatalf("unreachable: %v", err)
	}

	// A backup that failed after the status line went out.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", backupStatusTrailer)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "otpgate-backup v1 partial")
		w.Header().Set(backupStatusTrailer, "failed")
	}))
	defer failing.Close()
	if err := FetchBackup(ctx, strings.TrimPrefix(failing.URL, "http://"), ks, io.Discard); !errors.Is(err, ErrBackupStream) {
		t.Fatalf("failed stream: %v", err)
	}
}

func TestBackupURL(t *testing.T) {
	for in, want := range map[string]string{
		":9090":              "http://127.0.0.1:9090/backup",
		"0.0.0.0:9090":       "http://127.0.0.1:9090/backup",
		"[::]:9090":          "http://[::1]:9090/backup",
		"10.0.0.5:9090":      "http://10.0.0.5:9090/backup",
		"http://ops:9/":      "http://ops:9/backup",
		"localhost:9090":     "http://localhost:9090/backup",
		"[2001:db8::1]:9090": "http://[2001:db8::1]:9090/backup",
	} {
		if got, err := backupURL(in); err != nil || got != want {
			t.Errorf("backupURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := backupURL("nohost"); err == nil {
		t.Error("backupURL accepted an address without a port")
	}
}
