package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store"
)

// ProofKeys returns the signer of new proofs and the public key set that
// verifies them: the signing key from OTPGATE_SIGNING_KEY, or, when it is
// not set, one derived from the master key (HKDF, its own label), plus the
// retired keys of earlier rotations.
func ProofKeys(cfg config.Config) (*proof.Signer, proof.KeySet, error) {
	var (
		priv []byte
		err  error
	)
	if cfg.SigningKey.IsSet() {
		priv, err = proof.ParseSigningKey(cfg.SigningKey.Reveal())
	} else {
		priv, err = proof.DeriveSigningKey(cfg.MasterKey.Bytes())
	}
	if err != nil {
		return nil, proof.KeySet{}, fmt.Errorf("OTPGATE_SIGNING_KEY: %w", err)
	}
	signer, err := proof.NewSigner(priv)
	if err != nil {
		return nil, proof.KeySet{}, fmt.Errorf("OTPGATE_SIGNING_KEY: %w", err)
	}
	all := []proof.Key{signer.Public()}
	for _, s := range cfg.RetiredSigningKeys {
		k, err := proof.ParsePublicKey(s)
		if err != nil {
			return nil, proof.KeySet{}, fmt.Errorf("OTPGATE_RETIRED_SIGNING_KEYS: %w", err)
		}
		if k.ID() != signer.KeyID() {
			all = append(all, k)
		}
	}
	set, err := proof.NewKeySet(all...)
	if err != nil {
		return nil, proof.KeySet{}, fmt.Errorf("OTPGATE_RETIRED_SIGNING_KEYS: %w", err)
	}
	return signer, set, nil
}

// Revocations reads the store's revocation list as the proof package's.
func Revocations(ctx context.Context, st *store.Store) (proof.Revocations, error) {
	ids, updated, err := st.Revoked(ctx)
	if err != nil {
		return proof.Revocations{}, err
	}
	return proof.NewRevocations(updated, ids...)
}

// certifier issues proofs through the store's grant-taking door: the
// signature and the QR code are made inside store.Certify, so nothing
// leaves unless the issuance was audited, and a failure to sign or draw
// leaves no audit entry behind.
type certifier struct {
	st     *store.Store
	signer *proof.Signer
	issuer string
	ttl    time.Duration
	now    func() time.Time
}

var _ bot.Certifier = certifier{}

func (c certifier) Certify(ctx context.Context, ref store.GrantRef, handle string) (bot.Certificate, error) {
	var out bot.Certificate
	err := c.st.Certify(ctx, ref, handle, func(f store.ProofFacts) (string, error) {
		facts, err := proofFacts(f)
		if err != nil {
			return "", err
		}
		claims, text, err := c.signer.Issue(facts, c.issuer, c.now(), c.ttl)
		if err != nil {
			return "", err
		}
		png, err := proof.QRCode(text)
		if err != nil {
			return "", err
		}
		out = bot.Certificate{PNG: png, Text: text, Status: f.Status, Doses: claims.Doses, Expires: claims.Expires}
		return claims.ID, nil
	})
	if err != nil {
		return bot.Certificate{}, err
	}
	return out, nil
}

func proofFacts(f store.ProofFacts) (proof.Facts, error) {
	st, err := proof.ParseStatus(string(f.Status))
	if err != nil {
		return proof.Facts{}, err
	}
	pf := proof.Facts{Status: st, Doses: f.Doses, BirthYear: f.BirthYear, Name: f.Name}
	if f.LastDose != "" {
		if pf.LastDose, err = time.Parse(time.DateOnly, f.LastDose); err != nil {
			return proof.Facts{}, fmt.Errorf("last dose date: %w", err)
		}
	}
	return pf, nil
}

// startPublic serves the verification page, the key set and the
// revocation list on OTPGATE_PUBLIC_LISTEN, read-only and apart from the
// ops port. The revocation list is republished whenever a proof is
// revoked through the ops port (the only way while serve holds the store).
func (a *App) startPublic(ctx context.Context) error {
	rev, err := Revocations(ctx, a.Store)
	if err != nil {
		return err
	}
	pub, err := proof.NewPublisher(a.ProofKeys, rev)
	if err != nil {
		return err
	}
	a.publisher = pub
	ln, err := net.Listen("tcp", a.Config.PublicListen)
	if err != nil {
		return fmt.Errorf("OTPGATE_PUBLIC_LISTEN: %w", err)
	}
	srv := &http.Server{Handler: pub, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.publicAddr = ln.Addr().String()
	a.Log.Info("public verification page listening", "component", "public", "addr", a.publicAddr)
	a.onStop("public listener", func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		return err
	})
	return nil
}

// refreshRevocations republishes the store's revocation list.
func (a *App) refreshRevocations(ctx context.Context) {
	if a.publisher == nil {
		return
	}
	rev, err := Revocations(ctx, a.Store)
	if err == nil {
		err = a.publisher.SetRevocations(rev)
	}
	if err != nil {
		a.Log.Warn("revocation list not republished", "component", "public", "err", err)
	}
}

// PublicAddr is where the public listener listens, "" when it is off.
func (a *App) PublicAddr() string { return a.publicAddr }

// revokeHandler serves POST /proofs/revoke on the ops port, behind the ops
// token: the form value id is a proof id. The published list changes at
// once.
func (a *App) revokeHandler() http.Handler {
	log := a.Log.With("component", "ops")
	return requireOpsToken(a.Keys, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		if err := a.Store.RevokeProof(r.Context(), strings.TrimSpace(r.PostFormValue("id"))); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.refreshRevocations(r.Context())
		log.Info("proof revoked", "remote", r.RemoteAddr)
		fmt.Fprintln(w, "revoked")
	}))
}

// RevokeRemote asks a running otpgate to revoke a proof through its ops
// server at opsAddr.
func RevokeRemote(ctx context.Context, opsAddr string, ks keys.Set, id string) error {
	return opsCall(ctx, opsAddr, ks, http.MethodPost, "/proofs/revoke", url.Values{"id": {id}}, io.Discard)
}
