// Package netlimit keeps a process's network surfaces inside a descriptor
// budget.
//
// What it reads: the process's open-file limit (RLIMIT_NOFILE) and, at most
// every sampleEvery, the number of descriptors open (/proc/self/fd). What it
// gives: a Budget shared by every surface, which always keeps a reserve of
// descriptors free for the store, the health checker and the HTTP API's own
// work; a Surface (one cap of connections, counted against the Budget); and
// a Listener that wraps a net.Listener with a Surface. A full Listener
// refuses politely (accept, an optional short answer, close) or, with
// evict, closes its oldest idle connection to make room; Pause mode leaves
// clients in the kernel's backlog until a slot frees. Accept errors such
// as EMFILE back off (5 ms doubling to 1 s, as net/http's Serve does)
// instead of spinning. Every cap and every refusal is a metric.
package netlimit
