package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The embedded etcd runs with etcd's authentication on: its only user is
// root, whose generated password lives in the data directory (mode 0600),
// readable by the user the server runs as and nobody else. A process
// without that file cannot read or write the store, even on loopback.
const (
	// RootPasswordFile is the root password's file name in the data dir.
	RootPasswordFile = "etcd-root-password"
	rootUser         = "root"
)

// authTokenTTL overrides etcd's simple-token TTL (seconds) in tests; 0 keeps
// etcd's 300 s.
var authTokenTTL uint

// rootPassword reads the embedded store's root password, or makes one when
// the data directory has none yet (fresh is then true).
func rootPassword(dataDir string) (pw string, fresh bool, err error) {
	file := filepath.Join(dataDir, RootPasswordFile)
	st, err := os.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b := make([]byte, 24)
		rand.Read(b)
		pw = hex.EncodeToString(b)
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", false, fmt.Errorf("open store: write %s: %w", file, err)
		}
		_, werr := f.WriteString(pw + "\n")
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(file)
			return "", false, fmt.Errorf("open store: write %s: %w", file, werr)
		}
		return pw, true, nil
	case err != nil:
		return "", false, fmt.Errorf("open store: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", false, fmt.Errorf("open store: %s is readable by other users (mode %04o); run: chmod 600 %s", file, st.Mode().Perm(), file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", false, fmt.Errorf("open store: %w", err)
	}
	pw = strings.TrimSpace(string(data))
	if pw == "" {
		return "", false, fmt.Errorf("open store: %s is empty; restore it from a backup of the data directory", file)
	}
	return pw, false, nil
}

// enableAuth turns etcd's authentication on with root and pw; a store that
// has it on already needs the password file it came with. It runs while the embedded etcd listens on a private bootstrap
// address only.
func enableAuth(ctx context.Context, endpoint, pw string, created bool) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(), Context: ctx})
	if err != nil {
		return fmt.Errorf("open store: enable authentication: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("open store: enable authentication: %w", err)
	}
	if st.Enabled && !created {
		return nil
	}
	if st.Enabled {
		return fmt.Errorf("open store: the store in the data directory has authentication on but its %s is missing; copy that file (mode 0600) from the data directory or backup the store came from", RootPasswordFile)
	}
	if _, err := cli.UserAdd(ctx, rootUser, pw); err != nil {
		if !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("open store: enable authentication: add user root: %w", err)
		}
		if _, err := cli.UserChangePassword(ctx, rootUser, pw); err != nil {
			return fmt.Errorf("open store: enable authentication: set root password: %w", err)
		}
	}
	if _, err := cli.UserGrantRole(ctx, rootUser, "root"); err != nil {
		return fmt.Errorf("open store: enable authentication: grant root: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("open store: enable authentication: %w", err)
	}
	return nil
}

// checkAuth makes sure the embedded store runs with authentication on: a
// data directory whose etcd had it turned off (by hand) gets it back.
func (s *Store) checkAuth(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := s.cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("open store: authentication status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	s.log.Warn("embedded store had authentication off; turning it on")
	if _, err := s.cli.UserAdd(ctx, rootUser, s.password); err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("open store: enable authentication: add user root: %w", err)
	}
	if _, err := s.cli.UserChangePassword(ctx, rootUser, s.password); err != nil {
		return fmt.Errorf("open store: enable authentication: set root password: %w", err)
	}
	if _, err := s.cli.UserGrantRole(ctx, rootUser, "root"); err != nil {
		return fmt.Errorf("open store: enable authentication: grant root: %w", err)
	}
	if _, err := s.cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("open store: enable authentication: %w", err)
	}
	return nil
}
