// Package layout holds no code: its test enforces the import graph that
// CONTRIBUTING.md describes, so that the folder list keeps telling the
// truth about the architecture.
package layout
