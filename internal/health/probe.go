package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/seamark/seamark/api"
)

// Limits of http and https probes.
const (
	// bodyWindow is how much of a response body is searched for ExpectBody.
	bodyWindow = 5 << 10
	// maxHeaderBytes bounds the response headers a probe reads.
	maxHeaderBytes = 64 << 10
	userAgent      = "seamark-health/1"
)

// NetProber probes over the network. Dial, when set, replaces the dialer
// (tests inject one that blocks or refuses).
//
// Every probe opens a fresh connection and closes it with SO_LINGER 0 (a
// reset, as HAProxy's checks do), so that thousands of probes a second leave
// no sockets in TIME_WAIT; nothing is pooled or shared between targets. A
// probe returns by ctx's deadline whatever the target does: drops SYNs,
// accepts and never answers, or sends its body slowly.
//
// On Linux, tcp probes (with no Dial set) go without a goroutine, net.Conn
// or timer each: non-blocking connects driven by one epoll loop (see
// connector), which runs while probes do and ends when idle for 2 s or on
// Close. Other kinds, other systems and an injected Dial use the net
// package's dialer.
type NetProber struct {
	// Dial opens the TCP connection of every probe kind. It must return once
	// ctx is done.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// EpollOnly is for benchmarks of the path a probe across a network
	// takes: a tcp probe does not ask whether its connect is done right
	// after starting it (on loopback it always is), so every connect ends
	// through the epoll loop.
	EpollOnly bool

	tcp connector
}

// StartProbe starts a tcp probe of t bounded by t.Check.Timeout and returns
// at once; done is called exactly once with the result, from the prober's
// loop, or before StartProbe returns when the connect fails at once. done
// must not block. StartProbe reports false, and starts nothing, for a probe
// it cannot run that way (another kind, no timeout, an injected Dial, a
// system other than Linux): run Probe then.
func (p *NetProber) StartProbe(t Target, done func(Result)) bool {
	if !p.fastTCP(t) || t.Check.Timeout <= 0 {
		return false
	}
	p.tcp.start(t.Addr, t.Check.Timeout.D(), p.EpollOnly, done)
	return true
}

// Close ends the tcp probes in flight (their result: "probe canceled") and
// releases what the prober keeps between probes: the epoll loop and its
// descriptors. The prober stays usable.
func (p *NetProber) Close() error {
	p.tcp.close()
	return nil
}

// fastTCP reports whether t is a tcp probe for the connector.
func (p *NetProber) fastTCP(t Target) bool {
	return p.Dial == nil && (t.Check.Type == api.CheckTCP || t.Check.Type == "") && p.tcp.supported(t.Addr)
}

// probeTCPFast runs a tcp probe on the connector and waits for it, or for
// ctx to end it.
func (p *NetProber) probeTCPFast(ctx context.Context, t Target, start time.Time) Result {
	ch := make(chan Result, 1)
	id, ok := p.tcp.start(t.Addr, t.Check.Timeout.D(), p.EpollOnly, func(r Result) { ch <- r })
	if !ok {
		return <-ch
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		if !p.tcp.cancel(id) {
			return <-ch // it ended meanwhile
		}
		return Result{Reason: reason(ctx, t, start, &stageError{stage: "tcp connect", err: ctx.Err()}), Latency: time.Since(start)}
	}
}

// Probe runs one probe of t. The check's timeout is taken from ctx's deadline
// (and applied here as well, should ctx have none). When the deadline ends the
// probe, the reason is "timeout after <t.Check.Timeout>".
func (p *NetProber) Probe(ctx context.Context, t Target) Result {
	start := time.Now()
	// Cancelling on return also stops anything still in flight (a dial the
	// http Transport would otherwise carry on in the background). The checker
	// already gives each probe its deadline and cancels it on return; a
	// second timer per probe is only made when the caller gave none.
	if dl, ok := ctx.Deadline(); !ok || (t.Check.Timeout > 0 && dl.Sub(start) > t.Check.Timeout.D()) {
		var cancel context.CancelFunc
		if t.Check.Timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, t.Check.Timeout.D())
		} else {
			ctx, cancel = context.WithCancel(ctx)
		}
		defer cancel()
	}

	var err error
	switch t.Check.Type {
	case api.CheckTCP, "":
		if p.fastTCP(t) {
			return p.probeTCPFast(ctx, t, start)
		}
		err = p.probeTCP(ctx, t)
	case api.CheckHTTP, api.CheckHTTPS:
		err = p.probeHTTP(ctx, t)
	case api.CheckTLS:
		err = p.probeTLS(ctx, t)
	case api.CheckNone:
		return Result{OK: true, Reason: "not checked", Latency: time.Since(start)}
	default:
		err = fmt.Errorf("unknown check type %q", t.Check.Type)
	}
	res := Result{OK: err == nil, Reason: "ok"}
	if err != nil {
		res.Reason = reason(ctx, t, start, err)
		res.Local = localError(err)
	}
	res.Latency = time.Since(start)
	return res
}

var _ Prober = (*NetProber)(nil)

// reason words err for the event log.
func reason(ctx context.Context, t Target, start time.Time, err error) string {
	var ioErr *stageError
	if !errors.As(err, &ioErr) {
		// A verdict on an answer (wrong status, missing text): never a timeout.
		return err.Error()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		if t.Check.Timeout > 0 {
			return "timeout after " + t.Check.Timeout.String()
		}
		if d, ok := ctx.Deadline(); ok {
			return "timeout after " + d.Sub(start).Round(time.Millisecond).String()
		}
		return "timeout"
	}
	if ctx.Err() != nil {
		return "probe canceled"
	}
	return err.Error()
}

