package store

import (
	"context"
	"encoding/json"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/seamark/seamark/api"
)

// SetAuthTokenTTL shortens the embedded etcd's auth token TTL for a test.
func SetAuthTokenTTL(sec uint) func() {
	authTokenTTL = sec
	return func() { authTokenTTL = 0 }
}

// PutNodeOnLease writes n on the lease id as PutNode does on the lease it
// grants (a test passes a lease that does not exist).
func PutNodeOnLease(ctx context.Context, s *Store, n api.Node, id int64) (int64, error) {
	val, err := json.Marshal(n)
	if err != nil {
		return 0, err
	}
	guard := ServiceKey(n.Service)
	rev, _, err := s.update(ctx, NodeKey(n.Service, n.ID), &guard, clientv3.LeaseID(id), func([]byte, int64) ([]byte, error) { return val, nil })
	return rev, err
}
