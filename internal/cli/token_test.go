package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  s3cret\n")
	tests := []struct {
		name       string
		cf         clientFlags
		want, fail string
	}{
		{"file, trimmed", clientFlags{tokenFile: good}, "s3cret", ""},
		{"--token wins", clientFlags{token: "inline", tokenFile: good}, "inline", ""},
		{"neither", clientFlags{}, "", ""},
		{"missing file", clientFlags{tokenFile: filepath.Join(dir, "nope")}, "", "check --token-file or SEAMARK_TOKEN_FILE"},
		{"empty file", clientFlags{tokenFile: write("empty", "\n\n")}, "", "is empty; write the token into it"},
		{"huge file", clientFlags{tokenFile: write("huge", strings.Repeat("x", maxTokenFile+1))}, "", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cf.bearer()
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tc.fail)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
