package api

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// AdminState is the operator's admin state of a node, kept apart from what
// the node's registrant reports (State) and from the health verdicts: an
// agent's re-registrations and renewals never change it.
type AdminState string

// Admin states (HAProxy's ready, drain and maint).
const (
	// AdminReady is the normal state: the node is served while healthy.
	AdminReady AdminState = "ready"
	// AdminDrain takes the node out of DNS answers and gives it no new
	// balancer connections; its open connections go on.
	AdminDrain AdminState = "drain"
	// AdminMaint is drain, and the health checkers stop probing the node
	// (its last verdicts stay as they were).
	AdminMaint AdminState = "maint"
)

// EventAdmin is the kind of event logged when an operator changes a node's
// admin state or weight override.
const EventAdmin = "admin"

// MaxAdminReason bounds NodeAdmin.Reason.
const MaxAdminReason = 256

// NodeAdmin is a node's admin state as the operator set it
// (PUT /v1/services/{service}/nodes/{id}/admin).
type NodeAdmin struct {
	// State is ready, drain or maint. Default ready.
	State AdminState `json:"state,omitempty"`
	// Weight, when set (1-1000), replaces the registered weight in weighted
	// DNS answers and in balancing.
	Weight int `json:"weight,omitempty"`
	// Reason is a note for other operators, at most 256 bytes.
	Reason string `json:"reason,omitempty"`
	// By and Since are set by the server: who made the change (the token's
	// name) and when.
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// Out reports whether a keeps the node out of DNS answers and balancing.
func (a *NodeAdmin) Out() bool {
	return a != nil && (a.State == AdminDrain || a.State == AdminMaint)
}

// Maint reports whether a stops health probes of the node.
func (a *NodeAdmin) Maint() bool { return a != nil && a.State == AdminMaint }

// StateOf returns a's state, ready for nil or unset.
func (a *NodeAdmin) StateOf() AdminState {
	if a == nil || a.State == "" {
		return AdminReady
	}
	return a.State
}

// Validate checks an admin change as written by an operator.
func (a *NodeAdmin) Validate() error {
	switch a.State {
	case "", AdminReady, AdminDrain, AdminMaint:
	default:
		return fmt.Errorf("state: %q is not ready, drain or maint", a.State)
	}
	if a.Weight < 0 || a.Weight > 1000 {
		return fmt.Errorf("weight: %d is out of range (1-1000; leave it out to keep the registered weight)", a.Weight)
	}
	if len(a.Reason) > MaxAdminReason {
		return fmt.Errorf("reason: %d bytes is longer than %d", len(a.Reason), MaxAdminReason)
	}
	if !a.Since.IsZero() || a.By != "" {
		return fmt.Errorf("by, since: set by the server; leave them out")
	}
	return nil
}

// NodeAdminStatus is one entry of GET /v1/admin: a node's admin state, and
// whether the node is registered now (an admin state outlives its node's
// registration, so that a node that comes back is still drained).
type NodeAdminStatus struct {
	Service    string    `json:"service"`
	Node       string    `json:"node"`
	Admin      NodeAdmin `json:"admin"`
	Registered bool      `json:"registered"`
}

// AdminStates lists every node admin state the server keeps.
func (c *Client) AdminStates(ctx context.Context) ([]NodeAdminStatus, error) {
	var out []NodeAdminStatus
	_, err := c.do(ctx, http.MethodGet, "/v1/admin", nil, nil, &out)
	return out, err
}

// TakenOut reports whether n is kept out of answers and balancing on
// purpose: by its registrant (draining, maintenance) or by an operator's
// admin state. Such a node is not served even when every other node fails
// (when_none_healthy: fail_open).
func (n *Node) TakenOut() bool {
	return n.State == StateMaintenance || n.State == StateDraining || n.Admin.Out()
}

// SetAdmin sets a node's admin state and weight override, replacing any
// earlier one. The node must be registered now; the admin state then stays,
// whatever its registrant does, until it is changed or cleared.
func (c *Client) SetAdmin(ctx context.Context, service, id string, a NodeAdmin) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodPut, nodePath(service, id)+"/admin", nil, a, &out)
	return out, err
}

// ClearAdmin clears a node's admin state and weight override: it is ready
// again, with its registered weight.
func (c *Client) ClearAdmin(ctx context.Context, service, id string) (WriteResult, error) {
	var out WriteResult
	_, err := c.do(ctx, http.MethodDelete, nodePath(service, id)+"/admin", nil, nil, &out)
	return out, err
}

// Node returns one node of a service as the server serves it (with its
// health, checks and admin state).
func (c *Client) Node(ctx context.Context, service, id string) (Node, error) {
	var out Node
	_, err := c.do(ctx, http.MethodGet, nodePath(service, id), nil, nil, &out)
	return out, err
}
