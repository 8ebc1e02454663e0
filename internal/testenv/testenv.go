// Package testenv is what tests ask of the machine they run on: a tool, root,
// a kernel feature. Locally a test whose need is missing skips with a message
// that names what to install; in CI (CI=true) it fails, so a missing tool can
// never turn a CI run green by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with the message, or fails it in CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true, so this cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// LookPath returns the path of tool, or skips (fails in CI) naming the Debian
// package that provides it.
func LookPath(t testing.TB, tool, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		Skip(t, "%s not installed: apt-get install %s", tool, debianPackage)
	}
	return p
}
