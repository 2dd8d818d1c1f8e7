package lab

import (
	"fmt"
	"net/netip"

	"github.com/cgw-project/cgw/config"
)

// CloudHub (DESIGN.md §1): the lab emulates every connection of the
// gateway's configuration, each against its own AWS side. Connection c
// (0-based) gets its own two endpoint namespaces, its own virtual private
// gateway namespace with BIRD and its own VPC:
//
//	c = 0: aws-t1, aws-t2, aws, vpc   (198.19.0.0/24; the names of a one-connection lab)
//	c = 1: aws2-t1, aws2-t2, aws2, vpc2 (198.19.1.0/24)
//	...
//
// Each emulated AWS side is a separate VGW with ASN 64512 (AWS would use
// one VGW for all; the gateway cannot tell the difference).

// MaxConnections bounds the connections a lab emulates (VPC prefixes
// 198.19.0.0/24 … and endpoints 203.0.113.1 … must fit their ranges).
const MaxConnections = 16

// AWSRole is the role of connection c's virtual private gateway ("aws",
// "aws2", ...); it is also the name of its BIRD speaker.
func AWSRole(c int) string {
	if c == 0 {
		return AWS
	}
	return fmt.Sprintf("aws%d", c+1)
}

// VPCRole is the role of connection c's VPC host ("vpc", "vpc2", ...).
func VPCRole(c int) string {
	if c == 0 {
		return VPC
	}
	return fmt.Sprintf("vpc%d", c+1)
}

// AWSEndpointOf is the role of connection c's AWS tunnel endpoint i
// ("aws-t1" for c = 0 as AWSEndpoint, "aws2-t1" for c = 1).
func AWSEndpointOf(c, i int) string {
	if c == 0 {
		return AWSEndpoint(i)
	}
	return fmt.Sprintf("aws%d-t%d", c+1, i+1)
}

// inetLink is inet's side of the link to connection c's endpoint i.
func inetLink(c, i int) string {
	if c == 0 {
		return fmt.Sprintf("t%d", i+1)
	}
	return fmt.Sprintf("c%dt%d", c+1, i+1)
}

// VPCPrefixOf is connection c's VPC prefix: 198.19.c.0/24.
func VPCPrefixOf(c int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(c), 0}), 24)
}

// VPCGatewayOf is the VGW's address on connection c's VPC link.
func VPCGatewayOf(c int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(c), 1}) }

// VPCHostOf is connection c's VPC host.
func VPCHostOf(c int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(c), 2}) }

// CloudHubConfig is DefaultConfig with n VPN connections: connection c
// ("lab", "lab2", ...) has tunnels to 203.0.113.(2c+1) and .(2c+2) with
// inside /30s 169.254.(10+2c).0 and 169.254.(11+2c).0, and advertises the
// on-premises prefix to its own AWS side.
func CloudHubConfig(n int) *config.Config {
	cfg := DefaultConfig()
	base := cfg.Connections[0]
	for c := 1; c < n; c++ {
		cn := base
		cn.Name = fmt.Sprintf("lab%d", c+1)
		b := *base.BGP
		b.Advertise = append([]string(nil), base.BGP.Advertise...)
		cn.BGP = &b
		cn.Tunnels = append([]config.Tunnel(nil), base.Tunnels...)
		for i := range cn.Tunnels {
			t := &cn.Tunnels[i]
			t.Name = fmt.Sprintf("lab%d-t%d", c+1, i+1)
			t.AWSOutside = netip.AddrFrom4([4]byte{203, 0, 113, byte(2*c + i + 1)})
			t.InsideCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, byte(10 + 2*c + i), 0}), 30)
			t.PreSharedKey = fmt.Sprintf("lab.psk_c%d_tunnel%d_x7Qe", c+1, i+1)
		}
		cfg.Connections = append(cfg.Connections, cn)
	}
	return cfg
}

// conn returns connection c of the configuration.
func (l *Lab) conn(c int) *config.Connection { return &l.Cfg.Connections[c] }

// Connections is how many VPN connections the lab emulates.
func (l *Lab) Connections() int { return len(l.Cfg.Connections) }

// AWSSwanctlConfOf renders AWS's swanctl.conf for connection c's tunnel
// i. The Overrides apply to the first connection only.
func (l *Lab) AWSSwanctlConfOf(c, i int) (string, error) {
	if c == 0 {
		return l.AWSSwanctlConf(i)
	}
	t := l.conn(c).Tunnels[i]
	return renderSwanctlConf(swanEnd{Conn: BGPProtocol(i), Local: t.AWSOutside.String(), Remote: "%any", Tunnel: t})
}

// awsTunnelOf is AWS's copy of connection c's tunnel i.
func (l *Lab) awsTunnelOf(c, i int) config.Tunnel {
	if c == 0 {
		return l.awsTunnel(i)
	}
	return l.conn(c).Tunnels[i]
}

// AWSBirdOf returns the BIRD speaker of connection c's virtual private
// gateway (AWSBird for c = 0).
func (l *Lab) AWSBirdOf(c int) birdSpeaker {
	cn := l.conn(c)
	b := cn.BGP
	s := birdSpeaker{RouterID: cn.Tunnels[0].AWSInside(), ASN: b.PeerASN, HoldTime: b.HoldTime.Seconds(), Originate: []netip.Prefix{VPCPrefixOf(c)}}
	for i := range cn.Tunnels {
		t := &cn.Tunnels[i]
		p := birdPeer{Name: BGPProtocol(i), Local: t.AWSInside(), Neighbor: t.LocalInside(), Interface: AWSTunnelIf(i), PeerASN: b.LocalASN, Preference: 110 - i}
		if c == 0 && i < len(l.opts.Overrides.Export) {
			p.Extra = l.opts.Overrides.Export[i]
		}
		s.Peers = append(s.Peers, p)
	}
	return s
}
