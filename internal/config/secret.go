package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kelseyhightower/envconfig"

	"github.com/otpgate/otpgate/internal/keys"
)

// redacted is how every secret prints, set or not.
const redacted = "<secret>"

var (
	_ envconfig.Decoder = (*Secret)(nil)
	_ envconfig.Decoder = (*SecretKey)(nil)
	_ fmt.Formatter     = Secret{}
	_ fmt.Formatter     = SecretKey{}
	_ slog.LogValuer    = Secret{}
	_ slog.LogValuer    = SecretKey{}
)

// Secret is a string that never prints: fmt (every verb, %#v included),
// log/slog, encoding/json and text marshalers all see "<secret>". The value
// is reachable only through Reveal.
type Secret struct {
	value string
}

// NewSecret wraps s, for code that builds a Config by hand (tests, demo).
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value. Call it only where the value is used
// (a request header, a URL sent to the provider), never to log or show it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret has a non-empty value.
func (s Secret) IsSet() bool { return s.value != "" }

// Decode implements envconfig.Decoder.
func (s *Secret) Decode(value string) error {
	s.value = value
	return nil
}

// String returns "<secret>".
func (Secret) String() string { return redacted }

// GoString returns "<secret>", so %#v of a Config does not leak.
func (Secret) GoString() string { return redacted }

// Format writes "<secret>" for every verb (%x, %q and %d included).
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "<secret>".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "<secret>".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "<secret>".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// SecretKey is the 32-byte master key. It prints like Secret; Bytes returns a
// copy of the key.
type SecretKey struct {
	key []byte
}

// errKeyFormat never includes the value it rejects.
var errKeyFormat = fmt.Errorf("must be %d bytes written as %d hex characters or as base64 (standard or URL alphabet, padding optional)",
	keys.MasterKeySize, 2*keys.MasterKeySize)

// NewSecretKey wraps a 32-byte key, for code that builds a Config by hand
// (demo generates one). It rejects any other length and an all-zero key.
func NewSecretKey(key []byte) (SecretKey, error) { return checkKey(key) }

// Bytes returns a copy of the key, or nil when unset. Hand it to
// keys.Derive; never log it.
func (k SecretKey) Bytes() []byte {
	if len(k.key) == 0 {
		return nil
	}
	return append([]byte(nil), k.key...)
}

// IsSet reports whether a key was given.
func (k SecretKey) IsSet() bool { return len(k.key) != 0 }

// Decode implements envconfig.Decoder: 64 hex characters, or base64 in the
// standard or URL alphabet with or without padding, decoding to 32 bytes.
// Surrounding whitespace is ignored. Errors never include the value.
func (k *SecretKey) Decode(value string) error {
	value = strings.TrimSpace(value)
	if len(value) != 2*keys.MasterKeySize && len(value)%2 == 0 && isHex(value) {
		// Never a 32-byte base64 key (that needs 43 characters or padding),
		// so a mistyped hex key gets a message about hex.
		return fmt.Errorf("%w; got %d hex characters (%d bytes)", errKeyFormat, len(value), len(value)/2)
	}
	b, ok := decodeKey(value)
	if !ok {
		return errKeyFormat
	}
	key, err := checkKey(b)
	if err != nil {
		return err
	}
	*k = key
	return nil
}

// String returns "<secret>".
func (SecretKey) String() string { return redacted }

// GoString returns "<secret>".
func (SecretKey) GoString() string { return redacted }

// Format writes "<secret>" for every verb.
func (SecretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "<secret>".
func (SecretKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "<secret>".
func (SecretKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "<secret>".
func (SecretKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// decodeKey accepts hex (exactly 64 characters) or any of the four base64
// variants. The forms cannot be confused: 64 base64 characters are 48 bytes.
func decodeKey(s string) ([]byte, bool) {
	if len(s) == 2*keys.MasterKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return s != "" && err == nil
}

func checkKey(b []byte) (SecretKey, error) {
	if len(b) != keys.MasterKeySize {
		return SecretKey{}, fmt.Errorf("%w; got %d bytes", errKeyFormat, len(b))
	}
	var or byte
	for _, c := range b {
		or |= c
	}
	if or == 0 {
		return SecretKey{}, errors.New("must not be all zero bytes")
	}
	return SecretKey{key: append([]byte(nil), b...)}, nil
}
