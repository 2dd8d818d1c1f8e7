package config

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// AWS's "generic" customer gateway configuration, as DescribeVpnConnections
// returns it in CustomerGatewayConfiguration and the console offers it for
// download (vendor "Generic"). Observed in public copies of the file:
//
//	<vpn_connection id="vpn-…">
//	  <customer_gateway_id>, <vpn_gateway_id>, <vpn_connection_type>ipsec.1
//	  <vpn_connection_attributes>NoBGPVPNConnection</…>  (static routing only)
//	  <ipsec_tunnel> ×2
//	    <customer_gateway>|<vpn_gateway>
//	      <tunnel_outside_address><ip_address>
//	      <tunnel_inside_address><ip_address>, <network_mask>255.255.255.252, <network_cidr>30
//	      <bgp><asn>, <hold_time>                        (BGP only)
//	    <ike> authentication_protocol "sha1", encryption_protocol "aes-128-cbc",
//	          lifetime "28800", perfect_forward_secrecy "group2", mode "main",
//	          pre_shared_key
//	    <ipsec> protocol "esp", authentication_protocol "hmac-sha1-96",
//	          encryption_protocol "aes-128-cbc", lifetime "3600",
//	          perfect_forward_secrecy "group2", mode "tunnel", clear_df_bit "true",
//	          fragmentation_before_encryption "true", tcp_mss_adjustment "1379",
//	          dead_peer_detection <interval>10 <retries>3
//
// The file describes IKEv1 main mode, which AWS endpoints accept alongside
// IKEv2; the import chooses IKEv2 unless an <ike_version> element ("ikev1",
// "ikev2") says otherwise. Values may carry surrounding spaces.
type awsConnection struct {
	XMLName    xml.Name    `xml:"vpn_connection"`
	ID         string      `xml:"id,attr"`
	Attributes string      `xml:"vpn_connection_attributes"`
	Type       string      `xml:"vpn_connection_type"`
	Tunnels    []awsTunnel `xml:"ipsec_tunnel"`
}

type awsTunnel struct {
	Customer awsEnd   `xml:"customer_gateway"`
	VPN      awsEnd   `xml:"vpn_gateway"`
	IKE      awsIKE   `xml:"ike"`
	IPsec    awsIPsec `xml:"ipsec"`
}

type awsEnd struct {
	Outside struct {
		IP   string `xml:"ip_address"`
		Text string `xml:",chardata"`
	} `xml:"tunnel_outside_address"`
	Inside struct {
		IP   string `xml:"ip_address"`
		Mask string `xml:"network_mask"`
		CIDR string `xml:"network_cidr"`
	} `xml:"tunnel_inside_address"`
	BGP *struct {
		ASN      string `xml:"asn"`
		HoldTime string `xml:"hold_time"`
	} `xml:"bgp"`
}

type awsIKE struct {
	Version string `xml:"ike_version"`
	Auth    string `xml:"authentication_protocol"`
	Enc     string `xml:"encryption_protocol"`
	Life    string `xml:"lifetime"`
	PFS     string `xml:"perfect_forward_secrecy"`
	Mode    string `xml:"mode"`
	PSK     string `xml:"pre_shared_key"`
}

type awsIPsec struct {
	Protocol string `xml:"protocol"`
	Auth     string `xml:"authentication_protocol"`
	Enc      string `xml:"encryption_protocol"`
	Life     string `xml:"lifetime"`
	PFS      string `xml:"perfect_forward_secrecy"`
	Mode     string `xml:"mode"`
	ClearDF  string `xml:"clear_df_bit"`
	FragPre  string `xml:"fragmentation_before_encryption"`
	MSS      string `xml:"tcp_mss_adjustment"`
	DPD      struct {
		Interval string `xml:"interval"`
		Retries  string `xml:"retries"`
	} `xml:"dead_peer_detection"`
}

// ImportAWS turns AWS's generic configuration file for one VPN connection
// into a gateway configuration with defaults applied. What the file does
// not say (the gateway's NICs, its inside address, the prefixes to
// advertise, static routes) is left empty for the operator; Validate
// reports each. See ImportOptions to fill them in.
func ImportAWS(b []byte) (*Config, error) { return ImportAWSWith(b, ImportOptions{}) }

// ImportOptions supplies what AWS's file does not hold. Zero fields are
// left for the operator (or taken from the file where it has them).
type ImportOptions struct {
	Name           string       // connection name; default the AWS id
	GatewayName    string       // default "cgw"
	OutsideIf      string       // outside NIC, e.g. eth0
	InsideIf       string       // inside NIC, e.g. eth1
	OutsideAddress netip.Prefix // default the file's customer outside address as a /32
	InsideAddress  netip.Prefix // gateway inside address, e.g. 198.18.0.1/24
	IKEVersion     int          // 1 or 2 overrides the file
	Advertise      []string     // BGP: prefixes to announce to AWS
	StaticRoutes   []string     // static: VPC prefixes
}

