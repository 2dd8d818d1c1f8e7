// Package bpf holds cgw's XDP programs and the BPF maps that are the only
// contract between cgw-control and cgw-dataplane (DESIGN §2). The map
// layouts are the C structs in cgw_maps.h; bpf2go generates the Go types
// (CgwSa, CgwTunnel, ...) into cgw_bpfel.go.
//
// Both processes call LoadPinned with the same instance name: the first
// creates the maps and pins them under /sys/fs/bpf/cgw/<instance>/, later
// ones (or a restarted process) reuse the pinned maps.
package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// FSRoot is where bpffs is expected; Root is cgw's directory inside it.
const (
	FSRoot = "/sys/fs/bpf"
	Root   = FSRoot + "/cgw"
)

// Objects are the loaded programs and maps of one cgw instance.
type Objects struct {
	CgwObjects
	// Dir is the pin directory of the instance's maps.
	Dir string
}

var instanceRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// PinDir returns the pin directory of an instance, or an error if the name
// could escape /sys/fs/bpf/cgw.
func PinDir(instance string) (string, error) {
	if !instanceRE.MatchString(instance) || instance == "." || instance == ".." {
		return "", fmt.Errorf("bpf: instance name %q must be 1-64 letters, digits, '.', '_' or '-'", instance)
	}
	return filepath.Join(Root, instance), nil
}

// LoadPinned loads the XDP programs and opens or creates the instance's
// pinned maps. A map already pinned with a different layout (an older
// build) is an error: stop both processes and Remove the instance.
func LoadPinned(instance string) (*Objects, error) {
	dir, err := PinDir(instance)
	if err != nil {
		return nil, err
	}
	if err := mountBPFFS(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bpf: creating pin directory: %w", err)
	}
	// MkdirAll leaves existing directories alone; the maps hold keys.
	for _, d := range []string{Root, dir} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("bpf: %w", err)
		}
	}
	// cgw-control and cgw-dataplane may start together: without a lock
	// both create a map and the second pin fails.
	lock, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bpf: opening %s: %w", dir, err)
	}
	defer unix.Close(lock) // releases the flock
	if err := unix.Flock(lock, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("bpf: locking %s: %w", dir, err)
	}
	o := &Objects{Dir: dir}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}
	if err := LoadCgwObjects(&o.CgwObjects, opts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("bpf: maps pinned in %s have another layout (older cgw?): stop cgw-control and cgw-dataplane, remove %s and start again: %w", dir, dir, err)
		}
		return nil, fmt.Errorf("bpf: loading XDP programs and maps (is this run as root on kernel >= 5.15?): %w", err)
	}
	return o, nil
}

// Remove unpins every map of an instance and deletes its directory. The
// maps live on while a process or an attached program still holds them.
func Remove(instance string) error {
	dir, err := PinDir(instance)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bpf: removing %s: %w", dir, err)
	}
	return nil
}

const bpfFSMagic = 0xcafe4a11

// mountBPFFS mounts bpffs at /sys/fs/bpf unless it is there already (it is
// not by default on the lab machines). statfs rather than /proc/mounts: a
// second mount on top would hide pins made by another process.
func mountBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(FSRoot, &st); err == nil && st.Type == bpfFSMagic {
		return nil
	}
	if err := os.MkdirAll(FSRoot, 0o755); err != nil {
		return fmt.Errorf("bpf: creating %s: %w", FSRoot, err)
	}
	if err := unix.Mount("bpf", FSRoot, "bpf", 0, "mode=0700"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("bpf: mounting bpffs at %s (needs root): %w", FSRoot, err)
	}
	return nil
}

// XDPMode selects how a program is attached.
type XDPMode int

const (
	// Native runs the program in the driver (veth supports it).
	Native XDPMode = iota
	// Generic runs it on the skb path, for drivers without XDP support.
	Generic
)

func attach(p *ebpf.Program, ifindex int, mode XDPMode) (link.Link, error) {
	flags := link.XDPDriverMode
	if mode == Generic {
		flags = link.XDPGenericMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: ifindex, Flags: flags})
	if err != nil {
		return nil, fmt.Errorf("bpf: attaching XDP to ifindex %d (another XDP program attached? try generic mode for drivers without XDP): %w", ifindex, err)
	}
	return l, nil
}

// AttachOutside attaches xdp_outside to the outside (WAN) NIC.
func (o *Objects) AttachOutside(ifindex int, mode XDPMode) (link.Link, error) {
	return attach(o.XdpOutside, ifindex, mode)
}

// AttachInside attaches xdp_inside to the inside (LAN) NIC.
func (o *Objects) AttachInside(ifindex int, mode XDPMode) (link.Link, error) {
	return attach(o.XdpInside, ifindex, mode)
}

// AttachPass attaches the trivial xdp_pass program: a veth peer must run a
// native XDP program to receive frames redirected into it (DESIGN §4).
func (o *Objects) AttachPass(ifindex int, mode XDPMode) (link.Link, error) {
	return attach(o.XdpPass, ifindex, mode)
}
