package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Kinds of address source.
const (
	SourceLiteral = "literal" // an IP address written out
	SourceIface   = "iface"   // iface:NAME, an address of a network interface
	SourceURL     = "url"     // url:URL, a metadata endpoint answering the address as text
	SourceRoute   = "route"   // route:HOST, the source address the kernel picks to reach HOST
	SourceCmd     = "cmd"     // cmd:COMMAND, the first word a shell command prints
)

// sourceHelp is appended to every source syntax error.
const sourceHelp = "write an IP address, iface:NAME, url:URL, route:HOST or cmd:COMMAND"

// Source is one place an address can be found.
type Source struct {
	Kind string
	// Arg is the interface name, URL, host or command; for a literal, the address.
	Arg string
	// Addr is the address of a literal source.
	Addr netip.Addr
}

// String writes s back the way it is parsed.
func (s Source) String() string {
	if s.Kind == SourceLiteral {
		return s.Addr.String()
	}
	return s.Kind + ":" + s.Arg
}

// ParseSource reads an address source: an IP address, iface:NAME, url:URL,
// route:HOST or cmd:COMMAND.
func ParseSource(spec string) (Source, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return Source{}, errors.New("is empty; " + sourceHelp)
	}
	if a, err := netip.ParseAddr(spec); err == nil {
		if err := checkUsable(a); err != nil {
			return Source{}, err
		}
		return Source{Kind: SourceLiteral, Arg: spec, Addr: a.Unmap()}, nil
	}
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return Source{}, fmt.Errorf("%q is neither an IP address nor a source; %s", short(spec), sourceHelp)
	}
	kind = strings.ToLower(strings.TrimSpace(kind))
	arg = strings.TrimSpace(arg)
	s := Source{Kind: kind, Arg: arg}
	switch kind {
	case SourceIface, SourceRoute, SourceCmd:
	case SourceURL:
		u, err := url.Parse(arg)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Source{}, fmt.Errorf("url:%s is not an http(s) URL like url:http://169.254.169.254/latest/meta-data/local-ipv4", short(arg))
		}
	default:
		return Source{}, fmt.Errorf("%q is not a kind of address source; %s", short(kind), sourceHelp)
	}
	if arg == "" {
		return Source{}, fmt.Errorf("%s: is missing what to read after the colon; %s", kind, sourceHelp)
	}
	if kind == SourceRoute {
		if _, _, err := routeTarget(arg); err != nil {
			return Source{}, err
		}
	}
	return s, nil
}

// checkUsable reports why clients could not dial a, or nil.
func checkUsable(a netip.Addr) error {
	if a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("%s cannot be dialled by clients; give the node's own address", a)
	}
	return nil
}

func short(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// ParseAddrText reads an address from the text a metadata endpoint or a
// command answered: its first whitespace-separated word, so that output like
// `hostname -I` ("10.0.1.5 172.17.0.1") works.
func ParseAddrText(text []byte) (netip.Addr, error) {
	fields := bytes.Fields(text)
	if len(fields) == 0 {
		return netip.Addr{}, errors.New("answered nothing; want an IP address")
	}
	word := string(fields[0])
	a, err := netip.ParseAddr(word)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("answered %q, which is not an IP address", short(word))
	}
	a = a.Unmap()
	if err := checkUsable(a); err != nil {
		return netip.Addr{}, fmt.Errorf("answered %w", err)
	}
	return a, nil
}

// routeTarget returns HOST with a port (53 when none is given).
func routeTarget(arg string) (string, string, error) {
	if host, port, err := net.SplitHostPort(arg); err == nil {
		return host, port, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(arg, "["), "]")
	if host == "" || strings.ContainsAny(host, " /") {
		return "", "", fmt.Errorf("route:%s is not a host; write route:10.0.0.1 or route:db.example.com", short(arg))
	}
	return host, "53", nil
}

// finder resolves sources; one finder serves one round of discovery, so that
// an IMDSv2 token is fetched once per round.
type finder struct {
	hc         *http.Client
	tokenURL   string
	cmdTimeout time.Duration

	token string // IMDSv2 token of this round
}

