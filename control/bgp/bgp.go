// Package bgp runs the gateway's BGP sessions with AWS (RFC 4271), one per
// tunnel, on an embedded GoBGP v3 server, and feeds what each neighbour
// sends into the RIB (control/rib), which does the route selection: static
// routes and tunnel state are ours, so GoBGP's own best path is not used.
//
// Choices:
//   - Sessions are initiated by the gateway from its tunnel inside address
//     to AWS's (Transport.LocalAddress, TTL 1: the /30 is directly
//     connected, no multihop). By default the server does not listen on
//     TCP 179 (ListenPort -1): GoBGP cannot bind to an inside address that
//     does not exist yet (the tunnel interface comes and goes with IKE),
//     and listening on every address would expose BGP on the outside NIC.
//     AWS also initiates; its attempts are refused and ours succeed, so
//     there is no collision to resolve (RFC 4271 §6.8).
//   - A neighbour starts administratively down and is enabled when its
//     tunnel is up (TunnelUp), so no connection is tried through a tunnel
//     that does not exist; TunnelDown marks the tunnel down in the RIB
//     first (traffic fails over at once) and then disables the neighbour.
//   - Received routes are watched per neighbour before GoBGP's best-path
//     selection (WatchEvent, table filter ADJIN: after GoBGP's AS-loop
//     check, with no import policy); a session leaving Established
//     withdraws all of its routes from the RIB at once.
//   - Advertised prefixes are originated once in GoBGP's global RIB; an
//     export policy sends each connection's prefixes only to that
//     connection's neighbours, prepending the local ASN as configured per
//     tunnel, and rejects everything else (the gateway is never a transit
//     between AWS tunnels or VPCs).
//   - At most MaxPrefixes (default 1000) routes are accepted from a
//     neighbour; beyond that GoBGP closes the session with a Cease
//     (RFC 4486 §4), its routes are withdrawn, and GoBGP keeps it down
//     (admin state PFX_CT). An unattended gateway must recover, so the
//     Speaker re-enables it after PrefixLimitRestart (default 60 s).
//   - GoBGP's gRPC API (the stock gobgp CLI) is off by default: it can
//     add paths and stop BGP, and GoBGP authenticates nobody. When asked
//     for it is a root-only unix socket, loopback TCP, or TCP with mutual
//     TLS (api.go; the rules are config.ParseGoBGPAPI's).
//   - Graceful restart (RFC 4724) is negotiated with every neighbour
//     (restart time GracefulRestart, default 120 s): when cgw-control
//     crashes or is upgraded the dataplane keeps forwarding on the SAs and
//     routes in the maps, so AWS may keep our prefixes too while the new
//     process reconnects. A process that took over forwarding state from a
//     predecessor (Options.Restarting) sets the Restart State and
//     Forwarding State bits (§4.1, §3), so AWS keeps its stale routes until
//     our End-of-RIB instead of flushing them when the session returns.
//     GoBGP ends the restart for the whole speaker once the first session
//     has synced, so a tunnel that comes back later reconnects without the
//     bits: AWS then replaces the stale routes with our fresh ones at once
//     (traffic meanwhile uses the other tunnel's routes). As
//     receiving speaker we do not keep AWS's routes across a session loss:
//     a session that leaves Established still withdraws its routes from
//     the RIB at once, so traffic fails over to the other tunnel.
//   - Only IPv4 unicast: AWS's inside addresses are IPv4 /30s here.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/rib"
)

// Defaults.
const (
	DefaultHoldTime           = 30 * time.Second // AWS's
	DefaultMaxPrefixes        = 1000             // AWS accepts 100 from us; we take up to 1000
	DefaultConnectRetry       = 5 * time.Second
	DefaultPrefixLimitRestart = 60 * time.Second
	// DefaultIdleHold is how long a reset session waits before retrying:
	// short, because a tunnel coming back should carry traffic soon.
	DefaultIdleHold = 5 * time.Second
	// DefaultGracefulRestart is the restart time advertised in the
	// graceful restart capability (RFC 4724 §3): how long AWS keeps our
	// routes after the session drops without a NOTIFICATION.
	DefaultGracefulRestart = 120 * time.Second
	// DefaultSelectionDeferral bounds how long a restarting speaker waits
	// for the peers' End-of-RIB before advertising (RFC 4724 §4.1); AWS
	// keeps our stale routes meanwhile.
	DefaultSelectionDeferral = 10 * time.Second
)

