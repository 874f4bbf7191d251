package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Database reports whether OTPGATE_DATABASE_URL is set: all state lives in
// PostgreSQL and several replicas may run. Otherwise state is the embedded
// Badger store in OTPGATE_DATA_DIR, owned by one process.
func (c Config) Database() bool { return c.DatabaseURL.IsSet() }

// sslModes are libpq's values of sslmode, weakest first.
var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// databaseURL checks that pgx, which the PostgreSQL store connects with,
// accepts v. pgx's parser is libpq's: it also fills what v leaves out from
// PGHOST, PGPORT, PGSSLMODE and the other PG* variables of the process, and
// reads the files v names (sslrootcert, sslcert, sslkey, a service file), so
// a bad inherited PG* variable or an unreadable certificate fails here, at
// start, rather than at the first connection.
//
// pgconn's errors quote the connection string (with the password masked on
// a best-effort basis only), so none of their text is passed on: the
// message names the part that is wrong when databaseProblem can tell, and
// never the value.
//
// A string with "://" that is not a postgres:// URL is refused before pgx
// sees it: pgx would read mysql://…?sslmode=x as one key=value pair (an
// unknown key becomes a run-time parameter) and accept it.
func databaseURL(v string) error {
	if strings.Contains(v, "://") && !isPostgresURL(v) {
		return errors.New(errScheme)
	}
	if _, err := pgconn.ParseConfig(v); err != nil {
		return errors.New(databaseProblem(v, err))
	}
	return nil
}

const errScheme = "must start with postgres:// or postgresql:// (in lower case), or be a key=value string (host=… dbname=…)"

// isPostgresURL: pgx takes the URL form only with these prefixes, as written.
func isPostgresURL(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// databaseProblem says what is wrong with v, which pgx refused with err,
// without quoting v or err.
func databaseProblem(v string, err error) string {
	const generic = "is not a valid PostgreSQL connection URL (postgres://user:password@host:5432/dbname?sslmode=verify-full) or key=value string (host=… dbname=… sslmode=verify-full)"
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// A file the string (or a PG* variable) names: sslrootcert, sslcert,
		// sslkey or a service file. Its path is no secret.
		return fmt.Sprintf("names a file otpgate cannot read: %s: %v", pe.Path, pe.Err)
	}
	var settings map[string]string
	var ok bool
	switch {
	case isPostgresURL(v):
		if settings, ok = urlSettings(v); !ok {
			return "is not a valid URL: percent-encode the characters @ : / ? # [ ] % and spaces in the user name and password"
		}
	default:
		if settings, ok = keywordValues(v); !ok {
			return "is neither a postgres:// URL nor a valid key=value string: write key=value pairs separated by spaces, and quote values that contain spaces in single quotes"
		}
	}
	if p, ok := settings["port"]; ok {
		for _, port := range strings.Split(p, ",") {
			if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
				return "has an invalid port; ports are numbers 1-65535"
			}
		}
	}
	if m, ok := settings["sslmode"]; ok && !slices.Contains(sslModes, m) {
		return "has an unknown sslmode; use one of " + strings.Join(sslModes, ", ") + " (verify-full in production)"
	}
	if (settings["sslcert"] == "") != (settings["sslkey"] == "") {
		return "names only one of sslcert and sslkey; a client certificate needs both"
	}
	return generic
}

// urlSettings extracts, for databaseProblem only, the parts of a postgres://
// URL it checks: port (comma-separated, one per host) and the query
// parameters. ok is false when the URL does not parse.
func urlSettings(v string) (map[string]string, bool) {
	_, rest, _ := strings.Cut(v, "://")
	authority, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(authority, "/")
	if strings.Contains(path, "@") {
		return nil, false // a / in the password, not percent-encoded, ended the host early
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		if _, err := url.Parse("postgres://" + authority[:i+1] + "x"); err != nil {
			return nil, false // the user information
		}
		authority = authority[i+1:]
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, false
	}
	settings := map[string]string{}
	for k, vs := range q {
		settings[k] = vs[len(vs)-1]
	}
	var ports []string
	for _, hp := range strings.Split(authority, ",") {
		port := ""
		if i := strings.LastIndex(hp, ":"); i >= 0 && !strings.HasSuffix(hp, "]") {
			port = hp[i+1:]
		}
		ports = append(ports, port)
	}
	if joined := strings.Join(ports, ","); strings.Trim(joined, ",") != "" {
		settings["port"] = joined
	}
	return settings, true
}

// keywordValues splits a libpq key=value string, for databaseProblem only.
// ok is false when it is not one (a word without =, an unterminated quote).
func keywordValues(s string) (map[string]string, bool) {
	const space = " \t\n\r\v\f"
	settings := map[string]string{}
	s = strings.TrimLeft(s, space)
	for s != "" {
		key, rest, found := strings.Cut(s, "=")
		key = strings.Trim(key, space)
		if !found || key == "" || strings.ContainsAny(key, space) {
			return nil, false
		}
		s = strings.TrimLeft(rest, space)
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				c := s[0]
				s = s[1:]
				if c == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, false
			}
		} else {
			for len(s) > 0 && !strings.ContainsRune(space, rune(s[0])) {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				val.WriteByte(s[0])
				s = s[1:]
			}
		}
		settings[key] = val.String()
		s = strings.TrimLeft(s, space)
	}
	return settings, true
}

// Warnings lists settings that Load accepts but production should not run
// with, each naming its variable and never a secret value; serve logs them
// at start. Today: an OTPGATE_DATABASE_URL whose connections to a database
// on another machine may go unencrypted (sslmode disable, allow, or prefer,
// libpq's default), or encrypted without checking the server's certificate
// (sslmode=require without sslrootcert). Unix sockets and loopback addresses
// never warn: the traffic does not leave the machine.
func (c Config) Warnings() []string {
	if !c.Database() {
		return nil
	}
	pc, err := pgconn.ParseConfig(c.DatabaseURL.Reveal())
	if err != nil {
		return nil // Load reported it
	}
	all := append([]*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port, TLSConfig: pc.TLSConfig}}, pc.Fallbacks...)
	plain, unverified := false, false
	for _, fb := range all {
		if network, _ := pgconn.NetworkAddress(fb.Host, fb.Port); network == "unix" || isLoopback(fb.Host) {
			continue
		}
		switch t := fb.TLSConfig; {
		case t == nil:
			plain = true
		case t.InsecureSkipVerify && t.VerifyPeerCertificate == nil:
			unverified = true
		}
	}
	name := Prefix + "_DATABASE_URL"
	var out []string
	if plain {
		out = append(out, name+": connections to the database may be unencrypted (sslmode disable, allow or prefer, which is libpq's default when none is given); use sslmode=verify-full in production")
	}
	if unverified && !plain {
		out = append(out, name+": sslmode=require encrypts the connection but does not check the server's certificate; use sslmode=verify-full in production")
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
