// Package twilio delivers OTP text messages through Twilio's Programmable
// Messaging API, using the official twilio-go client. It adds what that
// client lacks: a configurable base URL (for a proxy or a test fake),
// context cancellation, bounded retries with back-off, a mapping of Twilio
// error codes onto the otp sentinel errors, and logs and errors that never
// carry the destination number, the message body or the auth token.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/otpgate/otpgate/otp"
)

// Defaults for the zero values of Options.
const (
	DefaultAPIURL      = "https://api.twilio.com"
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 3
	DefaultBackoff     = 500 * time.Millisecond

	// maxBackoff caps the exponential delay so a large MaxAttempts cannot
	// park a send for minutes while the code it carries expires.
	maxBackoff = 30 * time.Second
)

// Options configures a Sender. Exactly one of From and MessagingServiceSID
// must be set.
type Options struct {
	AccountSID          string // "AC…"; also the Basic auth user name
	AuthToken           string // secret
	From                string // sender number, short code or alphanumeric sender ID
	MessagingServiceSID string // "MG…"; lets Twilio pick the sender

	// APIURL replaces https://api.twilio.com (scheme, host and port only),
	// for an egress proxy or a fake. twilio-go has no such option, so the
	// Sender rewrites every request in its transport.
	APIURL string

	Timeout     time.Duration // per HTTP attempt; default DefaultTimeout
	MaxAttempts int           // total tries per message; default DefaultMaxAttempts
	Backoff     time.Duration // delay before the 2nd try, doubled after; default DefaultBackoff

	// Injected dependencies.
	Logger    *slog.Logger                                     // nil discards
	Transport http.RoundTripper                                // nil: a private clone of http.DefaultTransport
	Sleep     func(ctx context.Context, d time.Duration) error // nil: a timer that honours ctx; tests inject one
}

// validate reports every problem at once so a misconfigured deployment is
// fixed in one round. Messages never quote the token or the URL (which could
// carry a password).
func (o Options) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("twilio: "+format, args...)) }

	switch {
	case o.AccountSID == "":
		add("AccountSID is required")
	case !isAlphanumeric(o.AccountSID):
		// twilio-go refuses such credentials at send time (its codes
		// 21222/21224); catching them here stops the program at start.
		add("AccountSID must be letters and digits only")
	case !strings.HasPrefix(o.AccountSID, "AC"):
		add("AccountSID must start with AC (an API key SID is not an account SID)")
	}
	switch {
	case o.AuthToken == "":
		add("AuthToken is required")
	case !isAlphanumeric(o.AuthToken):
		add("AuthToken must be letters and digits only")
	}
	switch {
	case o.From == "" && o.MessagingServiceSID == "":
		add("one of From and MessagingServiceSID is required")
	case o.From != "" && o.MessagingServiceSID != "":
		add("set only one of From and MessagingServiceSID")
	case o.MessagingServiceSID != "" && (!isAlphanumeric(o.MessagingServiceSID) || !strings.HasPrefix(o.MessagingServiceSID, "MG")):
		add("MessagingServiceSID must look like MG followed by letters and digits")
	case strings.ContainsFunc(o.From, func(r rune) bool { return r < ' ' || r == 0x7f }):
		add("From contains control characters")
	}
	if o.APIURL != "" {
		if _, err := parseAPIURL(o.APIURL); err != nil {
			errs = append(errs, err)
		}
	}
	if o.Timeout < 0 {
		add("Timeout must not be negative")
	}
	if o.MaxAttempts < 0 {
		add("MaxAttempts must not be negative")
	}
	if o.Backoff < 0 {
		add("Backoff must not be negative")
	}
	return errors.Join(errs...)
}

// parseAPIURL accepts only what the transport can honour — scheme, host and
// port — rather than silently dropping a path, query or credentials.
func parseAPIURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes its input; keep only the generic reason.
		return nil, errors.New("twilio: APIURL is not a valid URL")
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, "scheme must be http or https")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
		problems = append(problems, "must not contain credentials")
	}
	if u.Path != "" && u.Path != "/" {
		problems = append(problems, "must not have a path (only scheme, host and port are used)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		problems = append(problems, "must not have a query or fragment")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("twilio: APIURL %s", strings.Join(problems, ", "))
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func isAlphanumeric(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// String shows the configuration with the token replaced, so that printing
// Options by mistake (%v, %+v) leaks nothing.
func (o Options) String() string {
	token := ""
	if o.AuthToken != "" {
		token = "<secret>"
	}
	return fmt.Sprintf("twilio.Options{AccountSID:%s AuthToken:%s From:%s MessagingServiceSID:%s APIURL:%s Timeout:%s MaxAttempts:%d Backoff:%s}",
		maskSID(o.AccountSID), token, o.From, o.MessagingServiceSID, redactURL(o.APIURL), o.Timeout, o.MaxAttempts, o.Backoff)
}

// LogValue keeps slog from reflecting over the fields (and the token).
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// GoString covers %#v, which bypasses String.
func (o Options) GoString() string { return o.String() }

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	accountSID string
	authToken  string
	from       string
	msgService string

	target      *url.URL // scheme and host every request is sent to
	base        http.RoundTripper
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
	log         *slog.Logger
}

var _ otp.Sender = (*Sender)(nil)

// New checks opts and builds a Sender. It does no I/O: bad credentials show
// up on the first Send as ErrAuth.
func New(opts Options) (*Sender, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	raw := opts.APIURL
	if raw == "" {
		raw = DefaultAPIURL
	}
	target, err := parseAPIURL(raw)
	if err != nil {
		return nil, err
	}
	s := &Sender{
		accountSID:  opts.AccountSID,
		authToken:   opts.AuthToken,
		from:        opts.From,
		msgService:  opts.MessagingServiceSID,
		target:      target,
		base:        opts.Transport,
		timeout:     opts.Timeout,
		maxAttempts: opts.MaxAttempts,
		backoff:     opts.Backoff,
		sleep:       opts.Sleep,
		log:         opts.Logger,
	}
	if s.base == nil {
		// A private transport, not DefaultTransport itself: its idle pool is
		// ours and no other package's settings leak in.
		s.base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	if s.backoff == 0 {
		s.backoff = DefaultBackoff
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With(slog.String("component", "twilio"))
	return s, nil
}

// String identifies the Sender in logs and errors without its secrets.
func (s *Sender) String() string {
	sender := "from=" + s.from
	if s.msgService != "" {
		sender = "messaging_service=" + s.msgService
	}
	return fmt.Sprintf("twilio(account=%s %s api=%s auth_token=<secret>)", maskSID(s.accountSID), sender, s.target)
}

// maskSID keeps the "AC" prefix and the last four characters: enough to tell
// accounts apart in a log, not enough to address the account.
func maskSID(sid string) string {
	if len(sid) <= 6 {
		if sid == "" {
			return ""
		}
		return "<sid>"
	}
	return sid[:2] + "…" + sid[len(sid)-4:]
}

// redactURL drops anything but scheme, host and port from a configured URL.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid>"
	}
	return u.Scheme + "://" + u.Host
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
