package config

import (
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readAWS(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/aws/" + name)
	if err != nil {
		t.Fatalf("sample AWS file: %v", err)
	}
	return b
}

func secs(n int) Duration { return Duration(time.Duration(n) * time.Second) }

// wantTunnel is every value the sample files set, per tunnel.
type wantTunnel struct {
	name, awsOut, localOut, inside, psk string
	ike                                 int
	p1, p2                              Phase
	clearDF                             bool
	mss                                 int
	dpdInterval                         Duration
	dpdRetries                          int
}

func checkTunnel(t *testing.T, got *Tunnel, w wantTunnel) {
	t.Helper()
	eq := func(field string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %v, want %v", w.name, field, got, want)
		}
	}
	eq("name", got.Name, w.name)
	eq("aws_outside_address", got.AWSOutside, netip.MustParseAddr(w.awsOut))
	eq("local_outside_address", got.LocalOutside, netip.MustParseAddr(w.localOut))
	eq("inside_cidr", got.InsideCIDR, netip.MustParsePrefix(w.inside))
	eq("pre_shared_key", got.PreSharedKey, w.psk)
	eq("ike_version", got.IKEVersion, w.ike)
	eq("phase1", got.Phase1, w.p1)
	eq("phase2", got.Phase2, w.p2)
	eq("clear_df", got.ClearDF, w.clearDF)
	eq("tcp_mss", got.TCPMSS, w.mss)
	eq("dpd.interval", got.DPD.Interval, w.dpdInterval)
	eq("dpd.retries", got.DPD.Retries, w.dpdRetries)
	// Not in AWS's file: AWS's defaults.
	eq("dpd.action", got.DPD.Action, DPDClear)
	eq("rekey_margin", got.RekeyMargin, DefaultRekeyMargin)
	eq("rekey_fuzz_percent", got.RekeyFuzz, 100)
	eq("replay_window", got.ReplayWindow, 1024)
	eq("mtu", got.MTU, 1399)
	eq("nat_traversal", got.NATTraversal, NATAuto)
	eq("startup_action", got.StartupAction, StartupStart)
}