// IMDSv2 headers: the token is asked for with a PUT that says its lifetime and
// sent back on every metadata GET.
const (
	imdsTTLHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsTokenHeader = "X-aws-ec2-metadata-token"
	imdsTokenTTL    = "21600"
	maxAnswer       = 4 << 10
)

// find returns the address s yields.
func (f *finder) find(ctx context.Context, s Source) (netip.Addr, error) {
	var (
		a   netip.Addr
		err error
	)
	switch s.Kind {
	case SourceLiteral:
		return s.Addr, nil
	case SourceIface:
		a, err = ifaceAddr(s.Arg)
	case SourceURL:
		a, err = f.fetch(ctx, s.Arg)
	case SourceRoute:
		a, err = routeAddr(ctx, s.Arg)
	case SourceCmd:
		a, err = f.run(ctx, s.Arg)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", short(s.String()), err)
	}
	return a, nil
}

// first returns the address of the first source that yields one, or an error
// that lists why each failed.
func (f *finder) first(ctx context.Context, sources []Source) (netip.Addr, Source, error) {
	var errs []error
	for _, s := range sources {
		a, err := f.find(ctx, s)
		if err == nil {
			return a, s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return netip.Addr{}, Source{}, errors.Join(errs...)
}

// ifaceAddr picks an interface's address: its first IPv4 address, else its
// first IPv6 address; link-local addresses only when there is nothing else.
func ifaceAddr(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no network interface %q (see `ip addr`)", name)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	var v4, v6, linkLocal netip.Addr
	for _, ad := range addrs {
		p, err := netip.ParsePrefix(ad.String())
		if err != nil {
			continue
		}
		a := p.Addr().Unmap()
		switch {
		case checkUsable(a) != nil:
		case a.IsLinkLocalUnicast():
			if !linkLocal.IsValid() {
				linkLocal = a
			}
		case a.Is4():
			if !v4.IsValid() {
				v4 = a
			}
		default:
			if !v6.IsValid() {
				v6 = a
			}
		}
	}
	for _, a := range []netip.Addr{v4, v6, linkLocal} {
		if a.IsValid() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no address", name)
}

// routeAddr returns the source address the kernel picks to reach host. It
// sends nothing: connecting a UDP socket only chooses the route.
func routeAddr(ctx context.Context, arg string) (netip.Addr, error) {
	host, port, err := routeTarget(arg)
	if err != nil {
		return netip.Addr{}, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", net.JoinHostPort(host, port))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route: %w", err)
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read the source address: %w", err)
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

// fetch GETs a metadata URL and reads the address it answers. With a token
// URL set it first obtains an IMDSv2 session token (once per round).
func (f *finder) fetch(ctx context.Context, u string) (netip.Addr, error) {
	if f.tokenURL != "" && f.token == "" {
		tok, err := f.imdsToken(ctx)
		if err != nil {
			return netip.Addr{}, err
		}
		f.token = tok
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	if f.token != "" {
		req.Header.Set(imdsTokenHeader, f.token)
	}
	body, err := f.do(req)
	if err != nil {
		return netip.Addr{}, err
	}
	return ParseAddrText(body)
}

// imdsToken asks the token URL for an IMDSv2 session token.
func (f *finder) imdsToken(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.tokenURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(imdsTTLHeader, imdsTokenTTL)
	body, err := f.do(req)
	if err != nil {
		return "", fmt.Errorf("IMDSv2 token from %s: %w", f.tokenURL, err)
	}
	tok := strings.TrimSpace(string(body))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("IMDSv2 token from %s: answered no usable token", f.tokenURL)
	}
	return tok, nil
}

func (f *finder) do(req *http.Request) ([]byte, error) {
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	return body, nil
}

// run runs a command with /bin/sh and reads the address it prints.
func (f *finder) run(ctx context.Context, command string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The command runs in a process group of its own, killed whole on
	// timeout, so that nothing it started outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return netip.Addr{}, fmt.Errorf("did not finish within %v", f.cmdTimeout)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return netip.Addr{}, fmt.Errorf("%w: %s", err, short(msg))
		}
		return netip.Addr{}, err
	}
	return ParseAddrText(stdout.Bytes())
}

// limitedBuffer keeps the first maxAnswer bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxAnswer - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
