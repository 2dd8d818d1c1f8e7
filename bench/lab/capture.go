package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Capture is a bounded tcpdump running in a lab namespace ("the wire" is
// inet's t1/t2/cgw0 links).
type Capture struct {
	Path string // pcap file
	proc Proc
}

// StartCapture captures at most maxPackets packets matching filter (pcap
// syntax) on iface in role's namespace into <state dir>/<name>.pcap. The
// process is recorded, so Down ends it even if Stop is never called.
func (l *Lab) StartCapture(ctx context.Context, role, iface, filter, name string, maxPackets int) (*Capture, error) {
	if maxPackets <= 0 || maxPackets > 1_000_000 {
		return nil, fmt.Errorf("capture %s: maxPackets must be 1..1000000", name)
	}
	path := filepath.Join(l.Dir, name+".pcap")
	// --immediate-mode: without it packets wait in the TPACKET_V3 ring
	// for up to a second and a quick Stop loses them.
	args := []string{"tcpdump", "-n", "-U", "--immediate-mode", "-i", iface, "-c", strconv.Itoa(maxPackets), "-w", path}
	if filter != "" {
		args = append(args, filter)
	}
	p, err := l.StartProcess("tcpdump-"+name, role, filepath.Join(l.Dir, name+".tcpdump.log"), nil, args...)
	if err != nil {
		return nil, err
	}
	// tcpdump creates the file once it listens.
	if err := waitFor(ctx, "tcpdump to start on "+iface, 5*time.Second, func() bool {
		_, err := os.Stat(path)
		return err == nil || !p.Alive()
	}); err != nil {
		return nil, err
	}
	if !p.Alive() {
		b, _ := os.ReadFile(p.Log)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("tcpdump on %s in %s failed: %s", iface, l.NS(role), b)
		}
	}
	return &Capture{Path: path, proc: p}, nil
}

// Stop ends the capture (tcpdump flushes on SIGTERM) and returns the
// decoded packets as tcpdump prints them.
func (c *Capture) Stop(ctx context.Context) (string, error) {
	if err := c.proc.stop(3 * time.Second); err != nil {
		return "", err
	}
	return run(ctx, "tcpdump", "-n", "-r", c.Path)
}
