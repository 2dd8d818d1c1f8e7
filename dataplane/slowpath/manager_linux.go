package slowpath

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager keeps one Device per tunnel in line with the tunnel table.
type Manager struct {
	ns   string
	mu   sync.Mutex
	devs map[string]*Device
}

// NewManager manages devices in network namespace ns ("" for the caller's).
func NewManager(ns string) *Manager {
	return &Manager{ns: ns, devs: map[string]*Device{}}
}

// Reconcile makes the set of devices match want: it creates the missing
// ones, updates MTU and addresses of existing ones in place (their readers
// carry on), and closes (removes) those no longer wanted. It goes on past
// a failing device and returns every error. added lists the devices
// created, for which the caller starts readers; a removed device's Read
// returns os.ErrClosed, which ends its reader.
func (m *Manager) Reconcile(want []Config) (added []*Device, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	names := map[string]bool{}
	for _, c := range want {
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("slowpath: interface %s is configured twice", c.Name))
		}
		names[c.Name] = true
	}
	for name, d := range m.devs {
		if !names[name] {
			d.Close()
			delete(m.devs, name)
		}
	}
	for _, c := range want {
		if d := m.devs[c.Name]; d != nil {
			if d.cfg.mtu() == c.mtu() && slices.Equal(d.cfg.Addrs, c.Addrs) {
				continue
			}
			if d.cfg.hasIPv6() != c.hasIPv6() {
				// IPv6 on or off is decided at creation: make it again.
				d.Close()
				delete(m.devs, c.Name)
			} else {
				if err := c.validate(); err != nil {
					errs = append(errs, err)
				} else if err := d.configure(c); err != nil {
					errs = append(errs, err)
				}
				continue
			}
		}
		d, err := Create(m.ns, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.devs[c.Name] = d
		added = append(added, d)
	}
	return added, errors.Join(errs...)
}

// RemoveStale removes the TUN interfaces named prefix… that no process
// holds (no carrier: a killed dataplane's, left persistent) and want does
// not list; those it lists are taken over by Reconcile.
func (m *Manager) RemoveStale(prefix string, want []Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var h *netlink.Handle
	var err error
	if m.ns == "" {
		h, err = netlink.NewHandle()
	} else {
		ns, nerr := openNS(m.ns)
		if nerr != nil {
			return nerr
		}
		defer ns.Close()
		h, err = netlink.NewHandleAt(ns)
	}
	if err != nil {
		return fmt.Errorf("slowpath: netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("slowpath: listing interfaces: %w", err)
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "tuntap" || !strings.HasPrefix(a.Name, prefix) || a.RawFlags&unix.IFF_LOWER_UP != 0 ||
			m.devs[a.Name] != nil || slices.ContainsFunc(want, func(c Config) bool { return c.Name == a.Name }) {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("slowpath: removing stale interface %s: %w", a.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Device returns the device named name, or nil.
func (m *Manager) Device(name string) *Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devs[name]
}

// Devices returns the managed devices, sorted by name.
func (m *Manager) Devices() []*Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	ds := make([]*Device, 0, len(m.devs))
	for _, d := range m.devs {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b *Device) int { return strings.Compare(a.name, b.name) })
	return ds
}

// Close removes every device.
func (m *Manager) Close() {
	m.Reconcile(nil)
}
