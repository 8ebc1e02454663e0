package ha

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/seamark/seamark/api"
)

// simulate runs one observer's probes against a link that is down during
// the given [from, to) windows (offsets from t0), on a fake clock: a probe
// sent at s answers at s+rtt when the link is up at s and at s+rtt,
// and fails at s+ProbeTimeout otherwise. Probes go out every ProbeInterval
// from phase. It returns the times (offsets) at which the verdict changed,
// with the verdict after each change.
func simulate(phase time.Duration, until time.Duration, down ...[2]time.Duration) (at []time.Duration, verdict []bool) {
	const rtt = time.Millisecond
	t0 := time.Unix(1000, 0)
	cut := func(t time.Duration) bool {
		for _, w := range down {
			if t >= w[0] && t < w[1] {
				return true
			}
		}
		return false
	}
	type result struct {
		seq  int64
		when time.Duration
		err  error
	}
	var rs []result
	seq := int64(0)
	for s := phase - time.Second; s < until; s += ProbeInterval {
		seq++
		if cut(s) || cut(s+rtt) {
			rs = append(rs, result{seq, s + ProbeTimeout, errors.New("no answer")})
		} else {
			rs = append(rs, result{seq, s + rtt, nil})
		}
	}
	slices.SortStableFunc(rs, func(a, b result) int { return int(a.when - b.when) })
	var d detector
	for _, r := range rs {
		if r.when >= until {
			break
		}
		if d.add(r.seq, r.err, t0.Add(r.when)) {
			at = append(at, d.since.Sub(t0))
			verdict = append(verdict, d.down())
		}
	}
	return at, verdict
}

// TestDetectorTimeline: a cut link is found down exactly ProbeInterval +
// ProbeTimeout after the first probe sent into the cut, up again at the
// first answer after it heals; one lost probe is not enough.
func TestDetectorTimeline(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		phase   time.Duration
		windows [][2]time.Duration
		at      []time.Duration
		verdict []bool
	}{
		// Probes at 0, 50, 100 ...: the cut at 0 loses the probe sent at 0
		// (fails at 100) and at 50 (fails at 150): down at 150.
		{"cut on a probe", 0, [][2]time.Duration{{0, 10 * time.Second}}, []time.Duration{150 * ms}, []bool{true}},
		// Probes at 1, 51 ...: the first probe in the cut is at 1, down at 151.
		{"cut just before a probe", ms, [][2]time.Duration{{0, 10 * time.Second}}, []time.Duration{151 * ms}, []bool{true}},
		// Probes at -2 (answered at -1), 48, 98: the worst phase: down at
		// 198 (cut + ProbeInterval + ProbeTimeout + 48 ms).
		{"cut just after a probe", 48 * ms, [][2]time.Duration{{0, 10 * time.Second}}, []time.Duration{198 * ms}, []bool{true}},
		// Down 0-60: the probes sent at 0 and 50 fail; 100 answers at 101
		// (before 50's failure at 150, so up wins by sequence): down at 150
		// only if no later success came first. 100's answer (seq later)
		// arrives at 101: fails {0} only at that moment -> never down.
		{"one window of 60 ms", 0, [][2]time.Duration{{0, 60 * ms}}, nil, nil},
		// A 200 ms cut: down at 150, up at 201 (the probe sent at 200).
		{"flap of 200 ms", 0, [][2]time.Duration{{0, 200 * ms}}, []time.Duration{150 * ms, 201 * ms}, []bool{true, false}},
		// A single lost probe (a 10 ms blip on a probe) never makes down.
		{"blip", 0, [][2]time.Duration{{100 * ms, 110 * ms}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, verdict := simulate(tc.phase, 2*time.Second, tc.windows...)
			if !slices.Equal(at, tc.at) || !slices.Equal(verdict, tc.verdict) {
				t.Errorf("got changes at %v %v, want %v %v", at, verdict, tc.at, tc.verdict)
			}
		})
	}
}

// TestDetectorNeedsASuccessFirst: an endpoint never seen answering gets no
// vote, however often it fails (it may be unreachable from this observer).
func TestDetectorNeedsASuccessFirst(t *testing.T) {
	var d detector
	now := time.Unix(1000, 0)
	for seq := int64(1); seq <= 10; seq++ {
		if d.add(seq, errors.New("no answer"), now) || d.down() {
			t.Fatalf("probe %d: down without ever answering", seq)
		}
	}
	d.add(11, nil, now)
	d.add(13, errors.New("refused"), now)
	if !d.add(14, errors.New("refused"), now.Add(time.Millisecond)) || !d.down() || d.since != now.Add(time.Millisecond) || d.reason != "refused" {
		t.Fatalf("got down %v since %v (%q), want down since the second failure", d.down(), d.since, d.reason)
	}
	// A late answer of an earlier probe does not bring it back up.
	if d.add(12, nil, now) || !d.down() {
		t.Fatal("an answer to a probe older than the failures brought it up")
	}
	// Dead for long: the failures kept stay bounded, the verdict stays down.
	for seq := int64(15); seq < 10000; seq++ {
		d.add(seq, errors.New("no answer"), now)
	}
	if !d.down() || len(d.fails) > 4*failsToDown {
		t.Fatalf("after 10000 failures: down %v, %d failures kept", d.down(), len(d.fails))
	}
	if !d.add(10000, nil, now) || d.down() {
		t.Fatal("an answer after the failures did not bring it up")
	}
}

