// Command child stands in for a wrapped service in the agent's tests: it
// listens on -listen after -delay, exits with -code after -exit-after, prints
// every signal it gets, and on SIGTERM or SIGINT prints how many nodes
// -nodes-url lists (showing whether it was deregistered before the signal
// reached it) and exits with -term-code. It never lives longer than -max-life.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to listen on (empty: never listen)")
	delay := flag.Duration("delay", 0, "wait this long before listening")
	exitAfter := flag.Duration("exit-after", 0, "exit with -code after this long (0: never)")
	code := flag.Int("code", 0, "exit code for -exit-after")
	termCode := flag.Int("term-code", 0, "exit code on SIGTERM or SIGINT")
	nodesURL := flag.String("nodes-url", "", "on SIGTERM or SIGINT, print how many nodes this URL lists")
	maxLife := flag.Duration("max-life", time.Minute, "exit 99 after this long whatever happens")
	flag.Parse()

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	fmt.Println("child started, pid", os.Getpid())
	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	var listenAt <-chan time.Time
	if *listen != "" {
		listenAt = time.After(*delay)
	}
	life := time.After(*maxLife)
	for {
		select {
		case <-listenAt:
			l, err := net.Listen("tcp", *listen)
			if err != nil {
				fmt.Println("child cannot listen:", err)
				os.Exit(98)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			fmt.Println("child listening on", l.Addr())
		case <-exit:
			fmt.Println("child exiting with", *code)
			os.Exit(*code)
		case <-life:
			fmt.Println("child lived too long")
			os.Exit(99)
		case s := <-sigs:
			fmt.Println("child got", s)
			if s != syscall.SIGTERM && s != syscall.SIGINT {
				continue
			}
			if *nodesURL != "" {
				fmt.Println("child saw", countNodes(*nodesURL))
			}
			os.Exit(*termCode)
		}
	}
}

func countNodes(url string) string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	var nodes []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%d nodes", len(nodes))
}
