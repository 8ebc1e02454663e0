// Package seed reaches a cluster from one name, fast, even through a load
// balancer.
//
// Dial connects to "db.example.com:3000" the way RFC 8305 (Happy Eyeballs v2)
// says: it resolves every address of the name (optionally through a DNS
// server you name), starts a connection attempt, starts the next one when the
// first has not answered after a short delay or at once when it failed, and
// keeps the first connection that is established; the others are cancelled
// and closed before Dial returns. Dead addresses that drop packets
// ("blackholed") therefore cost a few tens of milliseconds each instead of
// a connect timeout each.
//
// NewCluster goes further: it asks the node it reached who it is (the
// identity endpoint of seamark agent, or the seamark HTTP API), learns every
// node's ID and own access address, notices when the address it dialled
// belongs to a load balancer or NAT rather than to the node, and from then on
// connects to the nodes directly. It keeps the node map current on an
// interval and goes back to the seeds when every node it knew is gone.
//
// The package depends on the standard library and seamark's api package
// only: importing it pulls in no server code.
package seed
