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

// The state file lists every guarded prefix (configured, learnt and
// adopted), one a line, so that after a reboot (which empties the routing
// table) the guards are back before cgw-control starts (Restore, run by
// cgw-guards.service at early boot) and adopted when it starts, not only
// once BGP has learnt the prefixes again over tunnels that are not up yet.
// The configured ones are listed too: at boot the configuration is not
// read, and a static-routes VPN has no other prefixes.

// readState returns the prefixes of a state file; a missing file lists
// none. A line that is not a prefix is an error naming it, returned with
// the prefixes of the other lines (they are still worth guarding).
func readState(path string) ([]netip.Prefix, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel guards: reading the state file: %w", err)
	}
	defer f.Close()
	var out []netip.Prefix
	var bad []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		p, err := netip.ParsePrefix(line)
		if err != nil {
			if len(bad) < 3 {
				bad = append(bad, fmt.Sprintf("line %d %q", n, line))
			}
			continue
		}
		out = append(out, norm(p))
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("kernel guards: reading the state file %s: %w", path, err)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("kernel guards: state file %s: %s: not a prefix (it lists one prefix a line, e.g. 198.19.0.0/16; "+
			"fix or delete the line: cgw-control rewrites the file from what it guards)", path, strings.Join(bad, ", "))
	}
	return out, nil
}

// save writes the guarded prefixes to the state file when they changed
// since the last write. Caller holds r.mu.
func (r *Routes) save() error {
	if r.state == "" {
		return nil
	}
	var ps []netip.Prefix
	for _, set := range []map[netip.Prefix]bool{r.configured, r.learnt, r.adopted} {
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
