// Command seamark is the whole kit in one binary: `seamark server` runs the
// store, registry, API and the serving roles; the other verbs operate on a
// running server. See `seamark --help`.
package main

import (
	"os"

	"github.com/seamark/seamark/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
