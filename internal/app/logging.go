package app

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/otpgate/otpgate/internal/config"
)

// NewLogger builds the process logger: text or JSON, at the configured
// level, with every secret of the configuration (bot token, Twilio
// credentials, webhook secret, master key) removed from every message and
// attribute — including the text of wrapped library errors, which is where
// they hide (a *url.Error carries the bot token in its URL). Masking of
// mobiles, ID numbers and codes is done by their types; this is the second
// fence, for secrets that are plain strings.
func NewLogger(w io.Writer, cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	var secrets []string
	for _, s := range []string{cfg.TelegramToken.Reveal(), cfg.TwilioAuthToken.Reveal(), cfg.TwilioAccountSID,
		cfg.WebhookSecret.Reveal()} {
		if len(s) >= 6 {
			secrets = append(secrets, s)
		}
	}
	if k := cfg.MasterKey.Bytes(); len(k) > 0 {
		secrets = append(secrets, hex.EncodeToString(k))
	}
	if len(secrets) == 0 {
		return slog.New(h)
	}
	return slog.New(&redactor{h: h, r: strings.NewReplacer(pairs(secrets)...)})
}

func pairs(secrets []string) []string {
	out := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		out = append(out, s, "<redacted>")
	}
	return out
}

// redactor rewrites records before the real handler sees them.
type redactor struct {
	h slog.Handler
	r *strings.Replacer
}

func (d *redactor) Enabled(ctx context.Context, l slog.Level) bool { return d.h.Enabled(ctx, l) }

func (d *redactor) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, d.r.Replace(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(d.attr(a))
		return true
	})
	return d.h.Handle(ctx, out)
}

func (d *redactor) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = d.attr(a)
	}
	return &redactor{h: d.h.WithAttrs(clean), r: d.r}
}

func (d *redactor) WithGroup(name string) slog.Handler {
	return &redactor{h: d.h.WithGroup(name), r: d.r}
}

func (d *redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve() // LogValuers (masked types) first
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, d.r.Replace(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, x := range g {
			clean[i] = d.attr(x)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if r := d.r.Replace(s); r != s {
			return slog.String(a.Key, r)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
