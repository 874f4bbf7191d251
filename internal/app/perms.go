package app

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// privateUmask makes every file the process creates readable by its owner
// only: the data directory holds encrypted records, but also the lock and
// the manifest, and a backup is a copy of everything.
const privateUmask = 0o077

// restrictPermissions sets the umask (process-wide; otpgate creates nothing
// that others should read) and tightens an existing data directory that is
// looser than 0700 with files looser than 0600, saying so once.
func restrictPermissions(dir string, log *slog.Logger) error {
	syscall.Umask(privateUmask)
	info, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("OTPGATE_DATA_DIR: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("OTPGATE_DATA_DIR: %s is not a directory", dir)
	}
	tightened := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // never follow a link out of the directory
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fi.Mode().Perm() &^ privateUmask
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			if err := os.Chmod(path, want); err != nil {
				return err
			}
			tightened++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("OTPGATE_DATA_DIR: tightening permissions: %w", err)
	}
	if tightened > 0 {
		log.Warn("the data directory was readable by others; tightened it to 0700 and its files to 0600",
			"component", "app", "entries", tightened)
	}
	return nil
}
