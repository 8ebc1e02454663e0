// Package yamlstrict decodes a YAML (or JSON) file strictly into Go values:
// keys come from a struct tag (json or yaml), an unknown key is an error with
// the known key it probably meant, a value of the wrong kind says what was
// expected ("is a single value, not a list; write [x]"), every problem
// carries file:line: path, and they are all reported at once. Aliases and
// merge keys work, within a budget of values per byte so a small file
// cannot expand for ever; keys starting with "x-" are ignored (a place for
// anchors). It reads only the bytes it is given and writes only the value.
//
// The server's config file (internal/config) and the agent's
// (internal/agent) both decode through it, so their messages read the same.
package yamlstrict

import (
	"bytes"
	"cmp"
	"encoding"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A file may expand to at most baseValues + valuesPerByte × its size values, so
// that a small file built of nested aliases cannot make the decoder run for
// ever, while templates reused by aliases (*name) still work.
const (
	baseValues    = 10000
	valuesPerByte = 10
)

// maxText is the longest text a typed value (an address, a duration) may be.
const maxText = 256

// Options say how a file maps onto Go types.
type Options struct {
	// Tag is the struct tag that names keys: "json" (the default) or
	// "yaml". A field tagged "-" or unexported is not a key.
	Tag string
	// ServerSet are keys of a type that the program fills in itself; a
	// file that sets one is told to remove it.
	ServerSet map[reflect.Type][]string
	// Root says what the top level holds, for the message about a file that
	// is not a map: "sections (zones, services, listeners ...)". Default
	// "keys".
	Root string
	// Describe, when set, says in words what a text type holds (`a duration
	// (like "1s")`); "" falls back to the built-in words.
	Describe func(reflect.Type) string
}

// Result is what Decode found.
type Result struct {
	// Lines maps every key path the file gives ("services[2].check") to
	// its line.
	Lines map[string]int
	// Errs are the problems, each an *Error.
	Errs Errors
	// Bad are the paths whose value could not be decoded (or whose key was
	// probably misspelt): a validator should not report them again.
	Bad []string
	// Cut says decoding stopped early because the file expands to too many
	// values; validating half a file helps no one.
	Cut bool
}

// Decode decodes data, one YAML document, into v (a pointer to a struct). An
// empty file leaves v as it is. file names the file in errors.
func Decode(file string, data []byte, v any, o Options) Result {
	if o.Tag == "" {
		o.Tag = "json"
	}
	d := newDecoder(file, len(data))
	d.o = o
	d.decodeFile(data, reflect.ValueOf(v).Elem())
	return Result{Lines: d.lines, Errs: d.errs, Bad: d.bad, Cut: d.cut()}
}

// decoder fills Go values from a yaml.Node tree, keyed by the struct tags of
// the types, so that every problem carries the key path and the line.
type decoder struct {
	o     Options
	file  string
	lines map[string]int // key path -> line
	errs  Errors
	// bad are the paths whose value could not be decoded (or was probably
	// misspelt); validation does not report them a second time.
	bad       []string
	values    int // decoded so far
	maxValues int
	structs   map[reflect.Type]*structInfo
	// merging are the mappings whose keys are being collected, to catch a
	// mapping that merges itself ("&a {<<: *a}").
	merging map[*yaml.Node]bool
}

func newDecoder(file string, size int) *decoder {
	return &decoder{
		file:      file,
		maxValues: baseValues + valuesPerByte*size,
		lines:     map[string]int{},
		structs:   map[reflect.Type]*structInfo{},
		merging:   map[*yaml.Node]bool{},
	}
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs.Add(d.file, line, path, format, args...)
}

// fail reports a value that could not be decoded.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errorf(n.Line, path, format, args...)
	d.bad = append(d.bad, path)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeFile parses data and decodes its one document into v.
func (d *decoder) decodeFile(data []byte, v reflect.Value) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(err, data)
		}
		return // an empty file is an empty config
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err, data)
		return
	default:
		d.errorf(more.Line, "", "the file holds more than one YAML document (separated by ---); put everything in one")
		return
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return
		}
		root = root.Content[0]
	}
	root = resolveAlias(root)
	if root == nil || isNull(root) {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root.Line, "", "the file must be a map of %s, not %s", cmp.Or(d.o.Root, "keys"), describe(root))
		return
	}
	d.decode(root, v, "")
}

func (d *decoder) syntaxError(err error, data []byte) {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		d.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		return
	}
	line, _ := strconv.Atoi(m[1])
	if m[2] == "found character that cannot start any token" && startsWithTab(data, line) {
		d.errorf(line, "", "invalid YAML: this line is indented with a tab; indent with spaces")
		return
	}
	d.errorf(line, "", "invalid YAML: %s", m[2])
}

// startsWithTab reports whether line (1-based) of data starts with a tab.
func startsWithTab(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	return line >= 1 && line <= len(lines) && bytes.HasPrefix(lines[line-1], []byte("\t"))
}