func TestTally(t *testing.T) {
	h := holder{group: "lb", member: "lb1", lease: 7, fencing: 40}
	ob := func(name string, down bool) *api.Observation {
		return &api.Observation{Group: "lb", Observer: name, Member: "lb1", Lease: 7, Fencing: 40, Down: down}
	}
	stale := &api.Observation{Group: "lb", Observer: "s4", Member: "lb1", Lease: 6, Fencing: 30, Down: true}
	for _, tc := range []struct {
		name     string
		obs      []*api.Observation
		own      bool
		down, of int
		majority bool
	}{
		{"alone, down", nil, true, 1, 1, true},
		{"two, both down (own not stored yet)", []*api.Observation{ob("s2", true)}, true, 2, 2, true},
		{"two, one down", []*api.Observation{ob("s2", false)}, true, 1, 2, false},
		{"own stored as up, now down", []*api.Observation{ob("me", false), ob("s2", true)}, true, 2, 2, true},
		{"three, two down", []*api.Observation{ob("s2", true), ob("s3", false)}, true, 2, 3, true},
		{"four, two down", []*api.Observation{ob("s2", true), ob("s3", false), ob("s4", false)}, true, 2, 4, false},
		{"an earlier claim does not count", []*api.Observation{stale, ob("s2", false)}, true, 1, 2, false},
		{"own up", []*api.Observation{ob("s2", true)}, false, 1, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := *ob("me", tc.own)
			down, of, majority := tally(tc.obs, h, own)
			if down != tc.down || of != tc.of || majority != tc.majority {
				t.Errorf("got %d of %d (majority %v), want %d of %d (%v)", down, of, majority, tc.down, tc.of, tc.majority)
			}
		})
	}
}

func TestFenced(t *testing.T) {
	at := time.Unix(1000, 0)
	for _, tc := range []struct {
		silent time.Duration
		fence  bool
	}{
		{0, false}, {RenewEvery, false}, {FenceAfter, false}, {FenceAfter + time.Nanosecond, true}, {time.Second, true},
	} {
		if got := fenced(at, at.Add(tc.silent), 10*time.Millisecond) != ""; got != tc.fence {
			t.Errorf("silent %v: fenced %v, want %v", tc.silent, got, tc.fence)
		}
	}
	// A store measured slow (a loaded machine) widens the fence: 4 round
	// trips of 200 ms allow 800 ms of silence, not more.
	for _, tc := range []struct {
		silent time.Duration
		fence  bool
	}{{600 * time.Millisecond, false}, {800 * time.Millisecond, false}, {801 * time.Millisecond, true}} {
		if got := fenced(at, at.Add(tc.silent), 200*time.Millisecond) != ""; got != tc.fence {
			t.Errorf("slow store, silent %v: fenced %v, want %v", tc.silent, got, tc.fence)
		}
	}
	// The documented overlap: a member cut off from everyone at once steps
	// down at most FenceAfter after its last confirmation; observers cannot
	// end its lease sooner than one interval and one timeout after the cut.
	if overlap := FenceAfter - ProbeInterval - ProbeTimeout; overlap != 150*time.Millisecond {
		t.Errorf("worst overlap %v: docs/groups.md says 150ms", overlap)
	}
}

// fakeProbes answers each endpoint as told.
type fakeProbes struct {
	mu   sync.Mutex
	dead map[string]bool // observer/endpoint -> fails
}

func (f *fakeProbes) probe(observer string) func(ctx context.Context, endpoint string) error {
	return func(ctx context.Context, endpoint string) error {
		f.mu.Lock()
		dead := f.dead[observer+"/"+endpoint] || f.dead["*/"+endpoint]
		f.mu.Unlock()
		if dead {
			<-ctx.Done()
			return errors.New("no answer")
		}
		return nil
	}
}

func (f *fakeProbes) set(key string, dead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead[key] = dead
}

