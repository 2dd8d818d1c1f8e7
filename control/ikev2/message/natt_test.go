package message

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// Expected values computed independently with Python's hashlib:
// sha1(spii + spir + ip.packed + port.to_bytes(2, "big")).
func TestNATDetectionHash(t *testing.T) {
	spii := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	spir := []byte{9, 10, 11, 12, 13, 14, 15, 16}
	for _, c := range []struct {
		spir []byte
		ip   string
		port uint16
		want string
	}{
		{make([]byte, 8), "192.0.2.10", 500, "9cdaf8713cea81e287d3c0bacb7db468691dfe58"},
		{make([]byte, 8), "::ffff:192.0.2.10", 500, "9cdaf8713cea81e287d3c0bacb7db468691dfe58"}, // mapped: hashed as IPv4
		{spir, "2001:db8::10", 4500, "962234b9f9122308ac5f04e4bb6b31a9dc683f1a"},
	} {
		got := NATDetectionHash(spii, c.spir, netip.MustParseAddr(c.ip), c.port)
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("%s:%d: %x, want %s", c.ip, c.port, got, c.want)
		}
	}
}

func TestClassify4500(t *testing.T) {
	ike := []byte{1, 2, 3}
	marked := AppendMarked(nil, ike)
	if !bytes.Equal(marked, []byte{0, 0, 0, 0, 1, 2, 3}) {
		t.Fatalf("marked % x", marked)
	}
	for _, c := range []struct {
		in   []byte
		kind Datagram4500
		rest []byte
	}{
		{marked, Datagram4500IKE, ike},
		{[]byte{0xff}, Datagram4500Keepalive, []byte{0xff}},
		{[]byte{0xc0, 0, 0, 1, 0, 0, 0, 1}, Datagram4500ESP, []byte{0xc0, 0, 0, 1, 0, 0, 0, 1}},
		{[]byte{}, Datagram4500Invalid, []byte{}},
		{[]byte{0, 0}, Datagram4500Invalid, []byte{0, 0}},
		{[]byte{0xfe}, Datagram4500Invalid, []byte{0xfe}},
		{[]byte{0xff, 0xff}, Datagram4500Invalid, []byte{0xff, 0xff}},
	} {
		k, rest := Classify4500(c.in)
		if k != c.kind || !bytes.Equal(rest, c.rest) {
			t.Errorf("% x: %d % x, want %d % x", c.in, k, rest, c.kind, c.rest)
		}
	}
	if got, ok := StripMarker(marked); !ok || !bytes.Equal(got, ike) {
		t.Error("StripMarker")
	}
	if _, ok := StripMarker([]byte{0xff}); ok {
		t.Error("StripMarker accepted a keepalive")
	}
	if IsNATKeepalive([]byte{0xff, 0}) || !IsNATKeepalive([]byte{0xff}) {
		t.Error("IsNATKeepalive")
	}
}

func TestTrafficSelectorHelpers(t *testing.T) {
	for _, c := range []struct{ in, start, end, str string }{
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"198.18.0.0/15", "198.18.0.0", "198.19.255.255", "198.18.0.0/15"},
		{"192.0.2.77/32", "192.0.2.77", "192.0.2.77", "192.0.2.77/32"},
		{"192.0.2.77/24", "192.0.2.0", "192.0.2.255", "192.0.2.0/24"},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::/32"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
	} {
		ts, err := ParseTS(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Start.String() != c.start || ts.End.String() != c.end || ts.String() != c.str || !ts.AllTraffic() {
			t.Errorf("%s: %s..%s %q", c.in, ts.Start, ts.End, ts)
		}
		p, ok := ts.Prefix()
		if !ok || p.String() != c.str {
			t.Errorf("%s: Prefix %v %v", c.in, p, ok)
		}
	}
	r := TrafficSelector{TSType: TS_IPV4_ADDR_RANGE, IPProtocol: 6, StartPort: 443, EndPort: 443,
		Start: netip.MustParseAddr("192.0.2.1"), End: netip.MustParseAddr("192.0.2.9")}
	if _, ok := r.Prefix(); ok || r.String() != "192.0.2.1..192.0.2.9[6/443]" {
		t.Errorf("range %q", r)
	}
	for _, bad := range []string{"0.0.0.0", "::ffff:1.2.3.4/128", "x/0"} {
		if _, err := ParseTS(bad); err == nil {
			t.Errorf("ParseTS(%q) accepted", bad)
		}
	}
}

func TestIDHelpers(t *testing.T) {
	id := IDAddr(netip.MustParseAddr("::ffff:203.0.113.1"))
	if id.IDType != ID_IPV4_ADDR || id.String() != "203.0.113.1" {
		t.Errorf("%v %s", id.IDType, &id)
	}
	if b := id.Body(); !bytes.Equal(b, []byte{1, 0, 0, 0, 203, 0, 113, 1}) {
		t.Errorf("Body % x", b)
	}
	f := IDFQDN("vpn.example")
	if f.String() != `"vpn.example"` {
		t.Errorf("%s", &f)
	}
}
