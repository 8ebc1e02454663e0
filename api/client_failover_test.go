package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/seamark/seamark/api"
)

// A server that hangs until the caller's deadline is not the first one the
// next call tries: a retry goes to a server that answers.
func TestClientMovesOffAHungServer(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	var served int
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	defer ok.Close()
	c, err := api.NewClient([]string{hung.URL, ok.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, _, err = c.Services(ctx, nil)
	cancel()
	if err == nil {
		t.Fatal("the hung server answered")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, _, err := c.Services(ctx, nil); err != nil || served != 1 {
		t.Fatalf("retry: %v, the answering server served %d, want it to serve the retry", err, served)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the retry took %v: it went to the hung server first", d)
	}
}
