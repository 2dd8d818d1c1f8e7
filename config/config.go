// Package config is the gateway's configuration model: the YAML file an
// operator writes (or imports from AWS's generic configuration), its AWS
// defaults, and validation against AWS's customer-gateway rules.
//
// The same model drives cgw-control, the lab's emulated AWS side and the
// tests, so both ends of a tunnel are always generated from one source.
//
// Use: Load (or Parse) decodes strictly — a misspelt key is an error with
// its line and the keys allowed there — and applies AWS's defaults; then
// Validate lists every problem (Check returns them as one error). ImportAWS
// reads AWS's "generic" XML for one VPN connection. Marshal writes YAML.
//
// Choices where AWS gives no single figure (all in validate.go):
//   - MTU 576–1446 (AWS's maximum tunnel MTU is 1446, its configs say 1399);
//     TCP MSS 536–1406 (AWS's maximum; its configs say 1379). AWS's own
//     1399/1379 pair does not satisfy MSS ≤ MTU − 40, so that is not checked.
//   - DPD interval 1 s–1 h and 1–100 retries, so lab tests can use short
//     DPD; AWS uses 10 s × 3.
//   - Rekey margin 60 s to half the phase 2 lifetime, as AWS's tunnel
//     options; phase 1 lifetime 900–28800 s, phase 2 900–3600 s and shorter
//     than phase 1; replay window 64–2048; fuzz 0–100 %.
//   - Phase 2 must have PFS groups: AWS always uses PFS. IKEv1 phase 1 may
//     not use GCM (IKEv1 has no AEAD), so IKEv1 tunnels default to CBC.
//   - Amazon-side ASN: private 64512–65534 or 4200000000–4294967294, or a
//     legacy VGW ASN (7224, 9059, 10124, 17493); the customer ASN may be
//     public, not 0 or 23456, and must differ from the Amazon side's.
//   - rekey_fuzz_percent: a zero value means "default 100" unless the YAML
//     writes 0 explicitly (Parse keeps that).
package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole gateway.
type Config struct {
	Gateway     Gateway      `yaml:"gateway"`
	Connections []Connection `yaml:"connections"`
}

// Gateway holds the host-level settings shared by every connection.
type Gateway struct {
	// Name identifies this gateway instance; pinned BPF maps live under
	// /sys/fs/bpf/cgw/<name>/.
	Name          string        `yaml:"name"`
	Outside       Interface     `yaml:"outside"`
	Inside        Interface     `yaml:"inside"`
	Dataplane     Dataplane     `yaml:"dataplane"`
	Observability Observability `yaml:"observability"`
	// Testing relaxes AWS's rules for labs and tests; see Testing.
	Testing Testing `yaml:"testing,omitempty"`
}

// Testing holds escape hatches for labs and tests only (bench/interop
// drives cgw's own timers against strongSwan with them). Each one set
// makes a configuration that AWS would not accept or that needlessly
// churns SAs: `cgwctl config check` lists each as a warning and
// cgw-control logs it at WARN on every start. Never set them on a gateway
// that talks to AWS; `cgwctl config import` never writes them.
type Testing struct {
	// ShortLifetimes lowers the phase 1 and phase 2 lifetime minimums from
	// 900 s to LabMinLifetime and the rekey margin minimum from 60 s to
	// LabMinRekeyMargin; every other rule stays.
	ShortLifetimes bool `yaml:"short_lifetimes,omitempty"`
	// NonAWSGroups accepts the DH groups AWS does not offer (LabDHGroups:
	// 31, Curve25519, RFC 8031) in both phases.
	NonAWSGroups bool `yaml:"non_aws_dh_groups,omitempty"`
}

// Interface is one NIC of the gateway.
type Interface struct {
	Name string `yaml:"interface"`
	// Address is the gateway's address on the NIC with its prefix length,
	// e.g. 192.0.2.10/24.
	Address netip.Prefix `yaml:"address"`
	// NextHop is the router to send through (outside: towards AWS; inside:
	// towards on-premises networks that are not on-link). Optional.
	// (No omitempty: yaml.v3 sees every netip.Addr as empty.)
	NextHop netip.Addr `yaml:"next_hop"`
}