// ImportAWSWith is ImportAWS with the missing pieces supplied. It also
// takes the JSON that "aws ec2 describe-vpn-connections" prints: each
// connection's CustomerGatewayConfiguration is imported, in order, into
// one configuration (Name applies only when there is one).
func ImportAWSWith(b []byte, o ImportOptions) (*Config, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return importDescribeJSON(t, o)
	}
	return importXML(b, o)
}

func importDescribeJSON(b []byte, o ImportOptions) (*Config, error) {
	var d struct {
		VpnConnections []struct {
			VpnConnectionID              string `json:"VpnConnectionId"`
			CustomerGatewayConfiguration string `json:"CustomerGatewayConfiguration"`
		} `json:"VpnConnections"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("not an AWS VPN connection configuration: JSON that is not describe-vpn-connections output: %v", err)
	}
	if len(d.VpnConnections) == 0 {
		return nil, errors.New("describe-vpn-connections output lists no VpnConnections")
	}
	if len(d.VpnConnections) > 1 {
		o.Name = ""
	}
	var c *Config
	for _, v := range d.VpnConnections {
		if v.CustomerGatewayConfiguration == "" {
			return nil, fmt.Errorf("%s: no CustomerGatewayConfiguration (AWS gives it only while the connection is pending or available)", v.VpnConnectionID)
		}
		one, err := importXML([]byte(v.CustomerGatewayConfiguration), o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.VpnConnectionID, err)
		}
		if c == nil {
			c = one
		} else {
			c.Connections = append(c.Connections, one.Connections...)
		}
	}
	return c, nil
}

func importXML(b []byte, o ImportOptions) (*Config, error) {
	var ac awsConnection
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&ac); err != nil {
		var se xml.UnmarshalError
		if errors.As(err, &se) || strings.Contains(err.Error(), "expected element type") {
			return nil, fmt.Errorf("not an AWS VPN connection configuration: the root element must be <vpn_connection> (download it with vendor \"Generic\"): %v", err)
		}
		if errors.Is(err, io.EOF) {
			if len(bytes.TrimSpace(b)) == 0 {
				return nil, errors.New("not an AWS VPN connection configuration: the file is empty")
			}
			return nil, errors.New("not an AWS VPN connection configuration: the file holds no XML element (want <vpn_connection>)")
		}
		return nil, fmt.Errorf("not an AWS VPN connection configuration: bad XML: %v", err)
	}
	if len(ac.Tunnels) != TunnelsPerConnection {
		return nil, fmt.Errorf("vpn_connection %s: has %d ipsec_tunnel elements, AWS always gives 2", ac.ID, len(ac.Tunnels))
	}
	static := strings.Contains(ac.Attributes, "NoBGPVPNConnection")

	cn := Connection{Name: strings.TrimSpace(ac.ID), AWSID: strings.TrimSpace(ac.ID), Routing: RoutingBGP}
	if o.Name != "" {
		cn.Name = o.Name
	}
	if cn.Name == "" {
		cn.Name = "vpn-1"
	}
	if static {
		cn.Routing = RoutingStatic
		cn.Static = o.StaticRoutes
	}
	var gwOutside netip.Addr
	for i := range ac.Tunnels {
		t, bgp, err := importTunnel(&ac.Tunnels[i], static)
		if err != nil {
			return nil, fmt.Errorf("vpn_connection %s, ipsec_tunnel %d: %w", ac.ID, i+1, err)
		}
		if o.IKEVersion != 0 {
			t.IKEVersion = o.IKEVersion
		}
		if !gwOutside.IsValid() {
			gwOutside = t.LocalOutside
		}
		if bgp != nil {
			if cn.BGP == nil {
				bgp.Advertise = o.Advertise
				cn.BGP = bgp
			} else if cn.BGP.LocalASN != bgp.LocalASN || cn.BGP.PeerASN != bgp.PeerASN || cn.BGP.HoldTime != bgp.HoldTime {
				return nil, fmt.Errorf("vpn_connection %s: the two tunnels give different BGP settings (ASNs %d/%d vs %d/%d); cgw uses one BGP setting per connection",
					ac.ID, cn.BGP.LocalASN, cn.BGP.PeerASN, bgp.LocalASN, bgp.PeerASN)
			}
		}
		cn.Tunnels = append(cn.Tunnels, t)
	}
	c := &Config{Connections: []Connection{cn}}
	c.Gateway.Name = o.GatewayName
	c.Gateway.Outside.Name = o.OutsideIf
	c.Gateway.Inside.Name = o.InsideIf
	c.Gateway.Inside.Address = o.InsideAddress
	c.Gateway.Outside.Address = o.OutsideAddress
	if !c.Gateway.Outside.Address.IsValid() && gwOutside.IsValid() {
		c.Gateway.Outside.Address = netip.PrefixFrom(gwOutside, gwOutside.BitLen())
	}
	c.ApplyDefaults()
	return c, nil
}

func importTunnel(at *awsTunnel, static bool) (Tunnel, *BGP, error) {
	var t Tunnel
	var err error
	trim := strings.TrimSpace

	if t.AWSOutside, err = outsideAddr(&at.VPN); err != nil {
		return t, nil, fmt.Errorf("vpn_gateway/tunnel_outside_address: %w", err)
	}
	if t.LocalOutside, err = outsideAddr(&at.Customer); err != nil {
		return t, nil, fmt.Errorf("customer_gateway/tunnel_outside_address: %w", err)
	}
	cgwIn, err := insidePrefix(&at.Customer)
	if err != nil {
		return t, nil, fmt.Errorf("customer_gateway/tunnel_inside_address: %w", err)
	}
	vgwIn, err := insidePrefix(&at.VPN)
	if err != nil {
		return t, nil, fmt.Errorf("vpn_gateway/tunnel_inside_address: %w", err)
	}
	t.InsideCIDR = cgwIn.Masked()
	if vgwIn.Masked() != t.InsideCIDR || t.AWSInside() != vgwIn.Addr() || t.LocalInside() != cgwIn.Addr() {
		return t, nil, fmt.Errorf("inside addresses %s (customer) and %s (AWS) are not the second and first address of one /30 as AWS assigns them", cgwIn, vgwIn)
	}

	ike := &at.IKE
	t.PreSharedKey = trim(ike.PSK)
	switch v := strings.ToLower(trim(ike.Version)); {
	case v == "ikev1" || v == "1":
		t.IKEVersion = 1
	case v == "ikev2" || v == "2":
		t.IKEVersion = 2
	case v != "":
		return t, nil, fmt.Errorf("ike/ike_version %q: want ikev1 or ikev2", ike.Version)
	case strings.EqualFold(trim(ike.Mode), "main"):
		// The generic file is written for IKEv1 main mode, but AWS
		// endpoints accept IKEv2 as well unless the tunnel's options
		// restrict them, and IKEv2 is cgw's protocol: take it, unless
		// an <ike_version> says otherwise or -ike-version 1 is given.
		t.IKEVersion = 2
	case trim(ike.Mode) != "":
		return t, nil, fmt.Errorf("ike/mode %q: AWS supports only main mode", ike.Mode)
	}
	if t.Phase1, err = importPhase("ike", ike.Enc, ike.Auth, ike.PFS, ike.Life); err != nil {
		return t, nil, err
	}

	ip := &at.IPsec
	if p := trim(ip.Protocol); p != "" && !strings.EqualFold(p, "esp") {
		return t, nil, fmt.Errorf("ipsec/protocol %q: only esp is supported", ip.Protocol)
	}
	if m := trim(ip.Mode); m != "" && !strings.EqualFold(m, "tunnel") {
		return t, nil, fmt.Errorf("ipsec/mode %q: only tunnel mode is supported", ip.Mode)
	}
	if t.Phase2, err = importPhase("ipsec", ip.Enc, ip.Auth, ip.PFS, ip.Life); err != nil {
		return t, nil, err
	}
	if s := trim(ip.ClearDF); s != "" {
		if t.ClearDF, err = strconv.ParseBool(s); err != nil {
			return t, nil, fmt.Errorf("ipsec/clear_df_bit %q: want true or false", ip.ClearDF)
		}
	}
	if s := trim(ip.FragPre); s != "" {
		// cgw always fragments before encryption (RFC 4459 §5.2); the
		// element is read only to reject a malformed file.
		if _, err := strconv.ParseBool(s); err != nil {
			return t, nil, fmt.Errorf("ipsec/fragmentation_before_encryption %q: want true or false", ip.FragPre)
		}
	}
	if t.TCPMSS, err = optInt("ipsec/tcp_mss_adjustment", ip.MSS); err != nil {
		return t, nil, err
	}
	if s := trim(ip.DPD.Interval); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 86400 {
			return t, nil, fmt.Errorf("ipsec/dead_peer_detection/interval %q: want seconds", ip.DPD.Interval)
		}
		t.DPD.Interval = Duration(time.Duration(n) * time.Second)
	}
	if t.DPD.Retries, err = optInt("ipsec/dead_peer_detection/retries", ip.DPD.Retries); err != nil {
		return t, nil, err
	}

	if static {
		return t, nil, nil
	}
	if at.Customer.BGP == nil || at.VPN.BGP == nil {
		return t, nil, errors.New("no <bgp> under customer_gateway and vpn_gateway, and vpn_connection_attributes is not NoBGPVPNConnection")
	}
	b := &BGP{}
	if b.LocalASN, err = asn("customer_gateway/bgp/asn", at.Customer.BGP.ASN); err != nil {
		return t, nil, err
	}
	if b.PeerASN, err = asn("vpn_gateway/bgp/asn", at.VPN.BGP.ASN); err != nil {
		return t, nil, err
	}
	hold := trim(at.VPN.BGP.HoldTime)
	if hold == "" {
		hold = trim(at.Customer.BGP.HoldTime)
	}
	h, err := optInt("vpn_gateway/bgp/hold_time", hold)
	if err != nil {
		return t, nil, err
	}
	b.HoldTime = Duration(time.Duration(h) * time.Second)
	return t, b, nil
}

func outsideAddr(e *awsEnd) (netip.Addr, error) {
	s := strings.TrimSpace(e.Outside.IP)
	if s == "" {
		s = strings.TrimSpace(e.Outside.Text)
	}
	if s == "" {
		return netip.Addr{}, errors.New("missing ip_address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a, nil
}

func insidePrefix(e *awsEnd) (netip.Prefix, error) {
	s := strings.TrimSpace(e.Inside.IP)
	if s == "" {
		return netip.Prefix{}, errors.New("missing ip_address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	bits := 30
	if c := strings.TrimSpace(e.Inside.CIDR); c != "" {
		if bits, err = strconv.Atoi(c); err != nil || bits < 0 || bits > 32 {
			return netip.Prefix{}, fmt.Errorf("network_cidr %q is not a prefix length", c)
		}
	} else if m := strings.TrimSpace(e.Inside.Mask); m != "" {
		ma, err := netip.ParseAddr(m)
		if err != nil || !ma.Is4() {
			return netip.Prefix{}, fmt.Errorf("network_mask %q is not an IPv4 mask", m)
		}
		v := ma.As4()
		n := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
		bits = 0
		for n&0x80000000 != 0 {
			bits++
			n <<= 1
		}
		if n != 0 {
			return netip.Prefix{}, fmt.Errorf("network_mask %q is not contiguous", m)
		}
	}
	if bits != 30 {
		return netip.Prefix{}, fmt.Errorf("prefix length /%d: AWS tunnel inside networks are /30", bits)
	}
	return netip.PrefixFrom(a, bits), nil
}

// importPhase reads one algorithm of each kind as the generic file states
// them. Unknown names are kept as written so that Validate reports them
// with their place in the YAML.
func importPhase(where, enc, auth, pfs, life string) (Phase, error) {
	var p Phase
	if s := strings.TrimSpace(enc); s != "" {
		if c, ok := CanonicalEncryption(s); ok {
			s = c
		} else {
			return p, fmt.Errorf("%s/encryption_protocol %q: not an AWS algorithm (aes-128-cbc, aes-256-cbc, aes-128-gcm-16, aes-256-gcm-16)", where, enc)
		}
		p.Encryption = []string{s}
	}
	if s := strings.TrimSpace(auth); s != "" {
		if c, ok := CanonicalIntegrity(s); ok {
			s = c
		} else {
			return p, fmt.Errorf("%s/authentication_protocol %q: not an AWS algorithm (sha1, sha2-256, sha2-384, sha2-512)", where, auth)
		}
		p.Integrity = []string{s}
	}
	if s := strings.TrimSpace(pfs); s != "" {
		g, ok := ParseDHGroup(s)
		if !ok {
			return p, fmt.Errorf("%s/perfect_forward_secrecy %q: want an AWS DH group such as group2 or group14", where, pfs)
		}
		p.DHGroups = []int{g}
	}
	n, err := optInt(where+"/lifetime", life)
	if err != nil {
		return p, err
	}
	p.Lifetime = Duration(time.Duration(n) * time.Second)
	return p, nil
}

func optInt(where, s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<24 {
		return 0, fmt.Errorf("%s %q: want a whole number", where, s)
	}
	return n, nil
}

func asn(where, s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want an AS number", where, s)
	}
	return uint32(n), nil
}
