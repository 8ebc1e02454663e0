// Package api holds seamark's wire types and a Go client of its HTTP API.
//
// The types here are what the HTTP API sends and accepts as JSON, and also what
// the server stores: a Service, its Nodes, static zone Records, port Listeners and
// balancer Groups. Each type can check itself (Validate) and fill in its defaults
// (SetDefaults), so a config file, an API request and a Go program get the same
// rules and the same error messages.
//
// The package carries no server dependencies: an application or agent that
// imports it pulls in only the standard library.
package api
