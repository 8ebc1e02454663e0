//go:build !unix

package health

// localError: off Unix no failure is known to be local.
func localError(error) bool { return false }
