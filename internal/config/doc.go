// Package config reads seamark's configuration file: the desired state an
// operator owns (zones, services with their static nodes, listeners, balancer
// groups, API tokens, DNS keys and the server's own addresses).
//
// Parse and Load read a YAML (or JSON) file into a File, apply every default in
// one step (File.SetDefaults) and check it (File.Validate). Every problem is
// reported, not just the first, each as an *Error that names the file, the line
// and the key path of what is wrong:
//
//	quickstart.yaml:12: services[2].check.interval: "1x" is not a duration (use a number with a unit, like "1s" or "500ms")
//
// The objects a File declares are the same api types the HTTP API accepts, so a
// file and an API request obey the same rules. Nodes registered by agents or the
// API are not part of a File, and nothing here touches them.
//
// Reading secret files (API tokens, TSIG keys) is I/O and kept apart, in
// File.ReadSecrets.
package config
