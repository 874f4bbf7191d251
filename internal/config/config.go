// Package config is the one place otpgate reads its environment: it turns the
// OTPGATE_* variables (and their *_FILE variants for secrets) into a typed,
// validated Config, reports every problem at once naming the variable at
// fault, and describes every variable for `otpgate config`.
//
// Load takes the environment as an argument (os.Environ() in main, a literal
// slice in tests) and never consults the process environment for OTPGATE_*
// names, so tests run in parallel and nothing else in the program needs to
// read it. (OTPGATE_DATABASE_URL is checked with pgx's parser, which, like
// libpq, fills what the URL leaves out from the PG* variables.)
//
// The variable table is the Config struct itself: each field carries an
// explicit envconfig:"NAME" tag (prefixed OTPGATE_), a default:"…" and a
// desc:"…" tag, plus secret:"true" for values that must never print and
// file:"true" for variables that also accept NAME_FILE. The names, the walk
// over the fields and the Decoder convention are envconfig's: the table is
// read through envconfig's usage printer, which Describe renders as well.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/kelseyhightower/envconfig"
)

// Prefix starts every variable name, followed by an underscore.
const Prefix = "OTPGATE"

// FileSuffix turns a variable name into the name of its file variant.
const FileSuffix = "_FILE"

// maxFileSize bounds a *_FILE read: secrets are short, and a wrong path (a
// log, a device) must not be slurped into memory.
const maxFileSize = 64 << 10

// SMS providers.
const (
	ProviderTwilio  = "twilio"
	ProviderConsole = "console"
)

