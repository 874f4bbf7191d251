package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store"
)

const keysUsage = `usage: otpgate keys

Prints the public key set that verifies otpgate's vaccination proofs, as a
JSON Web Key Set (RFC 8037): the current signing key (OTPGATE_SIGNING_KEY,
or the one derived from OTPGATE_MASTER_KEY) and the retired ones in
OTPGATE_RETIRED_SIGNING_KEYS. Publish it; the public listener serves it as
/keys.json.`

func runKeys(_ context.Context, args []string, e env) error {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" {
			fmt.Fprintln(e.stderr, keysUsage)
			return nil
		}
		return usageError{"takes no arguments\n" + keysUsage}
	}
	cfg, err := loadConfig(e, config.Import)
	if err != nil {
		return err
	}
	_, set, err := app.ProofKeys(cfg)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, string(b))
	return err
}

const verifyUsage = `usage: otpgate verify [-keys FILE] [-revoked FILE] [PROOF | IMAGE | -]

Checks a vaccination proof: its text (OTPG1:…) given as the argument or on
standard input (-, or no argument), or a PNG or JPEG image of its QR code.
Prints "valid" with the status, dose count, month of the last dose,
initials and birth year, or "invalid" and why (bad signature, unknown key,
expired, revoked, not a proof), and exits 1 when invalid. Keys come from
-keys (a JWKS, e.g. /keys.json) or, without it, from this installation's
configuration; the revocation list from -revoked (/revocations.json) or,
without it, from OTPGATE_DATA_DIR when it can be read.`

func runVerify(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, verifyUsage) }
	keysFile := fs.String("keys", "", "verify with this JWKS instead of the configured keys")
	revokedFile := fs.String("revoked", "", "check against this revocation list instead of the data directory's")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 1 {
		return usageError{"takes one proof, image or -\n" + verifyUsage}
	}
	text, err := proofInput(fs.Arg(0), e.stdin)
	if err != nil {
		return err
	}
	ks, rev, err := verifyMaterial(ctx, e, *keysFile, *revokedFile)
	if err != nil {
		return err
	}
	c, err := proof.Verify(text, ks, rev, time.Now())
	if err != nil {
		reason := map[error]string{
			proof.ErrNotProof: "not an otpgate proof", proof.ErrUnknownKey: "signed by an unknown key",
			proof.ErrBadSignature: "bad signature (altered, or forged)", proof.ErrExpired: "expired",
			proof.ErrRevoked: "revoked",
		}
		why := "invalid"
		for target, r := range reason {
			if errors.Is(err, target) {
				why = r
			}
		}
		if errors.Is(err, proof.ErrExpired) {
			why += " on " + c.Expires.Format(time.DateOnly)
		}
		fmt.Fprintf(e.stdout, "invalid: %s\n", why)
		return errInvalidProof
	}
	last := c.LastDose
	if last == "" {
		last = "—"
	}
	fmt.Fprintf(e.stdout, "valid\nstatus: %s\ndoses: %d\nlast dose: %s\ninitials: %s\nbirth year: %d\nissued by %s on %s, valid until %s\nproof id: %s\n",
		c.Status, c.Doses, last, c.Initials, c.BirthYear, c.Issuer,
		c.IssuedAt.Format(time.DateOnly), c.Expires.Format(time.DateOnly), c.ID)
	return nil
}

// errInvalidProof makes verify exit 1 after it has said why.
var errInvalidProof = silentError{"invalid proof"}

// proofInput reads the proof text: an argument that is the text itself,
// the path of an image, or standard input.
func proofInput(arg string, stdin io.Reader) (string, error) {
	if arg == "" || arg == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
		if err != nil {
			return "", err
		}
		if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, proof.Prefix) || !looksLikeImage(b) {
			return s, nil
		}
		return proof.DecodeImage(strings.NewReader(string(b)))
	}
	if strings.HasPrefix(strings.TrimSpace(arg), proof.Prefix) {
		return strings.TrimSpace(arg), nil
	}
	f, err := os.Open(arg)
	if errors.Is(err, os.ErrNotExist) && !strings.ContainsAny(arg, `/\.`) {
		return arg, nil // not a file: a (bad) proof text, which Verify names
	}
	if err != nil {
		return "", fmt.Errorf("%q is neither a proof (%s…) nor a readable image: %w", arg, proof.Prefix, err)
	}
	defer f.Close()
	text, err := proof.DecodeImage(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", arg, err)
	}
	return text, nil
}

