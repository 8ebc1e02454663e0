package seed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults of Dial.
const (
	// DefaultAttemptDelay is how long the first attempt may go unanswered
	// before the second starts. Each later attempt waits half as long as the
	// one before it, down to MinAttemptDelay: a name whose first address is
	// dead often lists more dead ones, and they should not cost 50 ms each.
	DefaultAttemptDelay = 50 * time.Millisecond
	// MinAttemptDelay is the shortest gap between two attempt starts (RFC
	// 8305 section 5 keeps at least 10 ms so as not to flood the network).
	MinAttemptDelay = 10 * time.Millisecond
	// DefaultAttemptTimeout bounds one connection attempt.
	DefaultAttemptTimeout = 2 * time.Second
	// DefaultTimeout bounds a whole Dial, resolution included.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConcurrent is how many attempts may be in flight at once.
	DefaultMaxConcurrent = 32
)

// ErrNoAddress is returned (wrapped) when a name has no address to try.
var ErrNoAddress = errors.New("no address to try")

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Option changes how Dial (and a Cluster's dials) work.
type Option func(*options)

type options struct {
	resolver       Resolver
	absolute       bool // names are fully qualified (a DNS server was named)
	network        string
	delay          time.Duration
	attemptTimeout time.Duration
	timeout        time.Duration
	maxConcurrent  int
	netDialer      net.Dialer
	trace          func(Event)
	errs           []error
	// now and after are the clock the attempts are staggered on (a test
	// sets a fake one; see export_test.go).
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

func newOptions(opts []Option) (*options, error) {
	o := &options{
		resolver:       net.DefaultResolver,
		network:        "tcp",
		delay:          DefaultAttemptDelay,
		attemptTimeout: DefaultAttemptTimeout,
		timeout:        DefaultTimeout,
		maxConcurrent:  DefaultMaxConcurrent,
		now:            time.Now,
		after:          time.After,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return o, errors.Join(o.errs...)
}

// WithDNSServer resolves names through the DNS server at addr ("10.0.0.2:53"
// or "127.0.0.1:9453"; port 53 when none is given) instead of the system's
// resolver. Names are then taken as fully qualified: no search domains.
func WithDNSServer(addr string) Option {
	return func(o *options) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(addr, "53")
		}
		if _, err := netip.ParseAddrPort(addr); err != nil {
			o.errs = append(o.errs, fmt.Errorf("dns server %q is not an IP address and port like 127.0.0.1:53", addr))
			return
		}
		o.resolver = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}
		o.absolute = true
	}
}

// WithResolver resolves names with r (for example a *net.Resolver of your own).
func WithResolver(r Resolver) Option {
	return func(o *options) {
		if r == nil {
			o.errs = append(o.errs, errors.New("resolver is nil"))
			return
		}
		o.resolver, o.absolute = r, false
	}
}

// WithNetwork restricts dialing to "tcp4" or "tcp6"; default "tcp" (both
// families, interleaved).
func WithNetwork(network string) Option {
	return func(o *options) {
		switch network {
		case "tcp", "tcp4", "tcp6":
			o.network = network
		default:
			o.errs = append(o.errs, fmt.Errorf("network %q is not tcp, tcp4 or tcp6", network))
		}
	}
}

// WithAttemptDelay sets how long the first attempt may go unanswered before
// the next starts (default 50 ms; each later gap is half the one before, down
// to 10 ms). 0 starts every attempt at once.
func WithAttemptDelay(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.errs = append(o.errs, fmt.Errorf("attempt delay %v is negative", d))
			return
		}
		o.delay = d
	}
}

// WithAttemptTimeout bounds each connection attempt (default 2 s).
func WithAttemptTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("attempt timeout %v is not positive", d))
			return
		}
		o.attemptTimeout = d
	}
}

// WithTimeout bounds the whole dial, resolution included (default 10 s; a
// context deadline that comes sooner wins).
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("timeout %v is not positive", d))
			return
		}
		o.timeout = d
	}
}

// WithMaxConcurrent caps the attempts in flight at once (default 32). When
// the cap is reached, the next attempt starts as soon as one ends.
func WithMaxConcurrent(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("max concurrent attempts %d is less than 1", n))
			return
		}
		o.maxConcurrent = n
	}
}

