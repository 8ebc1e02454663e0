package seed_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/seamark/seamark/internal/testenv"
)

// Importing seed pulls in no server code: its (non-test) dependencies are
// the standard library and seamark's public api package only, so neither
// etcd's server, nor miekg/dns, nor any internal package comes along.
func TestNoServerDependencies(t *testing.T) {
	gobin := testenv.LookPath(t, "go", "golang-go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/seamark/seamark/seed": true,
		"github.com/seamark/seamark/api":  true,
	}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		deps = append(deps, p)
		for _, banned := range []string{"go.etcd.io/etcd/server", "github.com/miekg/dns", "github.com/seamark/seamark/internal/"} {
			if strings.HasPrefix(p, banned) {
				t.Errorf("seed depends on %s (server code)", p)
			}
		}
		if !allowed[p] {
			t.Errorf("seed depends on %s; want only the standard library and seamark's api package", p)
		}
	}
	t.Logf("non-standard dependencies: %v", deps)
}
