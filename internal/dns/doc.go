// Package dns is seamark's authoritative DNS server.
//
// What it reads: the registry snapshot only. On every new snapshot it builds
// an immutable name table for every served zone (services, SRV records, node
// names, static records, the synthesized SOA and NS) and swaps it in
// atomically; queries are answered from the table with no store round trip
// and no lock. Answers that repeat are packed once per table and only patched
// (ID, question case) per query.
//
// What it answers: <service>.<zone> A/AAAA with the service's healthy nodes
// (policy all: every node, rotated per query; weighted: max_answers drawn by
// weight), _<service>._tcp.<zone> SRV with glue, <node-id>.node.<zone> with a
// node's access address, static records (A, AAAA, CNAME chased inside our
// zones, TXT, SRV, MX, NS), referrals at delegations (NS below the apex),
// wildcards (RFC 4592), NXDOMAIN and NODATA per RFC 1034/2308 with the SOA in
// the authority section, REFUSED outside every zone, minimal ANY (RFC 8482),
// EDNS0 (RFC 6891), answers capped at the smaller of the client's and the
// server's UDP size, leaving out additional records before truncating (RFC
// 2181 9) with the full answer over TCP. The apex NS set and SOA come from
// Options.Zones. It is checked against NSD and Knot by diff_test.go.
//
// What protects it: response rate limiting of UDP answers per source prefix
// (rrl.go, on by default), a cap and idle timeout on TCP connections with a
// pause on EMFILE (tcp.go), UPDATE/NOTIFY/transfers on a bounded worker pool
// off the UDP read loop, rate-limited per-packet log lines, and metrics on
// the Registerer the server is given.
//
// What it writes: through the store only, for RFC 2136 UPDATE signed with
// TSIG (static records). Zone transfers (AXFR) and NOTIFY serve secondaries.
// Every UPDATE, refused ones included, is handed to the Auditor (the key's
// name, the client, a summary of the changes, the RCODE). Keys rotate with
// Keyring.Swap and secondaries and allow_transfer with Primary.SetTransfer,
// each swapped whole, without a restart.
//
// Upgrade in place: with Options.Handover the TCP listener and the UDP
// sockets are the ones a predecessor process handed over (internal/upgrade);
// StopReading lets the successor have them while this process answers what
// it already read.
package dns
