package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/seamark/seamark/api"
)

// Liveness and readiness for supervisors and load balancers in front of
// seamark (Kubernetes probes, an HAProxy httpchk, a cloud balancer's health
// check). Neither needs a token and neither touches the store: /healthz says
// the process serves HTTP; /readyz says it can answer from current data.
const (
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"
)

// Readiness is /readyz's answer.
type Readiness struct {
	Ready bool `json:"ready"`
	// Checks name each condition: "ok", or what is wrong.
	Checks map[string]string `json:"checks"`
}

// readiness decides: the first snapshot is loaded, the last probe of the
// store (at most a few seconds old) reached it, and every listener port of
// this server is bound.
func (h *Handler) readiness() Readiness {
	r := Readiness{Ready: true, Checks: map[string]string{}}
	fail := func(k, msg string) { r.Ready, r.Checks[k] = false, msg }
	if h.o.Snapshots.Current() == nil {
		fail("snapshot", "the registry is still loading")
	} else {
		r.Checks["snapshot"] = "ok"
	}
	st, ok := h.cachedStore(3 * h.o.StoreProbeEvery)
	switch {
	case !ok && st.CheckedAt.IsZero():
		fail("store", "not probed yet")
	case !ok:
		fail("store", fmt.Sprintf("last probed %s ago", time.Since(st.CheckedAt).Round(time.Millisecond)))
	case !st.Available:
		fail("store", "unavailable: "+st.Error)
	default:
		r.Checks["store"] = "ok"
	}
	if h.o.Balancer != nil {
		failed := 0
		first := ""
		for _, l := range h.o.Balancer.Stats() {
			if l.State == api.ListenerFailed {
				if failed == 0 {
					first = fmt.Sprintf("%s port %d: %s", l.Name, l.Addr.Port(), l.Error)
				}
				failed++
			}
		}
		if failed > 0 {
			fail("listeners", fmt.Sprintf("%d ports not bound (first: %s)", failed, first))
		} else {
			r.Checks["listeners"] = "ok"
		}
	}
	return r
}

func (h *Handler) readyRoutes() {
	h.mux.HandleFunc("GET "+HealthzPath, healthz)
	h.mux.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, _ *http.Request) {
		writeReadiness(w, h.readiness())
	})
}

// Starting is what the HTTP listener serves while the server starts, before
// the API exists (the listener is bound first, so a supervisor's probes get
// an answer rather than a refused connection): /healthz is 200, /readyz is
// 503 naming the stage the start is in, and every other path is 503 with
// Retry-After. stage says what the start waits for, e.g. "connecting to the
// store".
func Starting(stage func() string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthzPath, healthz)
	mux.HandleFunc("GET "+ReadyzPath, func(w http.ResponseWriter, _ *http.Request) {
		writeReadiness(w, Readiness{Checks: map[string]string{
			"start":    stage(),
			"snapshot": "the registry is still loading",
		}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &httpError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("seamark is starting (%s); retry shortly", stage())})
	})
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func writeReadiness(w http.ResponseWriter, r Readiness) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !r.Ready {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(r)
}