// WithNetDialer makes every attempt with a copy of d (for LocalAddr,
// KeepAlive or Control); its Timeout and Deadline are replaced by the
// attempt timeout.
func WithNetDialer(d *net.Dialer) Option {
	return func(o *options) {
		if d == nil {
			o.errs = append(o.errs, errors.New("net dialer is nil"))
			return
		}
		o.netDialer = *d
	}
}

// WithTrace calls fn for every step of a dial: resolution, each attempt's
// start and outcome, the winner. Calls come one at a time, from the
// goroutine that called Dial, so fn needs no locking of its own; it must not
// block.
func WithTrace(fn func(Event)) Option {
	return func(o *options) { o.trace = fn }
}

func (o *options) emit(e Event) {
	if o.trace != nil {
		o.trace(e)
	}
}

// Dial connects to address ("db.example.com:3000", "10.0.0.5:3000",
// "[::1]:3000") over TCP. It resolves every address of the host and races
// connection attempts to them (RFC 8305): the first attempt starts at once,
// the next when the previous one has not answered within the attempt delay or
// at once when one fails, with at most max-concurrent attempts in flight and
// the two address families taking turns. The first connection established is
// returned; every other attempt is cancelled, and a connection that still
// completes is closed, before Dial returns.
func Dial(ctx context.Context, address string, opts ...Option) (net.Conn, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("seed: dial %s: %w", address, err)
	}
	return o.dial(ctx, address)
}

// DialAddrs races connection attempts to addrs, in their order, as Dial does
// after resolving a name.
func DialAddrs(ctx context.Context, addrs []netip.AddrPort, opts ...Option) (net.Conn, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("seed: dial: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	conn, _, err := o.race(ctx, addrs, o.now())
	if err != nil {
		return nil, fmt.Errorf("seed: dial: %w", err)
	}
	return conn, nil
}

func (o *options) dial(ctx context.Context, address string) (net.Conn, error) {
	start := o.now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	addrs, err := o.resolveAddress(ctx, address, start)
	if err != nil {
		return nil, fmt.Errorf("seed: dial %s: %w", address, err)
	}
	conn, _, err := o.race(ctx, addrs, start)
	if err != nil {
		return nil, fmt.Errorf("seed: dial %s: %w", address, err)
	}
	return conn, nil
}

// splitAddress splits "host:port" and checks the port.
func splitAddress(address string) (string, uint16, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (write it like db.example.com:3000 or [2001:db8::1]:3000)", address)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("port %q in %q is not a number from 1 to 65535", portStr, address)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host (write it like db.example.com:3000)", address)
	}
	return host, uint16(port), nil
}

// resolveAddress turns "host:port" into the addresses to try, in order.
func (o *options) resolveAddress(ctx context.Context, address string, start time.Time) ([]netip.AddrPort, error) {
	host, port, err := splitAddress(address)
	if err != nil {
		return nil, err
	}
	return o.resolve(ctx, host, port, start)
}

func (o *options) resolve(ctx context.Context, host string, port uint16, start time.Time) ([]netip.AddrPort, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs := []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), port)}
		o.emit(Event{Kind: EventResolved, Host: host, Addrs: addrs, Elapsed: time.Since(start)})
		return addrs, nil
	}
	network := map[string]string{"tcp": "ip", "tcp4": "ip4", "tcp6": "ip6"}[o.network]
	name := host
	if o.absolute && !strings.HasSuffix(name, ".") {
		name += "."
	}
	t := time.Now()
	ips, err := o.resolver.LookupNetIP(ctx, network, name)
	took := time.Since(t)
	if err != nil {
		o.emit(Event{Kind: EventResolved, Host: host, Elapsed: time.Since(start), Took: took, Err: err})
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	addrs := interleave(ips, port)
	o.emit(Event{Kind: EventResolved, Host: host, Addrs: addrs, Elapsed: time.Since(start), Took: took})
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: %w", host, ErrNoAddress)
	}
	return addrs, nil
}

// interleave orders addresses for racing (RFC 8305 section 4): the family of
// the first address first, then the families take turns, each keeping the
// resolver's order. Duplicates are dropped and IPv4-mapped IPv6 addresses
// are taken as IPv4.
func interleave(ips []netip.Addr, port uint16) []netip.AddrPort {
	seen := make(map[netip.Addr]bool, len(ips))
	var first, second []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if !ip.IsValid() || seen[ip] {
			continue
		}
		seen[ip] = true
		if len(first) == 0 || first[0].Is4() == ip.Is4() {
			first = append(first, ip)
		} else {
			second = append(second, ip)
		}
	}
	out := make([]netip.AddrPort, 0, len(first)+len(second))
	for i := 0; i < len(first) || i < len(second); i++ {
		if i < len(first) {
			out = append(out, netip.AddrPortFrom(first[i], port))
		}
		if i < len(second) {
			out = append(out, netip.AddrPortFrom(second[i], port))
		}
	}
	return out
}

