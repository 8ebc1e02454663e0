package yamlstrict

import (
	"net/netip"
	"strings"
	"testing"
)

type inner struct {
	Label string `yaml:"label"`
	From  string `yaml:"from"`
}

type sample struct {
	Name    string            `yaml:"name"`
	Port    int               `yaml:"port"`
	On      bool              `yaml:"on"`
	Addr    netip.Addr        `yaml:"addr"`
	Nets    []netip.Prefix    `yaml:"nets"`
	Tags    map[string]string `yaml:"tags"`
	Items   []inner           `yaml:"items"`
	Secret  string            `yaml:"-"`
	private int
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // each a whole problem line; none means it decodes
	}{
		{"all kinds", "name: a\nport: 3\non: true\naddr: 127.0.0.1\nnets: [10.0.0.0/8]\ntags: {k: v}\nitems: [{label: x, from: y}]\nx-anchors: &t {label: z}\n", nil},
		{"misspelt key", "nmae: a\n", []string{`f.yaml:1: nmae: unknown key; did you mean "name"?`}},
		{"far key", "zzzzzz: a\n", []string{`f.yaml:1: zzzzzz: unknown key; the keys here are name, port, on, addr, nets, tags, items`}},
		{"tag - is not a key", "Secret: s\n", []string{`f.yaml:1: Secret: unknown key; the keys here are name, port, on, addr, nets, tags, items`}},
		{"quoted number", "port: \"3\"\n", []string{`f.yaml:1: port: "3" is quoted text, not a number; write it without quotes`}},
		{"bool words", "on: yes\n", []string{`f.yaml:1: on: "yes" is not true or false`}},
		{"bad address", "addr: 300.1.1.1\n", []string{`f.yaml:1: addr: "300.1.1.1" is not an IP address (like "10.0.1.5")`}},
		{"scalar for list", "nets: 10.0.0.0/8\n", []string{`f.yaml:1: nets: "10.0.0.0/8" is a single value, not a list; write [10.0.0.0/8]`}},
		{"nested unknown", "items:\n  - {label: x, frm: y}\n", []string{`f.yaml:2: items[0].frm: unknown key; did you mean "from"?`}},
		{"twice", "name: a\nname: b\n", []string{`f.yaml:2: name: is given twice (first on line 1)`}},
		{"all at once", "port: x\non: 2\n", []string{`f.yaml:1: port: "x" is not a whole number`, `f.yaml:2: on: "2" is not true or false`}},
		{"not a map", "- a\n", []string{`f.yaml:1: the file must be a map of keys, not a list`}},
		{"two documents", "name: a\n---\nname: b\n", []string{`f.yaml:2: the file holds more than one YAML document (separated by ---); put everything in one`}},
		{"tab", "name: a\nport:\n\t- 1\n", []string{`f.yaml:3: invalid YAML: this line is indented with a tab; indent with spaces`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s sample
			r := Decode("f.yaml", []byte(tc.in), &s, Options{Tag: "yaml"})
			err := r.Errs.Err()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestLinesAndAliases(t *testing.T) {
	var s sample
	r := Decode("f.yaml", []byte("x-base: &b {label: l, from: f}\nitems:\n  - *b\n  - {<<: *b, from: g}\n"), &s, Options{Tag: "yaml"})
	if err := r.Errs.Err(); err != nil {
		t.Fatal(err)
	}
	if len(s.Items) != 2 || s.Items[0] != (inner{"l", "f"}) || s.Items[1] != (inner{"l", "g"}) {
		t.Errorf("items = %+v, want the alias and the merge", s.Items)
	}
	if r.Lines["items"] != 2 || r.Lines["items[1]"] != 4 {
		t.Errorf("lines = %v, want items on 2 and items[1] on 4", r.Lines)
	}
}

// TestExpansionBudget: a few lines of nested aliases cannot expand for ever.
func TestExpansionBudget(t *testing.T) {
	in := "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := range 8 {
		name := string(rune('b' + i))
		in += "x-" + name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	in += "d: *" + prev + "\n"
	var s struct {
		D [][][][][][][][][]string `yaml:"d"`
	}
	r := Decode("f.yaml", []byte(in), &s, Options{Tag: "yaml"})
	if !r.Cut || !strings.Contains(r.Errs.Err().Error(), "expands to more than") {
		t.Fatalf("cut %v, errs %v: want the budget to stop it", r.Cut, r.Errs.Err())
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("name: a\nport: 3\nitems: [{label: x}]\n")
	f.Add("x: &a [*a]\n")
	f.Add("tags: {<<: [{a: b}], c: d}\n")
	f.Add("nets: [10.0.0.0/8, '::/0']\naddr: ::1\n")
	f.Fuzz(func(t *testing.T, in string) {
		var s sample
		r := Decode("f.yaml", []byte(in), &s, Options{Tag: "yaml"})
		for _, e := range r.Errs {
			if e.File != "f.yaml" || e.Msg == "" {
				t.Fatalf("problem without file or words: %+v", e)
			}
		}
	})
}
