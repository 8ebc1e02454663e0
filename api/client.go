package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Client talks to one or more seamark servers' HTTP API. It tries the next
// server when one cannot be reached, and sticks to the one that answered.
type Client struct {
	servers []*url.URL
	token   string
	hc      *http.Client
	tls     *tls.Config  // set by WithTLSConfig
	next    atomic.Int32 // index of the server to try first
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithToken sends a bearer token with every request.
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// WithHTTPClient replaces the default http.Client (which has no overall
// timeout, because blocking reads may wait minutes; use contexts).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// NewClient returns a client of the servers at the given base URLs
// ("http://127.0.0.1:9400").
func NewClient(servers []string, opts ...ClientOption) (*Client, error) {
	c := &Client{hc: &http.Client{}}
	if len(servers) == 0 {
		return nil, errors.New("api client: no server URL given")
	}
	for _, s := range servers {
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		u, err := url.Parse(strings.TrimRight(s, "/"))
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("api client: %q is not a server URL like http://127.0.0.1:9400", s)
		}
		c.servers = append(c.servers, u)
	}
	for _, o := range opts {
		o(c)
	}
	if c.tls != nil && c.hc.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = c.tls
		c.hc = &http.Client{Transport: t, CheckRedirect: c.hc.CheckRedirect, Jar: c.hc.Jar, Timeout: c.hc.Timeout}
	}
	return c, nil
}

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsConflict reports whether err is a 409 from the server.
func IsConflict(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// do sends one request and decodes the answer into out; it returns the
// answer's index header.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) (int64, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	start := int(c.next.Load())
	var lastErr error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		u := *c.servers[idx]
		u.Path += path
		u.RawQuery = query.Encode()
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			// A server that did not answer is not the first one tried next
			// time: a caller that retries (an agent renewing its lease)
			// must not spend its next attempt on the same hung server.
			c.next.CompareAndSwap(int32(idx), int32((idx+1)%len(c.servers)))
			if ctx.Err() != nil {
				return 0, err
			}
			lastErr = err
			continue // try the next server
		}
		c.next.Store(int32(idx))
		return decodeResponse(resp, out)
	}
	return 0, fmt.Errorf("no seamark server answered: %w", lastErr)
}

func decodeResponse(resp *http.Response, out any) (int64, error) {
	defer resp.Body.Close()
	index, _ := strconv.ParseInt(resp.Header.Get(IndexHeader), 10, 64)
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return index, err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		e.Status = resp.StatusCode
		return index, e
	}
	if out == nil {
		return index, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return index, fmt.Errorf("decode answer: %w", err)
	}
	return index, nil
}

// QueryOptions shape reads.
type QueryOptions struct {
	// Index, when set, blocks the read until the server has something newer
	// than this index (from a previous answer's Index), or Wait has passed.
	Index int64
	Wait  time.Duration
	// HealthyOnly returns only the nodes that may be advertised.
	HealthyOnly bool
}

func (q *QueryOptions) values() url.Values {
	v := url.Values{}
	if q == nil {
		return v
	}
	if q.Index > 0 {
		v.Set("index", strconv.FormatInt(q.Index, 10))
	}
	if q.Wait > 0 {
		v.Set("wait", q.Wait.String())
	}
	if q.HealthyOnly {
		v.Set("healthy", "true")
	}
	return v
}

// Status returns the server's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return s, err
}

// Services lists services.
func (c *Client) Services(ctx context.Context, q *QueryOptions) ([]Service, int64, error) {
	var out []Service
	idx, err := c.do(ctx, http.MethodGet, "/v1/services", q.values(), nil, &out)
	return out, idx, err
}

// Service returns one service.
func (c *Client) Service(ctx context.Context, name string) (Service, error) {
	var out Service
	_, err := c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreateService creates a service; it fails with a conflict if it exists.
func (c *Client) CreateService(ctx context.Context, s Service) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPost, "/v1/services", nil, s, &out)
	return out, err
}

// PutService creates or replaces a service.
func (c *Client) PutService(ctx context.Context, s Service) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(s.Name), nil, s, &out)
	return out, err
}

// DeleteService deletes a service.
func (c *Client) DeleteService(ctx context.Context, name string) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// Nodes lists a service's nodes (all of them, or only healthy ones).
func (c *Client) Nodes(ctx context.Context, service string, q *QueryOptions) ([]Node, int64, error) {
	var out []Node
	idx, err := c.do(ctx, http.MethodGet, "/v1/services/"+url.PathEscape(service)+"/nodes", q.values(), nil, &out)
	return out, idx, err
}

// AllNodes lists the nodes of every service.
func (c *Client) AllNodes(ctx context.Context, q *QueryOptions) ([]Node, int64, error) {
	var out []Node
	idx, err := c.do(ctx, http.MethodGet, "/v1/nodes", q.values(), nil, &out)
	return out, idx, err
}

func nodePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/nodes/" + url.PathEscape(id)
}

