package lb

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// putListeners writes one listener per port, named prefix<i>, with a few
// writers at once, and returns the last revision.
func (e *env) putListeners(prefix string, ports []int, service string) int64 {
	e.t.Helper()
	return e.eachListener(len(ports), func(i int) (int64, error) {
		l := api.Listener{Name: fmt.Sprintf("%s%d", prefix, i), Port: ports[i], Service: service, Source: api.SourceAPI}
		l.Bind = scaleAddr
		l.SetDefaults()
		return e.st.PutListener(e.ctx, l, false)
	})
}

func (e *env) dropListeners(prefix string, n int) int64 {
	e.t.Helper()
	return e.eachListener(n, func(i int) (int64, error) {
		return e.st.DeleteListener(e.ctx, fmt.Sprintf("%s%d", prefix, i), api.SourceAPI)
	})
}

// eachListener runs write for 0..n-1 on 8 writers and returns the highest
// revision written.
func (e *env) eachListener(n int, write func(i int) (int64, error)) int64 {
	var last atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				rev, err := write(i)
				if err != nil {
					e.t.Error(err)
					return
				}
				for old := last.Load(); rev > old && !last.CompareAndSwap(old, rev); old = last.Load() {
				}
			}
		}()
	}
	wg.Wait()
	return last.Load()
}

// TestThousandListenersLiveChanges: 1 000 listeners proxy to three backend
// processes while a further 1 000 are added and removed twice; traffic on
// the first thousand sees no failed connection.
func TestThousandListenersLiveChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("2 000 listeners and a few thousand connections; skipped with -short")
	}
	const n = 1000
	e := newEnv(t)
	e.service("app")
	for _, name := range []string{"a", "b", "c"} {
		e.node("app", name, startBackendProc(t, name).addr, 1)
	}
	ports := freePortsOn(t, scaleAddr, 2*n)
	first, second := ports[:n], ports[n:]
	start := time.Now()
	e.sync(e.putListeners("first", first, "app"))
	t.Logf("1000 listeners written and listening in %v", time.Since(start))
	for i, p := range first {
		if _, err := roundTrip(fmt.Sprintf("%s:%d", scaleAddr, p), "hello", 5*time.Second); err != nil {
			t.Fatalf("first set, port %d (%d): %v", p, i, err)
		}
	}

	// Traffic on the first set, bounded in time and count, until stop.
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(60 * time.Second)
			for i := w; time.Now().Before(deadline) && i < 200000; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := roundTrip(fmt.Sprintf("%s:%d", scaleAddr, first[i%n]), "traffic", 5*time.Second); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("port %d: %w", first[i%n], err))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for round := range 2 {
		t0 := time.Now()
		e.sync(e.putListeners("second", second, "app"))
		added := time.Since(t0)
		for i := 0; i < n; i += 50 {
			if _, err := roundTrip(fmt.Sprintf("%s:%d", scaleAddr, second[i]), "new", 5*time.Second); err != nil {
				t.Fatalf("round %d: added port %d: %v", round, second[i], err)
			}
		}
		t0 = time.Now()
		e.sync(e.dropListeners("second", n))
		t.Logf("round %d: 1000 listeners added in %v, removed in %v", round, added, time.Since(t0))
		for i := 0; i < n; i += 50 {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", scaleAddr, second[i]), time.Second); err == nil {
				c.Close()
				t.Fatalf("round %d: removed port %d still accepts", round, second[i])
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("first set: %d connections ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d connections on the untouched listeners failed; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d connections ran during the changes", ok.Load())
	}
}

// TestBackendKilledMidTraffic: a backend process dies under load; new
// connections go to the others without a client-visible error, and the dead
// backend's own connections close.
func TestBackendKilledMidTraffic(t *testing.T) {
	e := newEnv(t)
	e.service("app")
	procs := map[string]*backendProc{}
	for _, name := range []string{"a", "b", "c"} {
		procs[name] = startBackendProc(t, name)
		e.node("app", name, procs[name].addr, 1)
	}
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e.sync(e.listener(api.Listener{Name: "k", Port: port, Service: "app"}))

	// Long-lived connections on every backend.
	long := map[string][]net.Conn{}
	for len(long["a"]) < 2 || len(long["b"]) < 2 || len(long["c"]) < 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		name := readLine(t, c)
		long[name] = append(long[name], c)
	}

	// Connections begun after the backend is dead must all succeed; those
	// in flight on it when it died are its own, and may fail.
	stop := make(chan struct{})
	var ok, failed, inFlight atomic.Int64
	var killedAt atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second)
			for i := 0; time.Now().Before(deadline) && i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				begun := time.Now().UnixNano()
				if _, err := roundTrip(addr, "during", 5*time.Second); err != nil {
					if k := killedAt.Load(); k == 0 || begun < k {
						inFlight.Add(1)
						continue
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	before := ok.Load()
	if err := procs["b"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs["b"].cmd.Wait()
	killedAt.Store(time.Now().UnixNano())
	// b's connections close; a's and c's keep working.
	for _, c := range long["b"] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("a connection to the killed backend stayed open")
			}
		}
	}
	for _, name := range []string{"a", "c"} {
		for _, c := range long[name] {
			echo(t, c, "survivor")
		}
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d connections before the kill, %d after, %d failed, %d in flight on b cut", before, ok.Load()-before, failed.Load(), inFlight.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d client-visible failures; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load()-before < 10 {
		t.Fatalf("only %d connections after the kill", ok.Load()-before)
	}
	reported := false
	for _, f := range e.fails.list() {
		reported = reported || f == "app/b"
	}
	if !reported {
		t.Error("the killed backend's connect failures were not reported to the checker")
	}
	if st := e.lb.Stats()[0]; st.Retries == 0 || st.Refused != 0 {
		t.Errorf("stats: got retries %d refused %d, want retries and no refusals", st.Retries, st.Refused)
	}
}