// Neighbor is one BGP session: one tunnel of a connection.
type Neighbor struct {
	Tunnel     uint32 // the RIB's and dataplane's tunnel id
	Name       string // tunnel name, for logs and metrics
	Connection string
	Local      netip.Addr // our inside address
	Peer       netip.Addr // AWS's inside address
	LocalASN   uint32
	PeerASN    uint32
	HoldTime   time.Duration // 0: DefaultHoldTime; keepalive is a third (RFC 4271 §10)
	Prepend    int           // times the local ASN is prepended on export
	Advertise  []netip.Prefix
}

// Options configure the Speaker.
type Options struct {
	// RouterID is the BGP identifier, the gateway's outside address.
	RouterID netip.Addr
	// GRPCAddress serves GoBGP's gRPC API (gobgp CLI): "", "-" or "off"
	// for none, unix:///path for a root-only socket, or host:port (a
	// non-loopback one only with GRPCTLS).
	GRPCAddress string
	GRPCTLS     *config.TLSFiles // mutual TLS for a TCP GRPCAddress
	// ListenPort 0 means do not listen (see the package comment); a port
	// listens on ListenAddrs, which must exist when Start runs (all
	// addresses if empty).
	ListenPort   int32
	ListenAddrs  []netip.Addr
	MaxPrefixes  uint32        // 0: DefaultMaxPrefixes
	ConnectRetry time.Duration // 0: DefaultConnectRetry
	IdleHold     time.Duration // 0: DefaultIdleHold
	// PrefixLimitRestart is how long a session closed for sending too
	// many prefixes stays down; 0: DefaultPrefixLimitRestart.
	PrefixLimitRestart time.Duration
	// GracefulRestart is the restart time advertised to every neighbour
	// (RFC 4724); 0: DefaultGracefulRestart, negative: no graceful
	// restart capability. At most 4095 s (a 12-bit field).
	GracefulRestart time.Duration
	// Restarting says this process took over a predecessor's forwarding
	// state (SAs and routes kept in the maps): the OPEN carries the
	// Restart State and Forwarding State bits.
	Restarting bool
	Logger     *slog.Logger // nil: slog.Default()
	// OnState, if set, sees every session state change (cgwctl monitor),
	// on GoBGP's watcher goroutine: it must not block.
	OnState func(tunnel string, neighbor netip.Addr, from, to string)
}

// Speaker is the embedded BGP server.
type Speaker struct {
	srv    *server.BgpServer
	rib    *rib.RIB
	log    *slog.Logger
	glog   *logger
	opt    Options
	cancel context.CancelFunc

	mu      sync.Mutex
	byPeer  map[netip.Addr]*neighbor
	byID    map[uint32]*neighbor
	changes uint64 // RIB updates fed from BGP
}

type neighbor struct {
	Neighbor
	state   api.PeerState_SessionState
	flaps   uint64 // times the session left Established
	limited uint64 // times the session was closed for exceeding MaxPrefixes
	enabled bool
}

// NeighborsFromConfig lists the BGP neighbours of a configuration's BGP
// connections. ids maps a tunnel name to its dataplane tunnel id.
func NeighborsFromConfig(cfg *config.Config, ids map[string]uint32) ([]Neighbor, error) {
	var out []Neighbor
	for _, c := range cfg.Connections {
		if c.Routing != config.RoutingBGP || c.BGP == nil {
			continue
		}
		adv := make([]netip.Prefix, 0, len(c.BGP.Advertise))
		for _, s := range c.BGP.Advertise {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("connection %s: bgp.advertise %q: not a prefix (write e.g. 198.18.0.0/24)", c.Name, s)
			}
			if !p.Addr().Is4() {
				return nil, fmt.Errorf("connection %s: bgp.advertise %q: only IPv4 prefixes are advertised over the IPv4 tunnel sessions", c.Name, s)
			}
			adv = append(adv, p.Masked())
		}
		for i := range c.Tunnels {
			t := &c.Tunnels[i]
			id, ok := ids[t.Name]
			if !ok {
				return nil, fmt.Errorf("connection %s: tunnel %q has no tunnel id", c.Name, t.Name)
			}
			out = append(out, Neighbor{
				Tunnel: id, Name: t.Name, Connection: c.Name,
				Local: t.LocalInside(), Peer: t.AWSInside(),
				LocalASN: c.BGP.LocalASN, PeerASN: c.BGP.PeerASN,
				HoldTime: c.BGP.HoldTime.D(), Prepend: t.ASPathPrepend,
				Advertise: adv,
			})
		}
	}
	return out, nil
}

