package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otpgate/otpgate/proof"
)

// Limits Load enforces.
const (
	// MaxOTPTTL is the longest code validity: NIST SP 800-63B and OWASP ASVS
	// cap out-of-band codes at 10 minutes.
	MaxOTPTTL = 10 * time.Minute
	// MaxOTPAttempts bounds OTPGATE_OTP_MAX_ATTEMPTS: more wrong entries per
	// code than this makes guessing a 6-digit code too cheap.
	MaxOTPAttempts = 10
	// MaxOwnerSendsPerHour bounds OTPGATE_OWNER_SENDS_PER_HOUR: the reserve
	// keeps an owner from being locked out; it must not become a way round
	// the per-mobile window.
	MaxOwnerSendsPerHour = 10
	// MaxReleaseDeleteAfter: Telegram lets bots delete messages under 48 h old.
	MaxReleaseDeleteAfter = 48*time.Hour - time.Minute
	// MinMemoryLimit: below it the garbage collector would run without
	// pause against Badger's fixed allocations.
	MinMemoryLimit = 64 << 20

	defaultTelegramAPIURL = "https://api.telegram.org"
)

var (
	smsProviders = []string{ProviderTwilio, ProviderConsole}
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"text", "json"}
)

// validators check one field each, keyed by Go field name; Load reports a
// failure under that field's variable. Fields that failed to parse are not
// validated. Cross-field rules that depend on the command live in Require.
var validators = map[string]func(c *Config) error{
	"DatabaseURL":    func(c *Config) error { return optional(c.DatabaseURL.Reveal(), databaseURL) },
	"TelegramToken":  func(c *Config) error { return optional(c.TelegramToken.Reveal(), botToken) },
	"TelegramAPIURL": func(c *Config) error { return httpURL(c.TelegramAPIURL) },
	"WebhookURL":     func(c *Config) error { return optional(c.WebhookURL, httpURL) },
	"WebhookListen":  func(c *Config) error { return listenAddr(c.WebhookListen) },
	"WebhookSecret":  func(c *Config) error { return optional(c.WebhookSecret.Reveal(), webhookSecret) },
	"SMSProvider":    func(c *Config) error { return oneOf(c.SMSProvider, smsProviders) },
	"TwilioAccountSID": func(c *Config) error {
		return optional(c.TwilioAccountSID, alphanumeric)
	},
	"TwilioAuthToken": func(c *Config) error { return optional(c.TwilioAuthToken.Reveal(), alphanumeric) },
	"TwilioFrom":      func(c *Config) error { return optional(c.TwilioFrom, smsSender) },
	"TwilioMessagingServiceSID": func(c *Config) error {
		return optional(c.TwilioMessagingServiceSID, alphanumeric)
	},
	"TwilioAPIURL": func(c *Config) error { return httpURL(c.TwilioAPIURL) },
	"OTPTTL": func(c *Config) error {
		if err := positive(c.OTPTTL); err != nil {
			return err
		}
		if c.OTPTTL > MaxOTPTTL {
			return fmt.Errorf("is %s; at most %s (NIST SP 800-63B ceiling for one-time codes)", c.OTPTTL, MaxOTPTTL)
		}
		return nil
	},
	"OTPMaxAttempts": func(c *Config) error {
		if c.OTPMaxAttempts < 1 || c.OTPMaxAttempts > MaxOTPAttempts {
			return fmt.Errorf("is %d; must be between 1 and %d", c.OTPMaxAttempts, MaxOTPAttempts)
		}
		return nil
	},
	"ResendCooldown":             func(c *Config) error { return positive(c.ResendCooldown) },
	"SendsPerMobileHour":         func(c *Config) error { return atLeastOne(c.SendsPerMobileHour) },
	"SendsPerMobileDay":          func(c *Config) error { return atLeastOne(c.SendsPerMobileDay) },
	"WrongCodesPerMobileHour":    func(c *Config) error { return atLeastOne(c.WrongCodesPerMobileHour) },
	"WrongCodesPerRequesterHour": func(c *Config) error { return atLeastOne(c.WrongCodesPerRequesterHour) },
	"RequestsPerRequesterHour":   func(c *Config) error { return atLeastOne(c.RequestsPerRequesterHour) },
	"StaffRequestsPerHour":       func(c *Config) error { return atLeastOne(c.StaffRequestsPerHour) },
	"SendsPerPrefixHour":         func(c *Config) error { return atLeastOne(c.SendsPerPrefixHour) },
	"GlobalSMSPerHour":           func(c *Config) error { return atLeastOne(c.GlobalSMSPerHour) },
	"OwnerSendsPerHour": func(c *Config) error {
		if c.OwnerSendsPerHour < 1 || c.OwnerSendsPerHour > MaxOwnerSendsPerHour {
			return fmt.Errorf("is %d; must be between 1 and %d (a reserve for the owner, not a second budget)", c.OwnerSendsPerHour, MaxOwnerSendsPerHour)
		}
		return nil
	},
	"SMSCountries": func(c *Config) error {
		for _, cc := range c.SMSCountries {
			if len(cc) > 3 || !allDigits(cc) {
				return fmt.Errorf("has %q; calling codes are 1-3 digits, without +", cc)
			}
		}
		return nil
	},
	"GrantTTL":       func(c *Config) error { return positive(c.GrantTTL) },
	"FloodPerMinute": func(c *Config) error { return atLeastOne(c.FloodPerMinute) },
	"MemoryLimit": func(c *Config) error {
		if c.MemoryLimit != 0 && c.MemoryLimit < MinMemoryLimit {
			return fmt.Errorf("is %s; at least %s (Badger's memtables and caches alone take about 60MiB), or off", c.MemoryLimit, ByteSize(MinMemoryLimit))
		}
		return nil
	},
	"ReleaseDeleteAfter": func(c *Config) error {
		if err := positive(c.ReleaseDeleteAfter); err != nil {
			return err
		}
		if c.ReleaseDeleteAfter > MaxReleaseDeleteAfter {
			return fmt.Errorf("is %s; Telegram deletes only messages under 48h old", c.ReleaseDeleteAfter)
		}
		return nil
	},
	"StaffUsers": func(c *Config) error {
		for _, u := range c.StaffUsers {
			if u.ID <= 0 {
				return fmt.Errorf("has %d; Telegram user ids are positive", u.ID)
			}
		}
		return nil
	},
	"StaffChats": func(c *Config) error {
		for _, id := range c.StaffChats {
			if id >= 0 {
				return fmt.Errorf("has %d; group chat ids are negative (a positive id is a private chat)", id)
			}
		}
		return nil
	},
	"OpsListen":    func(c *Config) error { return optional(c.OpsListen, listenAddr) },
	"PublicListen": func(c *Config) error { return optional(c.PublicListen, listenAddr) },
	"SigningKey": func(c *Config) error {
		if !c.SigningKey.IsSet() {
			return nil
		}
		_, err := proof.ParseSigningKey(c.SigningKey.Reveal())
		return err
	},
	"RetiredSigningKeys": func(c *Config) error {
		for _, k := range c.RetiredSigningKeys {
			if _, err := proof.ParsePublicKey(k); err != nil {
				return err
			}
		}
		return nil
	},
	"ProofTTL": func(c *Config) error {
		if err := positive(c.ProofTTL); err != nil {
			return err
		}
		if c.ProofTTL > 5*365*24*time.Hour {
			return fmt.Errorf("is %s; at most five years", c.ProofTTL)
		}
		return nil
	},
	"ProofIssuer": func(c *Config) error {
		if c.ProofIssuer == "" || len(c.ProofIssuer) > 64 {
			return errors.New("must be 1-64 bytes")
		}
		return nil
	},
	"LogLevel":  func(c *Config) error { return oneOf(c.LogLevel, logLevels) },
	"LogFormat": func(c *Config) error { return oneOf(c.LogFormat, logFormats) },
	"SMSTemplates": func(c *Config) error {
		if c.SMSTemplates == "" {
			return nil
		}
		st, err := os.Stat(c.SMSTemplates)
		if err != nil {
			return fmt.Errorf("cannot read: %w", err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", c.SMSTemplates)
		}
		return nil
	},
}

// optional applies check to a non-empty value.
func optional(v string, check func(string) error) error {
	if v == "" {
		return nil
	}
	return check(v)
}

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("is %s; must be greater than zero", d)
	}
	return nil
}

