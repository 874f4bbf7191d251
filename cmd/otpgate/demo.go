package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/otpgate/otpgate/bot"
	"github.com/otpgate/otpgate/bot/console"
	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/keys"
	"github.com/otpgate/otpgate/internal/sample"
	"github.com/otpgate/otpgate/proof"
	"github.com/otpgate/otpgate/store/recordfile"
)

const demoUsage = `usage: otpgate demo [-records FILE] [-lang CODE]

Runs the whole product locally with no accounts or keys: a temporary,
encrypted data directory with a generated master key, the bundled sample
records (fictional people) or your own file, and a chat in this terminal as
a beneficiary. SMS messages appear in the terminal as on a phone, on lines
starting "SMS to". Standard input may be piped, one chat message per line.
Everything is deleted when the demo ends (Ctrl-D or Ctrl-C).`

func runDemo(ctx context.Context, args []string, e env) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprintln(e.stderr, demoUsage) }
	records := fs.String("records", "", "import this JSON Lines or CSV file instead of the bundled sample")
	lang := fs.String("lang", "en", "chat language: "+strings.Join(bot.Languages(), ", "))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0) + "\n" + demoUsage}
	}
	if !slices.Contains(bot.Languages(), *lang) {
		return usageError{fmt.Sprintf("-lang %q: the bot speaks %s", *lang, strings.Join(bot.Languages(), ", "))}
	}
	cfg, err := loadConfig(e, config.Demo)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "otpgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	master := make([]byte, keys.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		return err
	}
	cfg.MasterKey, err = config.NewSecretKey(master)
	if err != nil {
		return err
	}
	cfg.DataDir = dir
	cfg.SMSProvider = config.ProviderConsole

	out := console.NewWriter(e.stdout)
	// The demo's terminal is the chat: only warnings go to standard error.
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelConsole, Stdout: out, Stderr: e.stderr, Logger: log})
	if err != nil {
		return err
	}
	defer a.Stop()

	var f *recordfile.File
	if *records != "" {
		f, err = recordfile.Open(*records, recordfile.Options{})
	} else {
		data := sample.Demo()
		f, err = recordfile.New(bytes.NewReader(data), int64(len(data)), recordfile.Options{Format: recordfile.FormatJSONL})
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := importRecords(ctx, a.Store, f, out)
	if err != nil {
		return err
	}

	interactive := isTerminal(e.stdin)
	banner(out, *records == "", sum.Rows, cfg)
	// Proofs outlive the demo: their images and the key set that verifies
	// them go to a directory of their own, kept when the demo ends.
	proofs := &demoProofs{keys: a.ProofKeys}
	err = console.Run(ctx, console.Options{
		Handler: proofs.wrap(a.Engine), In: e.stdin, Out: out, UserID: 1, Lang: *lang,
		Prompt:   map[bool]string{true: "you> "}[interactive],
		PhotoDir: proofs.ensureDir(),
		AfterEach: func(ctx context.Context) {
			// Wait for the SMS a message may have triggered, so the phone
			// line appears before the next prompt (and in order when piped).
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = a.OTP.Idle(wctx)
		},
	})
	if interactive {
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "Demo ended; its temporary data directory has been deleted.")
	switch {
	case proofs.dir != "" && proofs.last != "":
		fmt.Fprintf(out, "The vaccination proofs are kept in %s; check one with\n  go run ./cmd/otpgate verify -keys %s -revoked %s '%s'\n",
			proofs.dir, filepath.Join(proofs.dir, "keys.json"), filepath.Join(proofs.dir, "revocations.json"), proofs.last)
	case proofs.dir != "":
		_ = os.RemoveAll(proofs.dir) // no proof was issued: nothing to keep
	}
	return err
}

func banner(w io.Writer, bundled bool, rows int, cfg config.Config) {
	var b strings.Builder
	b.WriteString("otpgate demo — you are a beneficiary chatting with the bot; SMS appear below as \"SMS to …\".\n")
	if bundled {
		fmt.Fprintf(&b, "Loaded %d fictional sample records. Registered mobiles to try:\n", rows)
		for _, m := range sample.DemoMobiles() {
			fmt.Fprintf(&b, "  %s  (%d beneficiar%s)\n", m.Mobile, m.Beneficiaries, map[bool]string{true: "y", false: "ies"}[m.Beneficiaries == 1])
		}
		b.WriteString("  9876543210  (not registered: see that the bot answers the same way)\n")
	} else {
		fmt.Fprintf(&b, "Loaded %d records from your file.\n", rows)
	}
	fmt.Fprintf(&b, "Try: /lookup 9000000001, then type the code from the SMS. A number gets at most one code every %s;\n", cfg.ResendCooldown.Round(time.Second))
	b.WriteString("wrong codes, unknown numbers and repeats behave as in production. /help lists commands; Ctrl-D ends.\n\n")
	_, _ = io.WriteString(w, b.String())
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// demoProofs keeps the demo's proof images verifiable after it ends: the
// images, the key set that signed them and an empty revocation list, in
// one directory.
type demoProofs struct {
	keys proof.KeySet
	dir  string
	last string // the newest proof's text, for the closing hint
}

// ensureDir makes the directory and writes the keys into it; "" (the
// console picks one) if that fails.
func (p *demoProofs) ensureDir() string {
	dir, err := os.MkdirTemp("", "otpgate-demo-proofs-")
	if err != nil {
		return ""
	}
	ks, err := json.MarshalIndent(p.keys, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "keys.json"), ks, 0o600)
	}
	if err == nil {
		rev, _ := json.Marshal(map[string]any{"revoked": []string{}, "updated": time.Now().UTC().Format(time.RFC3339)})
		err = os.WriteFile(filepath.Join(dir, "revocations.json"), rev, 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return ""
	}
	p.dir = dir
	return dir
}

// wrap notes the text of every proof the engine sends.
func (p *demoProofs) wrap(h bot.Handler) bot.Handler {
	return handlerFunc(func(ctx context.Context, u bot.Update) []bot.Reply {
		rs := h.Handle(ctx, u)
		for _, r := range rs {
			if r.PhotoText != "" {
				p.last = r.PhotoText
			}
		}
		return rs
	})
}

type handlerFunc func(ctx context.Context, u bot.Update) []bot.Reply

func (f handlerFunc) Handle(ctx context.Context, u bot.Update) []bot.Reply { return f(ctx, u) }
