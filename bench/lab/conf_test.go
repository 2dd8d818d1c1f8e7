package lab

import (
	"strings"
	"testing"

	"github.com/cgw-project/cgw/config"
)

func mustLab(t *testing.T, o Options) *Lab {
	t.Helper()
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantLines(t *testing.T, what, text string, lines ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, l := range lines {
		if !have[l] {
			t.Errorf("%s lacks line %q; got:\n%s", what, l, text)
		}
	}
}

func TestStrongSwanConf(t *testing.T) {
	c := renderStrongSwanConf()
	wantLines(t, "strongswan.conf", c,
		"socket = unix:///run/charon.vici",
		"fwmark = "+fwmarkUnused,
		"path = /run/charon.log",
	)
	load := ""
	for _, l := range strings.Split(c, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "load = ") {
			load = l
		}
	}
	li, ln := strings.Index(load, "kernel-libipsec"), strings.Index(load, "kernel-netlink")
	if li < 0 || ln < 0 || li > ln {
		t.Errorf("plugin list must load kernel-libipsec before kernel-netlink: %q", load)
	}
}

func TestSwanctlConfBothSidesAgree(t *testing.T) {
	l := mustLab(t, Options{})
	aws, err := l.AWSSwanctlConf(0)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := l.StandInSwanctlConf(0)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{
		"version = 2",
		"proposals = aes128-sha256-modp2048",
		"esp_proposals = aes128gcm16-modp2048",
		"rekey_time = 28530s", // 28 800 − 270 margin
		"over_time = 270s",
		"rand_time = 270s", // margin × 100 % fuzz
		"life_time = 3600s",
		"rekey_time = 3330s",
		"dpd_delay = 10s",
		"dpd_action = clear",
		"local_ts = 0.0.0.0/0",
		"remote_ts = 0.0.0.0/0",
		"replay_window = 1024",
		`secret = "lab.psk_tunnel1_x7Qe"`,
		"mobike = no",
	}
	wantLines(t, "AWS swanctl.conf", aws, append(common, "local_addrs = 203.0.113.1", "remote_addrs = %any", "start_action = none")...)
	wantLines(t, "stand-in swanctl.conf", gw, append(common, "local_addrs = 192.0.2.11", "remote_addrs = 203.0.113.1", "start_action = start")...)
}

func TestSwanctlConfOverrides(t *testing.T) {
	l := mustLab(t, Options{Overrides: Overrides{
		Tunnel: func(i int, tu *config.Tunnel) {
			if i == 1 {
				tu.IKEVersion = 1
				tu.DPD.Action = config.DPDRestart
				tu.Phase1.Encryption = []string{"AES256", "AES128-GCM-16"}
				tu.Phase1.Integrity = []string{"SHA1", "SHA2-384"}
				tu.Phase1.DHGroups = []int{2, 20}
				tu.Phase2.Encryption = []string{"AES128", "AES256-GCM-16"}
				tu.Phase2.Integrity = []string{"SHA2-512"}
				tu.Phase2.DHGroups = []int{5, 24}
				tu.NATTraversal = config.NATForce
			}
		},
		Initiate: [2]bool{false, true},
	}})
	c, err := l.AWSSwanctlConf(1)
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "overridden AWS swanctl.conf", c,
		"version = 1", "aggressive = no", "dpd_timeout = 30s", "dpd_action = restart", "encap = yes",
		"proposals = aes256-sha1-sha384-modp1024-ecp384,aes128gcm16-prfsha1-prfsha384-modp1024-ecp384",
		"esp_proposals = aes128-sha512-modp1536-modp2048s256,aes256gcm16-modp1536-modp2048s256",
		"start_action = start", "remote_addrs = 192.0.2.12", // the stand-in's charon of tunnel 2
	)
	// The gateway's own configuration is untouched by AWS overrides.
	gw, _ := l.StandInSwanctlConf(1)
	wantLines(t, "stand-in swanctl.conf", gw, "version = 2", "proposals = aes128-sha256-modp2048")
	if l.Conn.Tunnels[1].IKEVersion != 2 {
		t.Error("override leaked into the gateway's config")
	}
	// Tunnel 1 keeps the defaults.
	c0, _ := l.AWSSwanctlConf(0)
	wantLines(t, "AWS tunnel 1", c0, "version = 2", "start_action = none")
}

func TestSwanctlConfRejectsUnknownAlgorithm(t *testing.T) {
	l := mustLab(t, Options{Overrides: Overrides{Tunnel: func(i int, tu *config.Tunnel) { tu.Phase2.Encryption = []string{"DES"} }}})
	if _, err := l.AWSSwanctlConf(0); err == nil || !strings.Contains(err.Error(), "no strongSwan proposal") {
		t.Fatalf("want an error naming the missing proposal, got %v", err)
	}
}

