package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/otpgate/otpgate/internal/app"
)

// TestDataDirectoryIsPrivate: a loose existing directory is tightened, and
// everything the store writes is the owner's alone.
func TestDataDirectoryIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := apptestConfig(t)
	cfg.DataDir = dir
	a, err := app.New(cfg, app.Deps{Channel: app.ChannelConsole})
	if err != nil {
		t.Fatal(err)
	}
	importOne(t, a, "+919000000001")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", path, fi.Mode().Perm())
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("only %d entries in the data directory", n)
	}
}