// Start starts the BGP server with its neighbours (all down until
// TunnelUp), originates their prefixes and installs the export policy.
// Routes received go into r, whose tunnel ids the neighbours use.
func Start(r *rib.RIB, opt Options, neighbors []Neighbor) (*Speaker, error) {
	if !opt.RouterID.Is4() {
		return nil, fmt.Errorf("bgp: router id %v: must be an IPv4 address (the gateway's outside address)", opt.RouterID)
	}
	if len(neighbors) == 0 {
		return nil, errors.New("bgp: no BGP neighbours configured")
	}
	if opt.MaxPrefixes == 0 {
		opt.MaxPrefixes = DefaultMaxPrefixes
	}
	if opt.ConnectRetry == 0 {
		opt.ConnectRetry = DefaultConnectRetry
	}
	if opt.IdleHold == 0 {
		opt.IdleHold = DefaultIdleHold
	}
	if opt.PrefixLimitRestart == 0 {
		opt.PrefixLimitRestart = DefaultPrefixLimitRestart
	}
	if opt.GracefulRestart == 0 {
		opt.GracefulRestart = DefaultGracefulRestart
	}
	if opt.GracefulRestart > 4095*time.Second {
		return nil, fmt.Errorf("bgp: graceful restart time %v: at most 4095 s (RFC 4724 §3)", opt.GracefulRestart)
	}
	if opt.GracefulRestart > 0 && opt.GracefulRestart < time.Second {
		return nil, fmt.Errorf("bgp: graceful restart time %v: at least 1 s, or negative to disable", opt.GracefulRestart)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Speaker{
		rib:    r,
		log:    opt.Logger,
		opt:    opt,
		byPeer: make(map[netip.Addr]*neighbor),
		byID:   make(map[uint32]*neighbor),
	}
	for _, n := range neighbors {
		if err := checkNeighbor(n); err != nil {
			return nil, err
		}
		if o := s.byPeer[n.Peer]; o != nil {
			return nil, fmt.Errorf("bgp: tunnels %s and %s have the same AWS inside address %v", o.Name, n.Name, n.Peer)
		}
		if o := s.byID[n.Tunnel]; o != nil {
			return nil, fmt.Errorf("bgp: tunnels %s and %s have the same tunnel id %d", o.Name, n.Name, n.Tunnel)
		}
		nb := &neighbor{Neighbor: n}
		s.byPeer[n.Peer] = nb
		s.byID[n.Tunnel] = nb
	}

	s.glog = &logger{l: opt.Logger.With("component", "gobgp")}
	sopts, finishAPI, err := apiOptions(opt)
	if err != nil {
		return nil, err
	}
	sopts = append(sopts, server.LoggerOption(s.glog))
	s.srv = server.NewBgpServer(sopts...)
	go s.srv.Serve()
	if err := finishAPI(); err != nil {
		s.srv.Stop()
		return nil, err
	}

	ctx := context.Background()
	global := &api.Global{
		Asn:        neighbors[0].LocalASN,
		RouterId:   opt.RouterID.String(),
		ListenPort: -1,
	}
	if opt.ListenPort > 0 {
		global.ListenPort = opt.ListenPort
		for _, a := range opt.ListenAddrs {
			global.ListenAddresses = append(global.ListenAddresses, a.String())
		}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		s.srv.Stop()
		return nil, fmt.Errorf("bgp: starting GoBGP: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.srv.WatchEvent(wctx, &api.WatchEventRequest{
		Peer: &api.WatchEventRequest_Peer{},
		Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
			{Type: api.WatchEventRequest_Table_Filter_ADJIN},
		}},
	}, s.event); err != nil {
		s.Stop()
		return nil, fmt.Errorf("bgp: watching GoBGP: %w", err)
	}
	if err := s.exportPolicy(ctx, neighbors); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.originate(ctx, neighbors); err != nil {
		s.Stop()
		return nil, err
	}
	for _, n := range neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peer(n)}); err != nil {
			s.Stop()
			return nil, fmt.Errorf("bgp: tunnel %s: adding neighbour %v: %w", n.Name, n.Peer, err)
		}
	}
	return s, nil
}

