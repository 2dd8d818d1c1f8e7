package maps

import "github.com/cgw-project/cgw/bpf"

// The contract's types, generated from bpf/cgw_maps.h by bpf2go and
// re-exported here under short names: every package but this one and the
// program loader reads the contract through package maps. A test checks
// that each generated enum value has its name here.
type (
	SA         = bpf.CgwSa
	InboundSA  = bpf.CgwInboundSa
	Tunnel     = bpf.CgwTunnel
	Route      = bpf.CgwRoute
	Route4Key  = bpf.CgwRoute4Key
	Route6Key  = bpf.CgwRoute6Key
	SACounters = bpf.CgwSaCounters
	LocalAddr  = bpf.CgwLocalAddr
	Config     = bpf.CgwConfig
	XDPMeta    = bpf.CgwXdpMeta

	SADir      = bpf.CgwSaDir
	SAState    = bpf.CgwSaState
	SAFlag     = bpf.CgwSaFlag
	TunnelFlag = bpf.CgwTunnelFlag
	Local      = bpf.CgwLocal
	Stat       = bpf.CgwStat
)

// Direction of an SA (sa.dir).
const (
	DirInbound  = bpf.CgwSaDirInbound
	DirOutbound = bpf.CgwSaDirOutbound
)

// Life of an SA slot (sa.state).
const (
	StateUnused     = bpf.CgwSaStateUnused
	StateInstalling = bpf.CgwSaStateInstalling
	StateActive     = bpf.CgwSaStateActive
	StateRetiring   = bpf.CgwSaStateRetiring
)

// SA flags (sa.flags).
const (
	SAFlagESN      = bpf.CgwSaFlagEsn
	SAFlagUDPEncap = bpf.CgwSaFlagUdpEncap
)

// Tunnel flags (tunnel.flags).
const (
	TunnelUp      = bpf.CgwTunnelFlagUp
	TunnelClearDF = bpf.CgwTunnelFlagClearDf
)

// What a local address is (local_addrs values, bits).
const (
	LocalOutside = bpf.CgwLocalOutside
	LocalInside  = bpf.CgwLocalInside
)

// Limits of the tables and the metadata magic. Ids and indexes start at 1;
// 0 means "none".
const (
	MaxTunnels    = uint32(bpf.CgwLimitsMaxTunnels)
	MaxSAs        = uint32(bpf.CgwLimitsMaxSas)
	MaxRoutes     = uint32(bpf.CgwLimitsMaxRoutes)
	MaxQueues     = uint32(bpf.CgwLimitsMaxQueues)
	MaxLocalAddrs = uint32(bpf.CgwLimitsMaxLocalAddrs)
	MetaMagic     = uint32(bpf.CgwLimitsMetaMagic)
)

// XDP decision counters (xdp_stats index); String gives the reason's name.
const (
	StatOutRedirect      = bpf.CgwStatOutRedirect
	StatOutDropNoSocket  = bpf.CgwStatOutDropNoSocket
	StatOutUnknownSPI    = bpf.CgwStatOutUnknownSpi
	StatOutNotLocal      = bpf.CgwStatOutNotLocal
	StatOutIKE           = bpf.CgwStatOutIke
	StatOutKeepalive     = bpf.CgwStatOutKeepalive
	StatOutFragment      = bpf.CgwStatOutFragment
	StatOutShort         = bpf.CgwStatOutShort
	StatOutARP           = bpf.CgwStatOutArp
	StatOutOther         = bpf.CgwStatOutOther
	StatInRedirect       = bpf.CgwStatInRedirect
	StatInDropNoSocket   = bpf.CgwStatInDropNoSocket
	StatInNoMeta         = bpf.CgwStatInNoMeta
	StatInNoRoute        = bpf.CgwStatInNoRoute
	StatInDropTunnelDown = bpf.CgwStatInDropTunnelDown
	StatInLocal          = bpf.CgwStatInLocal
	StatInND             = bpf.CgwStatInNd
	StatInARP            = bpf.CgwStatInArp
	StatInShort          = bpf.CgwStatInShort
	StatInOther          = bpf.CgwStatInOther
	NumStats             = bpf.CgwStatNumStats
)

// Objects are an instance's loaded programs and pinned maps.
type Objects = bpf.Objects

// Load opens (or creates) the pinned maps of an instance under
// /sys/fs/bpf/cgw/<instance>/, mounting bpffs if needed.
func Load(instance string) (*Objects, error) { return bpf.LoadPinned(instance) }

// Remove deletes an instance's pinned maps (both processes stopped).
func Remove(instance string) error { return bpf.Remove(instance) }