// Dataplane tunes cgw-dataplane.
type Dataplane struct {
	// CPUs lists the cores the workers are pinned to, one worker per core
	// and NIC queue. Empty means all online CPUs.
	CPUs []int `yaml:"cpus,omitempty"`
	// BatchSize is the number of descriptors a worker handles per ring
	// operation (default 64).
	BatchSize int `yaml:"batch_size,omitempty"`
	// RingSize is every AF_XDP ring's size (default 1024), a power of two
	// 256–16384, as ethtool -G sizes a NIC's rings: larger absorbs longer
	// bursts and stalls, at 4 × ring_size frames of 4 KiB per worker.
	RingSize int `yaml:"ring_size,omitempty"`
	// ZeroCopy makes cgw-dataplane refuse to start unless its AF_XDP
	// sockets bind in zero-copy mode (as -zero-copy).
	ZeroCopy bool `yaml:"zero_copy,omitempty"`
}

// Observability holds the listening endpoints of both processes.
type Observability struct {
	ControlMetrics   string `yaml:"control_metrics,omitempty"`   // host:port for cgw-control's /metrics
	DataplaneMetrics string `yaml:"dataplane_metrics,omitempty"` // host:port for cgw-dataplane's /metrics
	StatusSocket     string `yaml:"status_socket,omitempty"`     // unix socket of the status API (cgwctl)
	// GoBGPAPI serves the embedded GoBGP's gRPC API (the gobgp CLI):
	// off (default), unix:///path (root only) or host:port; see
	// ParseGoBGPAPI for what each needs.
	GoBGPAPI    string    `yaml:"gobgp_api,omitempty"`
	GoBGPAPITLS *TLSFiles `yaml:"gobgp_api_tls,omitempty"` // mutual TLS for a TCP gobgp_api
}

// Routing modes of a VPN connection.
const (
	RoutingBGP    = "bgp"
	RoutingStatic = "static"
)

// Connection is one AWS Site-to-Site VPN connection: two tunnels and how
// routes are exchanged over them.
type Connection struct {
	Name string `yaml:"name"`
	// AWSID is AWS's VPN connection id (vpn-…), kept for reference when
	// the configuration was imported.
	AWSID   string   `yaml:"aws_vpn_connection_id,omitempty"`
	Routing string   `yaml:"routing"` // "bgp" or "static"
	BGP     *BGP     `yaml:"bgp,omitempty"`
	Static  []string `yaml:"static_routes,omitempty"` // remote (VPC) prefixes, static mode
	Tunnels []Tunnel `yaml:"tunnels"`
}

// BGP is the connection's BGP setting; one session runs per tunnel.
type BGP struct {
	LocalASN uint32   `yaml:"local_asn"`
	PeerASN  uint32   `yaml:"peer_asn"`
	HoldTime Duration `yaml:"hold_time"`
	// Advertise lists the on-premises prefixes announced to AWS (≤100).
	Advertise []string `yaml:"advertise"`
}

// DPD actions (AWS's "DPD timeout action").
const (
	DPDClear   = "clear"
	DPDRestart = "restart"
	DPDNone    = "none"
)

// Startup actions (AWS's "startup action"; the gateway initiates by default).
const (
	StartupStart = "start" // initiate IKE at once and keep the tunnel up
	StartupAdd   = "add"   // wait for the peer to initiate
)

// NAT traversal modes.
const (
	NATAuto  = "auto"  // RFC 7296 §2.23 detection, switch to UDP 4500 if NAT is seen
	NATForce = "force" // always UDP-encapsulate (UDP 4500)
	NATOff   = "off"
)