// startMember runs a member that advertises an endpoint (never dialled:
// the observers' probes are fake) in locality "here".
func (e *env) startMember(name, endpoint string, hooks Hooks) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	m := New(Options{Name: name, Server: "srv-" + name, Store: e.st, Snapshots: e.w, Probe: tcpProbe, Hooks: hooks,
		Endpoint: netip.MustParseAddrPort(endpoint), Locality: "here", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

func (e *env) observer(name string, f *fakeProbes) {
	ctx, cancel := context.WithCancel(e.ctx)
	ob := NewObserver(ObserverOptions{Name: name, Locality: "here", Store: e.st, Snapshots: e.w, Probe: f.probe(name)})
	e.observers = append(e.observers, ob)
	done := make(chan struct{})
	go func() { defer close(done); ob.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

// TestObserversEndADeadHoldersLease: with a real store and members, two
// observers: one alone finding the active member dead ends nothing (a
// partial partition); both finding it dead end its lease, the standby takes
// the role, and the revocation is in the event log and the metric.
func TestObserversEndADeadHoldersLease(t *testing.T) {
	e := newEnv(t)
	e.group(api.Group{Name: "lb", Members: members(151, 150), PreemptDelay: api.Duration(time.Hour)})
	ep1, ep2 := "127.0.47.1:9400", "127.0.47.2:9400"
	hooks := &hookLog{}
	e.startMember("lb1", ep1, hooks)
	e.waitActive("lb", addr1, 10*time.Second)
	e.startMember("lb2", ep2, hooks)
	f := &fakeProbes{dead: map[string]bool{}}
	e.observer("srv-lb2", f)
	e.observer("s3", f)
	waitFor(t, "two observations of lb1, both up", func() bool {
		obs := e.w.Current().Observations("lb")
		return len(obs) == 2 && !obs[0].Down && !obs[1].Down && obs[0].Member == "lb1"
	})

	// Only lb2 loses lb1: one of two is no majority.
	f.set("srv-lb2/"+ep1, true)
	waitFor(t, "lb2's observation says down", func() bool {
		for _, o := range e.w.Current().Observations("lb") {
			if o.Observer == "srv-lb2" && o.Down {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	if r := e.w.Current().Role("lb"); r == nil || r.Member != "lb1" {
		t.Fatalf("one observer of two moved the role: %+v", r)
	}

	// Both lose it: the lease ends, lb2 takes the role.
	before := testMetric(t, e, "lb", "lb1")
	start := time.Now()
	f.set("*/"+ep1, true)
	d := e.waitActive("lb", addr2, 5*time.Second)
	t.Logf("lb1 found dead by both observers: role moved in %v", d)
	if d > time.Since(start) || d > time.Second {
		t.Errorf("role moved in %v, want well under the 1s lease", d)
	}
	waitFor(t, "a revoke event", func() bool {
		for _, ev := range e.w.Current().Events() {
			if ev.Kind == "revoke" && ev.Member == "lb1" && ev.Group == "lb" && ev.Fencing > 0 && ev.Checker != "" {
				return true
			}
		}
		return false
	})
	if after := testMetric(t, e, "lb", "lb1"); after != before+1 {
		t.Errorf("seamark_group_revocations_total{lb,lb1}: %v then %v, want one more", before, after)
	}
	// lb1 (alive, reaching the store) found its lease ended and stepped down.
	waitFor(t, "lb1 in fault in the event log", func() bool {
		for _, ev := range e.w.Current().Events() {
			if ev.Kind == "role" && ev.Member == "lb1" && ev.Role == api.RoleFault {
				return true
			}
		}
		return false
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testMetric sums the revocations of group/member over e's observers.
func testMetric(t *testing.T, e *env, group, member string) float64 {
	t.Helper()
	sum := 0.0
	for _, ob := range e.observers {
		var m dto.Metric
		if err := ob.revocations.WithLabelValues(group, member).Write(&m); err != nil {
			t.Fatal(err)
		}
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// TestLateProbesAreNotVotes: a probe that failed within its timeout (plus
// slack) counts; one that came back later failed because the observer was
// itself late, and counts neither way.
func TestLateProbesAreNotVotes(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		err  error
		took time.Duration
		want bool
	}{
		{nil, 500 * ms, false},                                         // an answer always counts
		{errors.New("refused"), ms, false},                             // refused at once
		{errors.New("no answer"), ProbeTimeout, false},                 // timed out on time
		{errors.New("no answer"), ProbeTimeout + LateSlack, false},     // at the slack's edge
		{errors.New("no answer"), ProbeTimeout + LateSlack + ms, true}, // the observer was late
		{errors.New("no answer"), 2 * time.Second, true},
	} {
		if got := late(tc.err, tc.took); got != tc.want {
			t.Errorf("late(%v, %v) = %v, want %v", tc.err, tc.took, got, tc.want)
		}
	}
}