// spend counts one more value decoded and reports whether the file is still
// within maxValues.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	d.values++
	if d.values == d.maxValues {
		d.errorf(n.Line, path, "the file expands to more than %d values; are aliases (*name) nested too deep?", d.maxValues)
	}
	return d.values < d.maxValues
}

// cut reports whether decoding stopped early because the file expands to too
// many values.
func (d *decoder) cut() bool { return d.values >= d.maxValues }

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// decode fills v from n; path names v in messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(n, path) {
		return
	}
	n = resolveAlias(n)
	if n == nil || isNull(n) {
		return // an empty value leaves the default
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		d.decodeText(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a text value"); ok {
			v.SetString(s.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.decodeInt(n, v, path)
	case reflect.Bool:
		d.decodeBool(n, v, path)
	default:
		d.fail(n, path, "cannot hold a value of Go type %s", v.Type())
	}
}

// scalar returns n when it is a single value, and reports it otherwise.
func (d *decoder) scalar(n *yaml.Node, path, want string) (*yaml.Node, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "is %s, not %s", describe(n), want)
		return nil, false
	}
	return n, true
}

func (d *decoder) decodeText(n *yaml.Node, v reflect.Value, path string) {
	want := d.textDescription(v.Type())
	if _, ok := d.scalar(n, path, want); !ok {
		return
	}
	if len(n.Value) > maxText {
		d.fail(n, path, "is %d characters long; too long for %s", len(n.Value), want)
		return
	}
	if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
		if isNetip(v.Type()) {
			d.fail(n, path, "%q is not %s", short(n.Value), want)
			return
		}
		d.fail(n, path, "%v", err)
	}
}

// textDescription says, for a message, what a text type holds.
func (d *decoder) textDescription(t reflect.Type) string {
	if d.o.Describe != nil {
		if s := d.o.Describe(t); s != "" {
			return s
		}
	}
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return `an IP address (like "10.0.1.5")`
	case reflect.TypeFor[netip.AddrPort]():
		return `an address:port (like "10.0.1.5:53")`
	case reflect.TypeFor[netip.Prefix]():
		return `a CIDR prefix (like "10.0.1.0/24")`
	}
	return "a text value"
}

func isNetip(t reflect.Type) bool { return t.PkgPath() == "net/netip" }

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, path string) {
	if _, ok := d.scalar(n, path, "a whole number"); !ok {
		return
	}
	var i int64
	switch tag := n.ShortTag(); {
	case tag == "!!int" && n.Decode(&i) == nil:
	case tag == "!!str" && isInt(n.Value):
		d.fail(n, path, "%q is quoted text, not a number; write it without quotes", n.Value)
		return
	default:
		d.fail(n, path, "%q is not a whole number", short(n.Value))
		return
	}
	if v.OverflowInt(i) {
		d.fail(n, path, "%s is too large", n.Value)
		return
	}
	v.SetInt(i)
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return err == nil
}

func (d *decoder) decodeBool(n *yaml.Node, v reflect.Value, path string) {
	if _, ok := d.scalar(n, path, "true or false"); !ok {
		return
	}
	var b bool
	if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(n, path, "%q is not true or false", short(n.Value))
		return
	}
	v.SetBool(b)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		if n.Kind == yaml.ScalarNode {
			d.fail(n, path, "%q is a single value, not a list; write [%s]", short(n.Value), short(n.Value))
			return
		}
		d.fail(n, path, "is %s, not a list", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := IndexPath(path, i)
		d.lines[p] = item.Line
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "cannot hold a value of Go type %s", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "is %s, not a map of keys", describe(n))
		return
	}
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		kp := mapKeyPath(path, p.key.Value)
		d.lines[kp] = p.key.Line
		elem := reflect.New(t.Elem()).Elem()
		d.decode(p.val, elem, kp)
		m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), elem)
	}
	v.Set(m)
}

// mapKeyPath names a key of a free-form map: tags.role, or tags["a.b"] when
// the key is not a plain word.
func mapKeyPath(path, key string) string {
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return path + "[" + strconv.Quote(key) + "]"
		}
	}
	if key == "" {
		return path + `[""]`
	}
	return JoinPath(path, key)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "is %s, not a map of keys", describe(n))
		return
	}
	info := d.structInfo(v.Type())
	pairs := d.pairs(n, path)
	for _, p := range pairs {
		key := p.key.Value
		kp := mapKeyPath(path, key)
		d.lines[kp] = p.key.Line
		if strings.HasPrefix(key, "x-") {
			continue // an extension key: a place to keep anchors (&name)
		}
		f, ok := info.fields[key]
		if !ok {
			near := d.unknownKey(p.key, kp, info)
			if near != "" && !slices.ContainsFunc(pairs, func(p pair) bool { return p.key.Value == near }) {
				// The misspelt key probably meant near: do not also
				// report near as missing.
				d.bad = append(d.bad, JoinPath(path, near))
			}
			continue
		}
		d.decode(p.val, v.FieldByIndex(f), kp)
	}
}

