// Package agent registers the node it runs on in a seamark registry, and takes
// it out again when the node stops serving: `seamark agent` beside a service,
// or `seamark agent -- CMD ARGS...` wrapping it.
//
// What it reads:
//   - its Config (flags or a YAML file, see docs/agent.md);
//   - the machine, to find its own addresses: a literal, a network interface
//     (iface:NAME), a metadata endpoint that answers the address as text
//     (url:URL, with the IMDSv2 token exchange when a token URL is given), the
//     source address the kernel picks towards a host (route:HOST), or a
//     command's output (cmd:'...'); the first source that yields wins, and
//     labelled alternate addresses are found the same way;
//   - its node ID: the configured one, else a stable ID kept in a state file
//     (created on first run), else the host name;
//   - the local service port, by TCP connect, until it first accepts and then
//     every check interval;
//   - the seamark servers, through the public api client only (never a server
//     package): registration answers and, for the identity endpoint, the
//     service's healthy nodes by blocking reads.
//
// What it writes:
//   - one node registration (source agent) on a lease, renewed every third of
//     the lease; state healthy while the port answers, unhealthy once it has
//     not answered for UnhealthyAfter, healthy again when it answers;
//   - a deregistration on a clean stop (context cancelled: SIGTERM or SIGINT in
//     the command, or the wrapped child's exit), so the node leaves every
//     answer at once; an agent killed without a word loses the node when its
//     lease expires, within TTL;
//   - with IdentityAddr set, an HTTP endpoint answering api.IdentityPath with
//     an api.Identity: who this node is and its service's healthy peers, which
//     the seed library uses to see through load balancers and NAT;
//   - the state file holding the generated node ID.
//
// When no server answers, the agent retries with exponential backoff and
// jitter, each attempt trying every server URL, and registers again when one
// is back; it never exits because of an outage. In wrap mode (Wrap) the
// service runs as the agent's child: signals are forwarded to it, the node is
// deregistered before a stop signal is passed on and when the child exits,
// and the agent exits with the child's exit code.
package agent