// isTimeout reports whether err is a deadline running out. The only deadlines
// a probe sets are ctx's, and the poller may report one a moment before ctx's
// own timer fires.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stageError is an I/O failure during one stage of a probe ("tcp connect",
// "tls handshake", "http"). Failures that are not a stageError are verdicts
// on a complete answer.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + describe(e.err) }
func (e *stageError) Unwrap() error { return e.err }

// describe strips Go's wrapping ("dial tcp 10.0.1.5:80: connect: ...",
// `Get "http://...": ...`) down to the cause an operator acts on.
func describe(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed by the server"
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	msg := err.Error()
	// net/http says so of a fresh connection closed before any answer too.
	if msg == "http: server closed idle connection" {
		return "connection closed by the server"
	}
	// The stage already names the protocol: "tls handshake: first record
	// does not look like a TLS handshake", not "... tls: first record ...".
	for _, p := range []string{"net/http: ", "http: ", "tls: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// Dialers of probes: no keep-alive (a probe's connection lives for
// milliseconds, and the four setsockopt calls per connection cost more than
// the probe). A bare tcp check also turns TCP_QUICKACK off before connecting,
// as HAProxy does: connect returns on the SYN-ACK, the handshake's last ACK
// waits, and the close resets the connection before the target's kernel puts
// it in the accept queue, so a probed service never accepts a probe.
var (
	probeDialer = net.Dialer{KeepAlive: -1}
	bareDialer  = net.Dialer{KeepAlive: -1, Control: func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpQuickAck, 0)
		})
	}}
)

// tcpQuickAck is Linux's TCP_QUICKACK socket option.
const tcpQuickAck = 12

// dial opens the probe's TCP connection, with the injected Dial when set.
func (p *NetProber) dial(ctx context.Context, addr string) (net.Conn, error) {
	return p.dialWith(ctx, addr, &probeDialer)
}

func (p *NetProber) dialWith(ctx context.Context, addr string, d *net.Dialer) (net.Conn, error) {
	var c net.Conn
	var err error
	if p.Dial != nil {
		c, err = p.Dial(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, &stageError{stage: "tcp connect", err: err}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Close with a reset: no TIME_WAIT left behind by each probe.
		_ = tc.SetLinger(0)
	}
	return c, nil
}

// probeTCP connects and closes at once.
func (p *NetProber) probeTCP(ctx context.Context, t Target) error {
	c, err := p.dialWith(ctx, t.Addr.String(), &bareDialer)
	if err != nil {
		return err
	}
	return c.Close()
}

// handshake dials and runs a TLS handshake without verifying the
// certificate: targets are probed by address, and a health check asks
// whether the service answers, not whether its name is right.
// alpn is offered when set (https offers "http/1.1", the only protocol it
// speaks; a bare tls probe offers none, so a server strict about ALPN still
// completes the handshake).
func (p *NetProber) handshake(ctx context.Context, addr, serverName string, alpn ...string) (*tls.Conn, error) {
	c, err := p.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, &tls.Config{
		InsecureSkipVerify: true,
		ServerName:         serverName,
		NextProtos:         alpn,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &stageError{stage: "tls handshake", err: err}
	}
	return tc, nil
}

// probeTLS runs a handshake and closes. The connection is closed without a
// close_notify: the reset that follows would discard it anyway.
func (p *NetProber) probeTLS(ctx context.Context, t Target) error {
	tc, err := p.handshake(ctx, t.Addr.String(), t.Check.SNI)
	if err != nil {
		return err
	}
	return tc.NetConn().Close()
}

// serverName is the name https sends: SNI, else the Host header's name.
func serverName(c api.Check) string {
	if c.SNI != "" {
		return c.SNI
	}
	if h, _, err := net.SplitHostPort(c.Host); err == nil {
		return h
	}
	return strings.Trim(c.Host, "[]")
}

// probeHTTP sends one request on a fresh connection and judges the answer:
// status within ExpectStatus, ExpectBody within the body's first 5 KiB.
// Redirects are not followed.
func (p *NetProber) probeHTTP(ctx context.Context, t Target) error {
	c := t.Check
	want := c.ExpectStatus
	if want == "" {
		want = "200-399"
	}
	lo, hi, err := api.ParseStatusRange(want)
	if err != nil {
		return fmt.Errorf("http: expect_status: %w", err)
	}
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Type+"://"+t.Addr.String()+path, nil)
	if err != nil {
		return fmt.Errorf("http: method %q or path %q: %w", method, c.Path, err)
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	req.Header.Set("User-Agent", userAgent)
	req.Close = true // Connection: close

	// A Transport per probe: nothing is pooled or shared between targets.
	// Both dialers use the probe's ctx, not the one the Transport passes
	// (which outlives the request), so a blackholed dial ends with the probe.
	name := serverName(c)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return p.dial(ctx, addr)
		},
		DialTLSContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			return p.handshake(ctx, addr, name, "http/1.1")
		},
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		var se *stageError
		if errors.As(err, &se) {
			return se
		}
		return &stageError{stage: "http", err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < lo || resp.StatusCode > hi {
		return fmt.Errorf("http: status %d, want %s", resp.StatusCode, want)
	}
	if c.ExpectBody == "" {
		return nil
	}
	found, err := bodyHas(resp.Body, []byte(c.ExpectBody))
	switch {
	case found:
		return nil
	case err != nil:
		return &stageError{stage: "http: body", err: err}
	default:
		return fmt.Errorf("http: body lacks %q in its first 5 KiB", c.ExpectBody)
	}
}

// bodyHas reads r until want shows up in its first bodyWindow bytes, the
// window is full, or r ends. It stops as soon as want is found, so a body
// that stalls after the text still passes.
func bodyHas(r io.Reader, want []byte) (bool, error) {
	buf := make([]byte, bodyWindow)
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if bytes.Contains(buf[:n], want) {
			return true, nil
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}
