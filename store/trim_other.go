//go:build !linux

package store

// trimMapped is a no-op where MADV_PAGEOUT does not exist.
func trimMapped(string) {}
