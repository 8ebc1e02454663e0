package route53

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/seamark/seamark/api"
	"github.com/seamark/seamark/internal/store"
)

// storedCheck is a health check definition as kept in the store.
type storedCheck struct {
	ID              string            `json:"id"`
	CallerReference string            `json:"caller_reference"`
	Config          healthCheckConfig `json:"config"`
	Version         int64             `json:"version"`
}

func (c storedCheck) xml() xmlHealthCheck {
	return xmlHealthCheck{ID: c.ID, CallerReference: c.CallerReference, Config: c.Config, Version: c.Version}
}

// healthCheckID derives a health check's ID from its caller reference, so
// that a retried CreateHealthCheck finds the first one (Route 53's
// idempotency) even when two race.
func healthCheckID(callerRef string) string {
	s := sha256.Sum256([]byte("route53 health check\x00" + callerRef))
	x := hex.EncodeToString(s[:16])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func noSuchHealthCheck(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "NoSuchHealthCheck", msg: fmt.Sprintf("A health check with id %s does not exist.", id)}
}

// checkConfig validates a HealthCheckConfig, fills Route 53's defaults and
// says why seamark cannot probe it.
func checkConfig(c *healthCheckConfig) error {
	switch c.Type {
	case "TCP", "HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH":
	case "CALCULATED", "CLOUDWATCH_METRIC", "RECOVERY_CONTROL":
		return invalidInput("Invalid request: health checks of type %s are not supported by seamark; use TCP, HTTP, HTTPS, HTTP_STR_MATCH or HTTPS_STR_MATCH", c.Type)
	default:
		return invalidInput("Invalid request: health check Type %q is not one of TCP, HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH", c.Type)
	}
	if c.ChildHealthChecks != nil || c.AlarmIdentifier != nil || c.Regions != nil {
		return invalidInput("Invalid request: ChildHealthChecks, AlarmIdentifier and Regions are not supported by seamark")
	}
	if c.IPAddress != "" {
		if _, err := netip.ParseAddr(c.IPAddress); err != nil {
			return invalidInput("Invalid request: IPAddress %q is not an IP address", c.IPAddress)
		}
	}
	if c.IPAddress == "" && c.FullyQualifiedDomainName == "" {
		return invalidInput("Invalid request: a health check needs an IPAddress or a FullyQualifiedDomainName")
	}
	if c.Port == 0 {
		c.Port = 80
		if strings.HasPrefix(c.Type, "HTTPS") {
			c.Port = 443
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		return invalidInput("Invalid request: Port %d is not a port (1-65535)", c.Port)
	}
	if c.RequestInterval == 0 {
		c.RequestInterval = 30
	}
	if c.RequestInterval != 10 && c.RequestInterval != 30 {
		return invalidInput("Invalid request: RequestInterval must be 10 or 30, got %d", c.RequestInterval)
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 3
	}
	if c.FailureThreshold < 1 || c.FailureThreshold > 10 {
		return invalidInput("Invalid request: FailureThreshold must be from 1 to 10, got %d", c.FailureThreshold)
	}
	if strings.HasPrefix(c.Type, "HTTP") && c.ResourcePath == "" {
		c.ResourcePath = "/"
	}
	if strings.HasSuffix(c.Type, "_STR_MATCH") && c.SearchString == "" {
		return invalidInput("Invalid request: %s needs a SearchString", c.Type)
	}
	if len(c.ResourcePath) > 255 || len(c.SearchString) > 255 || len(c.FullyQualifiedDomainName) > 255 {
		return invalidInput("Invalid request: ResourcePath, SearchString and FullyQualifiedDomainName are at most 255 characters")
	}
	if c.Inverted {
		return invalidInput("Invalid request: Inverted health checks are not supported by seamark")
	}
	return nil
}

// seamarkCheck maps a Route 53 health check onto a service's check: seamark
// probes every node of the set at the health check's port, every second,
// and FailureThreshold results in a row change its state.
func seamarkCheck(c healthCheckConfig) (api.Check, int) {
	chk := api.Check{Rise: c.FailureThreshold, Fall: c.FailureThreshold, Initial: api.StateHealthy}
	switch c.Type {
	case "TCP":
		chk.Type = api.CheckTCP
	case "HTTP", "HTTP_STR_MATCH":
		chk.Type, chk.Path, chk.Host, chk.ExpectBody = api.CheckHTTP, c.ResourcePath, c.FullyQualifiedDomainName, c.SearchString
	case "HTTPS", "HTTPS_STR_MATCH":
		chk.Type, chk.Path, chk.Host, chk.ExpectBody = api.CheckHTTPS, c.ResourcePath, c.FullyQualifiedDomainName, c.SearchString
		if c.EnableSNI == nil || *c.EnableSNI {
			chk.SNI = c.FullyQualifiedDomainName
		}
	}
	if c.Disabled {
		chk = api.Check{Type: api.CheckNone} // Route 53: a disabled check counts as healthy
	}
	chk.SetDefaults()
	return chk, c.Port
}

func (h *Handler) loadCheck(r *http.Request, id string) (storedCheck, error) {
	var c storedCheck
	ctx, cancel := h.storeCtx(r)
	defer cancel()
	data, err := h.o.Store.HealthCheck(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, noSuchHealthCheck(id)
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("health check %s: stored value: %w", id, err)
	}
	return c, nil
}

// checkFor is the seamark check and port of a health check ID.
func (h *Handler) checkFor(r *http.Request, id string) (api.Check, int, error) {
	c, err := h.loadCheck(r, id)
	if err != nil {
		return api.Check{}, 0, err
	}
	chk, port := seamarkCheck(c.Config)
	return chk, port, nil
}

func (h *Handler) createHealthCheck(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req createHealthCheckRequest
	if err := decodeXML(body, &req); err != nil {
		return invalidInput("%s", err.Error())
	}
	if req.CallerReference == "" || len(req.CallerReference) > 64 {
		return invalidInput("Invalid request: CallerReference must be 1 to 64 characters")
	}
	if err := checkConfig(&req.Config); err != nil {
		return err
	}
	c := storedCheck{ID: healthCheckID(req.CallerReference), CallerReference: req.CallerReference, Config: req.Config, Version: 1}
	val, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	n, err := h.o.Store.HealthCheckCount(ctx)
	cancel()
	if err != nil {
		return err
	}
	if n >= maxHealthChecks {
		return &apiError{status: http.StatusBadRequest, code: "TooManyHealthChecks", msg: fmt.Sprintf("This seamark server already has its limit of %d health checks; delete unused ones (DeleteHealthCheck).", maxHealthChecks)}
	}
	ctx, cancel = h.storeCtx(r)
	_, err = h.o.Store.PutHealthCheck(ctx, c.ID, val, true)
	cancel()
	status := http.StatusCreated
	if errors.Is(err, store.ErrExists) {
		old, lerr := h.loadCheck(r, c.ID)
		if lerr != nil {
			return lerr
		}
		a, _ := json.Marshal(old.Config)
		b, _ := json.Marshal(c.Config)
		if string(a) != string(b) {
			return &apiError{status: http.StatusConflict, code: "HealthCheckAlreadyExists", msg: fmt.Sprintf("A health check with caller reference %s already exists with another configuration.", req.CallerReference)}
		}
		c, status, err = old, http.StatusCreated, nil
	}
	if err != nil {
		return err
	}
	type resp struct {
		XMLName     xml.Name       `xml:"CreateHealthCheckResponse"`
		Xmlns       string         `xml:"xmlns,attr"`
		HealthCheck xmlHealthCheck `xml:"HealthCheck"`
	}
	w.Header().Set("Location", "/2013-04-01/healthcheck/"+c.ID)
	writeXML(w, status, resp{Xmlns: xmlns, HealthCheck: c.xml()})
	return nil
}

func (h *Handler) getHealthCheck(w http.ResponseWriter, r *http.Request, _ []byte) error {
	c, err := h.loadCheck(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	type resp struct {
		XMLName     xml.Name       `xml:"GetHealthCheckResponse"`
		Xmlns       string         `xml:"xmlns,attr"`
		HealthCheck xmlHealthCheck `xml:"HealthCheck"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns, HealthCheck: c.xml()})
	return nil
}

func (h *Handler) listHealthChecks(w http.ResponseWriter, r *http.Request, _ []byte) error {
	limit, err := maxItems(r, 100, 1000)
	if err != nil {
		return err
	}
	ctx, cancel := h.storeCtx(r)
	all, err := h.o.Store.HealthChecks(ctx)
	cancel()
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	marker := r.URL.Query().Get("marker")
	type resp struct {
		XMLName      xml.Name         `xml:"ListHealthChecksResponse"`
		Xmlns        string           `xml:"xmlns,attr"`
		HealthChecks []xmlHealthCheck `xml:"HealthChecks>HealthCheck"`
		Marker       string           `xml:"Marker"`
		IsTruncated  bool             `xml:"IsTruncated"`
		NextMarker   string           `xml:"NextMarker,omitempty"`
		MaxItems     int              `xml:"MaxItems"`
	}
	out := resp{Xmlns: xmlns, Marker: marker, MaxItems: limit, HealthChecks: []xmlHealthCheck{}}
	for _, id := range ids {
		if id < marker {
			continue
		}
		if len(out.HealthChecks) == limit {
			out.IsTruncated, out.NextMarker = true, id
			break
		}
		var c storedCheck
		if json.Unmarshal(all[id], &c) != nil {
			continue
		}
		out.HealthChecks = append(out.HealthChecks, c.xml())
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

func (h *Handler) deleteHealthCheck(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id := r.PathValue("id")
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	for _, sv := range snap.Services() {
		for _, n := range sv.Nodes() {
			if n.Tags[tagHealthCheck] == id {
				return &apiError{status: http.StatusBadRequest, code: "HealthCheckInUse", msg: fmt.Sprintf("The health check with id %s is still referenced from the resource record set %s (set-identifier %s).", id, n.Tags[tagName], n.Tags[tagSetID])}
			}
		}
	}
	ctx, cancel := h.storeCtx(r)
	_, err = h.o.Store.DeleteHealthCheck(ctx, id)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		return noSuchHealthCheck(id)
	}
	if err != nil {
		return err
	}
	type resp struct {
		XMLName xml.Name `xml:"DeleteHealthCheckResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns})
	return nil
}

// getHealthCheckStatus reports the live checkers' verdicts on every node
// that uses the health check: one observation per checker and node.
func (h *Handler) getHealthCheckStatus(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id := r.PathValue("id")
	c, err := h.loadCheck(r, id)
	if err != nil {
		return err
	}
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	var obs []observation
	for _, sv := range snap.Services() {
		for _, n := range sv.Nodes() {
			if n.Tags[tagHealthCheck] != id {
				continue
			}
			for _, v := range n.Checks {
				st := "Failure: "
				if v.State == api.StateHealthy {
					st = "Success: "
				}
				obs = append(obs, observation{Region: v.Checker, IPAddress: n.Address.String(), Status: st + v.Reason, CheckedAt: v.Since.UTC().Format(time.RFC3339)})
			}
			if len(n.Checks) == 0 && c.Config.Disabled {
				obs = append(obs, observation{Region: "seamark", IPAddress: n.Address.String(), Status: "Success: the health check is disabled", CheckedAt: time.Now().UTC().Format(time.RFC3339)})
			}
		}
	}
	type resp struct {
		XMLName      xml.Name      `xml:"GetHealthCheckStatusResponse"`
		Xmlns        string        `xml:"xmlns,attr"`
		Observations []observation `xml:"HealthCheckObservations>HealthCheckObservation"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns, Observations: obs})
	return nil
}
