package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate checks secret files as the server does, and warns about a file
// that a reload would refuse as empty.
func TestValidateChecksSecretsAndEmptiness(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file string
		code       int
		out        string
	}{
		{"missing secret file", write("missing.yaml", "zones: [cluster.test]\napi:\n  tokens: [{name: ops, secret_file: nope.token, access: write}]\n"), 1, "nope.token: no such file or directory"},
		{"readable secret file", write("ok.yaml", "zones: [cluster.test]\napi:\n  tokens: [{name: ops, secret_file: ops.token, access: write}]\n"), 0, "ok (1 zones"},
		{"empty file", write("empty.yaml", ""), 0, "allow_empty: true"},
	}
	write("ops.token", "s3cret-s3cret-s3cret\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main([]string{"validate", tc.file}, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.code || !strings.Contains(all, tc.out) {
				t.Fatalf("got exit %d with %q, want %d with %q", code, all, tc.code, tc.out)
			}
		})
	}
}
