package route53

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seamark/seamark/internal/registry"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ZoneID is the stable Route 53 hosted zone ID of a seamark zone: "Z" and 20
// base32 characters of the SHA-256 of its fully qualified name.
func ZoneID(zone string) string {
	s := sha256.Sum256([]byte(zone))
	return "Z" + b32.EncodeToString(s[:])[:20]
}

// changeID encodes the store revision a change reached and when it was
// submitted, so GetChange needs no state of its own.
func changeID(rev int64, at time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(rev))
	binary.BigEndian.PutUint32(b[8:], uint32(at.Unix()))
	return "C" + b32.EncodeToString(b[:])
}

func parseChangeID(id string) (rev int64, at time.Time, ok bool) {
	id = strings.TrimPrefix(id, "/change/")
	s, found := strings.CutPrefix(id, "C")
	if !found || len(s) != 20 {
		return 0, time.Time{}, false
	}
	b, err := b32.DecodeString(s)
	if err != nil || len(b) != 12 {
		return 0, time.Time{}, false
	}
	rev = int64(binary.BigEndian.Uint64(b[:8]))
	if rev <= 0 {
		return 0, time.Time{}, false
	}
	return rev, time.Unix(int64(binary.BigEndian.Uint32(b[8:])), 0), true
}

func (h *Handler) zoneByID(snap *registry.Snapshot, id string) (string, error) {
	id = strings.TrimPrefix(id, "/hostedzone/")
	for _, z := range snap.Zones() {
		if ZoneID(z) == id {
			return z, nil
		}
	}
	return "", &apiError{status: http.StatusNotFound, code: "NoSuchHostedZone", msg: "No hosted zone found with ID: " + id}
}

func hostedZone(zone string, sets int) xmlHostedZone {
	return xmlHostedZone{
		ID: "/hostedzone/" + ZoneID(zone), Name: zone, CallerReference: "seamark:" + zone,
		Comment: "served by seamark", ResourceRecordSetCount: sets,
	}
}

// setCounts counts the record sets of every zone in one pass.
func setCounts(snap *registry.Snapshot) map[string]int {
	out := map[string]int{}
	for _, z := range snap.Zones() {
		if zr := snap.Records(z); zr != nil {
			out[z] = len(zr.Sets)
		}
	}
	for _, sv := range snap.Services() {
		for _, n := range sv.Nodes() {
			if n.Tags[tagSetID] != "" {
				out[n.Tags[tagZone]]++
			}
		}
	}
	return out
}

// reverseName orders names the way Route 53 lists them: by labels from the
// right ("com.example.www").
func reverseName(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

func maxItems(r *http.Request, def, most int) (int, error) {
	v := r.URL.Query().Get("maxitems")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalidInput("maxitems %q is not a positive whole number", v)
	}
	return min(n, most), nil
}