func checkNeighbor(n Neighbor) error {
	switch {
	case !n.Local.Is4() || !n.Peer.Is4():
		return fmt.Errorf("bgp: tunnel %s: inside addresses %v/%v must be IPv4", n.Name, n.Local, n.Peer)
	case n.LocalASN == 0 || n.PeerASN == 0:
		return fmt.Errorf("bgp: tunnel %s: local and peer ASN must be set (got %d, %d)", n.Name, n.LocalASN, n.PeerASN)
	case n.LocalASN == n.PeerASN:
		return fmt.Errorf("bgp: tunnel %s: local ASN %d equals AWS's: the session must be eBGP", n.Name, n.LocalASN)
	case n.HoldTime != 0 && n.HoldTime < 3*time.Second:
		return fmt.Errorf("bgp: tunnel %s: hold time %v: must be 0 or at least 3 s (RFC 4271 §4.2)", n.Name, n.HoldTime)
	case n.Prepend < 0 || n.Prepend > 10:
		return fmt.Errorf("bgp: tunnel %s: as_path_prepend %d: must be 0..10", n.Name, n.Prepend)
	case n.Tunnel == 0:
		return fmt.Errorf("bgp: tunnel %s: no tunnel id", n.Name)
	}
	return nil
}

func ipv4Unicast() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

func (s *Speaker) peer(n Neighbor) *api.Peer {
	hold := n.HoldTime
	if hold == 0 {
		hold = DefaultHoldTime
	}
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Peer.String(),
			PeerAsn:         n.PeerASN,
			LocalAsn:        n.LocalASN,
			Description:     n.Name,
			AdminDown:       true, // until TunnelUp
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               uint64(hold / time.Second),
			KeepaliveInterval:      uint64(hold / 3 / time.Second),
			ConnectRetry:           uint64(s.opt.ConnectRetry / time.Second),
			IdleHoldTimeAfterReset: uint64(s.opt.IdleHold / time.Second),
		}},
		Transport: &api.Transport{
			LocalAddress: n.Local.String(),
			PassiveMode:  false,
		},
		AfiSafis: []*api.AfiSafi{{
			Config: &api.AfiSafiConfig{Family: ipv4Unicast(), Enabled: true},
			PrefixLimits: &api.PrefixLimit{
				Family:      ipv4Unicast(),
				MaxPrefixes: s.opt.MaxPrefixes,
			},
		}},
	}
	if s.opt.GracefulRestart > 0 {
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(s.opt.GracefulRestart / time.Second),
			DeferralTime:    uint32(DefaultSelectionDeferral / time.Second),
			LocalRestarting: s.opt.Restarting,
		}
		p.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return p
}

// exportPolicy installs the global export policy: per neighbour, accept
// its connection's prefixes (prepending as configured); reject the rest.
// It replaces whatever policy was installed (SetNeighbors calls it again).
func (s *Speaker) exportPolicy(ctx context.Context, neighbors []Neighbor) error {
	req := &api.SetPoliciesRequest{}
	pol := &api.Policy{Name: "cgw-export"}
	conns := map[string]bool{}
	for _, n := range neighbors {
		ps := "cgw-adv-" + n.Connection
		if !conns[n.Connection] && len(n.Advertise) > 0 {
			conns[n.Connection] = true
			set := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: ps}
			for _, p := range n.Advertise {
				set.Prefixes = append(set.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
			}
			req.DefinedSets = append(req.DefinedSets, set)
		}
		if len(n.Advertise) == 0 {
			continue
		}
		ns := "cgw-nbr-" + n.Name
		req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: ns, List: []string{netip.PrefixFrom(n.Peer, 32).String()},
		})
		act := &api.Actions{RouteAction: api.RouteAction_ACCEPT}
		if n.Prepend > 0 {
			act.AsPrepend = &api.AsPrependAction{Asn: n.LocalASN, Repeat: uint32(n.Prepend)}
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: "cgw-export-" + n.Name,
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: ns},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_ANY, Name: ps},
			},
			Actions: act,
		})
	}
	// SetPolicies keeps the assignments GoBGP has; the assignment is set
	// on its own. The policy always exists (maybe without statements) so
	// the assignment can name it across reloads.
	req.Policies = []*api.Policy{pol}
	if err := s.srv.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("bgp: export policy: %w", err)
	}
	as := &api.PolicyAssignment{Name: "global", Direction: api.PolicyDirection_EXPORT, DefaultAction: api.RouteAction_REJECT,
		Policies: []*api.Policy{{Name: pol.Name}}}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: as}); err != nil {
		return fmt.Errorf("bgp: export policy assignment: %w", err)
	}
	return nil
}

