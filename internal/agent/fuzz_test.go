package agent

import (
	"testing"
)

// Address sources come from flags and files.
func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"10.0.1.5", "2001:db8::5", "iface:eth0", "url:http://169.254.169.254/latest/meta-data/local-ipv4",
		"route:10.0.0.1", "route:[::1]:53", "cmd:hostname -I", "dns:x", "url:", ":", "route:a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSource(spec)
		if err != nil {
			return
		}
		again, err := ParseSource(s.String())
		if err != nil || again.Kind != s.Kind || again.Arg != s.Arg || again.Addr != s.Addr {
			t.Fatalf("%q parsed to %+v, whose String %q reads back as %+v, %v", spec, s, s.String(), again, err)
		}
	})
}

// Metadata endpoints and commands answer whatever they like.
func FuzzParseAddrText(f *testing.F) {
	for _, s := range []string{"10.0.1.5\n", " 10.0.1.5 172.17.0.1", "::ffff:10.0.0.1", "<html>", "", "0.0.0.0", "fe80::1%eth0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		a, err := ParseAddrText(text)
		if err == nil && (!a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Is4In6()) {
			t.Fatalf("%q gave unusable address %v", text, a)
		}
	})
}

// Config files are written by hand.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(goodFile))
	for _, s := range []string{"", "service: db\n", "tll: 5s", "- x", "a: &a [*a]", "ttl: 1x\nport: x\n", "service: db\n---\n", "alternates: [{label: 1}]", "ca_file: /etc/ca.pem\ncert_file: a.pem\n", "key_file: k.pem\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			return
		}
		c.SetDefaults()
		_ = c.Validate()
		_ = c.Sources()
	})
}
