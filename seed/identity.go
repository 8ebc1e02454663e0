package seed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/seamark/seamark/api"
)

// maxIdentitySize bounds an identity answer (a few hundred bytes per peer).
const maxIdentitySize = 4 << 20

// askIdentity sends GET api.IdentityPath over conn (already connected to the
// address the caller wants to learn about) and reads the answer. It gives up
// at ctx's end or after timeout.
func askIdentity(ctx context.Context, conn net.Conn, host string, timeout time.Duration) (api.Identity, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return api.Identity{}, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + api.IdentityPath + " HTTP/1.1\r\nHost: " + host +
		"\r\nAccept: application/json\r\nUser-Agent: seamark-seed\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return api.Identity{}, fmt.Errorf("ask identity: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return api.Identity{}, fmt.Errorf("ask identity: read answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.Identity{}, fmt.Errorf("ask identity: GET %s answered %q (is this the identity endpoint of seamark agent --identity-addr?)", api.IdentityPath, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxIdentitySize+1))
	if err != nil {
		return api.Identity{}, fmt.Errorf("ask identity: read answer: %w", err)
	}
	if len(data) > maxIdentitySize {
		return api.Identity{}, fmt.Errorf("ask identity: answer larger than %d bytes", maxIdentitySize)
	}
	return decodeIdentity(data)
}

// decodeIdentity parses and checks an identity answer. Peers that cannot be
// used (no ID, no address, a port out of range) are left out; a peer without
// a port gets the answering node's.
func decodeIdentity(data []byte) (api.Identity, error) {
	var id api.Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return api.Identity{}, fmt.Errorf("identity answer is not an identity object: %w", err)
	}
	var errs []error
	if id.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	id.Address = id.Address.Unmap()
	if !id.Address.IsValid() {
		errs = append(errs, errors.New("address is missing"))
	}
	if id.Port < 1 || id.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not from 1 to 65535", id.Port))
	}
	if len(errs) > 0 {
		return api.Identity{}, fmt.Errorf("identity answer: %w", errors.Join(errs...))
	}
	id.Alternates = cleanAlternates(id.Alternates)
	peers := id.Peers[:0]
	for _, p := range id.Peers {
		p.Address = p.Address.Unmap()
		if p.ID == "" || !p.Address.IsValid() || p.Port < 0 || p.Port > 65535 {
			continue
		}
		if p.Port == 0 {
			p.Port = id.Port
		}
		p.Alternates = cleanAlternates(p.Alternates)
		peers = append(peers, p)
	}
	id.Peers = peers
	return id, nil
}

func cleanAlternates(alts []api.AltAddress) []api.AltAddress {
	var out []api.AltAddress
	for _, a := range alts {
		if a.Label != "" && a.Address.IsValid() {
			out = append(out, api.AltAddress{Label: a.Label, Address: a.Address.Unmap()})
		}
	}
	return out
}

// ownAddress reports whether a is one of the node's own addresses (its
// access address or an alternate): when it is not, the client reached the
// node through a load balancer or NAT.
func ownAddress(access netip.Addr, alts []api.AltAddress, a netip.Addr) bool {
	a = a.Unmap()
	if a == access {
		return true
	}
	for _, alt := range alts {
		if alt.Address == a {
			return true
		}
	}
	return false
}
