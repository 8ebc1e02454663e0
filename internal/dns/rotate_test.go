package dns

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

type auditRecorder struct {
	mu sync.Mutex
	es []api.Event
}

func (a *auditRecorder) Record(e api.Event) { a.mu.Lock(); a.es = append(a.es, e); a.mu.Unlock() }

// Keyring.Swap rotates keys on a running server: the old key is refused
// (NOTAUTH, BADKEY) and the new one signs updates; every UPDATE is audited
// with the key's name and the RCODE.
func TestKeyRotationAndAudit(t *testing.T) {
	rec := &auditRecorder{}
	f := newPrimaryFixture(t, PrimaryOptions{Audit: rec})
	add := func(name string) *dns.Msg {
		m := updateMsg("cluster.test.")
		m.Insert([]dns.RR{mustRR(t, name+".cluster.test. 60 IN A 192.0.2.50")})
		return m
	}
	if r, err := f.exchange(t, add("before"), "udp", testKey, testSecret); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update before rotation: got %v (%v)", r, err)
	}
	const newKey, newSecret = "rotated-key.", "cm90YXRlZC1rZXktZm9yLXNlYW1hcmstdGVzdHMtMzJi"
	if err := f.ring.Swap([]TSIGKey{{Name: newKey, Algorithm: "hmac-sha256", Secret: newSecret}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.exchange(t, add("old"), "udp", testKey, testSecret); r.Rcode != dns.RcodeNotAuth {
		t.Fatalf("old key after rotation: got %s, want NOTAUTH", dns.RcodeToString[r.Rcode])
	}
	if r, err := f.exchange(t, add("new"), "udp", newKey, newSecret); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("new key after rotation: got %v (%v)", r, err)
	}
	if err := f.ring.Swap([]TSIGKey{{Name: "bad", Secret: "not base64!"}}); err == nil {
		t.Fatal("Swap took a bad key")
	}
	if r, err := f.exchange(t, add("still"), "udp", newKey, newSecret); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("a refused Swap changed the keys: got %v (%v)", r, err)
	}
	unsigned := add("unsigned")
	if r, _ := f.exchange(t, unsigned, "udp", "", ""); r.Rcode != dns.RcodeRefused {
		t.Fatalf("unsigned update: got %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []struct{ who, result string }{{"tsig:update-key", "NOERROR"}, {"tsig:rotated-key", "NOERROR"}, {"tsig:rotated-key", "NOERROR"}, {"anonymous", "REFUSED"}}
	if len(rec.es) != len(want) {
		t.Fatalf("got %d audit records %+v, want %d (an update that fails TSIG never reaches the primary)", len(rec.es), rec.es, len(want))
	}
	for i, w := range want {
		e := rec.es[i]
		if e.Who != w.who || e.Result != w.result || !strings.HasPrefix(e.Action, "UPDATE cluster.test. add ") || !strings.HasPrefix(e.From, "127.0.0.1:") {
			t.Fatalf("audit %d: got %+v, want who %s, result %s, an UPDATE summary and the client", i, e, w.who, w.result)
		}
	}
}

// SetTransfer swaps who may transfer without TSIG, and a new secondary is
// sent a NOTIFY at once.
func TestSetTransfer(t *testing.T) {
	f := newPrimaryFixture(t, PrimaryOptions{})
	sec := newNotifyCatcher(t, 0)
	f.p.SetTransfer([]netip.AddrPort{sec.addr()}, nil)
	eventually(t, "NOTIFY to the secondary added by SetTransfer", func() error {
		if len(sec.serials()) == 0 {
			return fmt.Errorf("no NOTIFY yet")
		}
		return nil
	})
	f.p.SetTransfer(nil, nil)
	axfr := func() int {
		m := new(dns.Msg)
		m.SetAxfr("cluster.test.")
		r, _ := f.exchange(t, m, "tcp", "", "")
		return r.Rcode
	}
	if rc := axfr(); rc != dns.RcodeRefused {
		t.Fatalf("transfer before allow: got %s, want REFUSED", dns.RcodeToString[rc])
	}
	f.p.SetTransfer(nil, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	if rc := axfr(); rc != dns.RcodeSuccess {
		t.Fatalf("transfer after allow: got %s, want NOERROR", dns.RcodeToString[rc])
	}
	f.p.SetTransfer(nil, nil)
	if rc := axfr(); rc != dns.RcodeRefused {
		t.Fatalf("transfer after the allow was removed: got %s, want REFUSED", dns.RcodeToString[rc])
	}
}

// FuzzUpdateSummary feeds arbitrary UPDATE messages to the audit summary:
// never a panic, and the summary stays small however many changes it has.
func FuzzUpdateSummary(f *testing.F) {
	m := updateMsg("cluster.test.")
	for _, rr := range []string{"www.cluster.test. 60 IN A 192.0.2.1", "old.cluster.test. 0 ANY AAAA", "txt.cluster.test. 0 NONE TXT \"x\""} {
		r, _ := dns.NewRR(rr)
		m.Ns = append(m.Ns, r)
	}
	b, _ := m.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var m dns.Msg
		if m.Unpack(pkt) != nil {
			return
		}
		s := updateSummary(&m)
		if len(s) > 8192 { // the zone and five names of at most 255 bytes (escaped: 4 each), and their types
			t.Fatalf("summary of %d bytes: the audit record must stay small", len(s))
		}
		if !strings.HasPrefix(s, "UPDATE") {
			t.Fatalf("summary %q does not start with UPDATE", s)
		}
	})
}
