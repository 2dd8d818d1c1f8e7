package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCloudHubConfig(t *testing.T) {
	l := mustLab(t, Options{Connections: 3, Gateway: &CGWGateway{}})
	if l.Connections() != 3 {
		t.Fatalf("%d connections, want 3", l.Connections())
	}
	if err := l.Cfg.Check(); err != nil {
		t.Fatal(err)
	}
	c2 := l.Cfg.Connections[2]
	if c2.Tunnels[1].AWSOutside != netip.MustParseAddr("203.0.113.6") || c2.Tunnels[0].InsideCIDR != netip.MustParsePrefix("169.254.14.0/30") {
		t.Errorf("connection 3's tunnels: %v %v", c2.Tunnels[1].AWSOutside, c2.Tunnels[0].InsideCIDR)
	}
	if VPCPrefixOf(2) != netip.MustParsePrefix("198.19.2.0/24") || VPCHostOf(1) != netip.MustParseAddr("198.19.1.2") {
		t.Errorf("VPC addresses: %v %v", VPCPrefixOf(2), VPCHostOf(1))
	}
	// Every namespace name fits IFNAMSIZ-style limits with a short prefix,
	// and none repeats.
	seen := map[string]bool{}
	for _, r := range l.roles() {
		if seen[r] {
			t.Errorf("role %s twice", r)
		}
		seen[r] = true
	}
	for _, want := range []string{"aws-t1", "aws2-t2", "aws3", "vpc3"} {
		if !seen[want] {
			t.Errorf("roles %v lack %s", l.roles(), want)
		}
	}
	if n := inetLink(2, 1); len(n) > 15 {
		t.Errorf("inet link name %q too long", n)
	}
	b := renderBirdConf(l.AWSBirdOf(1))
	wantLines(t, "aws2 bird.conf", b, "route 198.19.1.0/24 blackhole;", "local 169.254.12.1 as 64512;", "neighbor 169.254.13.2 as 65000;")
	if _, err := New(Options{Connections: 2}); err == nil || !strings.Contains(err.Error(), "stand-in") {
		t.Errorf("the stand-in with two connections: %v, want an error", err)
	}
}

func TestBirdConfExport(t *testing.T) {
	more := netip.MustParsePrefix("198.19.0.128/25")
	l := mustLab(t, Options{Overrides: Overrides{Export: [2][]netip.Prefix{nil, {more}}}})
	b := renderBirdConf(l.AWSBird())
	wantLines(t, "AWS bird.conf", b,
		"protocol static extra_t2 {", "route 198.19.0.128/25 blackhole;",
		`export where proto = "prefixes";`,
		`export where proto = "prefixes" || proto = "extra_t2";`,
		"graceful restart aware;",
	)
	if strings.Contains(b, "extra_t1") {
		t.Errorf("tunnel 1 exports extra prefixes:\n%s", b)
	}
}

func TestStrongSwanConfRetransmit(t *testing.T) {
	c := renderStrongSwanConfRetransmit(Retransmit{Tries: 2, Timeout: 1, Base: 1})
	wantLines(t, "strongswan.conf", c, "retransmit_tries = 2", "retransmit_timeout = 1.0", "retransmit_base = 1.0")
	wantLines(t, "default strongswan.conf", renderStrongSwanConf(), "retransmit_tries = 3", "retransmit_timeout = 2.0")
}
