package route53

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// maxSkew is how far a request's X-Amz-Date may be from the server's clock.
const maxSkew = 15 * time.Minute

const sigAlgorithm = "AWS4-HMAC-SHA256"

// authHeader is a parsed SigV4 Authorization header.
type authHeader struct {
	AccessKey     string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// parseAuthHeader reads "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/route53/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<64 hex>". Its errors are the
// text of an IncompleteSignature answer.
func parseAuthHeader(h string) (authHeader, error) {
	var a authHeader
	if len(h) > 4096 {
		return a, fmt.Errorf("the Authorization header is longer than 4096 bytes")
	}
	rest, ok := strings.CutPrefix(h, sigAlgorithm+" ")
	if !ok {
		return a, fmt.Errorf("Authorization header requires the %s algorithm (Signature Version 4)", sigAlgorithm)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return a, fmt.Errorf("Authorization header has a malformed or repeated element %q", strings.TrimSpace(part))
		}
		seen[k] = true
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[0] == "" || f[4] != "aws4_request" || len(f[1]) != 8 {
				return a, fmt.Errorf("Credential %q is not of the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request", v)
			}
			a.AccessKey, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			if v == "" {
				return a, fmt.Errorf("SignedHeaders is empty")
			}
			a.SignedHeaders = strings.Split(v, ";")
			if !sort.StringsAreSorted(a.SignedHeaders) {
				return a, fmt.Errorf("SignedHeaders %q is not sorted", v)
			}
			for _, name := range a.SignedHeaders {
				if name == "" || name != strings.ToLower(name) {
					return a, fmt.Errorf("SignedHeaders %q must list lower-case header names", v)
				}
			}
		case "Signature":
			if len(v) != 64 {
				return a, fmt.Errorf("Signature must be 64 hexadecimal characters")
			}
			if _, err := hex.DecodeString(v); err != nil {
				return a, fmt.Errorf("Signature must be 64 hexadecimal characters")
			}
			a.Signature = v
		default:
			return a, fmt.Errorf("Authorization header has an unknown element %q", k)
		}
	}
	var missing []string
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if !seen[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return a, fmt.Errorf("Authorization header requires '%s' parameter(s)", strings.Join(missing, "', '"))
	}
	if !contains(a.SignedHeaders, "host") {
		return a, fmt.Errorf("SignedHeaders must include host")
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// canonicalRequest builds SigV4's canonical request of r with the given body
// hash.
func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL.EscapedPath()))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{r.Host}
		} else {
			vals = r.Header.Values(name)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals, ","))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI encodes the path as sent once more, as every AWS service but
// S3 expects.
func canonicalURI(escaped string) string {
	if escaped == "" {
		return "/"
	}
	return uriEncode(escaped, false)
}

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v
		}
		pairs = append(pairs, kv{uriEncode(dk, true), uriEncode(dv, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p.k + "=" + p.v
	}
	return strings.Join(out, "&")
}

// uriEncode is SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ is
// %XX; '/' too when encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// signature computes the hex SigV4 signature of a canonical request.
func signature(secret string, a authHeader, amzDate, canonical string) string {
	scope := a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + sha256Hex([]byte(canonical))
	k := hmacSHA256([]byte("AWS4"+secret), a.Date)
	k = hmacSHA256(k, a.Region)
	k = hmacSHA256(k, a.Service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}
