package gateway

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cgw-project/cgw/dataplane/afxdp"
	"github.com/cgw-project/cgw/internal/netnstest"
)

// TestChannelsInUse: the worker count follows the RX queues in use
// (`ethtool -l` current settings), not the most the veth was made with,
// and it is asked in the dataplane's own network namespace.
func TestChannelsInUse(t *testing.T) {
	netnstest.Require(t, "ethtool")
	ns := netnstest.New(t, "cgwq")
	netnstest.Veth{A: netnstest.End{NS: ns, Name: "cgwq-a"}, B: netnstest.End{NS: ns, Name: "cgwq-b"}, Queues: 4}.Create(t)
	ns.Run(t, "ethtool", "-L", "cgwq-a", "rx", "3", "tx", "3")
	ns.Run(t, "ethtool", "-L", "cgwq-b", "rx", "1", "tx", "1")
	var a, b, none int
	var errNone error
	if err := ns.Do(func() error {
		var err error
		if a, err = channelsInUse("cgwq-a"); err != nil {
			return err
		}
		if b, err = channelsInUse("cgwq-b"); err != nil {
			return err
		}
		none, errNone = channelsInUse("cgwq-none")
		if rxQueues("cgwq-none") != 1 {
			return errors.New("rxQueues of a missing device is not 1")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if a != 3 || b != 1 {
		t.Fatalf("RX queues in use on two 4-queue veths: %d and %d, want 3 and 1 (ethtool -L rx 3, rx 1)", a, b)
	}
	if errNone == nil {
		t.Fatalf("a missing device reports %d queues, want an error", none)
	}
}

// TestRetryBusy: a queue still held by another socket (as a dataplane
// that just exited holds it for a moment) is bound once it is released;
// other errors are not retried.
func TestRetryBusy(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "cgwb")
	netnstest.Veth{A: netnstest.End{NS: ns, Name: "cgwb-a"}, B: netnstest.End{NS: ns, Name: "cgwb-b"}}.Create(t)
	var tries int
	if err := ns.Do(func() error {
		ifc, err := netnsIfindex("cgwb-a")
		if err != nil {
			return err
		}
		bind := func() (*afxdp.UMEM, *afxdp.Socket, error) {
			u, err := afxdp.NewUMEM(afxdp.UMEMConfig{Frames: 64})
			if err != nil {
				return nil, nil, err
			}
			s, err := afxdp.NewSocket(u, afxdp.SocketConfig{Ifindex: ifc, Queue: 0, Mode: afxdp.ModeCopy})
			if err != nil {
				u.Close()
				return nil, nil, err
			}
			return u, s, nil
		}
		u1, s1, err := bind()
		if err != nil {
			return err
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			s1.Close()
			u1.Close()
		}()
		var u2 *afxdp.UMEM
		var s2 *afxdp.Socket
		tries, err = retryBusy("test", func() error {
			var err error
			u2, s2, err = bind()
			return err
		})
		if err != nil {
			return err
		}
		s2.Close()
		u2.Close()
		return nil
	}); err != nil {
		t.Fatalf("binding a queue released 300 ms later: %v", err)
	}
	if tries < 2 {
		t.Fatalf("bound at the first attempt while the queue was held: the test did not exercise EBUSY")
	}
	n, err := retryBusy("test", func() error { return unix.ENODEV })
	if n != 1 || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("ENODEV: %d attempts, %v; want 1 and ENODEV", n, err)
	}
}

func netnsIfindex(name string) (int, error) {
	ifc, err := iface("test", name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
}

// TestRingSizeChecked: a ring size the kernel would refuse, or one that
// is not a power of two, is refused before anything is opened, with the
// range to use.
func TestRingSizeChecked(t *testing.T) {
	for _, n := range []int{100, 3000, 32768} {
		_, err := New(Options{RingSize: n, Outside: "x", Inside: "y"})
		if err == nil || !strings.Contains(err.Error(), "power of two from 256 to 16384") {
			t.Errorf("RingSize %d: %v, want the range", n, err)
		}
	}
}
