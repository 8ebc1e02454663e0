package yamlstrict

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem with a config file: where it is and what to change.
type Error struct {
	File string // the file's name as given to Parse or Load
	Line int    // 1-based; 0 when unknown
	Path string // the key path, like "services[2].check.interval"; "" for the whole file
	Msg  string

	err error // the underlying error, if any (a failed read of a secret file)
}

// Error formats e as "file:line: path: msg", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the error that caused e, if any.
func (e *Error) Unwrap() error { return e.err }

// Errors collects the problems of one file.
type Errors []*Error

// Add appends a problem.
func (l *Errors) Add(file string, line int, path, format string, args ...any) {
	*l = append(*l, &Error{File: file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// AddCause appends a problem that an underlying error caused (a failed
// read): errors.Is and As see cause through it.
func (l *Errors) AddCause(file string, line int, path, msg string, cause error) {
	*l = append(*l, &Error{File: file, Line: line, Path: path, Msg: msg, err: cause})
}

// Err returns the problems in line order (those without a line last) joined
// into one error, or nil when there are none.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	sorted := slices.Clone(l)
	slices.SortStableFunc(sorted, func(a, b *Error) int {
		return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
	})
	errs := make([]error, len(sorted))
	for i, e := range sorted {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func lineKey(line int) int {
	if line <= 0 {
		return int(^uint(0) >> 1)
	}
	return line
}

// JoinPath appends key to path: "services[0]" + "port" = "services[0].port".
func JoinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// IndexPath appends an index to path: "services" + 2 = "services[2]".
func IndexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// ParentPath strips the last key or index from path.
func ParentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// Under reports whether path is p or lies beneath it.
func Under(path, p string) bool {
	rest, ok := strings.CutPrefix(path, p)
	return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
}
