package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// The embedded GoBGP's gRPC API can add paths (pull VPC traffic to any
// place) and stop BGP, and GoBGP itself checks nobody: whoever reaches it
// controls routing. So it is off unless asked for (DESIGN §6: local
// control surfaces root-only by default), and what may be asked for is
// limited here, for `cgwctl config check` and cgw-control alike:
//   - unix:///path: a socket created 0600 (root only) in a directory
//     created 0700; control/bgp also refuses any peer whose uid is not
//     root's or the daemon's (SO_PEERCRED).
//   - host:port on a loopback address: any local user can connect, so it
//     is a warning unless mutual TLS (gobgp_api_tls) is configured.
//   - host:port on any other address: refused unless gobgp_api_tls names
//     a certificate, its key and a client CA: TLS with a server
//     certificate alone authenticates only the server.

// GoBGPAPIOff is gobgp_api's default: no gRPC API.
const GoBGPAPIOff = "off"

// TLSFiles are PEM files for a TLS server that requires client
// certificates.
type TLSFiles struct {
	Cert     string `yaml:"cert"`      // server certificate (chain)
	Key      string `yaml:"key"`       // its private key
	ClientCA string `yaml:"client_ca"` // CA bundle that client certificates must chain to
}

// DefaultGoBGPSocket is the suggested unix socket of gateway instance
// name's GoBGP API, beside the status socket.
func DefaultGoBGPSocket(name string) string {
	return "unix:///run/cgw/" + name + "/gobgp.sock"
}

// GoBGPAPI is a parsed gobgp_api setting.
type GoBGPAPI struct {
	Network string // "" (off), "unix" or "tcp"
	Address string // socket path or host:port
	// Loopback is set for a TCP address on 127.0.0.0/8, ::1 or localhost.
	Loopback bool
}

// ParseGoBGPAPI checks a gobgp_api setting (or cgw-control's -gobgp-api;
// "-" is the flag's spelling of off) together with its TLS files, and
// returns where to serve. warn is non-empty for a setting that works but
// lets any local user control BGP.
func ParseGoBGPAPI(addr string, tls *TLSFiles) (api GoBGPAPI, warn string, err error) {
	switch addr {
	case "", GoBGPAPIOff, "-":
		return GoBGPAPI{}, "", nil
	}
	const why = "the GoBGP API can add routes (pulling VPC traffic anywhere) and stop BGP"
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return api, "", fmt.Errorf("gobgp_api %q: a unix socket needs a clean absolute path, e.g. %s", addr, DefaultGoBGPSocket("cgw"))
		}
		if tls != nil {
			return api, "", fmt.Errorf("gobgp_api %q: gobgp_api_tls is for TCP addresses; a unix socket is protected by its mode (0600, root only): remove gobgp_api_tls", addr)
		}
		return GoBGPAPI{Network: "unix", Address: path}, "", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return api, "", fmt.Errorf("gobgp_api %q: write off (the default), unix:///path (e.g. %s, root only) or host:port", addr, DefaultGoBGPSocket("cgw"))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return api, "", fmt.Errorf("gobgp_api %q: the port must be 1–65535", addr)
	}
	api = GoBGPAPI{Network: "tcp", Address: addr}
	if host == "localhost" {
		api.Loopback = true
	} else if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return GoBGPAPI{}, "", fmt.Errorf("gobgp_api %q: the host must be an IP address (no name lookups for a control surface)", addr)
		}
		api.Loopback = a.Unmap().IsLoopback()
	}
	if tls != nil {
		if tls.Cert == "" || tls.Key == "" || tls.ClientCA == "" {
			return GoBGPAPI{}, "", fmt.Errorf("gobgp_api_tls: set cert, key and client_ca: %s, so clients must present a certificate from client_ca (a server certificate alone authenticates only the server)", why)
		}
		return api, "", nil
	}
	if !api.Loopback {
		return GoBGPAPI{}, "", fmt.Errorf("gobgp_api %q: not a loopback address and no gobgp_api_tls: %s and GoBGP authenticates nobody, so it is served beyond this host only with mutual TLS (gobgp_api_tls: cert, key, client_ca); for local use write %s (root only)", addr, why, DefaultGoBGPSocket("cgw"))
	}
	return api, fmt.Sprintf("%s and on %s any local user can reach it: use %s (root only) or add gobgp_api_tls", why, addr, DefaultGoBGPSocket("cgw")), nil
}
