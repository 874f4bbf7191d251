package config

import (
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// Variable describes one environment variable otpgate reads.
type Variable struct {
	Name        string // e.g. OTPGATE_OTP_TTL
	Type        string // duration, integer, string, list, secret, key, path, …
	Default     string // "" when there is none
	Description string
	Secret      bool   // the value is never printed
	FileFor     string // for a *_FILE variant, the variable whose value the file holds
}

// Variables lists every variable in table order, each *_FILE variant right
// after the variable it supplies. Deployment manifests and docs can be
// checked against it.
func Variables() []Variable {
	fs, err := fields(new(Config))
	if err != nil {
		panic(err) // the table is static; TestVariables covers it
	}
	var out []Variable
	for _, f := range fs {
		out = append(out, Variable{
			Name:        f.key,
			Type:        typeName(f.value.Type()),
			Default:     f.def(),
			Description: f.desc(),
			Secret:      f.secret(),
		})
		if f.hasFile() {
			out = append(out, Variable{
				Name:        f.fileKey(),
				Type:        "path",
				Description: "file holding " + f.key + " (trailing whitespace trimmed); set one or the other",
				FileFor:     f.key,
			})
		}
	}
	return out
}

// Describe writes every variable as an aligned table for `otpgate config`:
// name, type, default, the value in environ (the same "NAME=value" list Load
// takes) and the description. A set secret shows as <secret>, never its
// value; URLs show with any password removed. Unknown OTPGATE_* names are
// listed after the table, by name only. Describe works on an invalid
// environment too: that is when it is needed.
func Describe(w io.Writer, environ []string) error {
	env := parseEnviron(environ)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "otpgate reads these environment variables. A %s variable names a file holding the value.\n\n", FileSuffix)
	fmt.Fprintln(tw, "VARIABLE\tTYPE\tDEFAULT\tVALUE\tDESCRIPTION")
	for _, v := range Variables() {
		def := v.Default
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.Type, cell(def), shown(v, env), v.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fs, err := fields(new(Config))
	if err != nil {
		return err
	}
	if unknown := unknownVariables(env, fs); len(unknown) > 0 {
		if _, err := fmt.Fprintf(w, "\nUnknown variables (otpgate refuses to start with them):\n"); err != nil {
			return err
		}
		for _, e := range unknown {
			if _, err := fmt.Fprintf(w, "  %s\n", e.Error()); err != nil {
				return err
			}
		}
	}
	return nil
}

// shown is the VALUE cell: what the environment says, never a secret.
func shown(v Variable, env map[string]string) string {
	raw, set := env[v.Name]
	switch {
	case !set:
		return "(unset)"
	case raw == "":
		return `""`
	case v.Secret:
		return redacted
	case strings.Contains(raw, "://"):
		if u, err := url.Parse(raw); err == nil {
			return cell(u.Redacted())
		}
		return "(unparsable URL)"
	}
	return cell(raw)
}

// cell quotes values that would break the table's alignment.
func cell(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// typeName names a field's type for people.
func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Secret]():
		return "secret"
	case reflect.TypeFor[SecretKey]():
		return "key"
	case reflect.TypeFor[time.Duration]():
		return "duration"
	case reflect.TypeFor[[]int64]():
		return "integer list"
	case reflect.TypeFor[[]string]():
		return "list"
	case reflect.TypeFor[int]():
		return "integer"
	case reflect.TypeFor[bool]():
		return "bool"
	}
	return t.String()
}
