// Command echo is the quickstart's backend: a tiny HTTP server that answers
// every request with one line naming its own address and the request, so a
// connection through seamark's load balancer shows which node it reached.
//
//	go run ./examples/echo                     # listens on 127.0.0.1:8080
//	go run ./examples/echo -addr 127.0.0.2:8080
//
// It stops on Ctrl-C (or SIGTERM), and its port closes: seamark's health
// checker then takes the node out of DNS and the balancer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("echo: %v (is another program on %s? pass -addr)", err, *addr)
	}
	self := ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s: %s %s (from %s)\n", self, r.Method, r.URL.Path, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("echo listening on %s\n", self)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("echo: %v", err)
	}
}