// unknownKey reports a key that t does not have and returns the known key it
// probably meant, if any.
func (d *decoder) unknownKey(k *yaml.Node, path string, info *structInfo) (near string) {
	if info.serverSet[k.Value] {
		d.errorf(k.Line, path, "is set by seamark, not by the file; remove it")
		return ""
	}
	if near = Nearest(k.Value, info.names); near != "" {
		d.errorf(k.Line, path, "unknown key; did you mean %q?", near)
		return near
	}
	d.errorf(k.Line, path, "unknown key; the keys here are %s", strings.Join(info.names, ", "))
	return ""
}

type pair struct{ key, val *yaml.Node }

// pairs returns the keys and values of mapping n, reporting keys that are not
// plain names and keys given twice, and applying YAML merge keys ("<<: *base"):
// a merged key is used only when the mapping does not give it itself.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	d.merging[n] = true
	defer delete(d.merging, n)
	var out []pair
	seen := map[string]int{} // key -> line
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			line := n.Content[i].Line
			d.errorf(line, path, "a key must be a plain name, not %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, mapKeyPath(path, k.Value), "is given twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, pair{k, val})
	}
	for _, m := range merges {
		out = d.merge(m, path, seen, out)
	}
	return out
}

// merge adds to out the pairs of the merged mapping (or list of mappings) m
// whose keys are not in seen.
func (d *decoder) merge(m *yaml.Node, path string, seen map[string]int, out []pair) []pair {
	if !d.spend(m, path) {
		return out
	}
	m = resolveAlias(m)
	switch {
	case m != nil && d.merging[m]:
		d.errorf(m.Line, path, "<< merges a map into itself")
	case m != nil && m.Kind == yaml.MappingNode:
		for _, p := range d.pairs(m, path) {
			if _, ok := seen[p.key.Value]; !ok {
				seen[p.key.Value] = p.key.Line
				out = append(out, p)
			}
		}
	case m != nil && m.Kind == yaml.SequenceNode:
		for _, item := range m.Content {
			if item = resolveAlias(item); item == nil || item.Kind != yaml.MappingNode {
				d.errorf(m.Line, path, "<< merges maps; the list holds %s", describe(item))
				continue
			}
			out = d.merge(item, path, seen, out)
		}
	default:
		line := 0
		if m != nil {
			line = m.Line
		}
		d.errorf(line, path, "<< merges a map (or a list of maps), not %s", describe(m))
	}
	return out
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what n is, for a message: "a map", "a list" or its value.
func describe(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(short(n.Value))
	}
	return "an alias"
}

// short cuts a long value down for a message.
func short(s string) string {
	const limit = 60
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	return string([]rune(s)[:limit-3]) + "..."
}

// structInfo is how a struct type is decoded: its keys, with the fields of
// anonymous embedded structs promoted, as encoding/json does.
type structInfo struct {
	fields    map[string][]int // key -> field index
	names     []string         // keys in declaration order, for messages
	serverSet map[string]bool  // keys that seamark sets and a file may not
}

func (d *decoder) structInfo(t reflect.Type) *structInfo {
	if info, ok := d.structs[t]; ok {
		return info
	}
	info := &structInfo{fields: map[string][]int{}, serverSet: map[string]bool{}}
	addFields(info, t, d.o.Tag)
	for _, key := range d.o.ServerSet[t] {
		info.serverSet[key] = true
		delete(info.fields, key)
		info.names = deleteString(info.names, key)
	}
	d.structs[t] = info
	return info
}

// addFields adds the keyed fields of t to info in declaration order, the
// fields of anonymous embedded structs in place; a field of an outer struct
// shadows an embedded field of the same key.
func addFields(info *structInfo, t reflect.Type, tagName string) {
	type keyed struct {
		name  string
		index []int
	}
	var all []keyed
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(slices.Clone(index), sf.Index...)
			tag := sf.Tag.Get(tagName)
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct && tag == "" {
				walk(sf.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			all = append(all, keyed{name, idx})
		}
	}
	walk(t, nil)
	for _, f := range all {
		if prev, ok := info.fields[f.name]; ok && len(prev) <= len(f.index) {
			continue
		}
		if _, ok := info.fields[f.name]; !ok {
			info.names = append(info.names, f.name)
		}
		info.fields[f.name] = f.index
	}
}

func deleteString(s []string, v string) []string {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// Nearest returns the name in names closest to key when it is close enough to
// be a likely misspelling, or "".
func Nearest(key string, names []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 0
	for _, name := range names {
		if norm(name) == norm(key) {
			return name
		}
		dist := editDistance(strings.ToLower(key), name)
		if best == "" || dist < bestDist {
			best, bestDist = name, dist
		}
	}
	limit := 1
	switch {
	case len(key) > 8:
		limit = 3
	case len(key) > 3:
		limit = 2
	}
	if best == "" || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours each cost one.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // too long to be a misspelling worth the work
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