// Register registers (or re-registers) a node of n.Service. With n.TTL set the
// registration expires unless renewed (see Renew and KeepAlive).
func (c *Client) Register(ctx context.Context, n Node) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPut, nodePath(n.Service, n.ID), nil, n, &out)
	return out, err
}

// Renew keeps a node registered with a ttl alive for another ttl. A not-found
// error means the registration expired: register again.
func (c *Client) Renew(ctx context.Context, service, id string) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPut, nodePath(service, id)+"/renew", nil, nil, &out)
	return out, err
}

// Deregister removes a node.
func (c *Client) Deregister(ctx context.Context, service, id string) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodDelete, nodePath(service, id), nil, nil, &out)
	return out, err
}

// KeepAlive renews a node's registration every ttl/3 until ctx ends. It
// returns ctx's error, or the error that ended the registration (IsNotFound:
// the lease expired and the node must be registered again). A renewal that
// fails for a passing reason is retried until the ttl would run out.
func (c *Client) KeepAlive(ctx context.Context, service, id string, ttl time.Duration) error {
	every := max(ttl/3, 100*time.Millisecond)
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		_, err := c.Renew(rctx, service, id)
		cancel()
		switch {
		case err == nil:
			lastOK = time.Now()
		case IsNotFound(err) || IsConflict(err):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Since(lastOK) > ttl:
			return fmt.Errorf("keep-alive of node %s: no renewal for %s: %w", id, ttl, err)
		}
	}
}

// Records lists a zone's static record sets.
func (c *Client) Records(ctx context.Context, zone string, q *QueryOptions) ([]Record, int64, error) {
	var out []Record
	idx, err := c.do(ctx, http.MethodGet, "/v1/zones/"+url.PathEscape(zone)+"/records", q.values(), nil, &out)
	return out, idx, err
}

// ChangeRecords applies a batch of record changes to a zone atomically.
func (c *Client) ChangeRecords(ctx context.Context, zone string, b ChangeBatch) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPost, "/v1/zones/"+url.PathEscape(zone)+"/changes", nil, b, &out)
	return out, err
}

// Zones lists the served zones.
func (c *Client) Zones(ctx context.Context) ([]Zone, error) {
	var out []Zone
	_, err := c.do(ctx, http.MethodGet, "/v1/zones", nil, nil, &out)
	return out, err
}

// Listeners lists listeners.
func (c *Client) Listeners(ctx context.Context, q *QueryOptions) ([]Listener, int64, error) {
	var out []Listener
	idx, err := c.do(ctx, http.MethodGet, "/v1/listeners", q.values(), nil, &out)
	return out, idx, err
}

// PutListener creates or replaces a listener.
func (c *Client) PutListener(ctx context.Context, l Listener) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPut, "/v1/listeners/"+url.PathEscape(l.Name), nil, l, &out)
	return out, err
}

// DeleteListener deletes a listener.
func (c *Client) DeleteListener(ctx context.Context, name string) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodDelete, "/v1/listeners/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// BalancerStats lists the live counters of the server's balancer ports
// (listener "" for all of them).
func (c *Client) BalancerStats(ctx context.Context, listener string) ([]ListenerStats, error) {
	var out []ListenerStats
	var q url.Values
	if listener != "" {
		q = url.Values{"listener": {listener}}
	}
	_, err := c.do(ctx, http.MethodGet, "/v1/lb", q, nil, &out)
	return out, err
}

// Groups lists balancer groups with their live state: candidacies,
// effective priorities, the active member and what the group name answers.
func (c *Client) Groups(ctx context.Context) ([]GroupStatus, error) {
	out, _, err := c.GroupsIndex(ctx)
	return out, err
}

// GroupsIndex is Groups with the index of the read: the last store revision
// that changed a group, a candidacy or a role.
func (c *Client) GroupsIndex(ctx context.Context) ([]GroupStatus, int64, error) {
	var out []GroupStatus
	idx, err := c.do(ctx, http.MethodGet, "/v1/groups", nil, nil, &out)
	return out, idx, err
}

// EventQuery filters the event log.
type EventQuery struct {
	Service, Node string
	// Kind keeps events of one kind (health, role, admin, audit); Who keeps
	// the audit and admin events of one token or TSIG key ("tsig:<key>").
	Kind, Who string
	// Limit keeps the newest N events (0: all kept).
	Limit int
}

// Events reads the event log, oldest first. With q.Index set it blocks until
// a newer event is logged (stream the log by passing back the returned index).
func (c *Client) Events(ctx context.Context, f EventQuery, q *QueryOptions) ([]Event, int64, error) {
	v := q.values()
	if f.Service != "" {
		v.Set("service", f.Service)
	}
	if f.Node != "" {
		v.Set("node", f.Node)
	}
	if f.Kind != "" {
		v.Set("kind", f.Kind)
	}
	if f.Who != "" {
		v.Set("who", f.Who)
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []Event
	idx, err := c.do(ctx, http.MethodGet, "/v1/events", v, nil, &out)
	return out, idx, err
}
