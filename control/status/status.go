// Package status is cgw-control's status API: JSON over a unix socket
// (HTTP/1.1, mode 0600). The server side serves whatever a Source reports;
// the Client is what cgwctl and the tests use, so the API is the product
// and the CLI only one of its clients (GoBGP-style, STYLE.md).
//
// Endpoints: GET /v1/status (everything), /v1/tunnels, /v1/routes,
// /v1/neighbors; POST /v1/tunnels/{name}/rekey-child, /rekey-ike,
// /initiate (when the source is an Actor); POST /v1/reload (a Reloader);
// GET /v1/events, a stream of JSON lines (an EventSource).
package status

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Status is a snapshot of the whole control process.
type Status struct {
	Gateway   string     `json:"gateway"` // instance name
	Pid       int        `json:"pid"`
	Started   time.Time  `json:"started"`
	Time      time.Time  `json:"time"`
	Maps      string     `json:"maps"` // "open", or why not
	Tunnels   []Tunnel   `json:"tunnels"`
	Routes    []Route    `json:"routes"`
	Neighbors []Neighbor `json:"neighbors"`
	// Guards are the prefixes the kernel guards cover (control/kernelguard:
	// unreachable routes, proto 203, that hold when XDP is gone).
	Guards []netip.Prefix `json:"guards,omitempty"`
	// GuardsAdopted counts the guards kept only as adopted (a previous
	// process's or the state file's) until routing has converged;
	// GuardRepairs the guards found missing from the kernel and put back;
	// GuardErrors the route installs and removals the kernel refused.
	GuardsAdopted int    `json:"guards_adopted,omitempty"`
	GuardRepairs  uint64 `json:"guard_repairs,omitempty"`
	GuardErrors   uint64 `json:"guard_errors,omitempty"`
}

// Tunnel is one configured tunnel.
type Tunnel struct {
	Name        string         `json:"name"`
	Connection  string         `json:"connection"`
	ID          uint32         `json:"id"` // the dataplane's tunnel id
	State       string         `json:"state"`
	Local       netip.AddrPort `json:"local"`
	Peer        netip.AddrPort `json:"peer"`
	InsideLocal netip.Prefix   `json:"inside_local"`
	InsidePeer  netip.Addr     `json:"inside_peer"`
	Uptime      Duration       `json:"uptime"` // 0 when not up
	NAT         bool           `json:"nat"`    // ESP in UDP (RFC 3948)
	LastError   string         `json:"last_error,omitempty"`
	IKE         *IKESA         `json:"ike,omitempty"`
	Children    []ChildSA      `json:"children,omitempty"`
	// Stale lists SA indexes a previous cgw-control left in the maps
	// that this one has not yet replaced.
	Stale []uint32 `json:"stale,omitempty"`
}

// IKESA is a tunnel's IKE SA.
type IKESA struct {
	Version      int      `json:"version"` // IKE major version: 1 or 2
	SPIi         string   `json:"spi_i"`
	SPIr         string   `json:"spi_r"`
	Initiator    bool     `json:"initiator"`
	Proposal     string   `json:"proposal"`
	Age          Duration `json:"age"`
	LifetimeLeft Duration `json:"lifetime_left"`
	RekeyIn      Duration `json:"rekey_in"`
}

// ChildSA is one ESP SA pair with the dataplane's counters.
type ChildSA struct {
	InSPI        uint32   `json:"in_spi"`
	OutSPI       uint32   `json:"out_spi"`
	Suite        string   `json:"suite"`
	Active       bool     `json:"active"` // carries outbound traffic
	Deleting     bool     `json:"deleting,omitempty"`
	Encap        bool     `json:"encap"`
	Age          Duration `json:"age"`
	LifetimeLeft Duration `json:"lifetime_left"`
	RekeyIn      Duration `json:"rekey_in"`
	InIndex      uint32   `json:"in_index"` // SA table slots
	OutIndex     uint32   `json:"out_index"`
	In           Counters `json:"in"`
	Out          Counters `json:"out"`
}

// Counters are one SA's dataplane counters.
type Counters struct {
	Packets    uint64 `json:"packets"`
	Bytes      uint64 `json:"bytes"`
	Seq        uint64 `json:"seq"` // highest inbound / last reserved outbound
	DropReplay uint64 `json:"drop_replay,omitempty"`
	DropAuth   uint64 `json:"drop_auth,omitempty"`
	DropOther  uint64 `json:"drop_other,omitempty"`
	// Idle is how long ago the last good packet was counted; -1 for never.
	Idle Duration `json:"idle"`
}

// Route is one selected route (the LPM map's content as the RIB sees it).
type Route struct {
	Prefix  netip.Prefix `json:"prefix"`
	Source  string       `json:"source"` // static, bgp, or adopted (Stale)
	Tunnel  string       `json:"tunnel"`
	Backup  string       `json:"backup,omitempty"`
	Reason  string       `json:"reason"` // why the primary won
	ASPath  []uint32     `json:"as_path,omitempty"`
	NextHop netip.Addr   `json:"next_hop,omitzero"`
	Pending bool         `json:"pending,omitempty"` // not yet in the map
	// Stale: left by a previous cgw-control and not re-learnt yet.
	Stale bool `json:"stale,omitempty"`
}

// Neighbor is one BGP session.
type Neighbor struct {
	Tunnel   string     `json:"tunnel"`
	Local    netip.Addr `json:"local"`
	Peer     netip.Addr `json:"peer"`
	LocalASN uint32     `json:"local_asn"`
	PeerASN  uint32     `json:"peer_asn"`
	State    string     `json:"state"`
	Routes   int        `json:"routes"` // installed through this tunnel
}

// Tunnel returns the tunnel named name.
func (s *Status) Tunnel(name string) (*Tunnel, bool) {
	for i := range s.Tunnels {
		if s.Tunnels[i].Name == name {
			return &s.Tunnels[i], true
		}
	}
	return nil, false
}

// Active returns the tunnel's Child SA that carries outbound traffic.
func (t *Tunnel) Active() (*ChildSA, bool) {
	for i := range t.Children {
		if t.Children[i].Active {
			return &t.Children[i], true
		}
	}
	return nil, false
}

// Duration is a time.Duration written in JSON as Go duration text
// ("1m30s"), readable with curl.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	if d < 0 {
		return "-"
	}
	return time.Duration(d).Round(time.Second).String()
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"1m30s\": %w", err)
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
