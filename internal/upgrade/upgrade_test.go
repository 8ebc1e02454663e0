package upgrade

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary is its own successor: with UPGRADE_TEST_CHILD set it
// takes the socket "t", says ready, waits for go and greets one client.
func TestMain(m *testing.M) {
	switch os.Getenv("UPGRADE_TEST_CHILD") {
	case "":
		os.Exit(m.Run())
	case "fail":
		os.Exit(1)
	case "silent":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	s, up, err := FromEnv()
	if err != nil || !up {
		fmt.Fprintln(os.Stderr, "child:", up, err)
		os.Exit(2)
	}
	ln, err := s.Listen("t", func() (net.Listener, error) { return nil, fmt.Errorf("bound instead of inheriting") })
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	if err := s.Ready(10 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(4)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		os.Exit(5)
	}
	fmt.Fprintf(c, "child %d\n", os.Getpid())
	c.Close()
	os.Exit(0)
}

func greet(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(l)
}

// serve greets every client as the parent until ln closes.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprintln(c, "parent")
		c.Close()
	}
}

func TestSpawnHandsTheSocketOver(t *testing.T) {
	s, up, err := FromEnv()
	if err != nil || up {
		t.Fatal(up, err)
	}
	ln, err := s.Listen("t", func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	go serve(ln)
	addr := ln.Addr().String()

	// A successor that fails, or never says ready: the parent serves on.
	for _, mode := range []string{"fail", "silent"} {
		_, err := s.Spawn(os.Args[0], []string{"-test.run=^$"}, append(os.Environ(), "UPGRADE_TEST_CHILD="+mode), time.Second)
		if err == nil {
			t.Fatalf("%s: spawn succeeded", mode)
		}
		t.Logf("%s: %v", mode, err)
		if got := greet(t, addr); got != "parent" {
			t.Fatalf("%s: after a failed upgrade got %q", mode, got)
		}
	}

	child, err := s.Spawn(os.Args[0], []string{"-test.run=^$"}, append(os.Environ(), "UPGRADE_TEST_CHILD=ok"), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Go(); err != nil {
		t.Fatal(err)
	}
	ln.Close() // the kernel's socket stays: the child holds it
	if got, want := greet(t, addr), fmt.Sprintf("child %d", child.Pid); got != want {
		t.Fatalf("after the hand-over got %q, want %q", got, want)
	}
	select {
	case err := <-child.Exited():
		if !strings.Contains(err.Error(), "exit status 0") {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit")
	}
}

func TestParseSpec(t *testing.T) {
	got, err := ParseSpec("ready=3,go=4,lb/127.0.0.1:80=5,dns/udp/0=6")
	if err != nil || len(got) != 4 || got["lb/127.0.0.1:80"] != 5 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"x", "a=1", "a=b", "=5", "a=3,a=4", "a=3,b=3", "a=99999999999"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"ready=3,go=4,api=5,dns/tcp=6,dns/udp/0=7,lb/127.0.0.1:8080=8,etcd/stdin=9", "", "a=", "a=3,,b=4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseSpec(s)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for k, fd := range m {
			if k == "" || fd < 3 || seen[fd] {
				t.Fatalf("%q: bad entry %q=%d", s, k, fd)
			}
			seen[fd] = true
		}
	})
}
