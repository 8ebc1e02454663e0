package route53

import (
	"testing"
)

// A request as botocore serializes it (the seed start script's UPSERT).
const botocoreChange = `<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Comment>node start: add 127.0.46.1</Comment><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>db.cluster.test</Name><Type>A</Type><SetIdentifier>127.0.46.1</SetIdentifier><MultiValueAnswer>true</MultiValueAnswer><TTL>5</TTL><ResourceRecords><ResourceRecord><Value>127.0.46.1</Value></ResourceRecord></ResourceRecords><HealthCheckId>0e2f1c4a-7d3b-4c2e-9f1a-5b6c7d8e9f00</HealthCheckId></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`

// FuzzChangeRequest: any body either fails with a Route 53 error or yields
// changes that parseSet either accepts or refuses, without panicking.
func FuzzChangeRequest(f *testing.F) {
	f.Add([]byte(botocoreChange))
	f.Add([]byte(`<ChangeResourceRecordSetsRequest><ChangeBatch><Changes><Change><Action>DELETE</Action><ResourceRecordSet><Name>seeds.cluster.test.</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>127.0.46.11</Value></ResourceRecord><ResourceRecord><Value>127.0.46.12</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`))
	f.Add([]byte(`<ChangeResourceRecordSetsRequest><ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>\052.cluster.test</Name><Type>TXT</Type><Weight>10</Weight><SetIdentifier>a</SetIdentifier><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>"v=spf1 -all"</Value></ResourceRecord></ResourceRecords><AliasTarget><DNSName>x</DNSName></AliasTarget></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><ChangeResourceRecordSetsRequest/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseChangeRequest(data)
		if err != nil {
			if _, ok := err.(*apiError); !ok {
				t.Fatalf("error %v is not a Route 53 error", err)
			}
			return
		}
		for _, ch := range req.ChangeBatch.Changes {
			s, err := parseSet(ch, "cluster.test.")
			if err == nil && s.key.name == "" {
				t.Fatalf("accepted a set without a name: %+v", ch)
			}
		}
	})
}

func FuzzCreateHealthCheck(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<CreateHealthCheckRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><CallerReference>db-127.0.46.1-3000</CallerReference><HealthCheckConfig><IPAddress>127.0.46.1</IPAddress><Port>3000</Port><Type>TCP</Type><RequestInterval>10</RequestInterval><FailureThreshold>2</FailureThreshold></HealthCheckConfig></CreateHealthCheckRequest>`))
	f.Add([]byte(`<CreateHealthCheckRequest><CallerReference>x</CallerReference><HealthCheckConfig><FullyQualifiedDomainName>db.example.com</FullyQualifiedDomainName><Type>HTTPS_STR_MATCH</Type><ResourcePath>/health</ResourcePath><SearchString>ok</SearchString><EnableSNI>true</EnableSNI></HealthCheckConfig></CreateHealthCheckRequest>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req createHealthCheckRequest
		if decodeXML(data, &req) != nil {
			return
		}
		if checkConfig(&req.Config) == nil {
			chk, port := seamarkCheck(req.Config)
			if errs := chk.Validate(); len(errs) > 0 || port < 1 || port > 65535 {
				t.Fatalf("accepted %+v but it maps to an invalid check %+v port %d: %v", req.Config, chk, port, errs)
			}
		}
	})
}

func FuzzAuthHeader(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=ops/20261207/us-east-1/route53/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
	f.Add("AWS ops:signature")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthHeader(h)
		if err != nil {
			return
		}
		if a.AccessKey == "" || len(a.Signature) != 64 || !contains(a.SignedHeaders, "host") {
			t.Fatalf("accepted %q as %+v", h, a)
		}
	})
}
