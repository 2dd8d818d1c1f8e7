package config

import (
	"strings"
	"testing"
)

func TestParseGoBGPAPI(t *testing.T) {
	full := &TLSFiles{Cert: "/etc/cgw/c.pem", Key: "/etc/cgw/k.pem", ClientCA: "/etc/cgw/ca.pem"}
	for _, c := range []struct {
		addr     string
		tls      *TLSFiles
		network  string
		warn     bool
		errorHas string
	}{
		{addr: "", network: ""},
		{addr: "off", network: ""},
		{addr: "-", network: ""},
		{addr: "unix:///run/cgw/cgw/gobgp.sock", network: "unix"},
		{addr: "unix://run/gobgp.sock", errorHas: "absolute path"},
		{addr: "unix:///run/../tmp/gobgp.sock", errorHas: "clean absolute path"},
		{addr: "unix:///run/cgw/cgw/gobgp.sock", tls: full, errorHas: "remove gobgp_api_tls"},
		{addr: "127.0.0.1:50051", network: "tcp", warn: true},
		{addr: "[::1]:50051", network: "tcp", warn: true},
		{addr: "localhost:50051", network: "tcp", warn: true},
		{addr: "127.0.0.1:50051", tls: full, network: "tcp"},
		{addr: "192.0.2.10:50051", errorHas: "mutual TLS"},
		{addr: "0.0.0.0:50051", errorHas: "not a loopback address"},
		{addr: ":50051", errorHas: "not a loopback address"},
		{addr: "[::]:50051", errorHas: "not a loopback address"},
		{addr: "192.0.2.10:50051", tls: full, network: "tcp"},
		{addr: "192.0.2.10:50051", tls: &TLSFiles{Cert: "c", Key: "k"}, errorHas: "client_ca"},
		{addr: "gw.example:50051", errorHas: "IP address"},
		{addr: "127.0.0.1", errorHas: "host:port"},
		{addr: "127.0.0.1:0", errorHas: "1–65535"},
	} {
		api, warn, err := ParseGoBGPAPI(c.addr, c.tls)
		if c.errorHas != "" {
			if err == nil || !strings.Contains(err.Error(), c.errorHas) {
				t.Errorf("%q: error %v, want one mentioning %q", c.addr, err, c.errorHas)
			}
			continue
		}
		if err != nil || api.Network != c.network || (warn != "") != c.warn {
			t.Errorf("%q (tls %v): network %q warn %q err %v; want network %q, warning %v", c.addr, c.tls != nil, api.Network, warn, err, c.network, c.warn)
		}
	}
}

// TestGoBGPAPIWarning: loopback TCP without TLS is allowed but listed as a
// warning that says why (any local user can reach it).
func TestGoBGPAPIWarning(t *testing.T) {
	c := minimal(t)
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("default config warns: %v", w)
	}
	c.Gateway.Observability.GoBGPAPI = "127.0.0.1:50051"
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("loopback GoBGP API refused: %v", Problems(ps))
	}
	w := c.Warnings()
	if len(w) != 1 || w[0].Path != "gateway.observability.gobgp_api" || !strings.Contains(w[0].Msg, "any local user") {
		t.Fatalf("warnings = %v", w)
	}
}
