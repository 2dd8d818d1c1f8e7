package bgp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/osrg/gobgp/v3/pkg/server"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/cgw-project/cgw/config"
)

// apiOptions returns the GoBGP server options that serve its gRPC API as
// opt asks (config.ParseGoBGPAPI's rules), and a function to call once
// the server exists (it finishes the unix socket). GoBGP listens itself,
// from a goroutine, and treats a failure as fatal: what can be checked
// beforehand is.
func apiOptions(opt Options) ([]server.ServerOption, func() error, error) {
	api, warn, err := config.ParseGoBGPAPI(opt.GRPCAddress, opt.GRPCTLS)
	if err != nil {
		return nil, nil, fmt.Errorf("bgp: %w", err)
	}
	none := func() error { return nil }
	switch api.Network {
	case "":
		return nil, none, nil
	case "unix":
		if err := prepareSocket(api.Address); err != nil {
			return nil, nil, err
		}
		creds := peerCreds{uid: uint32(os.Geteuid())}
		return []server.ServerOption{
			server.GrpcListenAddress("unix://" + api.Address),
			server.GrpcOption([]grpc.ServerOption{grpc.Creds(creds)}),
		}, func() error { return finishSocket(api.Address) }, nil
	}
	l, err := net.Listen("tcp", api.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("bgp: GoBGP gRPC API on %s: %w (set gateway.observability.gobgp_api to a free host:port, or off)", api.Address, err)
	}
	l.Close()
	sopts := []server.ServerOption{server.GrpcListenAddress(api.Address)}
	if opt.GRPCTLS != nil {
		c, err := serverTLS(opt.GRPCTLS)
		if err != nil {
			return nil, nil, err
		}
		sopts = append(sopts, server.GrpcOption([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(c))}))
	}
	if warn != "" {
		opt.Logger.Warn(warn, "setting", "gateway.observability.gobgp_api")
	}
	return sopts, none, nil
}

// prepareSocket makes the socket's directory (0700 if it creates it) and
// removes a socket a previous process left; anything else at the path is
// an error rather than something to delete.
func prepareSocket(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("bgp: GoBGP API socket directory: %w", err)
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("bgp: GoBGP API socket: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("bgp: GoBGP API socket %s: something that is not a socket is there; move it away or set gateway.observability.gobgp_api to another path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("bgp: GoBGP API socket %s: another process serves it (a second cgw-control for this instance?)", path)
	}
	return os.Remove(path)
}

// finishSocket waits for GoBGP to create the socket and makes it 0600.
// Until then a connecting process is refused anyway (peerCreds).
func finishSocket(path string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		fi, err := os.Lstat(path)
		if err == nil && fi.Mode().Type() == fs.ModeSocket {
			if err := os.Chmod(path, 0o600); err != nil {
				return fmt.Errorf("bgp: GoBGP API socket %s: %w", path, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bgp: GoBGP did not create its API socket %s (see its log line above)", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverTLS is a TLS 1.2+ server configuration that requires a client
// certificate from the client CA.
func serverTLS(f *config.TLSFiles) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("bgp: gobgp_api_tls cert/key: %w", err)
	}
	pem, err := os.ReadFile(f.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("bgp: gobgp_api_tls client_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("bgp: gobgp_api_tls client_ca %s: no PEM certificate in it", f.ClientCA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// peerCreds admits a unix-socket client only if its uid (SO_PEERCRED) is
// root's or the daemon's: the socket's mode already keeps others out, and
// this keeps them out too while the socket is being created, or if its
// mode or directory is ever loosened. The connection itself is left as
// it is (the client speaks plain gRPC).
type peerCreds struct{ uid uint32 }

type peerInfo struct{ credentials.CommonAuthInfo }

func (peerInfo) AuthType() string { return "peercred" }

func (p peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("GoBGP API: not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, err
	}
	if cerr != nil {
		return nil, nil, fmt.Errorf("GoBGP API: reading the peer's credentials: %w", cerr)
	}
	if cred.Uid != 0 && cred.Uid != p.uid {
		return nil, nil, fmt.Errorf("GoBGP API: uid %d (pid %d) refused: root only", cred.Uid, cred.Pid)
	}
	return c, peerInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peerCreds is server-side only")
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil }
