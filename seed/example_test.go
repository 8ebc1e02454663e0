package seed_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/seed"
)

// listen stands in for a service on this machine, so the examples run.
func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// serveIdentity stands in for `seamark agent --identity-addr` on a node
// whose service listens at svc.
func serveIdentity(id string, svc netip.AddrPort) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	me := api.Node{ID: id, Service: "db", Address: svc.Addr(), Port: int(svc.Port()), Healthy: true}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Identity{ID: id, Service: "db", Address: svc.Addr(), Port: int(svc.Port()), Peers: []api.Node{me}})
	}))
	return ln
}

func ExampleDial() {
	svc := listen() // the service, at 127.0.0.1:<port>
	defer svc.Close()

	// In real use: seed.Dial(ctx, "db.example.com:3000"), optionally with
	// seed.WithDNSServer("10.0.0.2:53").
	conn, err := seed.Dial(context.Background(), svc.Addr().String())
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer conn.Close()
	fmt.Println("connected to the service:", conn.RemoteAddr().String() == svc.Addr().String())
	// Output: connected to the service: true
}

func ExampleWithTrace() {
	svc := listen()
	defer svc.Close()
	dead := listen() // an address where nothing listens any more
	dead.Close()

	addrs := []netip.AddrPort{
		netip.MustParseAddrPort(dead.Addr().String()),
		netip.MustParseAddrPort(svc.Addr().String()),
	}
	conn, err := seed.DialAddrs(context.Background(), addrs, seed.WithTrace(func(e seed.Event) {
		switch e.Kind {
		case seed.EventAttempt, seed.EventFailed, seed.EventConnected:
			fmt.Println(e.Kind, "live:", e.Addr == addrs[1])
		}
	}))
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	conn.Close()
	// The refused attempt fails at once, so the next one starts without
	// waiting for the attempt delay.

	// Output:
	// attempt live: false
	// failed live: false
	// attempt live: true
	// connected live: true
}

func ExampleNewCluster() {
	svc := listen()
	defer svc.Close()
	identity := serveIdentity("db-a", netip.MustParseAddrPort(svc.Addr().String()))
	defer identity.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// In real use the seed is the agents' identity port under the cluster's
	// name, or a load balancer forwarding it: "db.example.com:9401".
	c, err := seed.NewCluster(ctx, seed.Config{Seeds: []string{identity.Addr().String()}})
	if err != nil {
		fmt.Println("find cluster:", err)
		return
	}
	defer c.Close()
	for _, n := range c.Nodes() {
		fmt.Println("node", n.ID, "at its own address:", n.Addr.String() == svc.Addr().String())
	}
	fmt.Println("balancer in between:", c.Seeded().Balancer)

	conn, err := c.Dial(ctx) // to a live node, the next one each call
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	conn.Close()
	fmt.Println("connected")
	// Output:
	// node db-a at its own address: true
	// balancer in between: false
	// connected
}

func ExampleCluster_Watch() {
	svc := listen()
	defer svc.Close()
	identity := serveIdentity("db-a", netip.MustParseAddrPort(svc.Addr().String()))
	defer identity.Close()

	c, err := seed.NewCluster(context.Background(), seed.Config{Seeds: []string{identity.Addr().String()}})
	if err != nil {
		fmt.Println("find cluster:", err)
		return
	}
	defer c.Close()
	changes := c.Watch()
	first := <-changes // the map as it is now
	for _, n := range first.Added {
		fmt.Println("added", n.ID)
	}
	// Later values report nodes added, removed or moved; the channel is
	// closed by Close.

	// Output: added db-a
}
