package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStrictUnknownKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"gatway: {}\n", `line 1: unknown key "gatway" in the top level; allowed keys: connections, gateway`},
		{"gateway:\n  name: x\n  outside:\n    iface: eth0\n", `line 4: unknown key "iface" in an interface (gateway.outside/inside); allowed keys: address, interface, next_hop`},
		{strings.Replace(minimalYAML, "pre_shared_key: Zr4", "psk: Zr4", 1), `line 14: unknown key "psk" in a tunnel; allowed keys: `},
		{strings.Replace(minimalYAML, "bgp: {advertise", "bgp: {asn: 1, advertise", 1), `line 7: unknown key "asn" in a connection's bgp`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"gateway: [", "not valid YAML"},
		{"connections:\n  - tunnels:\n      - rekey_margin: soon\n", `line 3: "soon" is not a duration`},
		{"connections:\n  - tunnels:\n      - rekey_margin: -5\n", "out of range"},
		{"connections:\n  - tunnels:\n      - inside_cidr: 169.254.1\n", "169.254.1"},
		{"connections:\n  - tunnels:\n      - mtu: big\n", "line 3"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Load("/nonexistent/cgw.yaml"); err == nil {
		t.Error("Load of a missing file succeeded")
	}
	c, err := Parse(nil)
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if ps := c.Validate(); len(ps) == 0 {
		t.Error("empty configuration validates")
	}
}

func TestDurationForms(t *testing.T) {
	y := strings.Replace(minimalYAML, "pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n",
		"pre_shared_key: Kx7.mQ2_pL9vRt4wYb3n\n        rekey_margin: 300\n        phase1: {lifetime: 8h}\n        phase2: {lifetime: 45m}\n        dpd: {interval: 1500ms}", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	tu := tun(c, 0)
	if tu.RekeyMargin != secs(300) || tu.Phase1.Lifetime != secs(28800) || tu.Phase2.Lifetime != secs(2700) ||
		tu.DPD.Interval != Duration(1500*time.Millisecond) {
		t.Errorf("durations: %v %v %v %v", tu.RekeyMargin, tu.Phase1.Lifetime, tu.Phase2.Lifetime, tu.DPD.Interval)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"lifetime: 28800s", "lifetime: 2700s", "rekey_margin: 300s", "interval: 1.5s"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("marshalled YAML lacks %q", s)
		}
	}
	if tu.RekeyMargin.Seconds() != 300 || tu.RekeyMargin.D() != 300*time.Second {
		t.Errorf("Seconds/D")
	}
}

// rekey_fuzz_percent: 0 written in the file means no fuzz; left out means
// AWS's 100 %.
func TestExplicitZeroFuzz(t *testing.T) {
	y := strings.Replace(minimalYAML, "pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s", "pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s\n        rekey_fuzz_percent: 0", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if tun(c, 0).RekeyFuzz != 100 || tun(c, 1).RekeyFuzz != 0 {
		t.Errorf("fuzz %d %d, want 100 0", tun(c, 0).RekeyFuzz, tun(c, 1).RekeyFuzz)
	}
	// And it survives a round trip.
	out, _ := Marshal(c)
	c2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if tun(c2, 1).RekeyFuzz != 0 {
		t.Errorf("fuzz after round trip %d", tun(c2, 1).RekeyFuzz)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"vpn-bgp.xml", "vpn-static.xml"} {
		t.Run(name, func(t *testing.T) {
			c, err := ImportAWS(readAWS(t, name))
			if err != nil {
				t.Fatal(err)
			}
			y, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "cgw.yaml")
			if err := os.WriteFile(path, y, 0o600); err != nil {
				t.Fatal(err)
			}
			c2, err := Load(path)
			if err != nil {
				t.Fatalf("load of marshalled import: %v\n%s", err, y)
			}
			if !reflect.DeepEqual(c, c2) {
				t.Errorf("round trip differs:\n%+v\n%+v", c, c2)
			}
			y2, _ := Marshal(c2)
			if string(y) != string(y2) {
				t.Errorf("second marshal differs:\n%s\n%s", y, y2)
			}
		})
	}
	// A complete hand-written configuration round-trips too.
	c, err := Load("../testdata/cgw-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y, _ := Marshal(c)
	c2, err := Parse(y)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("example round trip differs:\n%+v\n%+v", c, c2)
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := Load("../testdata/cgw-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("example has problems:\n%v", Problems(ps))
	}
	// Written values and defaults both land: the second tunnel writes
	// almost nothing and must equal the first apart from what it sets.
	a, b := tun(c, 0), tun(c, 1)
	if b.IKEVersion != 2 || b.ASPathPrepend != 2 || b.MTU != a.MTU || !reflect.DeepEqual(b.Phase1, a.Phase1) ||
		!reflect.DeepEqual(b.Phase2, a.Phase2) || b.DPD != a.DPD || b.LocalOutside != a.LocalOutside {
		t.Errorf("example tunnels differ unexpectedly:\n%+v\n%+v", a, b)
	}
	if c.Gateway.Outside.NextHop.String() != "192.0.2.1" {
		t.Errorf("next hop %v", c.Gateway.Outside.NextHop)
	}
}

func TestMarshalTODOComments(t *testing.T) {
	c, err := ImportAWS(readAWS(t, "vpn-static.xml"))
	if err != nil {
		t.Fatal(err)
	}
	y, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`interface: "" # TODO: the NIC towards the Internet/AWS`,
		`interface: "" # TODO: the NIC towards the on-premises network`,
		`routing: static # TODO: add static_routes`,
	} {
		if !strings.Contains(string(y), s) {
			t.Errorf("YAML lacks %q:\n%s", s, y)
		}
	}
}

// phase2.lifetime_bytes is read, written back only where set (AWS's
// configurations never have it) and survives a round trip.
func TestLifetimeBytesRoundTrip(t *testing.T) {
	y := strings.Replace(minimalYAML, "pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s",
		"pre_shared_key: Zr4_hT8.wQ1eNc6uJa2s\n        phase2: {lifetime_bytes: 4294967296}", 1)
	if y == minimalYAML {
		t.Fatal("minimalYAML changed: the test no longer adds lifetime_bytes")
	}
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("lifetime_bytes rejected:\n%v", Problems(ps))
	}
	if got := tun(c, 1).Phase2.LifetimeBytes; got != 1<<32 {
		t.Errorf("tunnel 2 phase2 lifetime_bytes %d, want %d", got, uint64(1)<<32)
	}
	if got := tun(c, 0).Phase2.LifetimeBytes; got != 0 {
		t.Errorf("tunnel 1 phase2 lifetime_bytes %d, want the default 0", got)
	}
	if len(tun(c, 1).Phase2.Encryption) == 0 || tun(c, 1).Phase2.Lifetime != DefaultPhase2Lifetime {
		t.Errorf("phase2 defaults not applied next to lifetime_bytes: %+v", tun(c, 1).Phase2)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), "lifetime_bytes:"); n != 1 || !strings.Contains(string(out), "lifetime_bytes: 4294967296") {
		t.Errorf("marshalled YAML has %d lifetime_bytes keys, want exactly the one set:\n%s", n, out)
	}
	c2, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip differs:\n%+v\n%+v", c, c2)
	}
}
