// Package seedtest holds the real network pieces the seed package's tests,
// the probe verb's tests and bench/seed run against: blackholed addresses on
// loopback, a DNS server with fixed answers, a node's identity endpoint and a
// TCP proxy that stands in for a load balancer. Everything listens on
// 127.0.0.0/8 and is stopped by Close.
package seedtest
