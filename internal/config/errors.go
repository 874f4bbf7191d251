package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors, wrapped by VarError.Err where they apply.
var (
	// ErrUnknownVariable: an OTPGATE_* variable that otpgate does not read.
	ErrUnknownVariable = errors.New("unknown variable")
	// ErrRequired: a variable the command needs is not set.
	ErrRequired = errors.New("required")
)

// VarError is one problem with one variable. Its message never contains the
// value of a secret.
type VarError struct {
	Var string // the variable at fault, e.g. OTPGATE_OTP_TTL
	Err error
}

func (e *VarError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *VarError) Unwrap() error { return e.Err }

// Errors is every problem Load or Require found, in the order of the
// variable table (unknown variables last, by name). Get it with errors.As.
type Errors []*VarError

func (e Errors) Error() string {
	if len(e) == 1 {
		return "invalid configuration: " + e[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(e))
	for _, v := range e {
		b.WriteString("\n  ")
		b.WriteString(v.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each VarError.
func (e Errors) Unwrap() []error {
	out := make([]error, len(e))
	for i, v := range e {
		out[i] = v
	}
	return out
}

// Vars lists the variables at fault, in order, without duplicates.
func (e Errors) Vars() []string {
	var out []string
	seen := make(map[string]bool)
	for _, v := range e {
		if !seen[v.Var] {
			seen[v.Var] = true
			out = append(out, v.Var)
		}
	}
	return out
}

func (e *Errors) add(name string, err error) {
	*e = append(*e, &VarError{Var: name, Err: err})
}

// err returns nil for no problems (never a nil Errors in a non-nil error).
func (e Errors) err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// unknownVariables reports OTPGATE_* names (prefix matched without regard
// to case, since a lower-case name is a typo too) that no field reads.
func unknownVariables(env map[string]string, fs []field) Errors {
	known := make(map[string]bool)
	var candidates []string
	var withFile []string
	for _, f := range fs {
		known[f.key] = true
		candidates = append(candidates, f.key)
		if f.hasFile() {
			known[f.fileKey()] = true
			candidates = append(candidates, f.fileKey())
			withFile = append(withFile, f.key)
		}
	}
	prefix := Prefix + "_"
	var names []string
	for name := range env {
		if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) && !known[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var errs Errors
	for _, name := range names {
		upper := strings.ToUpper(name)
		switch base, isFile := strings.CutSuffix(upper, FileSuffix); {
		case isFile && known[base] && upper == name:
			errs.add(name, fmt.Errorf("%w: %s has no %s variant (only %s do)",
				ErrUnknownVariable, base, FileSuffix, strings.Join(withFile, ", ")))
		case suggest(upper, candidates) != "":
			errs.add(name, fmt.Errorf("%w (did you mean %s?)", ErrUnknownVariable, suggest(upper, candidates)))
		default:
			errs.add(name, fmt.Errorf("%w; `otpgate config` lists them all", ErrUnknownVariable))
		}
	}
	return errs
}

// suggest returns the candidate closest to name when it is close enough to
// be a typo: a few edits, fewer for short names.
func suggest(name string, candidates []string) string {
	suffix := strings.TrimPrefix(name, Prefix+"_")
	limit := min(3, max(1, len(suffix)/3))
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if d := editDistance(suffix, strings.TrimPrefix(c, Prefix+"_")); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
