package server_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamark/seamark/internal/config"
	"github.com/seamark/seamark/internal/server"
)

// A port that is taken makes Start fail with an error that names the key to
// change, and stops what it had started (the store), so the data directory
// opens again at once.
func TestStartFailsCleanlyOnTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	dir := t.TempDir()
	tests := []struct {
		name, http, dns, want string
	}{
		{"http port taken", taken.Addr().String(), "127.0.0.1:0", "change server.http_addr"},
		{"dns port taken", "127.0.0.1:0", udp.LocalAddr().String(), "change server.dns_addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &config.File{}
			f.SetDefaults()
			f.Server.DataDir, f.Server.HTTPAddr, f.Server.DNSAddr = filepath.Join(dir, "data"), tc.http, tc.dns
			f.Server.EtcdClientAddr, f.Server.EtcdPeerAddr = "127.0.0.1:0", "127.0.0.1:0"
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := server.Start(ctx, server.Options{Config: f, Version: "test"})
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded on a taken port")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}