func TestBirdConf(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Connections[0].Tunnels[1].ASPathPrepend = 2
	l := mustLab(t, Options{Config: cfg})
	aws := renderBirdConf(l.AWSBird())
	wantLines(t, "AWS bird.conf", aws,
		"router id 169.254.10.1;",
		"route 198.19.0.0/24 blackhole;",
		"protocol bgp t1 {", "protocol bgp t2 {",
		"local 169.254.10.1 as 64512;", "neighbor 169.254.10.2 as 65000;", `interface "vgw-t1";`,
		"local 169.254.11.1 as 64512;", "neighbor 169.254.11.2 as 65000;", `interface "vgw-t2";`,
		"hold time 30;", "keepalive time 10;",
		"preference 110;", "preference 109;",
		"export where source = RTS_BGP;",
		`export where proto = "prefixes";`,
	)
	gw := renderBirdConf(l.StandInBird())
	wantLines(t, "stand-in bird.conf", gw,
		"route 198.18.0.0/24 blackhole;",
		"local 169.254.10.2 as 65000;", "neighbor 169.254.10.1 as 64512;", `interface "gw-t1";`,
		"bgp_path.prepend(65000);",
	)
	if n := strings.Count(gw, "bgp_path.prepend(65000);"); n != 2 {
		t.Errorf("tunnel 2 should prepend twice, got %d", n)
	}
}

func TestLifetimes(t *testing.T) {
	for _, c := range []struct {
		life, margin, fuzz        int
		wantRekey, wantRand, over int
	}{
		{28800, 270, 100, 28530, 270, 270},
		{3600, 540, 50, 3060, 270, 540},
		{100, 270, 100, 50, 49, 50}, // margin ≥ lifetime: clamp
	} {
		r, rnd, o := lifetimes(config.Duration(c.life*1e9), config.Duration(c.margin*1e9), c.fuzz)
		if r != c.wantRekey || rnd != c.wantRand || o != c.over {
			t.Errorf("lifetimes(%d, %d, %d%%) = %d, %d, %d; want %d, %d, %d", c.life, c.margin, c.fuzz, r, rnd, o, c.wantRekey, c.wantRand, c.over)
		}
	}
}

const sampleListSAs = `list-sa event {t1 {uniqueid=1 version=2 state=ESTABLISHED local-host=203.0.113.1 local-port=4500 local-id=203.0.113.1 remote-host=192.0.2.11 remote-port=4500 remote-id=192.0.2.11 initiator-spi=ee2d4d6c91dbe3b9 responder-spi=e4054bfdd711ea44 nat-remote=yes nat-any=yes encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 dh-group=MODP_2048 established=11 rekey-time=28286 child-sas {t1-1 {name=t1 uniqueid=1 reqid=1 state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=7cd7a29a spi-out=6a206aa0 encr-alg=AES_GCM_16 encr-keysize=128 bytes-in=941 packets-in=13 use-in=1 bytes-out=1045 packets-out=15 use-out=1 rekey-time=3070 life-time=3589 install-time=11 local-ts=[0.0.0.0/0] remote-ts=[0.0.0.0/0]}}}}
list-sa event {t1 {uniqueid=2 version=2 state=CONNECTING local-host=203.0.113.1 local-port=500 remote-host=%any remote-port=500 child-sas {}}}
list-sas reply {}
`

func TestParseListSAs(t *testing.T) {
	sas, err := ParseListSAs(sampleListSAs)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 2 {
		t.Fatalf("want 2 IKE_SAs, got %d: %+v", len(sas), sas)
	}
	s := sas[0]
	if s.Name != "t1" || s.State != "ESTABLISHED" || s.Version != 2 || s.RemoteHost != "192.0.2.11" || s.RemotePort != 4500 || !s.NATAny || !s.Up() {
		t.Errorf("IKE_SA parsed wrong: %+v", s)
	}
	c, ok := s.InstalledChild()
	if !ok || c.SPIIn != "7cd7a29a" || c.SPIOut != "6a206aa0" || !c.Encap || c.BytesIn != 941 || c.BytesOut != 1045 || c.PacketsIn != 13 || c.EncrAlg != "AES_GCM_16" {
		t.Errorf("CHILD_SA parsed wrong: %+v", c)
	}
	if sas[1].Up() || len(sas[1].Children) != 0 {
		t.Errorf("connecting SA reported up: %+v", sas[1])
	}
	if _, err := ParseListSAs("list-sa event {t1 {state=ESTABLISHED"); err == nil {
		t.Error("truncated output parsed without error")
	}
}

func TestProcessGatewayConfig(t *testing.T) {
	l := mustLab(t, Options{Gateway: &ProcessGateway{Label: "cgw"}, StateRoot: t.TempDir(), Overrides: Overrides{Initiate: [2]bool{true, false}}})
	c, err := l.AWSSwanctlConf(0)
	if err != nil {
		t.Fatal(err)
	}
	// Any other gateway is reached at its configured outside address.
	wantLines(t, "AWS swanctl.conf", c, "remote_addrs = 192.0.2.10", "start_action = start")
	if l.opts.Gateway.Name() != "cgw" {
		t.Errorf("gateway name %q", l.opts.Gateway.Name())
	}
}
