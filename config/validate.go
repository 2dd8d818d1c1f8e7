package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration: where, what was found
// and what to do about it.
type Problem struct {
	// Path is the field's place in the YAML, e.g.
	// "connections[0].tunnels[1].pre_shared_key".
	Path string
	// Got is the offending value as shown to the operator; a pre-shared
	// key is never shown (RedactPSK).
	Got string
	// Msg says what is wrong and how to fix it, naming the tunnel or
	// connection, e.g. "tunnel vpn-1-t2: pre_shared_key must be …".
	Msg string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s (got %s)", p.Path, p.Msg, p.Got)
}

// Problems is every problem Validate found; as an error it prints them
// all, one per line.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	if len(ps) == 1 {
		b.WriteString("configuration has 1 problem:")
	} else {
		fmt.Fprintf(&b, "configuration has %d problems:", len(ps))
	}
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Check validates c and returns its problems as an error, or nil.
func (c *Config) Check() error {
	if ps := c.Validate(); len(ps) > 0 {
		return Problems(ps)
	}
	return nil
}

// Limits this package enforces. AWS's own limits where AWS states them
// (tunnel options, BGP quotas); see each rule for the reason otherwise.
const (
	MinPSKLen, MaxPSKLen            = 8, 64
	MinPhase1Lifetime               = 900 * time.Second
	MaxPhase1Lifetime               = 28800 * time.Second
	MinPhase2Lifetime               = 900 * time.Second
	MaxPhase2Lifetime               = 3600 * time.Second
	MinRekeyMargin                  = 60 * time.Second // AWS: 60 s .. phase 2 lifetime / 2
	MinLifetimeBytes                = 1 << 20          // phase2.lifetime_bytes, when set
	LabMinLifetime                  = 10 * time.Second // gateway.testing.short_lifetimes
	LabMinRekeyMargin               = 2 * time.Second  // gateway.testing.short_lifetimes
	MinReplayWindow                 = 64
	MaxReplayWindow                 = 2048
	MaxDPDInterval                  = 3600 * time.Second
	MaxDPDRetries                   = 100
	MinMTU, MaxMTU                  = 576, 1446 // 1446: AWS's largest tunnel MTU; 576: IPv4 minimum
	MinMSS, MaxMSS                  = 536, 1406 // 1406: AWS's largest MSS; 536: RFC 879 default
	MaxAdvertised                   = 100       // AWS accepts at most 100 BGP prefixes per connection
	MaxASPathPrepend                = 10
	MinHoldTime, MaxHoldTime        = 3 * time.Second, 65535 * time.Second // RFC 4271 §4.2
	MaxBatchSize                    = 1024
	MinRingSize, MaxRingSize        = 256, 16384
	TunnelsPerConnection            = 2
	asTrans                  uint32 = 23456 // RFC 6793 AS_TRANS, never a real ASN
)

// Reserved inside /30s that AWS refuses (DESIGN.md §1).
var reservedInside = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/22"),     // 169.254.0.0–3.255
	netip.MustParsePrefix("169.254.4.0/23"),     // 169.254.4.0–5.255
	netip.MustParsePrefix("169.254.169.252/30"), // instance metadata neighbourhood
}

var linkLocal = netip.MustParsePrefix("169.254.0.0/16")

