package main

import (
	"os"
	"testing"
)

// TestMain lets the import benchmark's child processes run from the test
// binary: benchImport re-executes itself with OTPBENCH_CHILD set.
func TestMain(m *testing.M) {
	if os.Getenv("OTPBENCH_CHILD") != "" {
		if err := run(os.Args[1:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs every benchmark at a tiny size, so that a change which
// breaks one is caught by `go test` rather than at the next measurement.
func TestSmoke(t *testing.T) {
	for _, args := range [][]string{
		{"import", "-n", "300"},
		{"pgimport", "-n", "2000"},
		{"serve", "-n", "300", "-trips", "5"},
		{"serve", "-postgres", "-n", "300", "-trips", "5"},
		{"telegram", "-users", "4"},
		{"backup", "-n", "300"},
		{"soak", "-duration", "2s", "-workers", "2"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel() // each works in its own temporary directory
			if err := run(args); err != nil {
				t.Fatal(err)
			}
		})
	}
}
