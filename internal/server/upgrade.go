package server

import (
	"context"

	"errors"
	"fmt"
	"github.com/seamark/seamark/api"
	"time"
)

// Upgrade in place, the server's part (the process's part, signals and the
// new binary, is internal/cli's; the descriptors are internal/upgrade's).
//
// The successor: Start takes every socket it is handed instead of binding
// (Options.Handover) and adopts the embedded etcd child (Options.AdoptEtcd);
// WaitServing returns once the balancer has applied the snapshot (every
// port taken); after the predecessor's "go", StartMember campaigns as the
// same member, which takes the group's role record over by compare-and-swap
// (internal/ha: a record of our own member name is claimed), so the group's
// name never moves.
//
// The predecessor: FreezeMember before "go" (its campaigns write nothing and
// fire no hook from then on), then Handoff: the DNS server and the HTTP API
// close their descriptors (the successor's copies keep the sockets), the
// balancer stops accepting and drains its open connections up to each
// listener's drain_timeout; then Close.

// WaitServing waits until the balancer has applied the current snapshot and
// this process's health checker has confirmed every node its predecessor
// (the same checker ID) found healthy: the predecessor's verdicts go with
// its lease when it exits, and a node without a verdict is not advertised.
// When ctx ends first it logs which node is still pending and returns nil;
// only a balancer that did not apply the snapshot is an error.
func (s *Server) WaitServing(ctx context.Context) error {
	snap := s.watcher.Current()
	if snap == nil {
		return errors.New("no snapshot")
	}
	if s.lb != nil {
		if err := s.lb.WaitRevision(ctx, snap.Revision); err != nil {
			return err
		}
	}
	for {
		pending := ""
		for _, v := range snap.Services() {
			for _, n := range v.Nodes() {
				for _, c := range n.Checks {
					if c.Checker == s.name && c.State == api.StateHealthy && c.Since.Before(s.started) {
						pending = v.Service.Name + "/" + n.ID
					}
				}
			}
		}
		if pending == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			// Serve anyway: the checker is slow (long intervals), not the
			// process; the node is advertised again at its next verdict.
			s.log.Warn("upgrade: serving before the health checker confirmed every node; some may be left out until it does", "node", pending)
			return nil
		case <-s.watcher.Next(snap):
			snap = s.watcher.Current()
		}
	}
}

// StartMember starts the group campaigns a successor deferred (no-op without
// server.member or when they run).
func (s *Server) StartMember() {
	if m := s.cfg.Server.Member; m != "" && s.member == nil {
		s.startMember(s.runCtx, m)
	}
}

// FreezeMember hands the group member over to a successor process.
func (s *Server) FreezeMember() {
	if s.member != nil {
		s.member.Freeze()
	}
}

// Handoff stops every role accepting, the successor holding the sockets,
// and drains the balancer's connections until they end, their drain_timeout
// passes, or ctx ends.
func (s *Server) Handoff(ctx context.Context) error {
	if s.dns != nil {
		// Stop reading, answer what was read, then stop.
		s.dns.StopReading()
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
		s.stopDNS()
	}
	if s.httpSrv != nil {
		s.api.Close()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.httpSrv.Shutdown(hctx); err != nil {
			s.httpSrv.Close()
		}
		cancel()
	}
	if s.lb != nil {
		if err := s.lb.Handoff(ctx); err != nil {
			return fmt.Errorf("drain the balancer: %w", err)
		}
	}
	return nil
}