// originate adds each advertised prefix once to GoBGP's global RIB. The
// next hop is rewritten to our inside address on export (eBGP).
func (s *Speaker) originate(ctx context.Context, neighbors []Neighbor) error {
	for _, p := range advertised(neighbors) {
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: originPath(p)}); err != nil {
			return fmt.Errorf("bgp: originating %v: %w", p, err)
		}
	}
	return nil
}

// advertised lists the prefixes the neighbours advertise, each once.
func advertised(neighbors []Neighbor) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range neighbors {
		for _, p := range n.Advertise {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// originPath is the path this speaker originates for p.
func originPath(p netip.Prefix) *api.Path {
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	nh, _ := anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
	return &api.Path{Family: ipv4Unicast(), Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}
}

// TunnelUp makes a tunnel's routes eligible and starts its BGP session.
// It accepts tunnels without BGP (static routing) too, so cgw-control has
// one entry point for tunnel state.
func (s *Speaker) TunnelUp(id uint32) error {
	err := s.rib.SetTunnelUp(id, true)
	s.mu.Lock()
	n := s.byID[id]
	enable := n != nil && !n.enabled
	if enable {
		n.enabled = true
	}
	s.mu.Unlock()
	if enable {
		if e := s.srv.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: n.Peer.String()}); e != nil {
			err = errors.Join(err, fmt.Errorf("bgp: tunnel %s: enabling neighbour %v: %w", n.Name, n.Peer, e))
		}
	}
	return err
}

// TunnelDown makes a tunnel's routes ineligible at once, withdraws its
// BGP routes and stops its session.
func (s *Speaker) TunnelDown(id uint32) error {
	err := s.rib.SetTunnelUp(id, false)
	s.mu.Lock()
	n := s.byID[id]
	disable := n != nil && n.enabled
	if disable {
		n.enabled = false
	}
	s.mu.Unlock()
	if n != nil {
		err = errors.Join(err, s.rib.WithdrawBGP(id))
	}
	if disable {
		if e := s.srv.DisablePeer(context.Background(), &api.DisablePeerRequest{Address: n.Peer.String(), Communication: "tunnel down"}); e != nil {
			err = errors.Join(err, fmt.Errorf("bgp: tunnel %s: disabling neighbour %v: %w", n.Name, n.Peer, e))
		}
	}
	return err
}

// restartLimited re-enables a neighbour GoBGP keeps down after a prefix
// limit, unless its tunnel went down meanwhile.
func (s *Speaker) restartLimited(n *neighbor) {
	s.mu.Lock()
	ok := n.enabled && n.state != api.PeerState_ESTABLISHED
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := s.srv.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: n.Peer.String()}); err != nil {
		s.log.Error("restarting a session closed for the prefix limit", "tunnel", n.Name, "err", err)
	}
}

// Server returns the embedded GoBGP server (for status queries).
func (s *Speaker) Server() *server.BgpServer { return s.srv }

// Stop closes every session and stops the server.
func (s *Speaker) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.srv.Stop()
	for id := range s.byID {
		s.rib.WithdrawBGP(id)
	}
}

// State returns a neighbour's session state ("idle" … "established").
func (s *Speaker) State(tunnel uint32) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.byID[tunnel]
	if n == nil {
		return "", false
	}
	return stateName(n.state), true
}

func stateName(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_UNKNOWN:
		return "idle"
	}
	return map[api.PeerState_SessionState]string{
		api.PeerState_IDLE: "idle", api.PeerState_CONNECT: "connect", api.PeerState_ACTIVE: "active",
		api.PeerState_OPENSENT: "opensent", api.PeerState_OPENCONFIRM: "openconfirm", api.PeerState_ESTABLISHED: "established",
	}[st]
}

