package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seamark.pid")
	if err := writePidFile(path); err != nil {
		t.Fatal(err)
	}
	if pid, err := readPidFile(path); err != nil || pid != os.Getpid() {
		t.Fatalf("got %d, %v", pid, err)
	}
	removePidFile(path)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("pid file not removed: %v", err)
	}
	// A file naming another process (the successor) stays.
	os.WriteFile(path, []byte("12345\n"), 0o644)
	removePidFile(path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the successor's pid file was removed: %v", err)
	}
	for _, bad := range []string{"", "1", "-5", "abc", "123 456", "99999999999"} {
		if _, err := parsePid([]byte(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func FuzzParsePid(f *testing.F) {
	for _, s := range []string{"4242\n", "4242", " 17 \n", "", "0", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, err := parsePid(b)
		if err == nil && (pid <= 1 || pid > 1<<22) {
			t.Fatalf("%q: pid %d accepted", b, pid)
		}
	})
}
