package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/store"
)

// Errors of FetchBackup.
var (
	ErrOpsUnreachable  = errors.New("cannot reach the running otpgate's ops server")
	ErrBackupForbidden = errors.New("the running otpgate refused the backup token: it runs with another OTPGATE_MASTER_KEY")
	ErrBackupStream    = errors.New("the running otpgate failed while sending the backup")
)

// backupStatusTrailer reports, after the body, whether the backup was
// written completely: the status line went out before the first byte.
const backupStatusTrailer = "Otpgate-Backup-Status"

// BackupToken is the bearer token for the ops server's /backup: an HMAC
// keyed with the backup key, so an operator holding the master key can
// compute it and nobody else can. The ops port is not otherwise secret,
// and what the token buys is only an encrypted backup that again needs the
// master key.
func BackupToken(ks keys.Set) string {
	m := hmac.New(sha256.New, ks.Backup)
	m.Write([]byte("otpgate/v1/ops-backup-token"))
	return hex.EncodeToString(m.Sum(nil))
}

// BackupHandler serves GET /backup: an encrypted backup of st (see
// store.Backup), streamed as it is made, to a request that carries
// "Authorization: Bearer <BackupToken>". It answers 401 without the token,
// 405 to other methods and 409 while another backup is being sent.
// Whether the stream completed is in the Otpgate-Backup-Status trailer.
func BackupHandler(st *store.Store, ks keys.Set, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "backup")
	want := []byte("Bearer " + BackupToken(ks))
	busy := make(chan struct{}, 1) // one backup at a time: each holds a snapshot and a core
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			log.Warn("backup refused: missing or wrong token", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="otpgate backup"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		select {
		case busy <- struct{}{}:
			defer func() { <-busy }()
		default:
			http.Error(w, "a backup is already being sent", http.StatusConflict)
			return
		}
		h := w.Header()
		h.Set("Trailer", backupStatusTrailer)
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush() // the client's header timeout starts now, not after the first chunk
		start := time.Now()
		stats, err := st.Backup(r.Context(), w, ks.Backup)
		if err != nil {
			log.Error("backup failed while streaming", "remote", r.RemoteAddr, "err", err)
			h.Set(backupStatusTrailer, "failed")
			return
		}
		h.Set(backupStatusTrailer, "ok")
		log.Info("backup sent", "remote", r.RemoteAddr, "bytes", stats.Bytes, "entries", stats.Entries,
			"duration", time.Since(start).Round(time.Millisecond))
	})
}

// FetchBackup asks a running otpgate for a backup over its ops server at
// opsAddr (OTPGATE_OPS_LISTEN: host:port, ":port" meaning this machine) and
// writes it to w. It fails with ErrOpsUnreachable, ErrBackupForbidden or
// ErrBackupStream; after an error, what was written to w is incomplete.
func FetchBackup(ctx context.Context, opsAddr string, ks keys.Set, w io.Writer) error {
	u, err := backupURL(opsAddr)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("backup request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+BackupToken(ks))
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // the ops port is local; never route the token through a proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true, // the body is ciphertext
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s: %w", ErrOpsUnreachable, opsAddr, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return ErrBackupForbidden
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s has no /backup (is it an otpgate ops server of this version?)", ErrOpsUnreachable, opsAddr)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("backup from %s: %s: %s", opsAddr, resp.Status, strings.TrimSpace(string(msg)))
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %w", ErrBackupStream, err)
	}
	if s := resp.Trailer.Get(backupStatusTrailer); s != "ok" {
		return fmt.Errorf("%w (status %q; see its log)", ErrBackupStream, s)
	}
	return nil
}

func backupURL(opsAddr string) (string, error) { return opsURL(opsAddr, "/backup") }

// opsURL is the URL of path on the ops server at opsAddr (a listen address
// or a URL).
func opsURL(opsAddr, path string) (string, error) {
	if strings.HasPrefix(opsAddr, "http://") || strings.HasPrefix(opsAddr, "https://") {
		return strings.TrimSuffix(opsAddr, "/") + path, nil
	}
	host, port, err := net.SplitHostPort(opsAddr)
	if err != nil {
		return "", fmt.Errorf("ops address %q: %w", opsAddr, err)
	}
	// A listen address may name every interface; connect over loopback.
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// RestoreStore restores the backup read from r into cfg.DataDir, which
// must be empty or absent (see store.Restore).
func RestoreStore(ctx context.Context, cfg config.Config, r io.Reader, log *slog.Logger) (store.RestoreStats, error) {
	ks, err := keys.Derive(cfg.MasterKey.Bytes())
	if err != nil {
		return store.RestoreStats{}, fmt.Errorf("OTPGATE_MASTER_KEY: %w", err)
	}
	return store.Restore(ctx, r, store.Options{
		Dir: cfg.DataDir, EncryptionKey: ks.Storage, IndexKey: ks.Index, AuditKey: ks.Audit,
		Logger: log.With("component", "store"),
	}, ks.Backup)
}