func atLeastOne(n int) error {
	if n < 1 {
		return fmt.Errorf("is %d; must be at least 1", n)
	}
	return nil
}

func oneOf(v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("is %q; must be one of %s", v, strings.Join(allowed, ", "))
	}
	return nil
}

// httpURL accepts an absolute http or https URL. The message leaves the
// value out: URLs can carry credentials or tokens.
func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http:// or https:// URL with a host")
	}
	return nil
}

func listenAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("is %q; must be host:port or :port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("is %q; the port must be a number 0-65535", v)
	}
	return nil
}

// botToken checks the shape "<bot id>:<key>" without echoing the token.
func botToken(v string) error {
	id, key, ok := strings.Cut(v, ":")
	if !ok || !allDigits(id) || key == "" || !allOf(key, isTokenByte) {
		return errors.New("is not a bot token (digits, a colon, then letters, digits, _ or -)")
	}
	return nil
}

// webhookSecret applies Telegram's rule for secret_token.
func webhookSecret(v string) error {
	if len(v) > 256 || !allOf(v, isTokenByte) {
		return errors.New("must be 1-256 characters of A-Z a-z 0-9 _ - (Telegram's rule for secret_token)")
	}
	return nil
}

// alphanumeric: twilio-go refuses other credentials before sending.
func alphanumeric(v string) error {
	if !allOf(v, isAlnum) {
		return errors.New("must contain only letters and digits")
	}
	return nil
}