// Tunnel is one IPsec tunnel to one AWS endpoint.
type Tunnel struct {
	// Name defaults to "<connection>-t1" / "-t2".
	Name string `yaml:"name,omitempty"`
	// AWSOutside is the AWS endpoint's public address.
	AWSOutside netip.Addr `yaml:"aws_outside_address"`
	// LocalOutside is the gateway's address for this tunnel; defaults to
	// gateway.outside.address.
	LocalOutside netip.Addr `yaml:"local_outside_address"`
	// InsideCIDR is the /30 from 169.254.0.0/16: the first usable address
	// is AWS's, the second the gateway's.
	InsideCIDR   netip.Prefix `yaml:"inside_cidr"`
	PreSharedKey string       `yaml:"pre_shared_key"`
	IKEVersion   int          `yaml:"ike_version"` // 1 or 2
	Phase1       Phase        `yaml:"phase1"`
	Phase2       Phase        `yaml:"phase2"`
	RekeyMargin  Duration     `yaml:"rekey_margin"`
	// RekeyFuzz is the percentage by which the margin is randomly
	// increased, as strongSwan's rekey fuzz.
	RekeyFuzz     int    `yaml:"rekey_fuzz_percent"`
	ReplayWindow  int    `yaml:"replay_window"`
	DPD           DPD    `yaml:"dpd"`
	NATTraversal  string `yaml:"nat_traversal"`
	MTU           int    `yaml:"mtu"`
	TCPMSS        int    `yaml:"tcp_mss"`
	ClearDF       bool   `yaml:"clear_df"`
	StartupAction string `yaml:"startup_action"`
	// ASPathPrepend is how many times the local ASN is prepended to routes
	// advertised over this tunnel, to make AWS prefer the other tunnel.
	ASPathPrepend int `yaml:"as_path_prepend,omitempty"`
}

// Phase is an IKE (phase 1) or IPsec/child (phase 2) proposal. Algorithm
// names are AWS's spellings: AES128, AES256, AES128-GCM-16,
// AES256-GCM-16; SHA1, SHA2-256, SHA2-384, SHA2-512.
type Phase struct {
	Encryption []string `yaml:"encryption"`
	Integrity  []string `yaml:"integrity"`
	// DHGroups are the phase 1 groups, or the PFS groups of phase 2.
	DHGroups []int    `yaml:"dh_groups"`
	Lifetime Duration `yaml:"lifetime"`
	// LifetimeBytes is phase 2 only: the Child SA is rekeyed before either
	// direction carries this many bytes and no longer used once it has
	// (0: none, AWS's setting: AWS uses time lifetimes only). IKEv2 does
	// not negotiate it (RFC 7296 §2.8: each end keeps its own lifetimes).
	LifetimeBytes uint64 `yaml:"lifetime_bytes,omitempty"`
}

// DPD is dead peer detection.
type DPD struct {
	Interval Duration `yaml:"interval"`
	Retries  int      `yaml:"retries"`
	Action   string   `yaml:"action"`
}

// Duration is a time.Duration written in YAML either as Go duration text
// ("30s", "8h") or as a whole number of seconds, as AWS writes lifetimes.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Seconds returns d in whole seconds.
func (d Duration) Seconds() int { return int(time.Duration(d) / time.Second) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as whole seconds with an "s" ("28800s",
// as AWS states lifetimes), or as Go duration text when it has a
// fraction of a second.
func (d Duration) MarshalYAML() (any, error) {
	if time.Duration(d)%time.Second == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/time.Second), 10) + "s", nil
	}
	return time.Duration(d).String(), nil
}

// UnmarshalYAML accepts "30s" or 30.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		if secs < 0 || secs > int64(1<<62/int64(time.Second)) {
			return fmt.Errorf("line %d: duration %q out of range", n.Line, s)
		}
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (write e.g. 30s, 8h or a number of seconds)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// LocalInside returns the gateway's tunnel inside address (the second
// usable address of the /30; AWS takes the first).
func (t *Tunnel) LocalInside() netip.Addr {
	return t.InsideCIDR.Masked().Addr().Next().Next()
}

// AWSInside returns the AWS side's tunnel inside address.
func (t *Tunnel) AWSInside() netip.Addr {
	return t.InsideCIDR.Masked().Addr().Next()
}

// Tunnel finds a tunnel by name and returns it with its connection.
func (c *Config) Tunnel(name string) (*Connection, *Tunnel, bool) {
	for i := range c.Connections {
		cn := &c.Connections[i]
		for j := range cn.Tunnels {
			if cn.Tunnels[j].Name == name {
				return cn, &cn.Tunnels[j], true
			}
		}
	}
	return nil, nil, false
}
