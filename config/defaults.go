package config

import (
	"fmt"
	"time"
)

// AWS's defaults for a VPN tunnel (DESIGN.md §1, AWS "Tunnel options for
// your Site-to-Site VPN connection") and this gateway's own defaults.
const (
	DefaultIKEVersion      = 2
	DefaultPhase1Lifetime  = Duration(28800 * time.Second)
	DefaultPhase2Lifetime  = Duration(3600 * time.Second)
	DefaultRekeyMargin     = Duration(270 * time.Second)
	DefaultRekeyFuzz       = 100 // percent
	DefaultReplayWindow    = 1024
	DefaultDPDInterval     = Duration(10 * time.Second)
	DefaultDPDRetries      = 3
	DefaultDPDAction       = DPDClear
	DefaultNATTraversal    = NATAuto
	DefaultMTU             = 1399
	DefaultTCPMSS          = 1379
	DefaultStartupAction   = StartupStart
	DefaultLocalASN        = 65000
	DefaultPeerASN         = 64512
	DefaultHoldTime        = Duration(30 * time.Second)
	DefaultGatewayName     = "cgw"
	DefaultBatchSize       = 64
	DefaultRingSize        = 1024
	DefaultControlMetrics  = "127.0.0.1:9471"
	DefaultDataplaneMetric = "127.0.0.1:9472"
)

// DefaultStatusSocket is the status API socket of gateway instance name.
func DefaultStatusSocket(name string) string {
	return "/run/cgw/" + name + "/control.sock"
}

// TunnelName is the default name of a connection's i-th tunnel (0-based):
// "<connection>-t1", "<connection>-t2".
func TunnelName(conn string, i int) string {
	return fmt.Sprintf("%s-t%d", conn, i+1)
}

// ApplyDefaults fills every unset field with AWS's default (or the
// gateway's) and rewrites algorithm names in AWS's spelling. A zero value
// means "unset", except where Parse saw an explicit rekey_fuzz_percent: 0.
// Invalid values are left alone for Validate to report.
func (c *Config) ApplyDefaults() { c.applyDefaults(nil) }

// applyDefaults does ApplyDefaults; keepFuzz(i, j) tells whether tunnel j
// of connection i had rekey_fuzz_percent written explicitly.
func (c *Config) applyDefaults(keepFuzz func(i, j int) bool) {
	g := &c.Gateway
	if g.Name == "" {
		g.Name = DefaultGatewayName
	}
	if g.Dataplane.RingSize == 0 {
		g.Dataplane.RingSize = DefaultRingSize
	}
	if g.Dataplane.BatchSize == 0 {
		g.Dataplane.BatchSize = DefaultBatchSize
	}
	o := &g.Observability
	if o.ControlMetrics == "" {
		o.ControlMetrics = DefaultControlMetrics
	}
	if o.DataplaneMetrics == "" {
		o.DataplaneMetrics = DefaultDataplaneMetric
	}
	if o.GoBGPAPI == "" {
		o.GoBGPAPI = GoBGPAPIOff
	}
	if o.StatusSocket == "" {
		o.StatusSocket = DefaultStatusSocket(g.Name)
	}
	for i := range c.Connections {
		cn := &c.Connections[i]
		if len(cn.Static) == 0 {
			cn.Static = nil
		}
		if cn.Routing == "" {
			cn.Routing = RoutingBGP
			if cn.BGP == nil && len(cn.Static) > 0 {
				cn.Routing = RoutingStatic
			}
		}
		if b := cn.BGP; b != nil {
			if b.LocalASN == 0 {
				b.LocalASN = DefaultLocalASN
			}
			if b.PeerASN == 0 {
				b.PeerASN = DefaultPeerASN
			}
			if b.HoldTime == 0 {
				b.HoldTime = DefaultHoldTime
			}
			if len(b.Advertise) == 0 {
				b.Advertise = nil // "advertise: []" and a missing key mean the same
			}
		}
		for j := range cn.Tunnels {
			t := &cn.Tunnels[j]
			t.applyDefaults(cn.Name, j, g)
			if t.RekeyFuzz == 0 && (keepFuzz == nil || !keepFuzz(i, j)) {
				t.RekeyFuzz = DefaultRekeyFuzz
			}
		}
	}
}

func (t *Tunnel) applyDefaults(conn string, j int, g *Gateway) {
	if t.Name == "" && conn != "" {
		t.Name = TunnelName(conn, j)
	}
	if !t.LocalOutside.IsValid() && g.Outside.Address.IsValid() {
		t.LocalOutside = g.Outside.Address.Addr()
	}
	if t.IKEVersion == 0 {
		t.IKEVersion = DefaultIKEVersion
	}
	t.Phase1.applyDefaults(DefaultPhase1(t.IKEVersion), true)
	t.Phase2.applyDefaults(DefaultPhase2(), false)
	if t.RekeyMargin == 0 {
		t.RekeyMargin = DefaultRekeyMargin
	}
	if t.ReplayWindow == 0 {
		t.ReplayWindow = DefaultReplayWindow
	}
	if t.DPD.Interval == 0 {
		t.DPD.Interval = DefaultDPDInterval
	}
	if t.DPD.Retries == 0 {
		t.DPD.Retries = DefaultDPDRetries
	}
	if t.DPD.Action == "" {
		t.DPD.Action = DefaultDPDAction
	}
	if t.NATTraversal == "" {
		t.NATTraversal = DefaultNATTraversal
	}
	if t.MTU == 0 {
		t.MTU = DefaultMTU
	}
	if t.TCPMSS == 0 {
		t.TCPMSS = DefaultTCPMSS
	}
	if t.StartupAction == "" {
		t.StartupAction = DefaultStartupAction
	}
}

// applyDefaults fills an unset phase from def. Phase 1 always needs an
// integrity list (it is also the PRF list); phase 2 gets one only when it
// has a CBC cipher, since GCM carries its own integrity.
func (p *Phase) applyDefaults(def Phase, phase1 bool) {
	for k, n := range p.Encryption {
		if c, ok := CanonicalEncryption(n); ok {
			p.Encryption[k] = c
		}
	}
	for k, n := range p.Integrity {
		if c, ok := CanonicalIntegrity(n); ok {
			p.Integrity[k] = c
		}
	}
	if len(p.Encryption) == 0 {
		p.Encryption = def.Encryption
	}
	if len(p.Integrity) == 0 {
		p.Integrity = nil // "integrity: []" and a missing key mean the same (GCM-only phase 2)
		if phase1 || p.hasCBC() {
			p.Integrity = def.Integrity
		}
	}
	if len(p.DHGroups) == 0 {
		p.DHGroups = def.DHGroups
	}
	if p.Lifetime == 0 {
		p.Lifetime = def.Lifetime
	}
}