func looksLikeImage(b []byte) bool {
	return strings.HasPrefix(string(b), "\x89PNG") || strings.HasPrefix(string(b), "\xff\xd8")
}

// verifyMaterial loads the keys and the revocation list: from files, or
// from this installation.
func verifyMaterial(ctx context.Context, e env, keysFile, revokedFile string) (proof.KeySet, proof.Revocations, error) {
	var ks proof.KeySet
	var rev proof.Revocations
	if keysFile != "" {
		b, err := os.ReadFile(keysFile)
		if err != nil {
			return ks, rev, err
		}
		if ks, err = proof.ParseKeySet(b); err != nil {
			return ks, rev, fmt.Errorf("%s: %w", keysFile, err)
		}
	}
	if revokedFile != "" {
		b, err := os.ReadFile(revokedFile)
		if err != nil {
			return ks, rev, err
		}
		if rev, err = proof.ParseRevocations(b); err != nil {
			return ks, rev, fmt.Errorf("%s: %w", revokedFile, err)
		}
	}
	if keysFile != "" && revokedFile != "" {
		return ks, rev, nil
	}
	cfg, err := loadConfig(e, config.Import)
	if err != nil {
		return ks, rev, fmt.Errorf("no -keys given, so the configured keys are needed: %w", err)
	}
	if keysFile == "" {
		if _, ks, err = app.ProofKeys(cfg); err != nil {
			return ks, rev, err
		}
	}
	if revokedFile == "" {
		a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
		switch {
		case errors.Is(err, store.ErrLocked):
			fmt.Fprintf(e.stderr, "note: %s is in use by serve; revocations not checked (pass -revoked with /revocations.json)\n", cfg.DataDir)
		case err != nil:
			return ks, rev, err
		default:
			rev, err = app.Revocations(ctx, a.Store)
			err = errors.Join(err, a.Stop())
			if err != nil {
				return ks, rev, err
			}
		}
	}
	return ks, rev, nil
}

const proofUsage = `usage: otpgate proof revoke ID

Revokes a vaccination proof by its id (16 hex characters, printed by
` + "`otpgate verify`" + ` and recorded in the audit log). Verifiers that use the
published revocation list then refuse it. When serve holds OTPGATE_DATA_DIR,
the revocation goes through its ops server (OTPGATE_OPS_LISTEN) and is
published at once.`

func runProof(ctx context.Context, args []string, e env) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(e.stderr, proofUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "revoke" {
		return usageError{proofUsage}
	}
	id := strings.ToLower(strings.TrimSpace(args[1]))
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return usageError{fmt.Sprintf("%q is not a proof id (16 hex characters)", args[1])}
	}
	cfg, err := loadConfig(e, config.Admin)
	if err != nil {
		return err
	}
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelNone, Stdout: e.stdout, Stderr: e.stderr})
	switch {
	case errors.Is(err, store.ErrLocked) && cfg.OpsListen != "":
		ks, kerr := keys.Derive(cfg.MasterKey.Bytes())
		if kerr != nil {
			return kerr
		}
		if err := app.RevokeRemote(ctx, cfg.OpsListen, ks, id); err != nil {
			return err
		}
	case errors.Is(err, store.ErrLocked):
		return fmt.Errorf("%s is in use by serve: set OTPGATE_OPS_LISTEN to its ops address to revoke through it", cfg.DataDir)
	case err != nil:
		return err
	default:
		err = a.Store.RevokeProof(ctx, id)
		if err := errors.Join(err, a.Stop()); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "proof %s revoked\n", id)
	return nil
}