// Config is the whole configuration. Load fills and validates it; Require
// adds the checks one command needs. The zero value is not useful: start
// from Load (Load(nil) gives the defaults).
type Config struct {
	DataDir     string `envconfig:"DATA_DIR" default:"./data" desc:"Badger directory: records, indexes, challenges, grants, counters, audit chain (encrypted at rest)"`
	DatabaseURL Secret `envconfig:"DATABASE_URL" default:"" secret:"true" file:"true" desc:"PostgreSQL connection URL (postgres://user:password@host:5432/dbname?sslmode=verify-full) or key=value string: when set, all state lives in PostgreSQL and several replicas may run (webhook mode behind a load balancer, or polling with one lease holder); empty keeps it in the Badger store in OTPGATE_DATA_DIR, for one process"`

	MasterKey     SecretKey `envconfig:"MASTER_KEY" default:"" secret:"true" file:"true" desc:"32 bytes as 64 hex characters or base64; the store encryption key and every HMAC key derive from it; serve, import, audit and backup need it"`
	TelegramToken Secret    `envconfig:"TELEGRAM_TOKEN" default:"" secret:"true" file:"true" desc:"bot token from @BotFather; serve needs it"`

	TelegramAPIURL string `envconfig:"TELEGRAM_API_URL" default:"https://api.telegram.org" desc:"Bot API base URL (a local Bot API server or a test fake)"`
	WebhookURL     string `envconfig:"WEBHOOK_URL" default:"" desc:"public https URL Telegram posts updates to; webhook mode when set, long polling otherwise"`
	WebhookListen  string `envconfig:"WEBHOOK_LISTEN" default:":8443" desc:"host:port the webhook server listens on (webhook mode only)"`
	WebhookSecret  Secret `envconfig:"WEBHOOK_SECRET" default:"" secret:"true" file:"true" desc:"secret Telegram sends in X-Telegram-Bot-Api-Secret-Token: 1-256 of A-Z a-z 0-9 _ -; needed with OTPGATE_WEBHOOK_URL"`

	SMSProvider               string `envconfig:"SMS_PROVIDER" default:"twilio" desc:"twilio or console (prints codes to the terminal: demo, or serve with OTPGATE_DEVELOPMENT=true)"`
	TwilioAccountSID          string `envconfig:"TWILIO_ACCOUNT_SID" default:"" file:"true" desc:"Twilio account SID (AC…)"`
	TwilioAuthToken           Secret `envconfig:"TWILIO_AUTH_TOKEN" default:"" secret:"true" file:"true" desc:"Twilio auth token"`
	TwilioFrom                string `envconfig:"TWILIO_FROM" default:"" desc:"sender: an E.164 number or an alphanumeric sender ID; set this or OTPGATE_TWILIO_MESSAGING_SERVICE_SID"`
	TwilioMessagingServiceSID string `envconfig:"TWILIO_MESSAGING_SERVICE_SID" default:"" desc:"Twilio messaging service SID (MG…); set this or OTPGATE_TWILIO_FROM"`
	TwilioAPIURL              string `envconfig:"TWILIO_API_URL" default:"https://api.twilio.com" desc:"Twilio API base URL (a proxy or a test fake)"`

	OTPTTL         time.Duration `envconfig:"OTP_TTL" default:"3m" desc:"how long a code is valid; at most 10m (NIST SP 800-63B)"`
	OTPMaxAttempts int           `envconfig:"OTP_MAX_ATTEMPTS" default:"3" desc:"wrong entries that kill a code, 1-10"`
	ResendCooldown time.Duration `envconfig:"RESEND_COOLDOWN" default:"60s" desc:"minimum time between two codes to one mobile for the same chat user"`

	SendsPerMobileHour         int `envconfig:"SENDS_PER_MOBILE_HOUR" default:"5" desc:"codes sent to one mobile per hour"`
	SendsPerMobileDay          int `envconfig:"SENDS_PER_MOBILE_DAY" default:"10" desc:"codes sent to one mobile per day"`
	OwnerSendsPerHour          int `envconfig:"OWNER_SENDS_PER_HOUR" default:"3" desc:"codes per hour reserved for the owner of a mobile, who proved it by sharing their own Telegram contact: strangers cannot spend them; at most 10"`
	WrongCodesPerMobileHour    int `envconfig:"WRONG_CODES_PER_MOBILE_HOUR" default:"10" desc:"wrong codes per mobile per hour across all its codes (a new code does not reset it)"`
	WrongCodesPerRequesterHour int `envconfig:"WRONG_CODES_PER_REQUESTER_HOUR" default:"10" desc:"wrong codes per chat user per hour"`
	RequestsPerRequesterHour   int `envconfig:"REQUESTS_PER_REQUESTER_HOUR" default:"5" desc:"code requests per chat user per hour"`
	StaffRequestsPerHour       int `envconfig:"STAFF_REQUESTS_PER_HOUR" default:"60" desc:"code requests per helpdesk agent per hour (an agent looks up many callers)"`
	SendsPerPrefixHour         int `envconfig:"SENDS_PER_PREFIX_HOUR" default:"30" desc:"codes per hour to numbers sharing country code + first 5 national digits (SMS pumping)"`
	GlobalSMSPerHour           int `envconfig:"GLOBAL_SMS_PER_HOUR" default:"600" desc:"SMS per hour in total (spend cap)"`

	SMSCountries []string `envconfig:"SMS_COUNTRIES" default:"91" desc:"comma-separated calling codes SMS may go to, digits only (destination allowlist)"`

	GrantTTL           time.Duration `envconfig:"GRANT_TTL" default:"10m" desc:"how long a successful OTP lets the chat user see the record"`
	ReleaseDeleteAfter time.Duration `envconfig:"RELEASE_DELETE_AFTER" default:"10m" desc:"delete messages carrying a record after this long; under 48h (Telegram deletes no older messages)"`

	MemoryLimit ByteSize `envconfig:"MEMORY_LIMIT" default:"384MiB" desc:"soft limit of the Go heap (GOMEMLIMIT; the GOMEMLIMIT variable itself wins when set): the garbage collector works harder near it, so that serve and import stay within a fixed budget whatever the number of records (192MiB halves import speed: Badger's live heap sits near it); at least 64MiB, or off"`

	FloodPerMinute int `envconfig:"FLOOD_PER_MINUTE" default:"20" desc:"chat messages one user may send per minute; past it the user is told once to slow down and ignored until the minute is over"`

	StaffUsers StaffUsers `envconfig:"STAFF_USERS" default:"" desc:"support staff as comma-separated id:label pairs, e.g. 4521:Asha,6930:desk 7 — the Telegram user id, and the short label (1-16 of A-Z a-z 0-9 . _ - space) beneficiaries see in the consent SMS and /history instead of the id"`
	StaffChats []int64    `envconfig:"STAFF_CHATS" default:"" desc:"comma-separated group chat ids (negative) where staff may use the bot"`

	SigningKey         Secret        `envconfig:"SIGNING_KEY" default:"" secret:"true" file:"true" desc:"Ed25519 key that signs vaccination proofs: a 32-byte seed as hex or base64, or a PKCS#8 PEM; empty derives one from OTPGATE_MASTER_KEY"`
	RetiredSigningKeys []string      `envconfig:"RETIRED_SIGNING_KEYS" default:"" desc:"comma-separated public keys (hex, base64) of earlier signing keys: proofs they signed stay verifiable after a rotation"`
	ProofTTL           time.Duration `envconfig:"PROOF_TTL" default:"2160h" desc:"how long a vaccination proof is valid (default 90 days)"`
	ProofIssuer        string        `envconfig:"PROOF_ISSUER" default:"otpgate" desc:"the issuer named in every proof (e.g. the health department's domain), at most 64 bytes"`
	PublicListen       string        `envconfig:"PUBLIC_LISTEN" default:"" desc:"host:port of the public, read-only listener: the proof verification page, /keys.json, /revocations.json; empty turns it off"`

	OpsListen    string `envconfig:"OPS_LISTEN" default:"" desc:"host:port for /healthz, /readyz and /metrics; empty turns it off"`
	LogLevel     string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat    string `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
	SMSTemplates string `envconfig:"SMS_TEMPLATES" default:"" desc:"path to a JSON file of SMS templates replacing the built-in ones (DLT-registered texts)"`
	Development  bool   `envconfig:"DEVELOPMENT" default:"false" desc:"allow the console SMS provider in serve; never set it in production"`
}

// SlogLevel returns LogLevel as a slog.Level (info when unrecognised; Load
// accepts only debug, info, warn and error).
func (c Config) SlogLevel() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Load builds a Config from environ, a list of "NAME=value" entries in the
// form os.Environ returns (main passes os.Environ(); tests pass a literal).
// The first entry for a name wins, as with os.Getenv. Load never reads
// OTPGATE_* names from the process environment; it does read the files named
// by *_FILE variables, checks that OTPGATE_SMS_TEMPLATES names a regular file,
// and checks OTPGATE_DATABASE_URL with pgx's parser, which reads the PG*
// variables and the certificate files the URL names (see databaseURL).
//
// Rules: an unset variable takes its default; a variable set to the empty
// string is an error when its default is not empty (it would otherwise
// silently override the default) and means "unset" when the default is
// empty. NAME and NAME_FILE together are an error; a file's trailing
// whitespace is trimmed. Unknown OTPGATE_* names are errors, with a
// suggestion when one is close.
//
// On failure Load returns the partly filled Config and an Errors listing
// every problem, each naming its variable; no message contains the value
// of a secret.
func Load(environ []string) (Config, error) {
	env := parseEnviron(environ)
	var c Config
	fs, err := fields(&c)
	if err != nil {
		return c, err
	}
	// Problems by field, so they are reported in table order whether they
	// came from parsing or from validation.
	perField := make([]*VarError, len(fs))
	for i, f := range fs {
		if err := f.load(env); err != nil {
			var ve *VarError
			if !errors.As(err, &ve) { // a *VarError names NAME_FILE
				ve = &VarError{Var: f.key, Err: err}
			}
			perField[i] = ve
			continue
		}
		if check, ok := validators[f.name]; ok {
			if err := check(&c); err != nil {
				perField[i] = &VarError{Var: f.key, Err: err}
			}
		}
	}
	var errs Errors
	for _, ve := range perField {
		if ve != nil {
			errs = append(errs, ve)
		}
	}
	errs = append(errs, unknownVariables(env, fs)...)
	return c, errs.err()
}

// field is one variable: what envconfig found for a struct field.
type field struct {
	key   string            // OTPGATE_…
	name  string            // Go field name
	tags  reflect.StructTag // default, desc, secret, file
	value reflect.Value     // the field itself, settable
}

func (f field) def() string     { return f.tags.Get("default") }
func (f field) desc() string    { return f.tags.Get("desc") }
func (f field) secret() bool    { return f.tags.Get("secret") == "true" }
func (f field) hasFile() bool   { return f.tags.Get("file") == "true" }
func (f field) fileKey() string { return f.key + FileSuffix }

// collectTemplate hands each of envconfig's variable records to collect.
const collectTemplate = `{{range .}}{{collect .Key .Name .Tags .Field}}{{end}}`

// fields lists the variables of spec in field order, with settable handles.
//
// envconfig.Process reads the process environment itself (os.LookupEnv) and
// stops at the first error, which rules it out for Load. Its usage printer
// walks the same variable table Process uses — same names, same prefix,
// same treatment of Decoder types — and executes a caller's template over
// it; this template collects the table instead of printing it, so the names
// Load reads and Describe prints are envconfig's by construction.
func fields(spec *Config) ([]field, error) {
	var out []field
	tmpl, err := template.New("fields").Funcs(template.FuncMap{
		"collect": func(key, name string, tags reflect.StructTag, v reflect.Value) string {
			out = append(out, field{key: key, name: name, tags: tags, value: v})
			return ""
		},
	}).Parse(collectTemplate)
	if err != nil {
		return nil, err
	}
	if err := envconfig.Usaget(Prefix, spec, io.Discard, tmpl); err != nil {
		return nil, fmt.Errorf("config: variable table: %w", err)
	}
	return out, nil
}

// load sets f from env, its file variant or its default. A problem with
// the file variant comes back as a *VarError naming NAME_FILE.
func (f field) load(env map[string]string) error {
	raw, set := env[f.key]
	if set && raw == "" {
		if f.def() != "" {
			return fmt.Errorf("set but empty; unset it to use the default %q", f.def())
		}
		set = false // empty default: empty means unset
	}
	from := ""
	if f.hasFile() {
		if path := env[f.fileKey()]; path != "" {
			if set {
				return fmt.Errorf("set together with %s; use one of them", f.fileKey())
			}
			b, err := readSecretFile(path)
			if err != nil {
				return &VarError{Var: f.fileKey(), Err: err}
			}
			raw, set, from = b, true, " (from "+f.fileKey()+")"
		}
	}
	if !set {
		raw = f.def()
		if raw == "" {
			return nil
		}
	}
	if err := decode(raw, f.value); err != nil {
		if f.secret() {
			// Decoders of secret types never include the value; say where it came from.
			return fmt.Errorf("%w%s", err, from)
		}
		return fmt.Errorf("%q %w%s", raw, err, from)
	}
	return nil
}

// readSecretFile returns the file's content without trailing whitespace.
func readSecretFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return "", fmt.Errorf("%s is larger than %d KiB", path, maxFileSize>>10)
	}
	s := strings.TrimRightFunc(string(b), unicode.IsSpace)
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// decode parses raw into v. Errors read after the quoted value:
// `"abc" is not a whole number`.
func decode(raw string, v reflect.Value) error {
	if d, ok := v.Addr().Interface().(envconfig.Decoder); ok {
		return d.Decode(raw)
	}
	switch v.Interface().(type) {
	case string:
		v.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("is not true or false")
		}
		v.SetBool(b)
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("is not a whole number")
		}
		v.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("is not a duration (write e.g. 90s, 3m, 1h)")
		}
		v.SetInt(int64(d))
	case []string:
		items, err := splitList(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(items))
	case []int64:
		items, err := splitList(raw)
		if err != nil {
			return err
		}
		ns := make([]int64, len(items))
		for i, s := range items {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("has %q, not a whole number", s)
			}
			ns[i] = n
		}
		v.Set(reflect.ValueOf(ns))
	default:
		return fmt.Errorf("has unsupported type %s", v.Type()) // a new field needs a case here
	}
	return nil
}

// splitList splits a comma-separated list, trimming spaces around items.
func splitList(raw string) ([]string, error) {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if parts[i] == "" {
			return nil, fmt.Errorf("has an empty item (item %d)", i+1)
		}
	}
	return parts, nil
}

// parseEnviron maps names to values; the first entry for a name wins.
func parseEnviron(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, dup := env[k]; !dup {
			env[k] = v
		}
	}
	return env
}
