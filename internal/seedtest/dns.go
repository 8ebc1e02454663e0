package seedtest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// DNS is an authoritative DNS server on loopback (UDP and TCP) that answers
// A and AAAA queries with fixed addresses in a fixed order, so a test decides
// where in the answer the live address stands. Names not set are NXDOMAIN.
type DNS struct {
	mu    sync.Mutex
	names map[string][]netip.Addr

	udp, tcp *dns.Server
	addr     string
}

// NewDNS starts a server on 127.0.0.1 with a free port.
func NewDNS() (*DNS, error) {
	d := &DNS{names: map[string][]netip.Addr{}}
	// The UDP port the kernel picks may be taken for TCP: try a few.
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for try := 0; try < 20; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dns server: no port free for both UDP and TCP: %w", err)
	}
	d.addr = pc.LocalAddr().String()
	d.udp = &dns.Server{PacketConn: pc, Handler: d}
	d.tcp = &dns.Server{Listener: ln, Handler: d}
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	d.udp.NotifyStartedFunc = func() { close(udpUp) }
	d.tcp.NotifyStartedFunc = func() { close(tcpUp) }
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	<-udpUp
	<-tcpUp
	return d, nil
}

// Addr is the server's address (host:port), the same for UDP and TCP.
func (d *DNS) Addr() string { return d.addr }

// Set makes name answer addrs, in this order (nil removes the name).
func (d *DNS) Set(name string, addrs []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names[dns.Fqdn(strings.ToLower(name))] = addrs
}

// ServeDNS answers one query.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	d.mu.Lock()
	addrs, ok := d.names[strings.ToLower(q.Name)]
	d.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
	for _, a := range addrs {
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}

// Close stops the server.
func (d *DNS) Close() error {
	d.udp.Shutdown()
	d.tcp.Shutdown()
	return nil
}
