package slowpath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MTU is the inside MTU of an AWS tunnel interface (DESIGN §1).
const MTU = 1399

// Config describes one tunnel's interface.
type Config struct {
	// Name of the interface, at most 15 bytes, e.g. "cgw-vpn1a-t1".
	Name string
	// Addrs are the gateway's inside addresses with their prefix, e.g.
	// 169.254.44.90/30 (the /30's second usable address). Without an IPv6
	// address, IPv6 is disabled on the interface so the kernel sends no
	// router solicitations or MLD reports into the tunnel; with one, the
	// interface gets no link-local address (addr_gen_mode none).
	Addrs []netip.Prefix
	// MTU of the interface; 0 means MTU (1399).
	MTU int
}

func (c Config) mtu() int {
	if c.MTU == 0 {
		return MTU
	}
	return c.MTU
}

func (c Config) hasIPv6() bool {
	return slices.ContainsFunc(c.Addrs, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

func (c Config) validate() error {
	if c.Name == "" || len(c.Name) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("slowpath: interface name %q must be 1–15 bytes", c.Name)
	}
	for _, r := range c.Name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("slowpath: interface name %q must not contain '/', ':' or spaces", c.Name)
		}
	}
	if len(c.Addrs) == 0 {
		return fmt.Errorf("slowpath: interface %s needs an inside address (e.g. 169.254.44.90/30)", c.Name)
	}
	for _, p := range c.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("slowpath: interface %s: invalid inside address %v", c.Name, p)
		}
	}
	if m := c.mtu(); m < 68 || m > 65535 {
		return fmt.Errorf("slowpath: interface %s: MTU %d out of range 68–65535", c.Name, m)
	}
	return nil
}

// Device is one TUN interface. Read and Write may run concurrently with
// each other, but each must be called by one goroutine at a time.
type Device struct {
	name    string
	ifindex int
	f       *os.File
	rc      syscall.RawConn
	h       *netlink.Handle
	ns      netns.NsHandle
	close   sync.Once
	closed  atomic.Bool
	trunc   atomic.Uint64

	// Read and Write state, kept here so the callbacks handed to the poller
	// are method values made once: no allocation per batch.
	readFn  func(fd uintptr) bool
	rbufs   [][]byte
	rsizes  []int
	roff    int
	rn      int
	rerr    error
	writeFn func(fd uintptr) bool
	wbufs   [][]byte
	woff    int
	wi, wn  int
	werr    error
	cfg     Config
}

// Create makes the TUN device in network namespace ns (a path such as
// /run/netns/x or a name under /run/netns; "" for the caller's), sets its
// MTU and addresses and brings it up.
func Create(ns string, cfg Config) (*Device, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Device{name: cfg.Name, ns: netns.None()}
	var err error
	if ns != "" {
		if d.ns, err = openNS(ns); err != nil {
			return nil, err
		}
	}
	fd, err := d.inNS(func() (int, error) { return openTUN(cfg) })
	if err != nil {
		d.closeNS()
		return nil, err
	}
	d.f = os.NewFile(uintptr(fd), "/dev/net/tun:"+cfg.Name)
	if d.rc, err = d.f.SyscallConn(); err != nil {
		unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0)
		d.f.Close()
		d.closeNS()
		return nil, fmt.Errorf("slowpath: %s: %w", cfg.Name, err)
	}
	d.readFn, d.writeFn = d.doRead, d.doWrite
	if d.ns.IsOpen() {
		d.h, err = netlink.NewHandleAt(d.ns)
	} else {
		d.h, err = netlink.NewHandle()
	}
	if err == nil {
		err = d.configure(cfg)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func openNS(ns string) (netns.NsHandle, error) {
	path := ns
	if path[0] != '/' {
		path = "/run/netns/" + path
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return h, fmt.Errorf("slowpath: opening network namespace %s: %w (does it exist? ip netns list)", path, err)
	}
	return h, nil
}

// inNS runs f on a thread switched into the device's namespace. The thread
// is never unlocked, so Go ends it with the goroutine and no other
// goroutine ever runs in that namespace by accident. A TUN device is
// created in the namespace of the thread that opens it.
func (d *Device) inNS(f func() (int, error)) (int, error) {
	if !d.ns.IsOpen() {
		return f()
	}
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(d.ns); err != nil {
			ch <- result{-1, fmt.Errorf("slowpath: entering network namespace: %w", err)}
			return
		}
		fd, err := f()
		ch <- result{fd, err}
	}()
	r := <-ch
	return r.fd, r.err
}

