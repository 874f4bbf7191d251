package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/otpgate/otpgate/bot/telegram"
	tf "github.com/otpgate/otpgate/bot/telegram/telegramtest"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store"
)

// TestCertificateOverTelegram runs the shipped program against the fake
// Bot API: after the code, /certificate arrives as a sendPhoto upload,
// unprotected and never deleted; the PNG decodes with a QR decoder, the
// proof verifies with the published key set, and its payload has exactly
// the minimum field set.
func TestCertificateOverTelegram(t *testing.T) {
	const token = "4343:app-cert-token_for-the-fake-api"
	fake := tf.New(token, tf.Options{EnforceLimits: true})
	t.Cleanup(fake.Close)
	a := apptest.New(t, apptest.Options{Lenient: true,
		Deps: app.Deps{Channel: app.ChannelTelegram, Telegram: telegram.Options{PollTimeout: time.Second}},
		Config: func(c *config.Config) {
			c.TelegramToken = config.NewSecret(token)
			c.TelegramAPIURL = fake.URL()
			c.PublicListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0"
		}})
	a.Import(t, apptest.Person{Ref: "60000000000001", Name: "Kavya Iyer", Mobile: "9000000401", BirthYear: 1984,
		Doses: []store.Dose{{Number: 1, Vaccine: "COVISHIELD", Date: "2021-04-02", Center: "PHC A"}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := fake.WaitFor(wctx, fake.Polling); err != nil {
		t.Fatal(err)
	}
	chat, user := tf.Private(501), tf.User{ID: 501, FirstName: "K", LanguageCode: "en"}
	fake.SendText(chat, user, "/lookup 9000000401")
	if _, err := fake.WaitLatest(wctx, 501, 1, func(tf.SentMessage) bool { return true }); err != nil {
		t.Fatal(err)
	}
	a.Idle(t)
	fake.SendText(chat, user, a.Phone.Code("9000000401"))
	if _, err := fake.WaitLatest(wctx, 501, 2, func(m tf.SentMessage) bool { return !m.EditTime.IsZero() }); err != nil {
		t.Fatal(err)
	}
	fake.SendText(chat, user, "/certificate")
	got, err := fake.WaitLatest(wctx, 501, 3, func(m tf.SentMessage) bool { return len(m.Photo) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	ph := got[2]
	if ph.ProtectContent {
		t.Fatal("the proof was sent protected; it is meant to be kept and shown")
	}
	text, err := proof.DecodeImage(bytes.NewReader(ph.Photo))
	if err != nil {
		t.Fatalf("decoding the uploaded PNG: %v", err)
	}
	c, err := proof.Verify(text, a.ProofKeys, proof.Revocations{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Initials != "K.I." || c.BirthYear != 1984 || c.Status != proof.StatusPartial || c.Doses != 1 || c.LastDose != "2021-04" {
		t.Fatalf("claims %+v", c)
	}
	assertMinimalPayload(t, text)
	checkPublished(t, a.App, text, c.ID)
	// Not on the deletion schedule: a while later it is still there.
	due, err := app.TelegramDeletions(a.Store).DueDeletions(context.Background(), time.Now().Add(48*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.MessageID == ph.MessageID {
			t.Fatal("the proof image is scheduled for deletion")
		}
	}
}

// assertMinimalPayload opens the COSE_Sign1 inside the proof and checks
// the claim keys: iss, exp, iat, cti, and one private claim with status,
// doses, last dose month, birth year and initials — nothing else.
func assertMinimalPayload(t *testing.T, text string) {
	t.Helper()
	payload, err := proof.Payload(text)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[int64]cbor.RawMessage
	if err := cbor.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	want := map[int64]bool{1: true, 4: true, 6: true, 7: true, -65537: true}
	if len(claims) != len(want) {
		t.Fatalf("claims %v", keysOf(claims))
	}
	for k := range claims {
		if !want[k] {
			t.Fatalf("unexpected claim %d", k)
		}
	}
	var private map[int64]cbor.RawMessage
	if err := cbor.Unmarshal(claims[-65537], &private); err != nil {
		t.Fatal(err)
	}
	for k := range private {
		if k < 1 || k > 5 {
			t.Fatalf("unexpected private claim %d in %v", k, keysOf(private))
		}
	}
}

func keysOf(m map[int64]cbor.RawMessage) []int64 {
	var out []int64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkPublished: the public listener's key set verifies the proof; a
// revocation through the ops port is on its revocation list at once.
func checkPublished(t *testing.T, a *app.App, text, id string) {
	t.Helper()
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get("http://" + a.PublicAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return b
	}
	keys, err := proof.ParseKeySet(get("/keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(text, keys, proof.Revocations{}, time.Now()); err != nil {
		t.Fatalf("the published keys do not verify the proof: %v", err)
	}
	if page := get("/"); !bytes.Contains(page, []byte("OTPG1:")) && !bytes.Contains(page, []byte("otpgate")) {
		t.Fatal("the verification page is not served")
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.OpsAddr()+"/proofs/revoke", strings.NewReader(id))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a revocation without the token: %v %v", resp, err)
	}
	if err := app.RevokeRemote(context.Background(), a.OpsAddr(), a.Keys, id); err != nil {
		t.Fatal(err)
	}
	rev, err := proof.ParseRevocations(get("/revocations.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proof.Verify(text, keys, rev, time.Now()); !errors.Is(err, proof.ErrRevoked) {
		t.Fatalf("after revocation through the ops port the published list gives %v", err)
	}
}