func (h *Handler) listHostedZones(w http.ResponseWriter, r *http.Request, _ []byte) error {
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	limit, err := maxItems(r, 100, 100)
	if err != nil {
		return err
	}
	marker := r.URL.Query().Get("marker")
	type resp struct {
		XMLName     xml.Name        `xml:"ListHostedZonesResponse"`
		Xmlns       string          `xml:"xmlns,attr"`
		HostedZones []xmlHostedZone `xml:"HostedZones>HostedZone"`
		Marker      string          `xml:"Marker,omitempty"`
		IsTruncated bool            `xml:"IsTruncated"`
		NextMarker  string          `xml:"NextMarker,omitempty"`
		MaxItems    int             `xml:"MaxItems"`
	}
	out := resp{Xmlns: xmlns, Marker: marker, MaxItems: limit, HostedZones: []xmlHostedZone{}}
	counts := setCounts(snap)
	started := marker == ""
	for _, z := range snap.Zones() {
		if !started {
			if started = ZoneID(z) == marker; !started {
				continue
			}
		}
		if len(out.HostedZones) == limit {
			out.IsTruncated, out.NextMarker = true, ZoneID(z)
			break
		}
		out.HostedZones = append(out.HostedZones, hostedZone(z, counts[z]))
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

func (h *Handler) listHostedZonesByName(w http.ResponseWriter, r *http.Request, _ []byte) error {
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	limit, err := maxItems(r, 100, 100)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	dnsName, startID := q.Get("dnsname"), q.Get("hostedzoneid")
	if startID != "" && dnsName == "" {
		return invalidInput("hostedzoneid needs dnsname too")
	}
	from := ""
	if dnsName != "" {
		from = reverseName(normName(dnsName))
	}
	zones := slices.Clone(snap.Zones())
	slices.SortFunc(zones, func(a, b string) int { return strings.Compare(reverseName(a), reverseName(b)) })
	type resp struct {
		XMLName          xml.Name        `xml:"ListHostedZonesByNameResponse"`
		Xmlns            string          `xml:"xmlns,attr"`
		HostedZones      []xmlHostedZone `xml:"HostedZones>HostedZone"`
		DNSName          string          `xml:"DNSName,omitempty"`
		HostedZoneID     string          `xml:"HostedZoneId,omitempty"`
		IsTruncated      bool            `xml:"IsTruncated"`
		NextDNSName      string          `xml:"NextDNSName,omitempty"`
		NextHostedZoneID string          `xml:"NextHostedZoneId,omitempty"`
		MaxItems         int             `xml:"MaxItems"`
	}
	counts := setCounts(snap)
	out := resp{Xmlns: xmlns, DNSName: dnsName, HostedZoneID: startID, MaxItems: limit, HostedZones: []xmlHostedZone{}}
	for _, z := range zones {
		if reverseName(z) < from {
			continue
		}
		if len(out.HostedZones) == limit {
			out.IsTruncated, out.NextDNSName, out.NextHostedZoneID = true, z, ZoneID(z)
			break
		}
		out.HostedZones = append(out.HostedZones, hostedZone(z, counts[z]))
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

func (h *Handler) getHostedZone(w http.ResponseWriter, r *http.Request, _ []byte) error {
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	zone, err := h.zoneByID(snap, r.PathValue("id"))
	if err != nil {
		return err
	}
	type resp struct {
		XMLName     xml.Name      `xml:"GetHostedZoneResponse"`
		Xmlns       string        `xml:"xmlns,attr"`
		HostedZone  xmlHostedZone `xml:"HostedZone"`
		NameServers []string      `xml:"DelegationSet>NameServers>NameServer"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns, HostedZone: hostedZone(zone, len(recordSets(snap, zone))), NameServers: []string{"ns." + zone}})
	return nil
}

func (h *Handler) getChange(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id := r.PathValue("id")
	rev, at, ok := parseChangeID(id)
	if !ok {
		return &apiError{status: http.StatusNotFound, code: "NoSuchChange", msg: "A change with the specified change ID does not exist: " + id}
	}
	snap, err := h.snapshot()
	if err != nil {
		return err
	}
	type resp struct {
		XMLName    xml.Name   `xml:"GetChangeResponse"`
		Xmlns      string     `xml:"xmlns,attr"`
		ChangeInfo changeInfo `xml:"ChangeInfo"`
	}
	writeXML(w, http.StatusOK, resp{Xmlns: xmlns, ChangeInfo: info(snap, rev, at, "")})
	return nil
}

// info reports a change: INSYNC once the local snapshot (which DNS answers
// from) reflects its revision, PENDING before.
func info(snap *registry.Snapshot, rev int64, at time.Time, comment string) changeInfo {
	status := "PENDING"
	if snap != nil && snap.Revision >= rev {
		status = "INSYNC"
	}
	return changeInfo{ID: "/change/" + changeID(rev, at), Status: status, SubmittedAt: at.UTC().Format("2006-01-02T15:04:05.000Z"), Comment: comment}
}
