package netnstest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVethBetweenNamespaces: two namespaces joined by a veth with static
// neighbours exchange a UDP datagram; commands and Go code run on the
// right side; both namespaces are gone once the subtest that made them
// ends.
func TestVethBetweenNamespaces(t *testing.T) {
	Require(t)
	var names []string
	t.Run("lab", func(t *testing.T) {
		a, b := New(t, "cgwnnt-a"), New(t, "cgwnnt-b")
		names = append(names, a.Name(), b.Name())
		if a.Name() == b.Name() || !strings.HasPrefix(a.Name(), "cgwnnt-a-") {
			t.Fatalf("names %q, %q: want distinct ones starting with the prefix", a.Name(), b.Name())
		}
		pa, pb := netip.MustParsePrefix("198.18.250.1/24"), netip.MustParsePrefix("2001:db8:250::2/64")
		macA := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 1}
		ia, ib := Veth{
			A:                End{NS: a, Name: "nnta", MAC: macA, Addrs: []netip.Prefix{pa, netip.MustParsePrefix("2001:db8:250::1/64")}},
			B:                End{NS: b, Name: "nntb", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.250.2/24"), pb}},
			Queues:           2,
			StaticNeighbours: true,
		}.Create(t)
		if !bytes.Equal(ia.HardwareAddr, macA) || ib.HardwareAddr == nil || ia.Name != "nnta" || ib.Name != "nntb" {
			t.Fatalf("ends %+v, %+v: want nnta with %v and nntb with a MAC", ia, ib, macA)
		}
		if out := a.Run(t, "ip", "-o", "link", "show", "nnta"); !strings.Contains(out, "UP") {
			t.Errorf("nnta not up:\n%s", out)
		}
		if out := b.Run(t, "cat", "/sys/class/net/nntb/queues/rx-1/rps_cpus"); out == "" {
			t.Error("nntb has no second receive queue")
		}
		if out := a.Run(t, "ip", "neigh", "show", "dev", "nnta"); !strings.Contains(out, "198.18.250.2 lladdr "+ib.HardwareAddr.String()+" PERMANENT") ||
			!strings.Contains(out, "2001:db8:250::2 lladdr "+ib.HardwareAddr.String()+" PERMANENT") {
			t.Errorf("static neighbours in %s:\n%s", a.Name(), out)
		}
		if _, err := os.Stat("/sys/class/net/nnta"); err == nil {
			t.Error("nnta is visible in the test's own namespace")
		}

		var srv *net.UDPConn
		if err := b.Do(func() (err error) {
			srv, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(pb.Addr(), 9)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if err := a.Do(func() error {
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.18.250.2:9")))
			if err != nil {
				return err
			}
			defer c.Close()
			if got := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); got != pa.Addr() {
				t.Errorf("socket made in %s has source %v; want %v", a.Name(), got, pa.Addr())
			}
			c6, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(pb.Addr(), 9)))
			if err != nil {
				return err
			}
			defer c6.Close()
			_, err = c6.Write([]byte("over the veth"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := srv.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "over the veth" || from.Addr() != netip.MustParseAddr("2001:db8:250::1") {
			t.Fatalf("received %q from %v, %v; want the datagram from 2001:db8:250::1", buf[:n], from, err)
		}
	})
	if len(names) != 2 {
		t.Fatal("the lab subtest did not make two namespaces")
	}
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("namespace %s still there after its test ended (%v)", n, err)
		}
	}
}

// TestDoReportsMissingNamespace: Do on a namespace that is not there says
// which one.
func TestDoReportsMissingNamespace(t *testing.T) {
	Require(t)
	ns := &NS{name: "cgwnnt-does-not-exist"}
	if err := ns.Do(func() error { return nil }); err == nil || !strings.Contains(err.Error(), "cgwnnt-does-not-exist") {
		t.Fatalf("Do in a missing namespace: %v; want an error naming it", err)
	}
}

// recorder is a testing.TB that records what Require says instead of
// stopping the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// TestRequireNamesWhatIsMissing: under -short Require skips with the
// project's message; otherwise it fails naming each missing command and
// path, and where known how to get it.
func TestRequireNamesWhatIsMissing(t *testing.T) {
	r := &recorder{TB: t}
	Require(r, "cgwnnt-no-such-command", "/dev/cgwnnt-no-such-device")
	if testing.Short() {
		if r.skipped != SkipMessage {
			t.Fatalf("under -short Require said %q; want to skip with %q", r.skipped, SkipMessage)
		}
		return
	}
	for _, want := range []string{`"cgwnnt-no-such-command" command`, "/dev/cgwnnt-no-such-device"} {
		if !strings.Contains(r.failed, want) {
			t.Errorf("Require failed with %q; want it to name %s", r.failed, want)
		}
	}
	if strings.Contains(r.failed, `"ip"`) {
		t.Errorf("Require failed with %q; ip is installed", r.failed)
	}
}
