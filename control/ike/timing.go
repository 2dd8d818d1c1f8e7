package ike

import (
	"net/netip"
	"time"
)

// Timing holds the protocol timers. Zero fields take the defaults
// (strongSwan's retransmission schedule: 4 s × 1.8^n, 5 retransmissions).
type Timing struct {
	RetransmitTimeout time.Duration // first wait for a response (4 s)
	RetransmitFactor  float64       // growth per retransmission (1.8)
	RetransmitTries   int           // retransmissions before giving up (5)
	Grace             time.Duration // old inbound SA kept after a rekey (5 s)
	Keepalive         time.Duration // NAT keepalive interval behind a NAT (20 s)
	ReinitMin         time.Duration // first back-off before re-initiating (2 s)
	ReinitMax         time.Duration // back-off cap (2 min)
	HalfOpenTimeout   time.Duration // a responder's half-open SA is dropped after (30 s)
	DeleteWait        time.Duration // how long Close waits for Delete responses (2 s)
}

// WithDefaults returns t with every unset timer at its default.
func (t Timing) WithDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.RetransmitTimeout, 4*time.Second)
	if t.RetransmitFactor < 1 {
		t.RetransmitFactor = 1.8
	}
	if t.RetransmitTries <= 0 {
		t.RetransmitTries = 5
	}
	def(&t.Grace, 5*time.Second)
	def(&t.Keepalive, 20*time.Second)
	def(&t.ReinitMin, 2*time.Second)
	def(&t.ReinitMax, 2*time.Minute)
	def(&t.HalfOpenTimeout, 30*time.Second)
	def(&t.DeleteWait, 2*time.Second)
	return t
}

// TunnelOptions are per-tunnel settings that are not in config.Tunnel.
type TunnelOptions struct {
	// PeerPort and PeerNATPort are the peer's IKE ports (500 and 4500).
	PeerPort, PeerNATPort uint16
	// LocalTS and RemoteTS are our traffic selector policy; default
	// 0.0.0.0/0 both ways (AWS's route-based tunnels).
	LocalTS, RemoteTS []netip.Prefix
}

// WithDefaults returns o with the IKE ports and traffic selectors it
// leaves unset filled in.
func (o TunnelOptions) WithDefaults() TunnelOptions {
	if o.PeerPort == 0 {
		o.PeerPort = 500
	}
	if o.PeerNATPort == 0 {
		o.PeerNATPort = 4500
	}
	all := netip.MustParsePrefix("0.0.0.0/0")
	if len(o.LocalTS) == 0 {
		o.LocalTS = []netip.Prefix{all}
	}
	if len(o.RemoteTS) == 0 {
		o.RemoteTS = []netip.Prefix{all}
	}
	return o
}

// Reinit is when a tunnel that failed or went down initiates again, the
// same in both engines: ReinitMin after the first failure, doubling up to
// ReinitMax while it keeps failing, ReinitMin again once it came up.
type Reinit struct {
	// At is when to initiate; zero: not scheduled.
	At   time.Time
	wait time.Duration
}

// Schedule sets At the next back-off after now.
func (r *Reinit) Schedule(now time.Time, tim Timing) {
	if r.wait == 0 {
		r.wait = tim.ReinitMin
	} else {
		r.wait = min(r.wait*2, tim.ReinitMax)
	}
	r.At = now.Add(r.wait)
}

// Due reports whether At has come, and unschedules it.
func (r *Reinit) Due(now time.Time) bool {
	if r.At.IsZero() || now.Before(r.At) {
		return false
	}
	r.At = time.Time{}
	return true
}

// Up is called when the tunnel came up: the next failure waits ReinitMin.
func (r *Reinit) Up() { r.wait = 0 }