// smsSender accepts an E.164 number or an alphanumeric sender ID / short code.
func smsSender(v string) error {
	if rest, ok := strings.CutPrefix(v, "+"); ok {
		if len(rest) >= 7 && len(rest) <= 15 && allDigits(rest) && rest[0] != '0' {
			return nil
		}
		return fmt.Errorf("is %q; an E.164 number is + and 7-15 digits", v)
	}
	if len(v) <= 11 && allOf(v, func(b byte) bool { return isAlnum(b) || b == ' ' }) {
		return nil
	}
	return fmt.Errorf("is %q; must be an E.164 number (+…) or a sender ID of up to 11 letters, digits or spaces", v)
}

func allDigits(s string) bool {
	return s != "" && allOf(s, func(b byte) bool { return b >= '0' && b <= '9' })
}

func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

func isTokenByte(b byte) bool { return isAlnum(b) || b == '_' || b == '-' }

// Mode is the command a Config must be complete for.
type Mode int

// Modes for Require.
const (
	Serve  Mode = iota + 1 // otpgate serve: the bot
	Import                 // otpgate import
	Demo                   // otpgate demo: local, generates its own key
	Admin                  // otpgate audit and backup/restore
)

func (m Mode) String() string {
	switch m {
	case Serve:
		return "serve"
	case Import:
		return "import"
	case Demo:
		return "demo"
	case Admin:
		return "admin"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Require checks that c holds what the command needs, beyond what Load
// checked: serve needs the master key, the bot token and a usable SMS
// provider (twilio with account SID, auth token and exactly one of
// OTPGATE_TWILIO_FROM / OTPGATE_TWILIO_MESSAGING_SERVICE_SID, or console with
// OTPGATE_DEVELOPMENT=true), and in webhook mode an https URL and a secret;
// import and admin need the master key; demo needs nothing. It returns an
// Errors listing every problem, or nil.
func (c Config) Require(mode Mode) error {
	name, err := variableNames()
	if err != nil {
		return err
	}
	var errs Errors
	need := func(field string, set bool) {
		if !set {
			errs.add(name[field], fmt.Errorf("%w by %s", ErrRequired, mode))
		}
	}
	switch mode {
	case Demo:
	case Import, Admin:
		need("MasterKey", c.MasterKey.IsSet())
	case Serve:
		need("MasterKey", c.MasterKey.IsSet())
		need("TelegramToken", c.TelegramToken.IsSet())
		switch c.SMSProvider {
		case ProviderTwilio:
			need("TwilioAccountSID", c.TwilioAccountSID != "")
			need("TwilioAuthToken", c.TwilioAuthToken.IsSet())
			from, svc := c.TwilioFrom != "", c.TwilioMessagingServiceSID != ""
			switch {
			case !from && !svc:
				errs.add(name["TwilioFrom"], fmt.Errorf("%w by serve with twilio: set it or %s",
					ErrRequired, name["TwilioMessagingServiceSID"]))
			case from && svc:
				errs.add(name["TwilioFrom"], fmt.Errorf("set together with %s; set only one sender",
					name["TwilioMessagingServiceSID"]))
			}
		case ProviderConsole:
			if !c.Development {
				errs.add(name["SMSProvider"], fmt.Errorf(
					"console prints codes to the terminal instead of sending them; serve allows it only with %s=true (development), use twilio otherwise",
					name["Development"]))
			}
		default:
			errs.add(name["SMSProvider"], fmt.Errorf("is %q; must be one of %s", c.SMSProvider, strings.Join(smsProviders, ", ")))
		}
		if c.WebhookURL != "" {
			c.requireWebhook(&errs, name)
		}
		if c.PublicListen != "" && (c.PublicListen == c.OpsListen || (c.WebhookURL != "" && c.PublicListen == c.WebhookListen)) {
			errs.add(name["PublicListen"], fmt.Errorf("is the address of another listener; the public one must be separate (%s, %s)",
				name["OpsListen"], name["WebhookListen"]))
		}
	default:
		return fmt.Errorf("config: unknown mode %s", mode)
	}
	return errs.err()
}

func (c Config) requireWebhook(errs *Errors, name map[string]string) {
	u, err := url.Parse(c.WebhookURL)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && (u.Scheme != "http" || c.TelegramAPIURL == defaultTelegramAPIURL)):
		// A local Bot API server (another OTPGATE_TELEGRAM_API_URL) also
		// delivers to http://, as its --local mode allows.
		errs.add(name["WebhookURL"], errors.New("must be an https:// URL: Telegram delivers webhooks only over TLS (http:// only with a local Bot API server in OTPGATE_TELEGRAM_API_URL)"))
	case c.TelegramAPIURL == defaultTelegramAPIURL && !slices.Contains([]string{"", "443", "80", "88", "8443"}, u.Port()):
		errs.add(name["WebhookURL"], fmt.Errorf("has port %s; Telegram's Bot API delivers only to ports 443, 80, 88 and 8443", u.Port()))
	}
	if !c.WebhookSecret.IsSet() {
		errs.add(name["WebhookSecret"], fmt.Errorf("%w with %s, so forged updates can be told apart",
			ErrRequired, name["WebhookURL"]))
	}
	if c.OpsListen != "" && c.OpsListen == c.WebhookListen {
		errs.add(name["OpsListen"], fmt.Errorf("is the same address as %s", name["WebhookListen"]))
	}
}

// variableNames maps Go field names to variable names.
func variableNames() (map[string]string, error) {
	fs, err := fields(new(Config))
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.name] = f.key
	}
	return m, nil
}
