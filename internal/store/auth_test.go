package store_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/seamark/seamark/internal/store"
	"github.com/seamark/seamark/internal/store/storetest"
)

// The embedded store refuses a client without the root password kept in the
// data directory (mode 0600), and the server's own client works.
func TestEmbeddedNeedsCredential(t *testing.T) {
	dir := t.TempDir()
	s := storetest.NewAt(t, dir)
	st, err := os.Stat(filepath.Join(dir, store.RootPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode %04o, want 0600", st.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	anon, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Put(ctx, s.Prefix()+"v1/nodes/x/y", "{}"); err == nil || !strings.Contains(err.Error(), "user name is empty") {
		t.Fatalf("put without credentials: got %v, want a refusal", err)
	}
	user, _ := s.Credentials()
	wrong, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Username: user, Password: "guess"})
	if err == nil {
		_, err = wrong.Put(ctx, s.Prefix()+"v1/nodes/x/y", "{}")
		wrong.Close()
	}
	if err == nil {
		t.Fatal("put with a wrong password succeeded")
	}
	if _, _, err := s.Load(ctx); err != nil {
		t.Fatalf("the store's own client: %v", err)
	}
}

func TestEmbeddedPasswordFileMode(t *testing.T) {
	dir := t.TempDir()
	s := storetest.NewAt(t, dir)
	s.Close()
	file := filepath.Join(dir, store.RootPasswordFile)
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := store.Open(ctx, store.Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("got %v, want a refusal that says chmod 600", err)
	}
	os.Chmod(file, 0o600)
	s2, err := store.Open(ctx, store.Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("reopen with the kept password: %v", err)
	}
	s2.Close()
}

// The store's client keeps working after its etcd auth token expired while
// it was idle: unary calls, a watch opened before and one opened after.
func TestAuthTokenExpiryWhileIdle(t *testing.T) {
	defer store.SetAuthTokenTTL(1)()
	s := storetest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, rev, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, beforeErr := s.Watch(ctx, rev)
	if _, err := s.PutService(ctx, svc("a"), true); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-before; !ok {
		t.Fatalf("watch: %v", beforeErr())
	}
	time.Sleep(3 * time.Second) // the token expires (TTL 1 s, swept every second)
	if _, err := s.PutService(ctx, svc("b"), true); err != nil {
		t.Fatalf("write after the token expired: %v", err)
	}
	select {
	case _, ok := <-before:
		if !ok {
			t.Fatalf("watch opened before: closed: %v", beforeErr())
		}
	case <-ctx.Done():
		t.Fatal("watch opened before: no event")
	}
	after, afterErr := s.Watch(ctx, rev)
	if _, ok := <-after; !ok {
		t.Fatalf("watch opened after the token expired: %v", afterErr())
	}
	if _, _, err := s.Load(ctx); err != nil {
		t.Fatalf("read after the token expired: %v", err)
	}
	// A watch that is the first call after the token expired: if refused,
	// a reader's next Load (which renews the token) and Watch get through.
	time.Sleep(3 * time.Second)
	first, firstErr := s.Watch(ctx, rev)
	if _, ok := <-first; !ok {
		t.Logf("first call after expiry was a watch: %v", firstErr())
		if _, _, err := s.Load(ctx); err != nil {
			t.Fatalf("load: %v", err)
		}
		again, againErr := s.Watch(ctx, rev)
		if _, ok := <-again; !ok {
			t.Fatalf("watch after a load: %v", againErr())
		}
	}
}

// The embedded store's peer port (raft) refuses a connection without the
// client certificate of the CA kept in the data directory: raft messages
// cannot write around authentication.
func TestEmbeddedPeerPortNeedsCertificate(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: peer})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range []string{"http://" + peer + "/members", "https://" + peer + "/members", "https://" + peer + "/raft/probing"} {
		resp, err := hc.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s without a client certificate: %s", u, resp.Status)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "peer-tls", "peer-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("peer key: %v, mode %v", err, st.Mode().Perm())
	}
}