// openTUN opens /dev/net/tun non-blocking and attaches it to the TUN
// interface named cfg.Name (TUNSETIFF, IFF_TUN|IFF_NO_PI: bare IP
// packets), a new one or one a killed dataplane left (persistent, below).
// It disables IPv6 on the interface unless an IPv6 address is configured.
// It runs in the target namespace.
func openTUN(cfg Config) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("slowpath: opening /dev/net/tun: %w (is the tun module loaded? modprobe tun)", err)
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EINVAL) {
			return -1, fmt.Errorf("slowpath: creating TUN interface %s: %w (is another interface or process using that name? ip link show %s)", cfg.Name, err, cfg.Name)
		}
		return -1, fmt.Errorf("slowpath: creating TUN interface %s: %w", cfg.Name, err)
	}
	// Persistent while the dataplane runs (Close clears it): a killed
	// process's exit would otherwise unregister the device, which takes
	// the kernel ~10 ms that a restart waits for (doc.go).
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("slowpath: making TUN interface %s persistent: %w", cfg.Name, err)
	}
	if !cfg.hasIPv6() {
		err := os.WriteFile("/proc/sys/net/ipv6/conf/"+cfg.Name+"/disable_ipv6", []byte("1"), 0)
		if err != nil && !errors.Is(err, os.ErrNotExist) { // no IPv6 in this kernel: nothing to disable
			unix.Close(fd)
			return -1, fmt.Errorf("slowpath: disabling IPv6 on %s: %w", cfg.Name, err)
		}
	}
	return fd, nil
}

// configure sets MTU and addresses (adding missing ones, removing others)
// and brings the link up. It is idempotent, so Update uses it too.
func (d *Device) configure(cfg Config) error {
	link, err := d.h.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("slowpath: finding interface %s: %w", d.name, err)
	}
	d.ifindex = link.Attrs().Index
	if link.Attrs().MTU != cfg.mtu() {
		if err := d.h.LinkSetMTU(link, cfg.mtu()); err != nil {
			return fmt.Errorf("slowpath: setting MTU %d on %s: %w", cfg.mtu(), d.name, err)
		}
	}
	have, err := d.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("slowpath: listing addresses of %s: %w", d.name, err)
	}
	for _, a := range have {
		p, ok := prefixOf(a)
		if !ok || p.Addr().IsLinkLocalUnicast() && p.Addr().Is6() || slices.Contains(cfg.Addrs, p) {
			continue
		}
		if err := d.h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("slowpath: removing old address %v from %s: %w", p, d.name, err)
		}
	}
	for _, p := range cfg.Addrs {
		a, err := netlink.ParseAddr(p.String())
		if err != nil {
			return fmt.Errorf("slowpath: %s: %w", d.name, err)
		}
		if err := d.h.AddrReplace(link, a); err != nil {
			return fmt.Errorf("slowpath: adding address %v to %s: %w (is it on another interface?)", p, d.name, err)
		}
	}
	if cfg.hasIPv6() && link.Attrs().Flags&net.FlagUp == 0 {
		// No link-local address (addr_gen_mode none): BGP over IPv6 uses
		// the configured inside address, and the kernel then has no reason
		// to send router solicitations into the tunnel.
		if err := d.h.LinkSetIP6AddrGenMode(link, 1); err != nil {
			return fmt.Errorf("slowpath: setting addr_gen_mode none on %s: %w", d.name, err)
		}
	}
	if err := d.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("slowpath: bringing %s up: %w", d.name, err)
	}
	d.cfg = Config{Name: cfg.Name, Addrs: slices.Clone(cfg.Addrs), MTU: cfg.MTU}
	return nil
}

