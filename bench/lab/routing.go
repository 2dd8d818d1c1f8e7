package lab

// Helpers for routing tests (bench/routing): an AWS endpoint going silent,
// AWS's static routing over the tunnel that is up, BIRD's graceful restart.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RouteSwitch is one change StaticFailover made to AWS's static route.
type RouteSwitch struct {
	At     time.Time
	Tunnel int // 0-based tunnel the route now uses
}

// StaticFailover emulates how AWS routes a static VPN connection (c): the
// static route towards the gateway's inside prefix uses a tunnel that is
// UP, as AWS's IKE and DPD see it. Every interval it asks connection c's
// endpoints' charons for an installed CHILD_SA (a charon that does not
// answer within a second counts as down) and points the route at the
// first tunnel that has one; with none up the route stays. The returned
// stop ends the monitor and reports the switches it made. Bounded by ctx.
func (l *Lab) StaticFailover(ctx context.Context, c int, interval time.Duration) (stop func() []RouteSwitch) {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var switches []RouteSwitch
	done := make(chan struct{})
	inside := l.Cfg.Gateway.Inside.Address.Masked().String()
	go func() {
		defer close(done)
		cur := 0 // awsConnUp points the route at tunnel 1
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
			up := -1
			for i := range l.conn(c).Tunnels {
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				sas, err := l.SwanctlListSAs(pctx, AWSEndpointOf(c, i))
				pcancel()
				if err != nil {
					continue
				}
				for _, s := range sas {
					if s.Up() {
						up = i
						break
					}
				}
				if up >= 0 {
					break
				}
			}
			if up < 0 || up == cur || ctx.Err() != nil {
				continue
			}
			if l.ip(ctx, AWSRole(c), "route", "replace", inside, "dev", AWSTunnelIf(up)) == nil {
				cur = up
				mu.Lock()
				switches = append(switches, RouteSwitch{At: time.Now(), Tunnel: up})
				mu.Unlock()
				l.Progressf("%s: static route %s now via %s", AWSRole(c), inside, AWSTunnelIf(up))
			}
		}
	}()
	return func() []RouteSwitch {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]RouteSwitch(nil), switches...)
	}
}

// SetEndpointLink takes connection c's AWS endpoint i off the internet
// (inet's link towards it down: the endpoint goes silent, no IKE Delete,
// no BGP Cease) or puts it back, restoring inet's host route that the
// link going down flushed.
func (l *Lab) SetEndpointLink(ctx context.Context, c, i int, up bool) error {
	link := inetLink(c, i)
	if !up {
		return l.ip(ctx, Inet, "link", "set", link, "down")
	}
	if err := l.ip(ctx, Inet, "link", "set", link, "up"); err != nil {
		return err
	}
	a := l.conn(c).Tunnels[i].AWSOutside
	return l.ip(ctx, Inet, "route", "replace", a.String()+"/32", "dev", link, "src", InetAWSSide.String())
}

// SetAWSGracefulRestart turns graceful restart (RFC 4724, receiving
// speaker) on or off in connection c's VGW BIRD and reloads it; BIRD
// restarts the sessions, so wait for BGP again afterwards.
func (l *Lab) SetAWSGracefulRestart(ctx context.Context, c int, on bool) error {
	name := AWSRole(c)
	s := l.AWSBirdOf(c)
	s.NoGracefulRestart = !on
	dir := filepath.Join(l.Dir, "bird-"+name)
	s.LogPath = filepath.Join(dir, "bird.log")
	if err := os.WriteFile(filepath.Join(dir, "bird.conf"), []byte(renderBirdConf(s)), 0o644); err != nil {
		return err
	}
	out, err := l.Birdc(ctx, name, "configure")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		return fmt.Errorf("lab: %s's BIRD did not take the new configuration: %s", name, strings.TrimSpace(out))
	}
	return nil
}
