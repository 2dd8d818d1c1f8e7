package kernelguard

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Restored is what Restore did with one state file.
type Restored struct {
	Listed    int // prefixes the file lists
	Installed int // of them, guards that were missing and are now in the kernel
}

// Restore installs the guards a state file lists, and nothing else, in the
// network namespace of the calling thread, then returns: cgw-control
// -restore-guards, which cgw-guards.service runs at early boot, so the
// prefixes are guarded from before the network is up until cgw-control
// starts and adopts them (an unreachable route needs no interface). It
// removes nothing and leaves the file alone; guards already there are
// left as they are, so it is safe to run again. A missing file restores
// nothing and is no error; a line that is not a prefix is an error
// returned after the other lines' guards are installed.
func Restore(state string) (Restored, error) {
	ps, readErr := readState(state)
	res := Restored{Listed: len(ps)}
	if len(ps) == 0 {
		return res, readErr
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return res, errors.Join(fmt.Errorf("kernel guards: opening rtnetlink: %w", err), readErr)
	}
	defer h.Close()
	r := &Routes{h: h, table: unix.RT_TABLE_MAIN}
	found, err := r.list()
	if err != nil {
		return res, errors.Join(err, readErr)
	}
	have := map[netip.Prefix]bool{}
	for _, p := range found {
		have[p] = true
	}
	var errs []error
	for _, p := range ps {
		if have[p] {
			continue
		}
		if err := h.RouteReplace(r.route(p)); err != nil {
			errs = append(errs, fmt.Errorf("kernel guards: installing unreachable route %v metric %d: %w (cgw-control -restore-guards needs CAP_NET_ADMIN)", p, Metric, err))
			continue
		}
		have[p] = true
		res.Installed++
	}
	return res, errors.Join(append(errs, readErr)...)
}
