package gateway

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/cgw-project/cgw/bpf"
)

// The XDP links are pinned beside the instance's maps (issue #9), so the
// programs stay attached when the dataplane exits — SIGTERM, kill -9 or a
// panic — and a restarted dataplane takes them over with one link update
// instead of a detach and an attach. The states:
//
//   - running: XDP steers into this process's sockets (XSKMAPs).
//   - stopped or crashed, links pinned (the default): the programs keep
//     running. A stopped process removes its sockets from the XSKMAPs; for
//     a killed one the kernel does as it releases each socket, one RCU
//     grace period after the other (until then frames steered to a dead
//     socket's ring are lost, uncounted: the killed process's exit takes
//     that long, and a new process cannot bind before). A redirect to an
//     empty slot takes the program's fallback verdict, XDP_DROP counted as
//     in/out_drop_no_socket — never a pass to the kernel's forwarding.
//   - restarting: the new process fills each queue's fill rings and
//     registers its sockets in the XSKMAPs (overwriting any entry) before
//     anything slow; traffic flows again from then on (frames wait in the
//     RX rings until the workers run). Only after the workers run does it
//     update the pinned links to its freshly loaded programs.
//   - detached: only with Options.Detach (cgw-dataplane -detach) or
//     bpf.Remove of the instance; the NICs are then plain kernel devices.
const (
	pinOutside = "link_xdp_outside"
	pinInside  = "link_xdp_inside"
)

// attachPinned attaches prog to ifc through the link pinned at dir/name:
// an existing pinned link on the same device is updated to prog; one left
// on another (or a removed) device is unpinned and replaced.
func attachPinned(dir, name string, ifc *net.Interface, prog *ebpf.Program, mode bpf.XDPMode,
	attach func(int, bpf.XDPMode) (link.Link, error)) (link.Link, error) {
	path := filepath.Join(dir, name)
	if l, err := link.LoadPinnedLink(path, nil); err == nil {
		info, ierr := l.Info()
		if ierr == nil && info.XDP() != nil && int(info.XDP().Ifindex) == ifc.Index {
			if err := l.Update(prog); err == nil {
				return l, nil
			} else {
				log.Printf("XDP link %s on %s: update failed (%v): attaching again", path, ifc.Name, err)
			}
		}
		l.Unpin()
		l.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		log.Printf("XDP link %s: %v: attaching again", path, err)
		os.Remove(path)
	}
	l, err := attach(ifc.Index, mode)
	if err != nil {
		return nil, err
	}
	if err := l.Pin(path); err != nil {
		l.Close()
		return nil, fmt.Errorf("pinning the XDP link of %s at %s: %w", ifc.Name, path, err)
	}
	return l, nil
}

// Detach removes the instance's pinned XDP links, detaching the programs
// (cgw-dataplane -detach without a running dataplane).
func Detach(instance string) error {
	dir, err := bpf.PinDir(instance)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range []string{pinOutside, pinInside} {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LinkIDs returns the IDs of an instance's pinned XDP links, outside and
// inside (0 where none is pinned). A restarted dataplane updates these
// links in place, so the IDs outlive it: a test of the restart compares
// them instead of watching the devices while the restart runs.
func LinkIDs(instance string) (outside, inside link.ID, err error) {
	dir, err := bpf.PinDir(instance)
	if err != nil {
		return 0, 0, err
	}
	ids := [2]link.ID{}
	for i, n := range []string{pinOutside, pinInside} {
		l, err := link.LoadPinnedLink(filepath.Join(dir, n), nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			return 0, 0, err
		}
		ids[i] = info.ID
	}
	return ids[0], ids[1], nil
}
