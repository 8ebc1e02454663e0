package netlimit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func listen(t *testing.T, o ListenerOptions) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, o)
	t.Cleanup(func() { l.Close() })
	return l
}

// serve accepts into a channel until the listener closes.
func serve(l *Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(ch)
				return
			}
			ch <- c
		}
	}()
	return ch
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readsEOF reports whether c is closed by the peer within a second, and what
// it wrote first.
func readsEOF(c net.Conn) (string, bool) {
	c.SetReadDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// refused reports whether a client of l is turned away: reset as it
// connects, or closed at once.
func refused(l net.Listener) bool {
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return errors.Is(err, syscall.ECONNRESET)
	}
	defer c.Close()
	_, closed := readsEOF(c)
	return closed
}

func TestRefuseAtCap(t *testing.T) {
	s := NewSurface("api", 2, 1, nil)
	l := listen(t, ListenerOptions{Surface: s, Mode: Refuse, Refusal: []byte("busy\n")})
	got := serve(l)
	var kept []net.Conn
	for range 2 {
		dial(t, l)
		kept = append(kept, <-got)
	}
	for range 3 {
		c := dial(t, l)
		if msg, closed := readsEOF(c); !closed || msg != "busy\n" {
			t.Fatalf("client over the cap: got closed=%v msg=%q, want closed with \"busy\\n\"", closed, msg)
		}
	}
	if n := s.Refused(ReasonCap); n != 3 {
		t.Fatalf("refused for cap: got %d, want 3", n)
	}
	kept[0].Close()
	kept[0].Close() // a second Close releases nothing more
	if s.Active() != 1 {
		t.Fatalf("active after one close: got %d, want 1", s.Active())
	}
	dial(t, l)
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("a slot freed but the next client was not accepted")
	}
}

func TestEvictOldestIdle(t *testing.T) {
	s := NewSurface("api", 2, 1, nil)
	l := listen(t, ListenerOptions{Surface: s, Mode: Evict})
	got := serve(l)
	c1 := dial(t, l)
	a1 := <-got
	dial(t, l)
	a2 := <-got
	l.SetIdle(a2, false) // busy: never evicted
	_ = a1
	dial(t, l)
	<-got
	if _, closed := readsEOF(c1); !closed {
		t.Fatal("the oldest idle connection was not evicted")
	}
	if n := s.Refused(ReasonEvicted); n != 1 {
		t.Fatalf("evicted: got %d, want 1", n)
	}
	// Now a2 is busy and the third is idle: the fourth evicts the third,
	// the fifth finds only a2... after marking everything busy, it refuses.
	l.mu.Lock()
	for c := range l.idle {
		delete(l.idle, c)
	}
	l.mu.Unlock()
	if !refused(l) {
		t.Fatal("with nothing idle a client over the cap was not refused")
	}
	if n := s.Refused(ReasonCap); n != 1 {
		t.Fatalf("refused for cap: got %d, want 1", n)
	}
}

// A TLS listener over a Listener hands http.Server *tls.Conn values: they
// are marked idle and evicted all the same.
func TestEvictBeneathTLS(t *testing.T) {
	s := NewSurface("api", 1, 1, nil)
	l := listen(t, ListenerOptions{Surface: s, Mode: Evict})
	got := serve(l)
	dial(t, l)
	a := <-got
	l.SetIdle(tls.Server(a, &tls.Config{}), false) // busy, seen through TLS
	if !refused(l) {
		t.Fatal("with the only connection busy (through TLS) a client over the cap was not refused")
	}
	l.SetIdle(tls.Server(a, &tls.Config{}), true)
	dial(t, l)
	<-got
	if n := s.Refused(ReasonEvicted); n != 1 {
		t.Fatalf("evicted through TLS: got %d, want 1", n)
	}
}

func TestPauseAtCap(t *testing.T) {
	s := NewSurface("lb", 1, 2, NewBudget(100, 0))
	l := listen(t, ListenerOptions{Surface: s, Mode: Pause})
	got := serve(l)
	dial(t, l)
	first := <-got
	dial(t, l) // waits in the backlog
	select {
	case <-got:
		t.Fatal("accepted over the cap")
	case <-time.After(200 * time.Millisecond):
	}
	if s.Refused(ReasonPaused) != 1 {
		t.Fatalf("pauses: got %d, want 1", s.Refused(ReasonPaused))
	}
	if s.budget.Held() != 2 {
		t.Fatalf("budget held: got %d, want 2 (two descriptors a connection)", s.budget.Held())
	}
	first.Close()
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting client was not accepted after a slot freed")
	}
}