func prefixOf(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// Ifindex returns the interface index in its namespace.
func (d *Device) Ifindex() int { return d.ifindex }

// Config returns the configuration the device was last set to.
func (d *Device) Config() Config { return d.cfg }

// BatchSize is the number of packets a Read or Write is meant to carry.
func (d *Device) BatchSize() int { return 64 }

// Read reads packets into bufs[i][offset:], setting sizes[i], and returns
// how many it read. It blocks (parking the goroutine) until at least one
// packet is there, then takes every packet already queued, up to
// min(len(bufs), len(sizes)). Each buffer should hold MTU bytes after
// offset: a longer packet is dropped and counted (Truncated). After Close it returns
// os.ErrClosed.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	d.rbufs, d.rsizes, d.roff, d.rn, d.rerr = bufs, sizes, offset, 0, nil
	err := d.rc.Read(d.readFn)
	n, rerr := d.rn, d.rerr
	d.rbufs, d.rsizes = nil, nil
	if rerr != nil {
		return n, fmt.Errorf("slowpath: reading %s: %w", d.name, rerr)
	}
	if err != nil {
		return n, d.closedErr(err)
	}
	return n, nil
}

// doRead is called by the poller with the fd; false means "wait until
// readable and call again".
func (d *Device) doRead(fd uintptr) bool {
	for d.rn < len(d.rbufs) && d.rn < len(d.rsizes) {
		b := d.rbufs[d.rn][d.roff:]
		n, err := unix.Read(int(fd), b)
		switch {
		case err == nil && n == len(b) && declaredLen(b) > n:
			// The kernel fills the buffer and drops the rest silently; the
			// IP header's length tells: drop the cut packet.
			d.trunc.Add(1)
		case err == nil:
			d.rsizes[d.rn] = n
			d.rn++
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return d.rn > 0
		default:
			d.rerr = err
			return true
		}
	}
	return true
}

// declaredLen returns the length the IP header of p claims (RFC 791 total
// length, RFC 8200 payload length + 40), or 0 if it cannot tell.
func declaredLen(p []byte) int {
	switch {
	case len(p) >= 4 && p[0]>>4 == 4:
		return int(p[2])<<8 | int(p[3])
	case len(p) >= 6 && p[0]>>4 == 6:
		return 40 + (int(p[4])<<8 | int(p[5]))
	}
	return 0
}

// Truncated returns how many packets Read dropped because they did not fit
// the buffer they were read into.
func (d *Device) Truncated() uint64 { return d.trunc.Load() }

// Write injects each bufs[i][offset:] as a packet received on the
// interface, and returns how many the kernel took. A packet the kernel
// refuses (malformed, or the interface is down) is skipped and the first
// such error is returned once the rest have been written.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	d.wbufs, d.woff, d.wi, d.wn, d.werr = bufs, offset, 0, 0, nil
	err := d.rc.Write(d.writeFn)
	n, werr := d.wn, d.werr
	d.wbufs = nil
	if err != nil {
		return n, d.closedErr(err)
	}
	if werr != nil {
		return n, fmt.Errorf("slowpath: writing to %s: %w", d.name, werr)
	}
	return n, nil
}

func (d *Device) doWrite(fd uintptr) bool {
	for d.wi < len(d.wbufs) {
		_, err := unix.Write(int(fd), d.wbufs[d.wi][d.woff:])
		switch err {
		case nil:
			d.wn++
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			if d.werr == nil {
				d.werr = err
			}
		}
		d.wi++
	}
	return true
}

// closedErr maps the poller's "use of closed file" to os.ErrClosed, as
// os.File's own methods do.
func (d *Device) closedErr(err error) error {
	if d.closed.Load() || errors.Is(err, os.ErrClosed) {
		return os.ErrClosed
	}
	return fmt.Errorf("slowpath: %s: %w", d.name, err)
}

// Close removes the interface (it stops being persistent and its
// descriptor is closed); a blocked Read returns os.ErrClosed.
func (d *Device) Close() error {
	var err error
	d.close.Do(func() {
		d.closed.Store(true)
		if d.rc != nil {
			d.rc.Control(func(fd uintptr) { unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, 0) })
		}
		if d.f != nil {
			err = d.f.Close()
		}
		if d.h != nil {
			d.h.Close()
		}
		d.closeNS()
	})
	return err
}

func (d *Device) closeNS() {
	if d.ns.IsOpen() {
		d.ns.Close()
	}
}
