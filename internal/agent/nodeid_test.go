package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func host(name string) func() (string, error) { return func() (string, error) { return name, nil } }

func TestResolveID(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "sub", "node-id")

	got, err := ResolveID("db-a", state, host("ip-10-0-1-5"))
	if err != nil || got.ID != "db-a" || got.From != "flag" {
		t.Fatalf("with an id: got %+v, %v", got, err)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatal("an explicit id wrote the state file")
	}
	if _, err := ResolveID("DB_A", state, host("x")); err == nil || !strings.Contains(err.Error(), "id: ") {
		t.Fatalf("bad id: got %v", err)
	}

	first, err := ResolveID("", state, host("IP-10-0-1-5.eu-west-1.compute.internal"))
	if err != nil || first.From != "state file" || !strings.HasPrefix(first.ID, "ip-10-0-1-5-") || len(first.ID) != len("ip-10-0-1-5-")+8 {
		t.Fatalf("first run: got %+v, %v; want ip-10-0-1-5-<8 hex> from a new state file", first, err)
	}
	again, err := ResolveID("", state, host("another-name"))
	if err != nil || again != first {
		t.Fatalf("second run: got %+v, %v; want the same %+v", again, err, first)
	}

	// A state file edited into nonsense is an error, not silently replaced.
	os.WriteFile(state, []byte("Not An ID\n"), 0o644)
	if _, err := ResolveID("", state, host("x")); err == nil || !strings.Contains(err.Error(), "fix it or delete it") {
		t.Fatalf("bad state file: got %v", err)
	}

	// An unusable state file falls back to the host name, with a warning.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	got, err = ResolveID("", filepath.Join(blocker, "node-id"), host("web-3.example.com"))
	if err != nil || got.ID != "web-3" || got.From != "hostname" || got.Warning == "" {
		t.Fatalf("unusable state file: got %+v, %v; want web-3 from the host name with a warning", got, err)
	}
	got, err = ResolveID("", NoStateFile, host("web-3"))
	if err != nil || got.ID != "web-3" || got.Warning != "" {
		t.Fatalf("no state file: got %+v, %v", got, err)
	}
	if _, err := ResolveID("", NoStateFile, func() (string, error) { return "", errors.New("no host name") }); err == nil || !strings.Contains(err.Error(), "give --id") {
		t.Fatalf("no host name: got %v", err)
	}
}

func TestHostLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web-3", "web-3"},
		{"Web_3.example.com", "web-3"},
		{"ip-10-0-1-5.ec2.internal", "ip-10-0-1-5"},
		{"-x-", "x"},
		{"...", ""},
		{strings.Repeat("a", 70), strings.Repeat("a", 63)},
	} {
		if got := HostLabel(tc.in); got != tc.want {
			t.Errorf("HostLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
