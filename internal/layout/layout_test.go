package layout

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/otpgate/otpgate"

// rule forbids packages matching from to depend, directly or not, on
// packages matching to (production code only: go list -deps leaves test
// files out).
type rule struct {
	from, to []string
	why      string
	// direct limits the rule to the package's own imports: the adapters
	// use the engine's protocol types, and the engine does use the store.
	direct bool
}

var rules = []rule{
	{[]string{"pii"}, []string{"..."}, "pii is a leaf: the types every layer shares", false},
	{[]string{"proof"}, []string{"..."}, "proof is a leaf: anyone verifies a proof without otpgate's store", false},
	{[]string{"store", "store/..."}, []string{"bot", "bot/...", "otp", "otp/...", "internal/app", "cmd/..."},
		"store is the bottom layer: it enforces the invariant without knowing who asks", false},
	{[]string{"store/kv"}, []string{"store", "store/badgerkv", "store/pgkv", "store/recordfile"},
		"the persistence contract is a leaf: it imports neither engine nor the logic over it", false},
	{[]string{"store", "store/badgerkv", "store/recordfile"}, []string{"store/pgkv"},
		"the store's logic is written over the contract: only internal/app picks PostgreSQL", false},
	{[]string{"otp", "otp/..."}, []string{"bot", "bot/...", "internal/app", "cmd/..."}, "otp never imports the chat layer", false},
	{[]string{"bot", "bot/..."}, []string{"internal/app", "cmd/..."}, "the chat layer does not reach up to the wiring", false},
	{[]string{"bot/telegram", "bot/console"}, []string{"store", "store/..."},
		"chat adapters never import a store: the engine asks the store, the adapters only carry text", true},
	{[]string{"cmd/otpgate"}, []string{"bot/telegram/telegramtest", "otp/otptest", "otp/twilio/twiliotest", "internal/app/apptest", "internal/pgtest", "bench",
		"store/storetest", "store/kv/kvtest", "bot/sessiontest"},
		"no test fake is linked into the shipped binary", false},
}

// match reports whether pkg (module-relative) matches pattern: exact, or
// "x/..." for x and below, or "..." for every package of the module.
func match(pattern, pkg string) bool {
	switch {
	case pattern == "...":
		return true
	case strings.HasSuffix(pattern, "/..."):
		base := strings.TrimSuffix(pattern, "/...")
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func matchAny(patterns []string, pkg string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, pkg) })
}

// deps maps every package of the module (module-relative path) to its
// production dependencies: transitive ones (field "Deps") or its own
// imports (field "Imports").
func deps(t *testing.T, field string) map[string][]string {
	t.Helper()
	touchSources(t)
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .`+field+` " "}}`, module+"/...").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, list, _ := strings.Cut(line, ":")
		m[rel(pkg)] = strings.Fields(list)
	}
	return m
}

func rel(pkg string) string {
	if pkg == module {
		return "."
	}
	return strings.TrimPrefix(pkg, module+"/")
}

func TestImportGraph(t *testing.T) {
	all, own := deps(t, "Deps"), deps(t, "Imports")
	if len(all) < 10 {
		t.Fatalf("go list found only %d packages: %v", len(all), all)
	}
	for pkg := range all {
		for _, r := range rules {
			if !matchAny(r.from, pkg) {
				continue
			}
			ds := all[pkg]
			if r.direct {
				ds = own[pkg]
			}
			for _, d := range ds {
				if !strings.HasPrefix(d, module+"/") {
					continue
				}
				if dr := rel(d); dr != pkg && matchAny(r.to, dr) {
					t.Errorf("%s depends on %s: %s", pkg, dr, r.why)
				}
			}
		}
	}
}

// TestShippedBinaryHasNoTestCode: nothing of the testing package or of a
// *test fake is in `go list -deps ./cmd/otpgate`.
func TestShippedBinaryHasNoTestCode(t *testing.T) {
	for _, d := range deps(t, "Deps")["cmd/otpgate"] {
		if d == "testing" || strings.HasPrefix(d, "testing/") || (strings.HasPrefix(d, module+"/") && strings.HasSuffix(d, "test")) {
			t.Errorf("cmd/otpgate links %s", d)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"store", "store", true}, {"store", "store/recordfile", false},
		{"store/...", "store", true}, {"store/...", "store/recordfile", true}, {"store/...", "storex", false},
		{"...", "bot", true},
	} {
		if got := match(c.pattern, c.pkg); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pattern, c.pkg, got)
		}
	}
}

// TestFakesStayInTests: no production package links a test fake; only the
// benchmarks (bench) and other fakes may.
func TestFakesStayInTests(t *testing.T) {
	isFake := func(p string) bool { return strings.HasSuffix(p, "test") }
	for pkg, ds := range deps(t, "Deps") {
		if pkg == "bench" || isFake(pkg) {
			continue
		}
		for _, d := range ds {
			if strings.HasPrefix(d, module+"/") && isFake(rel(d)) {
				t.Errorf("%s links the test fake %s", pkg, rel(d))
			}
		}
	}
}

// touchSources opens every Go file of the module, so that go test's cache
// (which records the files a test opens, not those its `go list` reads)
// reruns this test whenever an import changes.
func touchSources(t *testing.T) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod") {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