func TestImportAWSBGP(t *testing.T) {
	c, err := ImportAWS(readAWS(t, "vpn-bgp.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Connections) != 1 {
		t.Fatalf("%d connections, want 1", len(c.Connections))
	}
	cn := &c.Connections[0]
	if cn.Name != "vpn-0a1b2c3d4e5f60718" || cn.AWSID != "vpn-0a1b2c3d4e5f60718" {
		t.Errorf("name %q, aws id %q", cn.Name, cn.AWSID)
	}
	if cn.Routing != RoutingBGP || cn.Static != nil {
		t.Errorf("routing %q static %v, want bgp", cn.Routing, cn.Static)
	}
	wantBGP := &BGP{LocalASN: 65010, PeerASN: 64620, HoldTime: secs(36)}
	if !reflect.DeepEqual(cn.BGP, wantBGP) {
		t.Errorf("bgp = %+v, want %+v", cn.BGP, wantBGP)
	}
	if got, want := c.Gateway.Outside.Address, netip.MustParsePrefix("192.0.2.10/32"); got != want {
		t.Errorf("gateway outside address %v, want %v", got, want)
	}
	if c.Gateway.Name != "cgw" {
		t.Errorf("gateway name %q", c.Gateway.Name)
	}
	if len(cn.Tunnels) != 2 {
		t.Fatalf("%d tunnels", len(cn.Tunnels))
	}
	checkTunnel(t, &cn.Tunnels[0], wantTunnel{
		name: "vpn-0a1b2c3d4e5f60718-t1", awsOut: "203.0.113.1", localOut: "192.0.2.10",
		inside: "169.254.44.88/30", psk: "Kx7.mQ2_pL9vRt4wYb3n", ike: 2,
		p1:      Phase{Encryption: []string{AES256}, Integrity: []string{SHA2256}, DHGroups: []int{14}, Lifetime: secs(28000)},
		p2:      Phase{Encryption: []string{AES128}, Integrity: []string{SHA1}, DHGroups: []int{15}, Lifetime: secs(3500)},
		clearDF: true, mss: 1379, dpdInterval: secs(10), dpdRetries: 3,
	})
	checkTunnel(t, &cn.Tunnels[1], wantTunnel{
		name: "vpn-0a1b2c3d4e5f60718-t2", awsOut: "203.0.113.2", localOut: "192.0.2.10",
		inside: "169.254.45.140/30", psk: "Zr4_hT8.wQ1eNc6uJa2s", ike: 2,
		p1:      Phase{Encryption: []string{AES128}, Integrity: []string{SHA2512}, DHGroups: []int{20}, Lifetime: secs(27000)},
		p2:      Phase{Encryption: []string{AES256}, Integrity: []string{SHA2384}, DHGroups: []int{5}, Lifetime: secs(3000)},
		clearDF: false, mss: 1370, dpdInterval: secs(12), dpdRetries: 4,
	})
	if got := cn.Tunnels[0].LocalInside(); got != netip.MustParseAddr("169.254.44.90") {
		t.Errorf("local inside %v", got)
	}
	if got := cn.Tunnels[1].AWSInside(); got != netip.MustParseAddr("169.254.45.141") {
		t.Errorf("aws inside %v", got)
	}
	// Only what AWS's file cannot say is left to the operator.
	var paths []string
	for _, p := range c.Validate() {
		paths = append(paths, p.Path)
	}
	want := []string{"gateway.outside.interface", "gateway.inside.interface", "gateway.inside.address"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("problems after import at %v, want %v", paths, want)
	}
}

func TestImportAWSStatic(t *testing.T) {
	c, err := ImportAWS(readAWS(t, "vpn-static.xml"))
	if err != nil {
		t.Fatal(err)
	}
	cn := &c.Connections[0]
	if cn.Name != "vpn-0f9e8d7c6b5a49382" || cn.Routing != RoutingStatic || cn.BGP != nil {
		t.Errorf("name %q routing %q bgp %v, want static without bgp", cn.Name, cn.Routing, cn.BGP)
	}
	if got, want := c.Gateway.Outside.Address, netip.MustParsePrefix("192.0.2.20/32"); got != want {
		t.Errorf("gateway outside address %v, want %v", got, want)
	}
	checkTunnel(t, &cn.Tunnels[0], wantTunnel{
		name: "vpn-0f9e8d7c6b5a49382-t1", awsOut: "203.0.113.21", localOut: "192.0.2.20",
		inside: "169.254.101.4/30", psk: "Tb2.Lw9_sVq4Xe7Hk1Dm3Pz8", ike: 2,
		p1:      Phase{Encryption: []string{AES128GCM}, Integrity: []string{SHA2384}, DHGroups: []int{21}, Lifetime: secs(20000)},
		p2:      Phase{Encryption: []string{AES256GCM}, Integrity: []string{SHA2512}, DHGroups: []int{22}, Lifetime: secs(2400)},
		clearDF: false, mss: 1360, dpdInterval: secs(15), dpdRetries: 5,
	})
	checkTunnel(t, &cn.Tunnels[1], wantTunnel{
		name: "vpn-0f9e8d7c6b5a49382-t2", awsOut: "203.0.113.22", localOut: "192.0.2.20",
		inside: "169.254.202.208/30", psk: "Gq6_Vn3.cYr8Mf5Bw2Ls7Jt4", ike: 2,
		p1:      Phase{Encryption: []string{AES256}, Integrity: []string{SHA1}, DHGroups: []int{24}, Lifetime: secs(14400)},
		p2:      Phase{Encryption: []string{AES128GCM}, Integrity: []string{SHA2256}, DHGroups: []int{23}, Lifetime: secs(1800)},
		clearDF: true, mss: 1350, dpdInterval: secs(20), dpdRetries: 6,
	})
	var paths []string
	for _, p := range c.Validate() {
		paths = append(paths, p.Path)
	}
	want := []string{"gateway.outside.interface", "gateway.inside.interface", "gateway.inside.address", "connections[0].static_routes"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("problems after import at %v, want %v", paths, want)
	}
}

func TestImportAWSOptions(t *testing.T) {
	o := ImportOptions{
		Name: "dc1", GatewayName: "edge1", OutsideIf: "enp1s0", InsideIf: "enp2s0",
		OutsideAddress: netip.MustParsePrefix("192.0.2.10/24"),
		InsideAddress:  netip.MustParsePrefix("198.18.0.1/24"),
		IKEVersion:     2, Advertise: []string{"198.18.0.0/24"},
	}
	c, err := ImportAWSWith(readAWS(t, "vpn-bgp.xml"), o)
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("complete import has problems: %v", Problems(ps))
	}
	g := c.Gateway
	if g.Name != "edge1" || g.Outside.Name != "enp1s0" || g.Inside.Name != "enp2s0" ||
		g.Outside.Address != o.OutsideAddress || g.Inside.Address != o.InsideAddress ||
		g.Observability.StatusSocket != "/run/cgw/edge1/control.sock" {
		t.Errorf("gateway = %+v", g)
	}
	cn := c.Connections[0]
	if cn.Name != "dc1" || cn.AWSID != "vpn-0a1b2c3d4e5f60718" || cn.Tunnels[1].Name != "dc1-t2" {
		t.Errorf("names %q %q %q", cn.Name, cn.AWSID, cn.Tunnels[1].Name)
	}
	if cn.Tunnels[0].IKEVersion != 2 || cn.Tunnels[1].IKEVersion != 2 {
		t.Errorf("ike version override not applied")
	}
	if !reflect.DeepEqual(cn.BGP.Advertise, o.Advertise) {
		t.Errorf("advertise %v", cn.BGP.Advertise)
	}

	s, err := ImportAWSWith(readAWS(t, "vpn-static.xml"), ImportOptions{StaticRoutes: []string{"10.20.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Connections[0].Static, []string{"10.20.0.0/16"}) {
		t.Errorf("static routes %v", s.Connections[0].Static)
	}
}

func TestImportAWSErrors(t *testing.T) {
	good := string(readAWS(t, "vpn-bgp.xml"))
	static := string(readAWS(t, "vpn-static.xml"))
	cases := []struct {
		name, xml, want string
	}{
		{"empty", "", "empty"},
		{"not xml", "gateway: {}", "holds no XML element"},
		{"broken xml", "<vpn_connection id=\"x\"><ipsec_tunnel>", "bad XML"},
		{"other root", `<?xml version="1.0"?><DescribeVpnConnectionsResponse/>`, "root element must be <vpn_connection>"},
		{"one tunnel", `<vpn_connection id="vpn-1"><ipsec_tunnel/></vpn_connection>`, "has 1 ipsec_tunnel"},
		{"three tunnels", strings.Replace(good, "</vpn_connection>", "<ipsec_tunnel/></vpn_connection>", 1), "has 3 ipsec_tunnel"},
		{"bad aws outside", strings.Replace(good, "203.0.113.1<", "203.0.113.x<", 1), "vpn_gateway/tunnel_outside_address"},
		{"missing customer outside", strings.Replace(good, "<ip_address>192.0.2.10</ip_address>", "", 1), "customer_gateway/tunnel_outside_address: missing"},
		{"inside /29", strings.Replace(good, "<network_cidr>30</network_cidr>", "<network_cidr>29</network_cidr>", 1), "/29"},
		{"inside swapped", strings.Replace(strings.Replace(good, "169.254.44.90", "169.254.44.XX", 1), "169.254.44.89", "169.254.44.90", 1), "customer_gateway/tunnel_inside_address"},
		{"inside mismatch", strings.Replace(good, "169.254.44.89", "169.254.44.93", 1), "not the second and first address"},
		{"bad enc", strings.Replace(good, "aes-256-cbc", "3des", 1), "ike/encryption_protocol \"3des\""},
		{"bad integ", strings.Replace(good, "hmac-sha1-96", "md5", 1), "ipsec/authentication_protocol \"md5\""},
		{"bad group", strings.Replace(good, "group14", "group1", 1), "ike/perfect_forward_secrecy \"group1\""},
		{"bad lifetime", strings.Replace(good, "28000", "8h", 1), "ike/lifetime"},
		{"aggressive", strings.Replace(good, "<mode>main</mode>", "<mode>aggressive</mode>", 1), "only main mode"},
		{"bad ike version", strings.Replace(static, "ikev2", "ikev3", 1), "ike_version"},
		{"ah", strings.Replace(good, "<protocol>esp</protocol>", "<protocol>ah</protocol>", 1), "only esp"},
		{"transport", strings.Replace(good, "<mode>tunnel</mode>", "<mode>transport</mode>", 1), "only tunnel mode"},
		{"clear df", strings.Replace(good, "<clear_df_bit>true", "<clear_df_bit>yes please", 1), "clear_df_bit"},
		{"frag", strings.Replace(good, "<fragmentation_before_encryption>true", "<fragmentation_before_encryption>maybe", 1), "fragmentation_before_encryption"},
		{"mss", strings.Replace(good, "1379", "big", 1), "tcp_mss_adjustment"},
		{"dpd interval", strings.Replace(good, "<interval>10", "<interval>-1", 1), "dead_peer_detection/interval"},
		{"dpd retries", strings.Replace(good, "<retries>3", "<retries>x", 1), "dead_peer_detection/retries"},
		{"asn", strings.Replace(good, "<asn>65010", "<asn>4294967296", 1), "customer_gateway/bgp/asn"},
		{"peer asn", strings.Replace(good, "<asn>64620", "<asn>AS64620", 1), "vpn_gateway/bgp/asn"},
		{"hold", strings.Replace(good, "<hold_time>36</hold_time>\n      </bgp>\n    </vpn_gateway>", "<hold_time>x</hold_time>\n      </bgp>\n    </vpn_gateway>", 1), "bgp/hold_time"},
		{"asn differs", strings.Replace(good, "<asn>65010", "<asn>65011", 1), "different BGP settings"},
		{"no bgp", strings.Replace(good, "<bgp>\n        <asn>64620</asn>\n        <hold_time>36</hold_time>\n      </bgp>", "", 1), "no <bgp>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportAWS([]byte(tc.xml))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// The generic file seen in the wild has stray spaces and sometimes puts
// the outside address straight into tunnel_outside_address.
func TestImportAWSLenient(t *testing.T) {
	x := strings.Replace(string(readAWS(t, "vpn-bgp.xml")), "<asn>65010</asn>", "<asn> 65010 </asn>", -1)
	x = strings.Replace(x, "<tunnel_outside_address>\n        <ip_address>192.0.2.10</ip_address>\n      </tunnel_outside_address>", "<tunnel_outside_address>192.0.2.10</tunnel_outside_address>", 1)
	x = strings.Replace(x, "<network_cidr>30</network_cidr>", "", -1) // fall back to network_mask
	c, err := ImportAWS([]byte(x))
	if err != nil {
		t.Fatal(err)
	}
	if c.Connections[0].BGP.LocalASN != 65010 || c.Connections[0].Tunnels[0].LocalOutside != netip.MustParseAddr("192.0.2.10") ||
		c.Connections[0].Tunnels[1].InsideCIDR != netip.MustParsePrefix("169.254.45.140/30") {
		t.Errorf("lenient parse: %+v", c.Connections[0])
	}
}

// The JSON of "aws ec2 describe-vpn-connections" holds the XML as a string.
func TestImportDescribeJSON(t *testing.T) {
	type vc struct {
		VpnConnectionId              string
		State                        string
		CustomerGatewayConfiguration string `json:",omitempty"`
	}
	mk := func(v ...vc) []byte {
		b, err := json.MarshalIndent(map[string]any{"VpnConnections": v}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	bgp, static := string(readAWS(t, "vpn-bgp.xml")), string(readAWS(t, "vpn-static.xml"))
	c, err := ImportAWSWith(mk(vc{"vpn-0a1b2c3d4e5f60718", "available", bgp}, vc{"vpn-0f9e8d7c6b5a49382", "available", static}),
		ImportOptions{Name: "ignored", StaticRoutes: []string{"10.20.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Connections) != 2 || c.Connections[0].Name != "vpn-0a1b2c3d4e5f60718" || c.Connections[1].Name != "vpn-0f9e8d7c6b5a49382" ||
		c.Connections[1].Tunnels[1].PreSharedKey != "Gq6_Vn3.cYr8Mf5Bw2Ls7Jt4" || c.Connections[1].Static[0] != "10.20.0.0/16" {
		t.Errorf("imported %+v", c.Connections)
	}
	fromXML, err := ImportAWS([]byte(bgp))
	if err != nil {
		t.Fatal(err)
	}
	one, err := ImportAWS(mk(vc{"vpn-0a1b2c3d4e5f60718", "available", bgp}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one, fromXML) {
		t.Errorf("JSON import differs from XML import")
	}
	for _, tc := range []struct{ in, want string }{
		{`{"VpnConnections": []}`, "lists no VpnConnections"},
		{`{"VpnConnections": 5}`, "not describe-vpn-connections output"},
		{string(mk(vc{"vpn-9", "deleted", ""})), "vpn-9: no CustomerGatewayConfiguration"},
		{string(mk(vc{"vpn-8", "available", "<x/>"})), "vpn-8: not an AWS VPN connection"},
	} {
		if _, err := ImportAWS([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ImportAWS(%.40q): %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestImportIKEVersion: the file's main mode alone gives IKEv2 (AWS accepts
// both); an explicit <ike_version>ikev1 keeps IKEv1.
func TestImportIKEVersion(t *testing.T) {
	static, err := os.ReadFile("../testdata/aws/vpn-static.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		xml  string
		want int
	}{
		{"explicit ikev2", string(static), 2},
		{"explicit ikev1", strings.ReplaceAll(string(static), "<ike_version>ikev2</ike_version>", "<ike_version>ikev1</ike_version>"), 1},
		{"main mode only", strings.ReplaceAll(string(static), "<ike_version>ikev2</ike_version>", ""), 2},
	} {
		cfg, err := ImportAWS([]byte(c.xml))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, tn := range cfg.Connections[0].Tunnels {
			if tn.IKEVersion != c.want {
				t.Errorf("%s: tunnel %d IKE version %d, want %d", c.name, i+1, tn.IKEVersion, c.want)
			}
		}
	}
}
