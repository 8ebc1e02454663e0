package store

// SetAuthTokenTTL shortens the embedded etcd's auth token TTL for a test.
func SetAuthTokenTTL(sec uint) func() {
	authTokenTTL = sec
	return func() { authTokenTTL = 0 }
}
