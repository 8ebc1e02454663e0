package lb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// The PROXY protocol (haproxy.org/download/2.6/doc/proxy-protocol.txt):
// a balancer tells the server behind it who the client really is.

// proxyV2Sig starts every version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	proxyV1Max = 107 // longest v1 line, CRLF included
	proxyV2Max = 16 + 65535
)

// proxyHeader is what a PROXY header says. For LOCAL (v2) or UNKNOWN (v1)
// headers Src and Dst are invalid: the connection is the balancer's own and
// its socket addresses stand.
type proxyHeader struct {
	Src, Dst netip.AddrPort
}

// errProxyShort means the bytes so far are a valid beginning of a header.
var errProxyShort = errors.New("proxy header: incomplete")

// appendProxyHeader appends a PROXY header of version (v1 or v2) saying the
// connection came from src to dst.
func appendProxyHeader(b []byte, version string, src, dst netip.AddrPort) []byte {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() != da.Is4() { // one family per header: widen both
		sa, da = netip.AddrFrom16(sa.As16()), netip.AddrFrom16(da.As16())
	}
	if version == "v1" {
		fam := "TCP4"
		if !sa.Is4() {
			fam = "TCP6"
		}
		b = append(b, "PROXY "...)
		b = append(b, fam...)
		b = append(b, ' ')
		b = sa.AppendTo(b)
		b = append(b, ' ')
		b = da.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(src.Port()), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(dst.Port()), 10)
		return append(b, "\r\n"...)
	}
	b = append(b, proxyV2Sig...)
	b = append(b, 0x21) // version 2, PROXY
	if sa.Is4() {
		b = append(b, 0x11) // TCP over IPv4
		b = binary.BigEndian.AppendUint16(b, 12)
		s4, d4 := sa.As4(), da.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 0x21) // TCP over IPv6
		b = binary.BigEndian.AppendUint16(b, 36)
		s16, d16 := sa.As16(), da.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// parseProxyHeader parses the PROXY header at the start of b and returns it
// with its length. errProxyShort means b is a valid but incomplete start;
// any other error means b is not a PROXY header.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	switch {
	case len(b) == 0:
		return proxyHeader{}, 0, errProxyShort
	case b[0] == '\r':
		return parseProxyV2(b)
	case b[0] == 'P':
		return parseProxyV1(b)
	}
	return proxyHeader{}, 0, errors.New("proxy header: missing (the connection does not start with a PROXY header; is accept_proxy set on a listener nothing sends PROXY to?)")
}

