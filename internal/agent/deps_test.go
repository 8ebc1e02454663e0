package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The agent talks to servers only through the public api package: it must
// not link the store, the server or etcd's server, so it stays small and
// never reaches around the API.
func TestNoServerDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/seamark/seamark/internal/store",
		"github.com/seamark/seamark/internal/server",
		"github.com/seamark/seamark/internal/registry",
		"github.com/seamark/seamark/internal/httpapi",
		"go.etcd.io/etcd/server",
		"go.etcd.io/etcd/client",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed only %q", out)
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("internal/agent depends on %s", d)
			}
		}
	}
}
