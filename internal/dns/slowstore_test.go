package dns

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/seamark/seamark/api"
)

// blockingStore is a store that never answers in time: every write waits
// for its deadline. It stands for a store that is away.
type blockingStore struct{ calls atomic.Int64 }

func (b *blockingStore) ApplyChanges(ctx context.Context, zone string, _ api.ChangeBatch) (int64, error) {
	b.calls.Add(1)
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestSlowUpdatesDoNotDelayQueries: 1 000 signed UPDATEs that each wait on
// the store leave plain UDP queries answered at once (p99 <= 10 ms).
func TestSlowUpdatesDoNotDelayQueries(t *testing.T) {
	ring, err := NewKeyring([]TSIGKey{{Name: "update-key", Algorithm: "hmac-sha256", Secret: testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	snaps := fixedSnapshots{rfcSnapshot(t, 3)}
	st := &blockingStore{}
	p := NewPrimary(PrimaryOptions{Store: st, Snapshots: snaps, Keys: ring})
	s := startServer(t, Options{Snapshots: snaps, Handler: p, TSIG: ring, RRL: RRL{Disabled: true}})

	// 1 000 UPDATEs, fired from 50 senders without waiting for answers.
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", s.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			for i := range 20 {
				m := updateMsg(rfcZone)
				m.Insert([]dns.RR{mustRR(t, fmt.Sprintf("u%d-%d.example.test. 60 IN A 192.0.2.1", g, i))})
				m.SetTsig("update-key.", dns.HmacSHA256, 300, time.Now().Unix())
				b, _, err := dns.TsigGenerate(m, testSecret, "", false)
				if err != nil {
					t.Error(err)
					return
				}
				c.Write(b)
				sent.Add(1)
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}
	// Meanwhile, plain queries one after another.
	c := &dns.Client{Timeout: time.Second}
	conn, err := c.Dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var lat []time.Duration
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		name := []string{"www.example.test.", "svc.example.test.", "nx.example.test."}[i%3]
		t0 := time.Now()
		r, _, err := c.ExchangeWithConn(query(name, dns.TypeA), conn)
		d := time.Since(t0)
		if err != nil || r == nil {
			d = time.Second
		}
		lat = append(lat, d)
	}
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	t.Logf("%d UPDATEs sent, %d reached the store; %d queries meanwhile, p50 %v p99 %v max %v",
		sent.Load(), st.calls.Load(), len(lat), lat[len(lat)/2], p99, lat[len(lat)-1])
	if sent.Load() != 1000 {
		t.Fatalf("sent %d updates, want 1000", sent.Load())
	}
	if st.calls.Load() == 0 {
		t.Fatal("no update reached the store; the test measures nothing")
	}
	if p99 > 10*time.Millisecond {
		t.Fatalf("query p99 %v while updates wait on the store; want <= 10ms", p99)
	}
}
