package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seamark/seamark/api"
)

// NodeID says which ID the node registers under and where it came from.
type NodeID struct {
	ID string
	// From is "flag", "state file" or "hostname".
	From string
	// Warning says why a state file could not be used ("" when it was, or
	// when none was asked for).
	Warning string
}

// ResolveID picks the node ID: id when given; else the ID kept in stateFile
// (written there on first use: the host name and a random suffix, so that
// machines built from one image still differ); else the host name as a DNS
// label. A state file that holds something other than a valid ID is an
// error: it was edited by hand and must be fixed, not silently replaced.
func ResolveID(id, stateFile string, hostname func() (string, error)) (NodeID, error) {
	if id != "" {
		if msg := api.CheckName(id); msg != "" {
			return NodeID{}, fmt.Errorf("id: %s", msg)
		}
		return NodeID{ID: id, From: "flag"}, nil
	}
	host, hostErr := hostname()
	label := HostLabel(host)
	var warning string
	if stateFile != "" && stateFile != NoStateFile {
		got, err := stateID(stateFile, label)
		if err == nil {
			return NodeID{ID: got, From: "state file"}, nil
		}
		if errors.Is(err, errBadStateFile) {
			return NodeID{}, err
		}
		warning = err.Error()
	}
	if label == "" {
		why := fmt.Sprintf("host name %q has no letters or digits", host)
		if hostErr != nil {
			why = hostErr.Error()
		}
		if warning != "" {
			why = warning + "; " + why
		}
		return NodeID{}, fmt.Errorf("no node ID: give --id (%s)", why)
	}
	return NodeID{ID: label, From: "hostname", Warning: warning}, nil
}

// NoStateFile as a state file path turns the state file off.
const NoStateFile = "none"

var errBadStateFile = errors.New("does not hold a node ID")

// stateID reads the ID kept in path, or creates it.
func stateID(path, host string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(data))
		if msg := api.CheckName(id); msg != "" {
			return "", fmt.Errorf("state file %s %w: %s; fix it or delete it to get a new ID", path, errBadStateFile, msg)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("state file %s: %w", path, err)
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	if host == "" {
		host = "node"
	}
	id := fmt.Sprintf("%s-%s", strings.TrimRight(host[:min(len(host), 54)], "-"), hex.EncodeToString(suffix[:]))
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("state file %s: %w", path, err)
	}
	return id, nil
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so that a crash leaves either no file or the whole one.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".node-id-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// HostLabel turns a host name into a node ID: its first label, lower case,
// with every character a name may not hold replaced by '-' ("" when nothing
// is left).
func HostLabel(host string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(host), ".")
	var b strings.Builder
	for _, r := range strings.ToLower(first) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-")
}
