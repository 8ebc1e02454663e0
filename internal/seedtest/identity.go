package seedtest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seamark/seamark/api"
)

// PeersFunc returns a service's healthy nodes and the index they reflect, as
// an agent learns them from the seamark API.
type PeersFunc func(ctx context.Context) ([]api.Node, int64, error)

// APIPeers asks a seamark server for service's healthy nodes, as the agent's
// identity endpoint does.
func APIPeers(c *api.Client, service string) PeersFunc {
	return func(ctx context.Context) ([]api.Node, int64, error) {
		return c.Nodes(ctx, service, &api.QueryOptions{HealthyOnly: true})
	}
}

// StaticPeers always returns nodes.
func StaticPeers(nodes ...api.Node) PeersFunc {
	return func(context.Context) ([]api.Node, int64, error) { return nodes, 0, nil }
}

// Identity is a node's identity endpoint: GET api.IdentityPath answers the
// node's api.Identity as JSON, with the peers its PeersFunc returns (empty
// when that fails), the contract seamark agent --identity-addr serves.
type Identity struct {
	ln    net.Listener
	srv   *http.Server
	id    api.Identity
	peers PeersFunc
	done  chan struct{}

	// Requests counts the identity requests answered.
	Requests atomic.Int64
}

// NewIdentity serves id on ln until Close.
func NewIdentity(ln net.Listener, id api.Identity, peers PeersFunc) *Identity {
	s := &Identity{ln: ln, id: id, peers: peers, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.IdentityPath, s.serve)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { defer close(s.done); s.srv.Serve(ln) }()
	return s
}

func (s *Identity) serve(w http.ResponseWriter, r *http.Request) {
	id := s.id
	id.Peers = []api.Node{}
	if s.peers != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		peers, idx, err := s.peers(ctx)
		cancel()
		if err == nil {
			id.Peers, id.Index = peers, idx
		}
	}
	s.Requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(id)
}

// Addr is the endpoint's address.
func (s *Identity) Addr() net.Addr { return s.ln.Addr() }

// Close stops the endpoint and closes its connections.
func (s *Identity) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Service is a node's service port: it accepts connections, counts them and
// holds each open until the client closes it or Close is called.
type Service struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	// Accepted counts accepted connections.
	Accepted atomic.Int64
}

// NewService accepts on ln until Close.
func NewService(ln net.Listener) *Service {
	s := &Service{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *Service) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.Accepted.Add(1)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Addr is the service's address.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Open counts the connections open now.
func (s *Service) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops accepting and closes every connection.
func (s *Service) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
