package cli

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestStampVersion(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name, v string
		bi      debug.BuildInfo
		want    string
	}{
		{"ldflags wins", "v1.2.3", debug.BuildInfo{Main: debug.Module{Version: "v9"}}, "v1.2.3"},
		{"go install @version", "dev", debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0"},
		{"clean tree", "dev", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("257e8f0a1b2c3d4e5f60718293a4b5c6d7e8f901", "false")}, "dev+257e8f0a1b2c"},
		{"dirty tree", "dev", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("257e8f0a1b2c3d4e", "true")}, "dev+257e8f0a1b2c-dirty"},
		{"no vcs", "dev", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
	} {
		if got := stampVersion(tc.v, &tc.bi); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("--version exited %d: %s", code, errOut.String())
	}
	if got, want := out.String(), "seamark "+Version+"\n"; got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}