type attemptResult struct {
	addr netip.AddrPort
	conn net.Conn
	err  error
	took time.Duration
}

// race runs the attempts and returns the first connection established.
func (o *options) race(ctx context.Context, addrs []netip.AddrPort, start time.Time) (net.Conn, netip.AddrPort, error) {
	if len(addrs) == 0 {
		return nil, netip.AddrPort{}, ErrNoAddress
	}
	actx, cancelAttempts := context.WithCancel(ctx)
	defer cancelAttempts()
	results := make(chan attemptResult, len(addrs)) // never blocks an attempt
	floor := min(o.delay, MinAttemptDelay)
	gap := o.delay
	var tick <-chan time.Time // the next attempt's start, when it is not due at once

	next, inflight := 0, 0
	var errs []error
	launch := func() {
		a := addrs[next]
		next++
		inflight++
		o.emit(Event{Kind: EventAttempt, Addr: a, Elapsed: o.now().Sub(start)})
		d := o.netDialer
		d.Timeout, d.Deadline = o.attemptTimeout, time.Time{}
		go func() {
			t := time.Now()
			c, err := d.DialContext(actx, o.network, a.String())
			results <- attemptResult{addr: a, conn: c, err: err, took: time.Since(t)}
		}()
		tick = o.after(gap)
		gap = max(gap/2, floor)
	}
	// stop cancels the attempts in flight and waits for each to end, closing
	// a connection that completed anyway.
	stop := func() {
		cancelAttempts()
		for ; inflight > 0; inflight-- {
			r := <-results
			if r.conn != nil {
				r.conn.Close()
			}
			o.emit(Event{Kind: EventCancelled, Addr: r.addr, Elapsed: o.now().Sub(start), Took: r.took, Err: r.err})
		}
	}

	due := true
	for {
		if due && next < len(addrs) && inflight < o.maxConcurrent {
			launch()
			due = o.delay == 0
			continue
		}
		if inflight == 0 {
			return nil, netip.AddrPort{}, fmt.Errorf("all %d addresses failed: %w", len(addrs), &attemptErrors{errs})
		}
		select {
		case r := <-results:
			inflight--
			if r.err == nil {
				o.emit(Event{Kind: EventConnected, Addr: r.addr, Elapsed: o.now().Sub(start), Took: r.took})
				stop()
				return r.conn, r.addr, nil
			}
			if expired(ctx) { // the attempt ended because the dial's time ran out
				o.emit(Event{Kind: EventCancelled, Addr: r.addr, Elapsed: o.now().Sub(start), Took: r.took, Err: r.err})
				return nil, netip.AddrPort{}, o.gaveUp(ctx, stop, next, len(addrs), errs)
			}
			o.emit(Event{Kind: EventFailed, Addr: r.addr, Elapsed: o.now().Sub(start), Took: r.took, Err: r.err})
			errs = append(errs, r.err)
			due = true
		case <-tick:
			due = true
		case <-ctx.Done():
			return nil, netip.AddrPort{}, o.gaveUp(ctx, stop, next, len(addrs), errs)
		}
	}
}

// expired reports whether ctx is done or its deadline has passed (an
// attempt's own deadline is the context's when that comes first, and can fire
// a moment before the context notices).
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// gaveUp stops the attempts in flight and says how far the dial got.
func (o *options) gaveUp(ctx context.Context, stop func(), tried, total int, errs []error) error {
	stop()
	cause := ctx.Err()
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	return fmt.Errorf("no connection within the time allowed (%d of %d addresses tried, %d failed): %w",
		tried, total, len(errs), &attemptErrors{append([]error{cause}, errs...)})
}

// attemptErrors lists the attempts' errors on one line; errors.Is and
// errors.As see each of them.
type attemptErrors struct{ errs []error }

func (e *attemptErrors) Error() string {
	const show = 4
	var b strings.Builder
	for i, err := range e.errs {
		if i == show {
			fmt.Fprintf(&b, "; and %d more", len(e.errs)-show)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *attemptErrors) Unwrap() []error { return e.errs }
