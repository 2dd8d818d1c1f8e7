package kernelguard

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The state file lists the learnt and adopted prefixes, one a line, so
// that after a reboot (which empties the routing table) the guards are
// back as soon as cgw-control starts, not only once BGP has learnt the
// prefixes again over tunnels that are not up yet. Configured prefixes
// come from the configuration and are not listed.

// readState returns the prefixes of a state file; a missing file lists
// none, and a line that is not a prefix is skipped.
func readState(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel guards: reading %s: %w", path, err)
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, err := netip.ParsePrefix(strings.TrimSpace(sc.Text())); err == nil {
			out = append(out, norm(p))
		}
	}
	return out, sc.Err()
}

// save writes the learnt and adopted prefixes to the state file when they
// changed since the last write. Caller holds r.mu.
func (r *Routes) save() error {
	if r.state == "" {
		return nil
	}
	var ps []netip.Prefix
	for _, set := range []map[netip.Prefix]bool{r.learnt, r.adopted} {
		for p := range set {
			if !r.exempted(p) && !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	sortPrefixes(ps)
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	if b.String() == r.saved {
		return nil
	}
	tmp := r.state + ".new"
	if err := os.MkdirAll(filepath.Dir(r.state), 0o700); err != nil {
		return fmt.Errorf("kernel guards: %w", err)
	}
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("kernel guards: writing the state file: %w", err)
	}
	if err := os.Rename(tmp, r.state); err != nil {
		return fmt.Errorf("kernel guards: writing the state file: %w", err)
	}
	r.saved = b.String()
	return nil
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}
