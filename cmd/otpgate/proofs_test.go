package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/proof"
)

// proofEnv is an installation: a master key and a data directory.
func proofEnv(t *testing.T) []string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return []string{"OTPGATE_MASTER_KEY=" + hex.EncodeToString(key), "OTPGATE_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}
}

// issue signs a proof with this installation's key (or another), issued
// at now for ttl.
func issue(t *testing.T, environ []string, other bool, now time.Time, ttl time.Duration) proof.Claims {
	t.Helper()
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := app.ProofKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if other {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ = proof.NewSigner(priv)
	}
	c, text, err := signer.Issue(proof.Facts{Status: proof.StatusFull, Doses: 2, LastDose: time.Date(2021, 7, 9, 0, 0, 0, 0, time.UTC),
		BirthYear: 1990, Name: "Meena Rao"}, "otpgate", now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	c.Issuer = text // carry the text back in an unused field for the test's convenience
	return c
}

func runCmd(environ []string, stdin string, args ...string) (code int, out, errOut string) {
	e, o, eb := testEnv(environ...)
	e.stdin = strings.NewReader(stdin)
	code = run(context.Background(), args, e)
	return code, o.String(), eb.String()
}

func TestVerify(t *testing.T) {
	environ := proofEnv(t)
	now := time.Now()
	good := issue(t, environ, false, now, time.Hour)
	text := good.Issuer

	code, out, errOut := runCmd(environ, "", "verify", text)
	if code != 0 || !strings.Contains(out, "valid\nstatus: full\ndoses: 2\nlast dose: 2021-07\ninitials: M.R.\nbirth year: 1990") {
		t.Fatalf("valid proof: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCmd(environ, text+"\n", "verify", "-"); code != 0 || !strings.HasPrefix(out, "valid") {
		t.Fatalf("from standard input: exit %d %s", code, out)
	}
	png, err := proof.QRCode(text)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "proof.png")
	os.WriteFile(img, png, 0o600)
	if code, out, errOut := runCmd(environ, "", "verify", img); code != 0 || !strings.HasPrefix(out, "valid") {
		t.Fatalf("from an image: exit %d %s%s", code, out, errOut)
	}

	// One character altered, in the middle.
	i := len(text) / 2
	alt := []byte(text)
	if alt[i] == 'A' {
		alt[i] = 'B'
	} else {
		alt[i] = 'A'
	}
	expired := issue(t, environ, false, now.Add(-2*time.Hour), time.Hour).Issuer
	unknown := issue(t, environ, true, now, time.Hour).Issuer
	revoked := issue(t, environ, false, now, time.Hour)
	if code, out, errOut := runCmd(environ, "", "proof", "revoke", revoked.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("proof revoke: exit %d %s%s", code, out, errOut)
	}
	for _, c := range []struct{ name, text, reason string }{
		{"altered", string(alt), "invalid: "},
		{"expired", expired, "invalid: expired"},
		{"revoked", revoked.Issuer, "invalid: revoked"},
		{"unknown key", unknown, "invalid: signed by an unknown key"},
		{"garbage", "OTPG1:%%%%", "invalid: not an otpgate proof"},
		{"not even a prefix", "hello", "invalid: not an otpgate proof"},
	} {
		code, out, errOut := runCmd(environ, "", "verify", c.text)
		if code == 0 || !strings.Contains(out, c.reason) || strings.Contains(out, "Meena") {
			t.Errorf("%s: exit %d, %q %q; want non-zero and %q", c.name, code, out, errOut, c.reason)
		}
	}
}

func TestKeysPrintsTheVerifyingSet(t *testing.T) {
	environ := proofEnv(t)
	code, out, errOut := runCmd(environ, "", "keys")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	set, err := proof.ParseKeySet([]byte(out))
	if err != nil || set.Len() != 1 {
		t.Fatalf("keys printed %q: %v", out, err)
	}
	text := issue(t, environ, false, time.Now(), time.Hour).Issuer
	if _, err := proof.Verify(text, set, proof.Revocations{}, time.Now()); err != nil {
		t.Fatalf("the printed set does not verify this installation's proofs: %v", err)
	}
	// A published set verifies without the installation's configuration.
	jwks := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(jwks, []byte(out), 0o600)
	rev := filepath.Join(t.TempDir(), "revocations.json")
	os.WriteFile(rev, []byte(`{"revoked":[],"updated":"2026-01-01T00:00:00Z"}`), 0o600)
	if code, out, errOut := runCmd(nil, "", "verify", "-keys", jwks, "-revoked", rev, text); code != 0 || !strings.HasPrefix(out, "valid") {
		t.Fatalf("verify with a published set: exit %d %s%s", code, out, errOut)
	}
}

func TestProofRevokeRefusesBadIDs(t *testing.T) {
	environ := proofEnv(t)
	for _, id := range []string{"", "xyz", "0123456789abcdeg", "0123456789abcdef0"} {
		if code, _, _ := runCmd(environ, "", "proof", "revoke", id); code != exitUsage {
			t.Errorf("revoke %q: exit %d, want %d", id, code, exitUsage)
		}
	}
}