func parseProxyV2(b []byte) (proxyHeader, int, error) {
	n := min(len(b), len(proxyV2Sig))
	if !bytes.Equal(b[:n], proxyV2Sig[:n]) {
		return proxyHeader{}, 0, errors.New("proxy header: bad v2 signature")
	}
	if len(b) < 16 {
		return proxyHeader{}, 0, errProxyShort
	}
	verCmd, fam := b[12], b[13]
	if verCmd>>4 != 2 {
		return proxyHeader{}, 0, fmt.Errorf("proxy header: version %d, want 2", verCmd>>4)
	}
	size := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if len(b) < size {
		return proxyHeader{}, 0, errProxyShort
	}
	body := b[16:size]
	switch verCmd & 0xf {
	case 0: // LOCAL: the balancer's own connection (a health check)
		return proxyHeader{}, size, nil
	case 1: // PROXY
	default:
		return proxyHeader{}, 0, fmt.Errorf("proxy header: unknown v2 command %d", verCmd&0xf)
	}
	var h proxyHeader
	switch fam {
	case 0x11, 0x12: // TCP or UDP over IPv4
		if len(body) < 12 {
			return proxyHeader{}, 0, fmt.Errorf("proxy header: v2 IPv4 addresses need 12 bytes, got %d", len(body))
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21, 0x22: // TCP or UDP over IPv6
		if len(body) < 36 {
			return proxyHeader{}, 0, fmt.Errorf("proxy header: v2 IPv6 addresses need 36 bytes, got %d", len(body))
		}
		h.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default: // UNSPEC or unix sockets: keep the socket addresses
	}
	return h, size, nil
}

func parseProxyV1(b []byte) (proxyHeader, int, error) {
	const prefix = "PROXY "
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return proxyHeader{}, 0, errors.New("proxy header: bad v1 prefix")
	}
	end := bytes.Index(b[:min(len(b), proxyV1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= proxyV1Max {
			return proxyHeader{}, 0, errors.New("proxy header: v1 line longer than 107 bytes")
		}
		return proxyHeader{}, 0, errProxyShort
	}
	f := bytes.Split(b[len(prefix):end], []byte(" "))
	switch string(f[0]) {
	case "UNKNOWN":
		return proxyHeader{}, end + 2, nil
	case "TCP4", "TCP6":
	default:
		return proxyHeader{}, 0, fmt.Errorf("proxy header: unknown v1 protocol %q", f[0])
	}
	if len(f) != 5 {
		return proxyHeader{}, 0, fmt.Errorf("proxy header: v1 %s needs 4 fields, got %d", f[0], len(f)-1)
	}
	src, err1 := netip.ParseAddr(string(f[1]))
	dst, err2 := netip.ParseAddr(string(f[2]))
	sp, err3 := parsePort(f[3])
	dp, err4 := parsePort(f[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return proxyHeader{}, 0, fmt.Errorf("proxy header: v1: %w", err)
	}
	if want4 := string(f[0]) == "TCP4"; src.Is4() != want4 || dst.Is4() != want4 || src.Zone() != "" || dst.Zone() != "" {
		return proxyHeader{}, 0, fmt.Errorf("proxy header: v1 addresses do not match %s", f[0])
	}
	return proxyHeader{Src: netip.AddrPortFrom(src, sp), Dst: netip.AddrPortFrom(dst, dp)}, end + 2, nil
}

func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, fmt.Errorf("bad port %q", b)
	}
	p, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", b)
	}
	return uint16(p), nil
}

// proxyRead is a PROXY header read so far from a non-blocking socket.
type proxyRead struct {
	buf   []byte // the header so far: small, or a long v2 header's own
	have  int
	small [232]byte // a v2 header with IPv6 addresses and some TLVs
}

// step reads what has arrived of the header on fd, exactly: it peeks at
// what is there, takes off the socket only bytes that belong to the
// header, and so never reads into the payload nor needs a buffering
// wrapper. It returns done with the header once it is whole; not done and
// no error when fd has nothing more yet.
func (r *proxyRead) step(fd int) (h proxyHeader, done bool, err error) {
	if r.buf == nil {
		r.buf = r.small[:]
	}
	for {
		n, _, err := unix.Recvfrom(fd, r.buf[r.have:], unix.MSG_PEEK)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return h, false, nil
		case err != nil:
			return h, false, fmt.Errorf("read proxy header: %w", err)
		case n == 0:
			return h, false, errors.New("read proxy header: connection closed before the header ended")
		}
		h, size, perr := parseProxyHeader(r.buf[:r.have+n])
		switch {
		case perr == nil:
			// Take the rest of the header, and nothing beyond it.
			if err := readExactly(fd, r.buf[r.have:size]); err != nil {
				return h, false, err
			}
			return h, true, nil
		case errors.Is(perr, errProxyShort):
			// Everything peeked belongs to the header: take it off.
			if err := readExactly(fd, r.buf[r.have:r.have+n]); err != nil {
				return h, false, err
			}
			r.have += n
			if r.have == len(r.buf) {
				// A v2 header longer than the buffer (large TLVs): its
				// length is in its first 16 bytes.
				size := 16 + int(binary.BigEndian.Uint16(r.buf[14:16]))
				if !bytes.HasPrefix(r.buf, proxyV2Sig) || size <= r.have {
					return h, false, errors.New("read proxy header: header too long")
				}
				full := make([]byte, size)
				copy(full, r.buf)
				r.buf = full
			}
		default:
			return h, false, perr
		}
	}
}

// readExactly reads len(b) bytes that a peek showed are there.
func readExactly(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("read proxy header: %w", err)
		case n == 0:
			return errors.New("read proxy header: connection closed")
		}
		b = b[n:]
	}
	return nil
}
