package bgp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/rib"
	"github.com/cgw-project/cgw/internal/netnstest"
)

func testRIB(t *testing.T) *rib.RIB {
	t.Helper()
	r, err := rib.New(nopSink{}, []rib.Tunnel{{ID: 1, Name: "vpn-t1", Connection: "vpn"}, {ID: 2, Name: "vpn-t2", Connection: "vpn"}}, rib.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// listening returns this process's listening TCP and unix sockets
// ("tcp 127.0.0.1:50051", "unix /path"), from /proc.
func listening(t *testing.T) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	scan := func(file string, each func(f []string)) {
		fh, err := os.Open(file)
		if err != nil {
			return
		}
		defer fh.Close()
		s := bufio.NewScanner(fh)
		s.Scan() // header
		for s.Scan() {
			each(strings.Fields(s.Text()))
		}
	}
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		scan(f, func(f []string) {
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] { // TCP_LISTEN
				out = append(out, "tcp "+f[1])
			}
		})
	}
	scan("/proc/self/net/unix", func(f []string) {
		if len(f) > 6 && f[3] == "00010000" && inodes[f[6]] { // __SO_ACCEPTCON
			out = append(out, "unix "+strings.Join(f[7:], " "))
		}
	})
	return out
}

// TestAPIOffByDefault: with no setting (and with "off") the Speaker
// listens on nothing: no gRPC port for a local user to add paths through.
func TestAPIOffByDefault(t *testing.T) {
	before := len(listening(t))
	for _, addr := range []string{"", config.GoBGPAPIOff, "-"} {
		s, err := Start(testRIB(t), Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: addr}, testNeighbors())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // GoBGP would listen from a goroutine
		got := listening(t)
		s.Stop()
		if len(got) != before {
			t.Fatalf("GRPCAddress %q: the process listens on %v (before Start: %d sockets)", addr, got, before)
		}
	}
}

// TestAPIRefusesExposedTCP: a non-loopback address without mutual TLS is
// an error before anything listens.
func TestAPIRefusesExposedTCP(t *testing.T) {
	for _, c := range []struct {
		addr string
		tls  *config.TLSFiles
		want string
	}{
		{"0.0.0.0:50051", nil, "gobgp_api_tls"},
		{":50051", nil, "gobgp_api_tls"},
		{"192.0.2.10:50051", nil, "gobgp_api_tls"},
		{"192.0.2.10:50051", &config.TLSFiles{Cert: "c.pem", Key: "k.pem"}, "client_ca"},
		{"unix://run/x.sock", nil, "absolute"},
	} {
		s, err := Start(testRIB(t), Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: c.addr, GRPCTLS: c.tls}, testNeighbors())
		if err == nil {
			s.Stop()
			t.Fatalf("%s: accepted", c.addr)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: error %q does not mention %q", c.addr, err, c.want)
		}
	}
}

// TestAPIUnixSocketRootOnly is the probe "unprivileged `gobgp global rib
// add`: refused": the stock gobgp CLI run as uid nobody cannot add a path
// through the unix socket (its mode, 0600), nor with the mode loosened
// (SO_PEERCRED), while root can.
func TestAPIUnixSocketRootOnly(t *testing.T) {
	if sock := os.Getenv(connectEnv); sock != "" {
		// Child, as uid nobody: what does connect(2) say?
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		fmt.Printf("connect: %v\n", err)
		return
	}
	netnstest.Require(t, "go")
	bin := worldDir(t)
	gobgp := buildGoBGPCLI(t, bin)
	self := filepath.Join(bin, "bgp.test")
	if b, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(self, b, 0o755) != nil {
		t.Fatalf("copying the test binary for uid nobody: %v", err)
	}
	dir := worldDir(t) // traversable by nobody: only the socket's own mode guards it
	sock := filepath.Join(dir, "gobgp.sock")
	s, err := Start(testRIB(t), Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: "unix://" + sock}, testNeighbors())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: mode %v, err %v; want 0600", sock, fi.Mode(), err)
	}
	has := func(p string) bool {
		found := false
		s.Server().ListPath(t.Context(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast()}, func(d *api.Destination) {
			found = found || d.Prefix == p
		})
		return found
	}
	gobgpAs := func(nobody bool, args ...string) (string, error) {
		cmd := exec.Command(gobgp, append([]string{"--target", "unix://" + sock}, args...)...)
		if nobody {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// gobgp's client hides connect's error behind its dial timeout; ask
	// connect(2) itself as nobody.
	probe := exec.Command(self, "-test.run", "^TestAPIUnixSocketRootOnly$")
	probe.Env = append(os.Environ(), connectEnv+"="+sock)
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, _ := probe.CombinedOutput(); !strings.Contains(string(out), "connect: dial unix "+sock+": connect: permission denied") {
		t.Fatalf("uid nobody: connect to %s: want permission denied, got:\n%s", sock, out)
	}
	out, err := gobgpAs(true, "global", "rib", "add", "198.19.99.0/24")
	if err == nil || has("198.19.99.0/24") {
		t.Fatalf("uid nobody: gobgp global rib add: err %v, path added %v, output:\n%s\nwant refused and no path", err, has("198.19.99.0/24"), out)
	}
	t.Logf("uid nobody: connect: permission denied; gobgp global rib add refused: %s", strings.TrimSpace(out))

	// The second layer: even with the socket's mode loosened, a uid other
	// than root's is turned away in the handshake.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out, err = gobgpAs(true, "global", "rib", "add", "198.19.98.0/24")
	if err == nil || has("198.19.98.0/24") {
		t.Fatalf("uid nobody, socket mode 0666: gobgp global rib add: err %v, path added %v, output:\n%s", err, has("198.19.98.0/24"), out)
	}
	t.Logf("uid nobody, socket 0666: refused: %s", strings.TrimSpace(out))
	os.Chmod(sock, 0o600)

	if out, err := gobgpAs(false, "global", "rib", "add", "198.19.99.0/24"); err != nil || !has("198.19.99.0/24") {
		t.Fatalf("root: gobgp global rib add: %v, path added %v\n%s", err, has("198.19.99.0/24"), out)
	}
	if out, err := gobgpAs(false, "global", "rib", "del", "198.19.99.0/24"); err != nil || has("198.19.99.0/24") {
		t.Fatalf("root: gobgp global rib del: %v\n%s", err, out)
	}
	s.Stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("socket %s left behind after Stop", sock)
	}
}

const connectEnv = "CGW_BGP_TEST_CONNECT"

// worldDir is a fresh directory that uid nobody may enter (t.TempDir's
// parent is 0700); removed when the test ends.
func worldDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cgw-bgp-api-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAPIMutualTLS: on TCP with gobgp_api_tls a client without a
// certificate from the client CA gets nothing; one with it works.
func TestAPIMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testCert(t, nil, nil, "cgw test CA", true)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv, srvKey := testCert(t, ca, caKey, "127.0.0.1", false)
	cli, cliKey := testCert(t, ca, caKey, "operator", false)
	files := &config.TLSFiles{
		Cert:     write("srv.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Raw}),
		Key:      write("srv.key", keyBlock(t, srvKey)),
		ClientCA: write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s, err := Start(testRIB(t), Options{RouterID: netip.MustParseAddr("192.0.2.10"), GRPCAddress: addr, GRPCTLS: files}, testNeighbors())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	call := func(certs []tls.Certificate) error {
		conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		_, err = api.NewGobgpApiClient(conn).GetBgp(ctx, &api.GetBgpRequest{})
		return err
	}
	// The listener starts from a goroutine: wait for it with the good client.
	deadline := time.Now().Add(5 * time.Second)
	good := []tls.Certificate{{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey}}
	for err := call(good); err != nil; err = call(good) {
		if time.Now().After(deadline) {
			t.Fatalf("client with a certificate from client_ca: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := call(nil); err == nil {
		t.Fatal("client without a certificate: GetBgp answered")
	}
}

func testCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func keyBlock(t *testing.T, k *ecdsa.PrivateKey) *pem.Block {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: b}
}