func TestBudgetKeepsReserve(t *testing.T) {
	b := NewBudget(10, 4)
	open := 0
	b.countOpen = func() int { return open }
	a := NewSurface("a", 0, 1, b)
	c := NewSurface("c", 0, 2, b)
	for i := range 6 {
		ok, _ := a.TryAcquire()
		if !ok {
			t.Fatalf("acquire %d of 6: refused", i+1)
		}
	}
	if ok, why := c.TryAcquire(); ok || why != ReasonBudget {
		t.Fatalf("over the budget: got ok=%v reason=%q, want refused for budget", ok, why)
	}
	a.Release()
	a.Release()
	if ok, _ := c.TryAcquire(); !ok {
		t.Fatal("two freed descriptors did not fit a two-descriptor connection")
	}
	c.Release()
	// The process as a whole (say the store) uses descriptors the surfaces
	// do not hold: once fewer than half the reserve would stay free, refuse.
	b2 := NewBudget(10, 4)
	b2.countOpen = func() int { return 8 }
	if ok, _ := NewSurface("x", 0, 1, b2).TryAcquire(); ok {
		t.Fatal("acquired with 8 of 10 descriptors open and a reserve of 4")
	}
	// Set aside for a surface of its own: the others get less.
	b3 := NewBudget(10, 2)
	b3.countOpen = func() int { return -1 }
	b3.SetAside(3)
	if got := b3.Available(); got != 5 {
		t.Fatalf("available after setting 3 aside: got %d, want 5", got)
	}
}

// flakyListener fails Accept with EMFILE n times, then blocks.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	s := NewSurface("dns_tcp", 0, 1, nil)
	l := NewListener(&flakyListener{Listener: ln, fails: 10}, ListenerOptions{Surface: s, sleep: func(d time.Duration, _ <-chan struct{}) { slept = append(slept, d) }})
	defer l.Close()
	go net.Dial("tcp", ln.Addr().String())
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accept after errors: %v", err)
	}
	c.Close()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	if len(slept) != len(want) {
		t.Fatalf("back-offs: got %v, want %d of them", slept, len(want))
	}
	for i, w := range want {
		if slept[i] != w*time.Millisecond {
			t.Fatalf("back-off %d: got %v, want %v", i, slept[i], w*time.Millisecond)
		}
	}
	if n := s.acceptErrors.Load(); n != 10 {
		t.Fatalf("accept errors counted: got %d, want 10", n)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewSurface("api", 5, 1, NewBudget(1024, 256))
	b := NewSurface("lb", 0, 2, a.budget)
	for _, s := range []*Surface{a, b} {
		if err := s.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.budget.Register(reg); err != nil {
		t.Fatal(err)
	}
	a.Count(ReasonCap)
	a.Count(ReasonCap)
	want := `
# HELP seamark_conn_refused_total Connections turned away (cap, budget), closed to make room (evicted), or accept pauses at the cap (paused).
# TYPE seamark_conn_refused_total counter
seamark_conn_refused_total{reason="budget",surface="api"} 0
seamark_conn_refused_total{reason="budget",surface="lb"} 0
seamark_conn_refused_total{reason="cap",surface="api"} 2
seamark_conn_refused_total{reason="cap",surface="lb"} 0
seamark_conn_refused_total{reason="evicted",surface="api"} 0
seamark_conn_refused_total{reason="evicted",surface="lb"} 0
seamark_conn_refused_total{reason="paused",surface="api"} 0
seamark_conn_refused_total{reason="paused",surface="lb"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "seamark_conn_refused_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "seamark_fd_limit", "seamark_fd_open", "seamark_conn_limit"); err != nil || n != 4 {
		t.Fatalf("fd and limit series: got %d (%v), want 4", n, err)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if soft != hard {
		t.Fatalf("after raising: soft %d, hard %d; want equal", soft, hard)
	}
}
