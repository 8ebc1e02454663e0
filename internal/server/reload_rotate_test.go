package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

// Reload swaps the API's tokens (the old one is refused, the new one works),
// and a change to the server: section is applied nowhere but named in an
// error wrapping ErrRestartNeeded, while the rest of the file is applied.
func TestReloadRotatesTokens(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "seamark.yaml")
	write := func(token, extra string) {
		if err := os.WriteFile(filepath.Join(dir, "ops.token"), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := "zones: [cluster.test]\napi: {tokens: [{name: ops, secret_file: ops.token, access: write}]}\n" + extra
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old-secret", "")
	f, err := config.Load(cfgPath)
	if err == nil {
		err = f.ReadSecrets()
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Server.DataDir, f.Server.HTTPAddr = filepath.Join(dir, "data"), "127.0.0.1:0"
	f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr, f.Server.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ctx := context.Background()
	s, err := server.Start(ctx, server.Options{Config: f, ConfigPath: cfgPath, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	create := func(token, name string) error {
		c, err := api.NewClient([]string{"http://" + s.HTTPAddr().String()}, api.WithToken(token))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CreateService(ctx, api.Service{Name: name, Port: 80, Check: api.Check{Type: api.CheckNone}})
		return err
	}
	if err := create("old-secret", "a"); err != nil {
		t.Fatal(err)
	}
	write("new-secret", "server: {http_addr: 127.0.41.9:9400}\nservices: [{name: fromfile, port: 81}]\n")
	err = s.Reload(ctx)
	if !errors.Is(err, server.ErrRestartNeeded) || !strings.Contains(err.Error(), "server.http_addr") {
		t.Fatalf("reload with a new http_addr: got %v, want ErrRestartNeeded naming server.http_addr", err)
	}
	var ae *api.Error
	if err := create("old-secret", "b"); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("old token after reload: got %v, want 401", err)
	}
	if err := create("new-secret", "c"); err != nil {
		t.Fatalf("new token after reload: %v", err)
	}
	c, _ := api.NewClient([]string{"http://" + s.HTTPAddr().String()})
	if _, err := c.Service(ctx, "fromfile"); err != nil {
		t.Fatalf("the rest of the file was not applied: %v", err)
	}
}
