package route53

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// AWS's published Signature Version 4 example (IAM ListUsers, 2015-08-30).
func TestSignatureAWSExample(t *testing.T) {
	r := httptest.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	a, err := parseAuthHeader("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	if err != nil {
		t.Fatal(err)
	}
	canon := canonicalRequest(r, a.SignedHeaders, sha256Hex(nil))
	if got, want := sha256Hex([]byte(canon)), "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"; got != want {
		t.Fatalf("canonical request hash: got %s, want %s\n%s", got, want, canon)
	}
	if got := signature("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", a, "20150830T123600Z", canon); got != a.Signature {
		t.Fatalf("signature: got %s, want %s", got, a.Signature)
	}
}

// sign signs r as botocore does (host and x-amz-date).
func sign(r *http.Request, body []byte, key, secret string, at time.Time) {
	amz := at.UTC().Format("20060102T150405Z")
	r.Header.Set("X-Amz-Date", amz)
	a := authHeader{AccessKey: key, Date: amz[:8], Region: "us-east-1", Service: "route53", SignedHeaders: []string{"host", "x-amz-date"}}
	sig := signature(secret, a, amz, canonicalRequest(r, a.SignedHeaders, sha256Hex(body)))
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/"+a.Date+"/us-east-1/route53/aws4_request, SignedHeaders=host;x-amz-date, Signature="+sig)
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	h := New(Options{Now: func() time.Time { return now }, Credentials: []Credential{{AccessKeyID: "ops", Secret: "s3cret", Access: AccessWrite}}})
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		want   string // error code, "" for accepted
	}{
		{"signed", func(r *http.Request) { sign(r, nil, "ops", "s3cret", now) }, ""},
		{"14 minutes fast", func(r *http.Request) { sign(r, nil, "ops", "s3cret", now.Add(14*time.Minute)) }, ""},
		{"16 minutes old", func(r *http.Request) { sign(r, nil, "ops", "s3cret", now.Add(-16*time.Minute)) }, "SignatureDoesNotMatch"},
		{"wrong secret", func(r *http.Request) { sign(r, nil, "ops", "other", now) }, "SignatureDoesNotMatch"},
		{"unknown key", func(r *http.Request) { sign(r, nil, "nobody", "s3cret", now) }, "InvalidClientTokenId"},
		{"no header", func(r *http.Request) {}, "MissingAuthenticationToken"},
		{"changed after signing", func(r *http.Request) { sign(r, nil, "ops", "s3cret", now); r.URL.RawQuery = "maxitems=2" }, "SignatureDoesNotMatch"},
		{"no date", func(r *http.Request) { sign(r, nil, "ops", "s3cret", now); r.Header.Del("X-Amz-Date") }, "IncompleteSignature"},
		{"version 2", func(r *http.Request) { r.Header.Set("Authorization", "AWS ops:abc") }, "IncompleteSignature"},
		{"no signature", func(r *http.Request) {
			sign(r, nil, "ops", "s3cret", now)
			r.Header.Set("Authorization", strings.Split(r.Header.Get("Authorization"), ", Signature=")[0])
		}, "IncompleteSignature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1:9400/2013-04-01/hostedzone", nil)
			tc.mutate(r)
			_, err := h.authenticate(r, nil)
			got := ""
			if err != nil {
				got = err.(*apiError).code
			}
			if got != tc.want {
				t.Fatalf("got %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// Without tokens every request is refused, unless insecure_unsigned.
func TestNoCredentials(t *testing.T) {
	r := httptest.NewRequest("GET", "http://127.0.0.1:9400/2013-04-01/hostedzone", nil)
	if _, err := New(Options{}).authenticate(r, nil); err == nil || err.(*apiError).code != "InvalidClientTokenId" {
		t.Fatalf("no tokens: got %v, want InvalidClientTokenId", err)
	}
	if c, err := New(Options{InsecureUnsigned: true}).authenticate(r, nil); err != nil || c.Access != AccessWrite {
		t.Fatalf("insecure_unsigned: got %v, %v; want a write credential", c, err)
	}
}

// The answer to an oversized body is Route 53's error XML, before any
// signature work.
func TestBodyLimit(t *testing.T) {
	h := New(Options{InsecureUnsigned: true})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/2013-04-01/healthcheck", bytes.NewReader(make([]byte, maxBody+1))))
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "<Code>InvalidInput</Code>") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestParseChangeRequestLimits(t *testing.T) {
	change := func(n int, value string) string {
		var b strings.Builder
		b.WriteString(`<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes>`)
		for range n {
			b.WriteString(`<Change><Action>UPSERT</Action><ResourceRecordSet><Name>a.cluster.test</Name><Type>TXT</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>` + value + `</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>`)
		}
		b.WriteString(`</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`)
		return b.String()
	}
	tests := []struct {
		name, body, want string
	}{
		{"one change", change(1, "x"), ""},
		{"1001 changes", change(1001, "x"), "[Number of changes limit of 1000 exceeded.]"},
		{"32001 characters", change(2, strings.Repeat("x", 16001)), "[RDATA character limit of 32000 exceeded.]"},
		{"no changes", change(0, ""), "Member must not be null"},
		{"not XML", "{}", "malformed"},
		{"two roots", change(1, "x") + "<x/>", "more than one root element"},
		{"other operation", `<CreateHealthCheckRequest/>`, "does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseChangeRequest([]byte(tc.body))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tc.want == "" && err != nil || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