// event handles GoBGP's events, on its watcher goroutine, in order.
func (s *Speaker) event(ev *api.WatchEventResponse) {
	switch e := ev.Event.(type) {
	case *api.WatchEventResponse_Peer:
		p := e.Peer
		if p.Type != api.WatchEventResponse_PeerEvent_STATE || p.Peer == nil || p.Peer.State == nil {
			return
		}
		addr, err := netip.ParseAddr(p.Peer.State.NeighborAddress)
		if err != nil {
			return
		}
		s.mu.Lock()
		n := s.byPeer[addr.Unmap()]
		var was api.PeerState_SessionState
		limited := false
		if n != nil {
			was = n.state
			n.state = p.Peer.State.SessionState
			if was == api.PeerState_ESTABLISHED && n.state != was {
				n.flaps++
				if p.Peer.State.AdminState == api.PeerState_PFX_CT && n.enabled {
					n.limited++
					limited = true
				}
			}
		}
		s.mu.Unlock()
		if n == nil {
			return
		}
		st := p.Peer.State.SessionState
		s.log.Info("BGP session state", "tunnel", n.Name, "neighbor", addr, "from", stateName(was), "to", stateName(st))
		if s.opt.OnState != nil && stateName(was) != stateName(st) {
			s.opt.OnState(n.Name, addr, stateName(was), stateName(st))
		}
		if st != api.PeerState_ESTABLISHED {
			if err := s.rib.WithdrawBGP(n.Tunnel); err != nil {
				s.log.Error("withdrawing a closed session's routes", "tunnel", n.Name, "err", err)
			}
		}
		if limited {
			s.log.Warn("AWS sent more prefixes than the limit: session closed", "tunnel", n.Name, "neighbor", addr, "max_prefixes", s.opt.MaxPrefixes, "retry_in", s.opt.PrefixLimitRestart)
			time.AfterFunc(s.opt.PrefixLimitRestart, func() { s.restartLimited(n) })
		}
	case *api.WatchEventResponse_Table:
		s.table(e.Table.Paths)
	}
}

type update struct {
	announce []rib.BGPRoute
	withdraw []netip.Prefix
}

func (s *Speaker) table(paths []*api.Path) {
	per := map[uint32]*update{}
	s.mu.Lock()
	for _, p := range paths {
		addr, err := netip.ParseAddr(p.NeighborIp)
		if err != nil {
			continue
		}
		n := s.byPeer[addr.Unmap()]
		if n == nil {
			continue
		}
		r, ok := decodePath(p)
		if !ok {
			continue
		}
		u := per[n.Tunnel]
		if u == nil {
			u = &update{}
			per[n.Tunnel] = u
		}
		if p.IsWithdraw {
			u.withdraw = append(u.withdraw, r.Prefix)
		} else {
			u.announce = append(u.announce, r)
		}
	}
	s.changes += uint64(len(paths))
	s.mu.Unlock()
	for id, u := range per {
		if err := s.rib.UpdateBGP(id, u.announce, u.withdraw); err != nil {
			s.log.Error("applying BGP routes", "tunnel", id, "err", err)
		}
	}
}

// decodePath turns a received IPv4/IPv6 unicast path into a RIB route.
func decodePath(p *api.Path) (rib.BGPRoute, bool) {
	var r rib.BGPRoute
	if p.Nlri == nil {
		return r, false
	}
	var nlri api.IPAddressPrefix
	if err := p.Nlri.UnmarshalTo(&nlri); err != nil {
		return r, false
	}
	a, err := netip.ParseAddr(nlri.Prefix)
	if err != nil || int(nlri.PrefixLen) > a.BitLen() {
		return r, false
	}
	r.Prefix = netip.PrefixFrom(a.Unmap(), int(nlri.PrefixLen)).Masked()
	r.Origin = rib.OriginIncomplete
	for _, at := range p.Pattrs {
		m, err := at.UnmarshalNew()
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case *api.OriginAttribute:
			r.Origin = rib.Origin(min(v.Origin, 2))
		case *api.AsPathAttribute:
			r.ASPath, r.ASPathLen = flattenASPath(v.Segments)
		case *api.MultiExitDiscAttribute:
			r.MED = v.Med
		case *api.NextHopAttribute:
			r.NextHop, _ = netip.ParseAddr(v.NextHop)
		case *api.MpReachNLRIAttribute:
			if len(v.NextHops) > 0 {
				r.NextHop, _ = netip.ParseAddr(v.NextHops[0])
			}
		}
	}
	return r, true
}

// flattenASPath returns the ASNs in order and the path length for
// selection: an AS_SET counts as one (RFC 4271 §9.1.2.2 a), confederation
// segments not at all (RFC 5065 §5.3).
func flattenASPath(segs []*api.AsSegment) ([]uint32, int) {
	var as []uint32
	n := 0
	for _, sg := range segs {
		as = append(as, sg.Numbers...)
		switch sg.Type {
		case api.AsSegment_AS_SEQUENCE:
			n += len(sg.Numbers)
		case api.AsSegment_AS_SET:
			if len(sg.Numbers) > 0 {
				n++
			}
		}
	}
	return as, n
}
