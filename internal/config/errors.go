package config

import "github.com/seamark/seamark/internal/yamlstrict"

// Error is one problem with a config file: where it is and what to change,
// formatted as "file:line: path: msg".
type Error = yamlstrict.Error

// errorList collects the problems of one file.
type errorList = yamlstrict.Errors

var (
	joinPath   = yamlstrict.JoinPath
	indexPath  = yamlstrict.IndexPath
	parentPath = yamlstrict.ParentPath
	under      = yamlstrict.Under
)
