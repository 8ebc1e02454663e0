// Package route53 serves a subset of Amazon Route 53's REST/XML API (version
// 2013-04-01) so that scripts written for Route 53 (the AWS CLI, boto3,
// other SDKs) work against seamark with only --endpoint-url and credentials
// changed. It is mounted on the HTTP API's listener under /2013-04-01/.
//
// What it reads: the registry's current Snapshot (zones, static record sets,
// services and their nodes with health verdicts, the revision each change
// reached) and the store's health check definitions. What it writes, through
// the store's typed functions only: static record change batches (plain
// record sets), services and nodes (weighted and multivalue record sets with a
// SetIdentifier become nodes of the service named by the set's first label,
// so answers follow seamark's health verdicts), and health check definitions.
//
// Every request is authenticated with AWS Signature Version 4: the access key
// ID is a seamark API token's name, the secret is its secret; read tokens
// only read, register tokens change only weighted and multivalue sets of
// their services (and health checks), write tokens change anything. Errors come in
// Route 53's XML shape, so the CLI and SDKs print them as they would for
// Route 53. Every input is bounded: the body size, the number of changes,
// records and characters in a batch (Route 53's own limits), and every store
// call carries a deadline. docs/route53.md has the mapping and what is not
// supported.
package route53