var (
	pskChars = regexp.MustCompile(`^[A-Za-z0-9._]*$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

type validator struct {
	ps      []Problem
	testing Testing // gateway.testing: the lab's relaxed rules
}

func (v *validator) add(path, got, format string, args ...any) {
	v.ps = append(v.ps, Problem{Path: path, Got: got, Msg: fmt.Sprintf(format, args...)})
}

func quote(s string) string {
	if s == "" {
		return "nothing"
	}
	return strconv.Quote(s)
}

// RedactPSK is how a pre-shared key appears in a problem or a log: not
// at all. Even its length or first character would narrow a guess.
func RedactPSK(k string) string {
	if k == "" {
		return "nothing"
	}
	return "a key (not shown)"
}

// Validate checks c against AWS's customer-gateway rules and the
// gateway's own, and returns every problem found (nil if none). Run it
// after ApplyDefaults: unset fields are reported as missing.
func (c *Config) Validate() []Problem {
	v := &validator{testing: c.Gateway.Testing}
	v.gateway(&c.Gateway)
	if len(c.Connections) == 0 {
		v.add("connections", "none", "add at least one VPN connection (import one with: cgwctl config import aws.xml)")
	}
	connNames := map[string]int{}
	tunNames := map[string]string{}
	insides := map[netip.Prefix]string{}
	outsides := map[netip.Addr]string{}
	for i := range c.Connections {
		cn := &c.Connections[i]
		p := fmt.Sprintf("connections[%d]", i)
		switch {
		case cn.Name == "":
			v.add(p+".name", "nothing", "connection %d: give the connection a name (e.g. its AWS id vpn-…)", i+1)
		case !nameRE.MatchString(cn.Name):
			v.add(p+".name", quote(cn.Name), "connection %d: name must be 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit", i+1)
		}
		if cn.Name != "" {
			if k, dup := connNames[cn.Name]; dup {
				v.add(p+".name", quote(cn.Name), "connection %q: name is also used by connections[%d]; names must be unique", cn.Name, k)
			} else {
				connNames[cn.Name] = i
			}
		}
		v.connection(p, cn)
		for j := range cn.Tunnels {
			t := &cn.Tunnels[j]
			tp := fmt.Sprintf("%s.tunnels[%d]", p, j)
			label := tunnelLabel(cn, j)
			if t.Name != "" {
				if other, dup := tunNames[t.Name]; dup {
					v.add(tp+".name", quote(t.Name), "%s: name is also used by %s; tunnel names must be unique", label, other)
				} else {
					tunNames[t.Name] = tp
				}
			}
			if t.InsideCIDR.IsValid() {
				m := t.InsideCIDR.Masked()
				if other, dup := insides[m]; dup {
					v.add(tp+".inside_cidr", t.InsideCIDR.String(), "%s: inside_cidr is also used by %s; every tunnel needs its own /30", label, other)
				} else {
					insides[m] = tp
				}
			}
			if t.AWSOutside.IsValid() {
				if other, dup := outsides[t.AWSOutside]; dup {
					v.add(tp+".aws_outside_address", t.AWSOutside.String(), "%s: aws_outside_address is also used by %s; each AWS tunnel endpoint has its own address", label, other)
				} else {
					outsides[t.AWSOutside] = tp
				}
			}
			v.tunnel(tp, label, t, cn)
		}
	}
	return v.ps
}

func tunnelLabel(cn *Connection, j int) string {
	t := &cn.Tunnels[j]
	if t.Name != "" {
		return "tunnel " + t.Name
	}
	if cn.Name != "" {
		return "tunnel " + TunnelName(cn.Name, j)
	}
	return fmt.Sprintf("tunnel %d", j+1)
}

func (v *validator) gateway(g *Gateway) {
	if !nameRE.MatchString(g.Name) {
		v.add("gateway.name", quote(g.Name), "gateway name must be 1–63 letters, digits, '.', '_' or '-' (it names /sys/fs/bpf/cgw/<name>/)")
	}
	v.iface("gateway.outside", "outside", &g.Outside)
	v.iface("gateway.inside", "inside", &g.Inside)
	if g.Outside.Name != "" && g.Outside.Name == g.Inside.Name {
		v.add("gateway.inside.interface", quote(g.Inside.Name), "the inside and outside interfaces must be different NICs")
	}
	seen := map[int]bool{}
	for k, cpu := range g.Dataplane.CPUs {
		p := fmt.Sprintf("gateway.dataplane.cpus[%d]", k)
		if cpu < 0 || cpu > 4095 {
			v.add(p, strconv.Itoa(cpu), "CPU numbers run from 0 to the number of CPUs - 1")
		} else if seen[cpu] {
			v.add(p, strconv.Itoa(cpu), "CPU %d is listed twice", cpu)
		}
		seen[cpu] = true
	}
	if b := g.Dataplane.BatchSize; b < 1 || b > MaxBatchSize {
		v.add("gateway.dataplane.batch_size", strconv.Itoa(b), "batch_size must be 1–%d descriptors (default %d)", MaxBatchSize, DefaultBatchSize)
	}
	if r := g.Dataplane.RingSize; r < MinRingSize || r > MaxRingSize || r&(r-1) != 0 {
		v.add("gateway.dataplane.ring_size", strconv.Itoa(r), "ring_size must be a power of two from %d to %d (default %d)", MinRingSize, MaxRingSize, DefaultRingSize)
	}
	o := &g.Observability
	for _, e := range []struct{ key, val string }{
		{"control_metrics", o.ControlMetrics},
		{"dataplane_metrics", o.DataplaneMetrics},
	} {
		if _, port, err := net.SplitHostPort(e.val); err != nil || port == "" {
			v.add("gateway.observability."+e.key, quote(e.val), "%s must be host:port, e.g. 127.0.0.1:9471", e.key)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			v.add("gateway.observability."+e.key, quote(e.val), "%s must have a port 1–65535", e.key)
		}
	}
	if _, _, err := ParseGoBGPAPI(o.GoBGPAPI, o.GoBGPAPITLS); err != nil {
		v.add("gateway.observability.gobgp_api", quote(o.GoBGPAPI), "%v", err)
	}
	if o.ControlMetrics != "" && o.ControlMetrics == o.DataplaneMetrics {
		v.add("gateway.observability.dataplane_metrics", quote(o.DataplaneMetrics), "the two processes need different metrics addresses")
	}
	if !filepath.IsAbs(o.StatusSocket) {
		v.add("gateway.observability.status_socket", quote(o.StatusSocket), "status_socket must be an absolute path, e.g. %s", DefaultStatusSocket("cgw"))
	}
}

func (v *validator) iface(p, which string, i *Interface) {
	if i.Name == "" {
		v.add(p+".interface", "nothing", "name the %s NIC (e.g. %s)", which, map[string]string{"outside": "eth0", "inside": "eth1"}[which])
	} else if len(i.Name) > 15 || strings.ContainsAny(i.Name, "/ \t\n:") {
		v.add(p+".interface", quote(i.Name), "%s interface name must be a Linux interface name (≤15 characters, no '/', ':' or spaces)", which)
	}
	switch {
	case !i.Address.IsValid():
		v.add(p+".address", "nothing", "set the gateway's %s address with its prefix length, e.g. %s", which, map[string]string{"outside": "192.0.2.10/24", "inside": "198.18.0.1/24"}[which])
	case !usable(i.Address.Addr()):
		v.add(p+".address", i.Address.String(), "%s address must be a unicast address", which)
	}
	if i.NextHop.IsValid() {
		if !usable(i.NextHop) {
			v.add(p+".next_hop", i.NextHop.String(), "next_hop must be a unicast address")
		} else if i.Address.IsValid() && i.NextHop.Is4() != i.Address.Addr().Is4() {
			v.add(p+".next_hop", i.NextHop.String(), "next_hop must be of the same address family as %s", i.Address)
		}
	}
}

// usable reports whether a is a unicast address a host can use.
func usable(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && !a.IsLoopback() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func (v *validator) connection(p string, cn *Connection) {
	name := "connection " + cn.Name
	if cn.Name == "" {
		name = "connection"
	}
	switch cn.Routing {
	case RoutingBGP:
		if cn.BGP == nil {
			v.add(p+".bgp", "nothing", "%s: routing is bgp: add a bgp block (local_asn, peer_asn, advertise) or set routing: static", name)
		}
		if len(cn.Static) > 0 {
			v.add(p+".static_routes", fmt.Sprintf("%d routes", len(cn.Static)), "%s: static_routes are only for routing: static; remove them (AWS sends the VPC routes over BGP)", name)
		}
	case RoutingStatic:
		if cn.BGP != nil {
			v.add(p+".bgp", "a bgp block", "%s: routing is static: remove the bgp block or set routing: bgp", name)
		}
		if len(cn.Static) == 0 {
			v.add(p+".static_routes", "none", "%s: routing is static: list the VPC prefixes to send through the tunnels in static_routes", name)
		}
	default:
		v.add(p+".routing", quote(cn.Routing), "%s: routing must be %q or %q", name, RoutingBGP, RoutingStatic)
	}
	for k, r := range cn.Static {
		v.prefix(fmt.Sprintf("%s.static_routes[%d]", p, k), name+": static route", r)
	}
	if b := cn.BGP; b != nil {
		bp := p + ".bgp"
		if b.LocalASN == 0 || b.LocalASN == asTrans {
			v.add(bp+".local_asn", strconv.FormatUint(uint64(b.LocalASN), 10), "%s: local_asn must be 1–4294967295 and not 0 or 23456 (AS_TRANS); AWS's default for the customer side is %d", name, DefaultLocalASN)
		}
		if !awsSideASN(b.PeerASN) {
			v.add(bp+".peer_asn", strconv.FormatUint(uint64(b.PeerASN), 10), "%s: peer_asn is the Amazon side's ASN: a private ASN 64512–65534 or 4200000000–4294967294 (default %d), or a legacy Amazon ASN 7224/9059/10124/17493", name, DefaultPeerASN)
		}
		if b.LocalASN != 0 && b.LocalASN == b.PeerASN {
			v.add(bp+".local_asn", strconv.FormatUint(uint64(b.LocalASN), 10), "%s: local_asn must differ from peer_asn: the session to AWS is eBGP", name)
		}
		if h := b.HoldTime.D(); h < MinHoldTime || h > MaxHoldTime || h%time.Second != 0 {
			v.add(bp+".hold_time", b.HoldTime.String(), "%s: hold_time must be whole seconds, 3s–65535s (AWS uses 30s)", name)
		}
		if len(b.Advertise) > MaxAdvertised {
			v.add(bp+".advertise", fmt.Sprintf("%d prefixes", len(b.Advertise)), "%s: AWS accepts at most %d prefixes per connection; aggregate them", name, MaxAdvertised)
		}
		seen := map[string]int{}
		for k, a := range b.Advertise {
			ap := fmt.Sprintf("%s.advertise[%d]", bp, k)
			v.prefix(ap, name+": advertised prefix", a)
			if first, dup := seen[a]; dup {
				v.add(ap, quote(a), "%s: prefix already listed at advertise[%d]", name, first)
			}
			seen[a] = k
		}
	}
	if n := len(cn.Tunnels); n != TunnelsPerConnection {
		v.add(p+".tunnels", fmt.Sprintf("%d tunnels", n), "%s: an AWS VPN connection has exactly 2 tunnels; configure both (AWS replaces endpoints one at a time)", name)
	}
}

// awsSideASN reports whether asn can be the Amazon side's ASN.
func awsSideASN(asn uint32) bool {
	switch {
	case asn >= 64512 && asn <= 65534, asn >= 4200000000 && asn <= 4294967294:
		return true
	case asn == 7224, asn == 9059, asn == 10124, asn == 17493:
		return true
	}
	return false
}

func (v *validator) prefix(p, what, s string) {
	pf, err := netip.ParsePrefix(strings.TrimSpace(s))
	switch {
	case err != nil:
		v.add(p, quote(s), "%s must be an IPv4 or IPv6 prefix such as 10.0.0.0/16 or 2001:db8::/32", what)
	case pf != pf.Masked():
		v.add(p, quote(s), "%s has host bits set; write %s", what, pf.Masked())
	}
}

func (v *validator) tunnel(p, label string, t *Tunnel, cn *Connection) {
	// Addresses.
	switch {
	case !t.AWSOutside.IsValid():
		v.add(p+".aws_outside_address", "nothing", "%s: set aws_outside_address to the AWS endpoint's public address (vpn_gateway/tunnel_outside_address in AWS's file)", label)
	case !usable(t.AWSOutside):
		v.add(p+".aws_outside_address", t.AWSOutside.String(), "%s: aws_outside_address must be a unicast address", label)
	}
	switch {
	case !t.LocalOutside.IsValid():
		v.add(p+".local_outside_address", "nothing", "%s: set local_outside_address or gateway.outside.address", label)
	case !usable(t.LocalOutside):
		v.add(p+".local_outside_address", t.LocalOutside.String(), "%s: local_outside_address must be a unicast address", label)
	case t.AWSOutside.IsValid() && t.LocalOutside.Is4() != t.AWSOutside.Is4():
		v.add(p+".local_outside_address", t.LocalOutside.String(), "%s: local_outside_address and aws_outside_address (%s) must be of the same address family", label, t.AWSOutside)
	}
	v.inside(p+".inside_cidr", label, t.InsideCIDR)

	// Pre-shared key (AWS: 8–64 of [A-Za-z0-9._], not starting with 0).
	// One message for every broken rule: which rule failed would tell the
	// log's readers something about the key.
	if k := t.PreSharedKey; len(k) < MinPSKLen || len(k) > MaxPSKLen || !pskChars.MatchString(k) || k[0] == '0' {
		v.add(p+".pre_shared_key", RedactPSK(k), "%s: pre_shared_key must be %d–%d characters of letters, digits, '.' or '_', not starting with '0' (AWS's rules; AWS's file holds the key)", label, MinPSKLen, MaxPSKLen)
	}

	if t.IKEVersion != 1 && t.IKEVersion != 2 {
		v.add(p+".ike_version", strconv.Itoa(t.IKEVersion), "%s: ike_version must be 1 or 2", label)
	}
	min1, min2, minMargin := MinPhase1Lifetime, MinPhase2Lifetime, MinRekeyMargin
	if v.testing.ShortLifetimes {
		min1, min2, minMargin = LabMinLifetime, LabMinLifetime, LabMinRekeyMargin
	}
	v.phase(p+".phase1", label, "phase1", &t.Phase1, true, min1, MaxPhase1Lifetime)
	v.phase(p+".phase2", label, "phase2", &t.Phase2, false, min2, MaxPhase2Lifetime)
	if t.IKEVersion == 1 && t.Phase1.hasGCM() {
		v.add(p+".phase1.encryption", strings.Join(t.Phase1.Encryption, ", "), "%s: IKEv1 has no AES-GCM for phase 1; use AES128/AES256 or ike_version: 2", label)
	}
	if t.Phase2.Lifetime >= t.Phase1.Lifetime && t.Phase1.Lifetime > 0 {
		v.add(p+".phase2.lifetime", t.Phase2.Lifetime.String(), "%s: phase2 lifetime must be shorter than phase1 lifetime (%s)", label, t.Phase1.Lifetime)
	}

	// Rekey (AWS: margin 60 s .. phase 2 lifetime / 2; fuzz 0–100 %).
	half := t.Phase2.Lifetime.D() / 2
	if m := t.RekeyMargin.D(); m < minMargin || m > half {
		v.add(p+".rekey_margin", t.RekeyMargin.String(), "%s: rekey_margin must be %ds to half the phase2 lifetime (%s); AWS's default is 270s", label, int(minMargin/time.Second), Duration(half))
	}
	if f := t.RekeyFuzz; f < 0 || f > 100 {
		v.add(p+".rekey_fuzz_percent", strconv.Itoa(f), "%s: rekey_fuzz_percent must be 0–100", label)
	}
	if w := t.ReplayWindow; w < MinReplayWindow || w > MaxReplayWindow {
		v.add(p+".replay_window", strconv.Itoa(w), "%s: replay_window must be %d–%d packets (AWS's default is %d)", label, MinReplayWindow, MaxReplayWindow, DefaultReplayWindow)
	}

	// DPD: AWS uses 10 s × 3; shorter intervals are allowed for the lab.
	if d := t.DPD.Interval.D(); d < time.Second || d > MaxDPDInterval || d%time.Second != 0 {
		v.add(p+".dpd.interval", t.DPD.Interval.String(), "%s: dpd interval must be whole seconds, 1s–1h (AWS uses 10s)", label)
	}
	if r := t.DPD.Retries; r < 1 || r > MaxDPDRetries {
		v.add(p+".dpd.retries", strconv.Itoa(r), "%s: dpd retries must be 1–%d (AWS uses 3)", label, MaxDPDRetries)
	}
	switch t.DPD.Action {
	case DPDClear, DPDRestart, DPDNone:
	default:
		v.add(p+".dpd.action", quote(t.DPD.Action), "%s: dpd action must be clear, restart or none", label)
	}
	switch t.NATTraversal {
	case NATAuto, NATForce, NATOff:
	default:
		v.add(p+".nat_traversal", quote(t.NATTraversal), "%s: nat_traversal must be auto, force or off", label)
	}
	switch t.StartupAction {
	case StartupStart, StartupAdd:
	default:
		v.add(p+".startup_action", quote(t.StartupAction), "%s: startup_action must be start (initiate) or add (wait for AWS)", label)
	}

	// Sizes (AWS: MTU ≤ 1446, MSS ≤ 1406; recommended 1399/1379).
	if m := t.MTU; m < MinMTU || m > MaxMTU {
		v.add(p+".mtu", strconv.Itoa(m), "%s: mtu must be %d–%d bytes (AWS recommends %d)", label, MinMTU, MaxMTU, DefaultMTU)
	}
	if s := t.TCPMSS; s < MinMSS || s > MaxMSS {
		v.add(p+".tcp_mss", strconv.Itoa(s), "%s: tcp_mss must be %d–%d bytes (AWS recommends %d)", label, MinMSS, MaxMSS, DefaultTCPMSS)
	}
	if a := t.ASPathPrepend; a < 0 || a > MaxASPathPrepend {
		v.add(p+".as_path_prepend", strconv.Itoa(a), "%s: as_path_prepend must be 0–%d", label, MaxASPathPrepend)
	} else if a > 0 && cn.Routing == RoutingStatic {
		v.add(p+".as_path_prepend", strconv.Itoa(a), "%s: as_path_prepend needs routing: bgp", label)
	}
}

func (v *validator) inside(p, label string, pf netip.Prefix) {
	switch {
	case !pf.IsValid():
		v.add(p, "nothing", "%s: set inside_cidr to the tunnel's /30 from 169.254.0.0/16 (e.g. 169.254.44.88/30)", label)
	case pf.Bits() != 30 || !pf.Addr().Is4():
		v.add(p, pf.String(), "%s: inside_cidr must be a /30 from 169.254.0.0/16", label)
	case !linkLocal.Contains(pf.Addr()):
		v.add(p, pf.String(), "%s: inside_cidr must be within 169.254.0.0/16", label)
	case pf != pf.Masked():
		v.add(p, pf.String(), "%s: inside_cidr must start on a /30 boundary; write %s", label, pf.Masked())
	default:
		for _, r := range reservedInside {
			if r.Contains(pf.Addr()) {
				v.add(p, pf.String(), "%s: inside_cidr is reserved by AWS (169.254.0.0/30–169.254.5.0/30 and 169.254.169.252/30); pick another /30", label)
				break
			}
		}
	}
}

func (v *validator) phase(p, label, which string, ph *Phase, phase1 bool, minLife, maxLife time.Duration) {
	if len(ph.Encryption) == 0 {
		v.add(p+".encryption", "none", "%s: %s needs at least one encryption algorithm (%s)", label, which, encryptionNames())
	}
	for k, n := range ph.Encryption {
		if _, ok := CanonicalEncryption(n); !ok {
			v.add(fmt.Sprintf("%s.encryption[%d]", p, k), quote(n), "%s: unknown encryption algorithm; AWS offers %s", label, encryptionNames())
		}
	}
	for k, n := range ph.Integrity {
		if _, ok := CanonicalIntegrity(n); !ok {
			v.add(fmt.Sprintf("%s.integrity[%d]", p, k), quote(n), "%s: unknown integrity algorithm; AWS offers %s", label, integrityNames())
		}
	}
	if len(ph.Integrity) == 0 {
		switch {
		case phase1:
			v.add(p+".integrity", "none", "%s: phase1 needs at least one integrity algorithm even with GCM: it is also the IKE PRF", label)
		case ph.hasCBC():
			v.add(p+".integrity", "none", "%s: phase2 with AES128/AES256 (CBC) needs at least one integrity algorithm", label)
		}
	}
	if len(ph.DHGroups) == 0 {
		v.add(p+".dh_groups", "none", "%s: %s needs at least one DH group (AWS always uses PFS)", label, which)
	}
	for k, id := range ph.DHGroups {
		g, ok := LookupDHGroup(id)
		if !ok || (phase1 && !g.Phase1) || (g.NotAWS && !v.testing.NonAWSGroups) {
			allowed := "2, 5, 14–24"
			if phase1 {
				allowed = "2, 14–24"
			}
			hint := ""
			if g.NotAWS {
				hint = " (group " + strconv.Itoa(id) + " only in a lab, with gateway.testing.non_aws_dh_groups)"
			}
			v.add(fmt.Sprintf("%s.dh_groups[%d]", p, k), strconv.Itoa(id), "%s: AWS allows %s DH groups %s%s", label, which, allowed, hint)
		}
	}
	switch b := ph.LifetimeBytes; {
	case b == 0:
	case phase1:
		v.add(p+".lifetime_bytes", strconv.FormatUint(b, 10), "%s: phase1 has no byte lifetime (IKE SAs expire by time only); remove it or move it to phase2", label)
	case b < MinLifetimeBytes:
		v.add(p+".lifetime_bytes", strconv.FormatUint(b, 10), "%s: phase2 lifetime_bytes must be 0 (no byte limit, as AWS) or at least %d (1 MiB): a smaller limit would rekey continuously", label, MinLifetimeBytes)
	}
	if l := ph.Lifetime.D(); l < minLife || l > maxLife || l%time.Second != 0 {
		v.add(p+".lifetime", ph.Lifetime.String(), "%s: %s lifetime must be whole seconds, %ds–%ds", label, which, int(minLife/time.Second), int(maxLife/time.Second))
	}
}
