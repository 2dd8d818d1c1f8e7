package nic

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The netdev generic netlink family (kernel ≥ 6.3, Documentation/netlink/
// specs/netdev.yaml): what XDP features a driver implements.
const (
	netdevCmdDevGet        = 1
	netdevAttrIfindex      = 1
	netdevAttrXDPFeatures  = 3
	netdevAttrXDPZCMaxSegs = 4

	xdpActBasic       = 1 << 0 // XDP in the driver (native mode)
	xdpActRedirect    = 1 << 1
	xdpActXSKZeroCopy = 1 << 3 // AF_XDP zero-copy
)

// XDPFeatures is what a device's driver says it supports.
type XDPFeatures struct {
	Native   bool // XDP programs run in the driver (XDP_FLAGS_DRV_MODE)
	Redirect bool
	ZeroCopy bool // AF_XDP sockets can bind with XDP_ZEROCOPY
	Known    bool // false: the kernel has no netdev family (< 6.3)
}

// DevXDPFeatures asks the kernel which XDP features dev's driver implements.
func DevXDPFeatures(dev string) (XDPFeatures, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return XDPFeatures{}, fmt.Errorf("%s: %w", dev, err)
	}
	fam, err := netlink.GenlFamilyGet("netdev")
	if err != nil {
		return XDPFeatures{}, nil // an older kernel: unknown
	}
	req := nl.NewNetlinkRequest(int(fam.ID), 0)
	req.AddData(genlHeader{netdevCmdDevGet, 1, 0, 0})
	idx := make([]byte, 4)
	binary.NativeEndian.PutUint32(idx, uint32(l.Attrs().Index))
	req.AddData(nl.NewRtAttr(netdevAttrIfindex, idx))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return XDPFeatures{}, fmt.Errorf("%s: netdev dev-get: %w", dev, err)
	}
	for _, m := range msgs {
		if len(m) < nl.SizeofGenlmsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return XDPFeatures{}, err
		}
		for _, a := range attrs {
			if a.Attr.Type == netdevAttrXDPFeatures && len(a.Value) >= 8 {
				f := binary.NativeEndian.Uint64(a.Value)
				return XDPFeatures{Native: f&xdpActBasic != 0, Redirect: f&xdpActRedirect != 0, ZeroCopy: f&xdpActXSKZeroCopy != 0, Known: true}, nil
			}
		}
	}
	return XDPFeatures{}, nil
}

// genlHeader is struct genlmsghdr: command, version, 2 reserved zero
// bytes. (nl.Genlmsg serialises 4 bytes from its 2-byte struct, so the
// reserved bytes are whatever memory follows and the kernel sometimes
// answers EINVAL.)
type genlHeader [4]byte

func (h genlHeader) Len() int          { return len(h) }
func (h genlHeader) Serialize() []byte { return h[:] }

// AttachedXDP reports the mode of the XDP program attached to dev now
// ("native", "generic", "offload"; "" when none).
func AttachedXDP(dev string) (string, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return "", fmt.Errorf("%s: %w", dev, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return "", nil
	}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return "native", nil
	case nl.XDP_ATTACHED_SKB:
		return "generic", nil
	case nl.XDP_ATTACHED_HW:
		return "offload", nil
	}
	return "native", nil // XDP_ATTACHED_MULTI: our programs are native ones
}
