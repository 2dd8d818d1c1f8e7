package adversary

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cgw-project/cgw/bench/lab"
)

// ikeOut classifies what the gateway sends on its outside link: IKE
// (port 500, or 4500 behind the non-ESP marker) by destination, with
// the header of each message.
type ikeOut struct {
	mu    sync.Mutex
	to    map[netip.Addr][]IKEv2Reply
	bytes map[netip.Addr]int
	other int
}

func (o *ikeOut) add(f Frame) {
	ip, ok := IPv4(f.Data)
	if !ok {
		return
	}
	_, dst, pl, ok := UDPOf(ip)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.to == nil {
		o.to, o.bytes = map[netip.Addr][]IKEv2Reply{}, map[netip.Addr]int{}
	}
	if !ok {
		o.other++
		return
	}
	if len(pl) >= 4 && dst.Port() != 500 && binary.BigEndian.Uint32(pl) == 0 {
		pl = pl[4:]
	} else if dst.Port() != 500 {
		return // ESP in UDP or a NAT-T keepalive
	}
	r, ok := ParseIKEv2(pl)
	if !ok {
		// IKEv1 or garbage: still a reply.
		r = IKEv2Reply{Exchange: 0}
	}
	o.to[dst.Addr()] = append(o.to[dst.Addr()], r)
	o.bytes[dst.Addr()] += len(ip)
}

// capture reads the gateway's outgoing packets on inet's cgw0 into an
// ikeOut until stop is called.
func captureGateway(t *testing.T, l *lab.Lab, within time.Duration) (*ikeOut, func()) {
	t.Helper()
	tap, err := NewTap(l.NS(lab.Inet), "cgw0", Match{Src: gatewayOutside})
	if err != nil {
		t.Fatal(err)
	}
	o := &ikeOut{}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			fs, _, _ := tap.Read(100*time.Millisecond, 1<<20)
			for _, f := range fs {
				o.add(f)
			}
		}
	}()
	return o, func() {
		close(stop)
		<-done
		tap.Close()
	}
}

// peerRequests records the message IDs of the IKE requests strongSwan
// (endpoint i) sends the gateway, seen on inet's link towards it, so a
// gateway response to one of them is not taken for a reply to the probe.
func peerRequests(t *testing.T, l *lab.Lab, i int, within time.Duration) (func() map[uint32]bool, func()) {
	t.Helper()
	tap, err := NewTap(l.NS(lab.Inet), fmt.Sprintf("t%d", i+1), Match{Src: awsOutside(i), Dst: gatewayOutside})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	mids := map[uint32]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			fs, _, _ := tap.Read(100*time.Millisecond, 1<<16)
			for _, f := range fs {
				ip, ok := IPv4(f.Data)
				if !ok {
					continue
				}
				_, dst, pl, ok := UDPOf(ip)
				if !ok {
					continue
				}
				if dst.Port() != 500 && len(pl) >= 4 && binary.BigEndian.Uint32(pl) == 0 {
					pl = pl[4:]
				}
				if r, ok := ParseIKEv2(pl); ok && r.Flags&FlagResponse == 0 {
					mu.Lock()
					mids[r.MessageID] = true
					mu.Unlock()
				}
			}
		}
	}()
	get := func() map[uint32]bool {
		mu.Lock()
		defer mu.Unlock()
		out := map[uint32]bool{}
		for k := range mids {
			out[k] = true
		}
		return out
	}
	return get, func() { close(stop); <-done; tap.Close() }
}
