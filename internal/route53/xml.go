package route53

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// xmlns is Route 53's namespace, on every response.
const xmlns = "https://route53.amazonaws.com/doc/2013-04-01/"

// Route 53's limits on one ChangeResourceRecordSets request.
const (
	maxBody       = 1 << 20 // bytes of a request body
	maxChanges    = 1000    // Change elements
	maxRecords    = 1000    // ResourceRecord elements
	maxValueChars = 32000   // characters of all Value elements
)

type changeRequest struct {
	XMLName     xml.Name    `xml:"ChangeResourceRecordSetsRequest"`
	ChangeBatch changeBatch `xml:"ChangeBatch"`
}

type changeBatch struct {
	Comment string   `xml:"Comment,omitempty"`
	Changes []change `xml:"Changes>Change"`
}

type change struct {
	Action string `xml:"Action"`
	Set    rrset  `xml:"ResourceRecordSet"`
}

type rrset struct {
	Name             string          `xml:"Name"`
	Type             string          `xml:"Type"`
	SetIdentifier    string          `xml:"SetIdentifier,omitempty"`
	Weight           *int64          `xml:"Weight,omitempty"`
	Region           string          `xml:"Region,omitempty"`
	GeoLocation      *struct{}       `xml:"GeoLocation,omitempty"`
	Failover         string          `xml:"Failover,omitempty"`
	MultiValueAnswer *bool           `xml:"MultiValueAnswer,omitempty"`
	TTL              *int64          `xml:"TTL,omitempty"`
	Records          []resourceValue `xml:"ResourceRecords>ResourceRecord,omitempty"`
	AliasTarget      *struct{}       `xml:"AliasTarget,omitempty"`
	HealthCheckID    string          `xml:"HealthCheckId,omitempty"`
	CIDRRouting      *struct{}       `xml:"CidrRoutingConfig,omitempty"`
	TrafficPolicy    string          `xml:"TrafficPolicyInstanceId,omitempty"`
}

type resourceValue struct {
	Value string `xml:"Value"`
}

type createHealthCheckRequest struct {
	XMLName         xml.Name          `xml:"CreateHealthCheckRequest"`
	CallerReference string            `xml:"CallerReference"`
	Config          healthCheckConfig `xml:"HealthCheckConfig"`
}

type healthCheckConfig struct {
	IPAddress                string `xml:"IPAddress,omitempty"`
	Port                     int    `xml:"Port,omitempty"`
	Type                     string `xml:"Type"`
	ResourcePath             string `xml:"ResourcePath,omitempty"`
	FullyQualifiedDomainName string `xml:"FullyQualifiedDomainName,omitempty"`
	SearchString             string `xml:"SearchString,omitempty"`
	RequestInterval          int    `xml:"RequestInterval,omitempty"`
	FailureThreshold         int    `xml:"FailureThreshold,omitempty"`
	MeasureLatency           bool   `xml:"MeasureLatency"`
	Inverted                 bool   `xml:"Inverted"`
	Disabled                 bool   `xml:"Disabled"`
	EnableSNI                *bool  `xml:"EnableSNI,omitempty"`
	// Kinds seamark does not probe; present only to refuse them by name.
	ChildHealthChecks *struct{} `xml:"ChildHealthChecks,omitempty" json:"-"`
	AlarmIdentifier   *struct{} `xml:"AlarmIdentifier,omitempty" json:"-"`
	Regions           *struct{} `xml:"Regions,omitempty" json:"-"`
}

// decodeXML reads one XML document of at most maxBody bytes into v: the root
// element must be v's, and nothing but white space may follow it.
func decodeXML(data []byte, v any) error {
	if len(data) > maxBody {
		return fmt.Errorf("the request body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("the request body is empty; send the request XML")
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii") {
			return r, nil
		}
		return nil, fmt.Errorf("charset %q is not supported; send UTF-8", charset)
	}
	if err := dec.Decode(v); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("the request XML is malformed at line %d: %s", se.Line, se.Msg)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("the request XML is malformed: it ends before its root element does")
		}
		var ue xml.UnmarshalError
		if errors.As(err, &ue) {
			return fmt.Errorf("the request XML does not fit the operation: %s", string(ue))
		}
		return fmt.Errorf("the request XML could not be read: %v", err)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the request XML is malformed after its root element: %v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New("the request XML has text after its root element")
			}
		case xml.Comment, xml.ProcInst:
		default:
			return errors.New("the request XML has more than one root element")
		}
	}
}

// parseChangeRequest reads a ChangeResourceRecordSetsRequest and enforces
// Route 53's limits on its size.
func parseChangeRequest(data []byte) (*changeRequest, error) {
	var req changeRequest
	if err := decodeXML(data, &req); err != nil {
		return nil, &apiError{status: 400, code: "InvalidInput", msg: err.Error()}
	}
	chs := req.ChangeBatch.Changes
	if len(chs) == 0 {
		return nil, &apiError{status: 400, code: "InvalidInput", msg: "1 validation error detected: Value null at 'changeBatch.changes' failed to satisfy constraint: Member must not be null"}
	}
	if len(chs) > maxChanges {
		return nil, invalidBatch(fmt.Sprintf("Number of changes limit of %d exceeded.", maxChanges))
	}
	records, chars := 0, 0
	for _, ch := range chs {
		records += len(ch.Set.Records)
		for _, v := range ch.Set.Records {
			chars += len(v.Value)
		}
	}
	if records > maxRecords {
		return nil, invalidBatch(fmt.Sprintf("Number of records limit of %d exceeded.", maxRecords))
	}
	if chars > maxValueChars {
		return nil, invalidBatch(fmt.Sprintf("RDATA character limit of %d exceeded.", maxValueChars))
	}
	return &req, nil
}

// response types

type xmlHostedZone struct {
	ID                     string `xml:"Id"`
	Name                   string `xml:"Name"`
	CallerReference        string `xml:"CallerReference"`
	Comment                string `xml:"Config>Comment,omitempty"`
	PrivateZone            bool   `xml:"Config>PrivateZone"`
	ResourceRecordSetCount int    `xml:"ResourceRecordSetCount"`
}

type changeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

type xmlRRSet struct {
	Name             string          `xml:"Name"`
	Type             string          `xml:"Type"`
	SetIdentifier    string          `xml:"SetIdentifier,omitempty"`
	Weight           *int64          `xml:"Weight,omitempty"`
	MultiValueAnswer *bool           `xml:"MultiValueAnswer,omitempty"`
	TTL              int64           `xml:"TTL"`
	Records          []resourceValue `xml:"ResourceRecords>ResourceRecord"`
	HealthCheckID    string          `xml:"HealthCheckId,omitempty"`
}

type xmlHealthCheck struct {
	ID              string            `xml:"Id"`
	CallerReference string            `xml:"CallerReference"`
	Config          healthCheckConfig `xml:"HealthCheckConfig"`
	Version         int64             `xml:"HealthCheckVersion"`
}

type observation struct {
	Region    string `xml:"Region"`
	IPAddress string `xml:"IPAddress"`
	Status    string `xml:"StatusReport>Status"`
	CheckedAt string `xml:"StatusReport>CheckedTime"`
}
