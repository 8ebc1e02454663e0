// Package health decides, for every node of every service, whether it is up.
//
// What it reads: the registry snapshot (services, their nodes and candidate
// pools, the live checkers and the verdicts they wrote). What it does:
// probes the targets placed on it (each node is owned by check.replicas of
// the live checkers, chosen by rendezvous hashing: registry.Placement,
// shard.go; targets move with no gap when checkers come and go) by tcp
// connect, http/https request or tls handshake, on a schedule spread with
// jitter, with HAProxy's rise/fall counting and inter/fastinter/downinter
// intervals, each probe bounded by its timeout so one slow target never delays
// another. What it writes: this checker's verdict on a node, only when it
// changes, on the checker's own lease (a checker that dies stops counting when
// its lease expires); an event for every transition; and the service's
// on_change hook, run in the background with retries.
//
// A node an operator put in maint (its admin state, Node.Admin) is not
// probed while it is; its verdict stays as last written, since no probe
// said anything new, and probing starts again when it is ready (maint.go).
//
// The node's state that DNS and the balancer use is decided by the registry
// from the verdicts of the node's owners (see registry.Placement.Count and
// docs/health.md), so several seamark servers on one store agree on one
// answer.
package health
