package worker

import (
	"github.com/cgw-project/cgw/bpf/maps"
	"github.com/cgw-project/cgw/dataplane/esp"
	"github.com/cgw-project/cgw/dataplane/frag"
)

// Stage names a pipeline stage (a VPP graph node): a drop is counted at
// the stage that dropped the packet, with that stage's reason.
type Stage uint8

const (
	// Outbound (inside → outside).
	StageParse    Stage = iota // Ethernet + IP header checks, XDP metadata
	StageRoute                 // tunnel lookup when the metadata is missing; tunnel up, outbound SA usable
	StageTTL                   // TTL / hop limit decrement
	StageFrag                  // size against the tunnel MTU (reasons: frag.Reason)
	StageEncap                 // SA lifetime, sequence numbers and ESP encapsulation (reasons: esp.Reason)
	StageNeighOut              // next-hop MAC of the outer destination
	// Inbound (outside → inside).
	StageLocate   // outer headers → ESP and SPI (reasons: esp.Reason)
	StageSPI      // SPI → SA
	StageDecap    // replay, ICV, decryption, padding (reasons: esp.Reason)
	StageInner    // inner packet sanity
	StageNeighIn  // next-hop MAC of the inner destination (-no-crypto; otherwise a miss goes to the slow path)
	StageSlowPath // hand-off to the tunnel's kernel interface
	StageTx       // transmit rings

	NumStages
)

var stageNames = [NumStages]string{
	StageParse: "parse", StageRoute: "route", StageTTL: "ttl", StageFrag: "frag",
	StageEncap: "esp_encap", StageNeighOut: "neigh_outside", StageLocate: "esp_locate",
	StageSPI: "spi_lookup", StageDecap: "esp_decap", StageInner: "inner",
	StageNeighIn: "neigh_inside", StageSlowPath: "slow_path", StageTx: "tx",
}

// String is the stage's metrics label.
func (s Stage) String() string {
	if s < NumStages {
		return stageNames[s]
	}
	return "unknown"
}

// Reason is why this package's own stages drop a packet (the ESP and
// fragmentation stages use esp.Reason and frag.Reason).
type Reason uint8

const (
	_              Reason = iota
	ShortFrame            // shorter than the headers it claims
	NotIP                 // EtherType neither IPv4 nor IPv6 (or IPv6 where only IPv4 is carried)
	BadIP                 // IP header invalid: version, header length, total length, checksum
	NoRoute               // no route to a tunnel (metadata missing and the lookup failed)
	TunnelDown            // tunnel absent or down
	NoSA                  // tunnel has no usable outbound SA
	TTLExceeded           // TTL or hop limit would reach 0
	NoNeighbour           // next-hop MAC unknown (resolution requested from the kernel)
	WrongInterface        // next hop is not on the device this direction sends to
	UnknownSPI            // SPI not in the table (it was retired after XDP steered the packet)
	NoSlowPath            // packet for the kernel but no slow path for the tunnel
	SlowPathFull          // the kernel interface refused the packet
	RingFull              // TX ring full
	NoFrames              // no free UMEM frame
	SPINotApplied         // SPI not in the worker's tables yet, but the maps have moved on (an SA just installed): a snapshot was asked for

	NumReasons
)

var reasonNames = [NumReasons]string{
	ShortFrame: "short_frame", NotIP: "not_ip", BadIP: "bad_ip", NoRoute: "no_route",
	TunnelDown: "tunnel_down", NoSA: "no_sa",
	TTLExceeded: "ttl_exceeded", NoNeighbour: "no_neighbour", WrongInterface: "wrong_interface",
	UnknownSPI: "unknown_spi", NoSlowPath: "no_slow_path", SlowPathFull: "slow_path_full",
	RingFull: "ring_full", NoFrames: "no_frames",
	SPINotApplied: "spi_not_applied",
}

// String is the reason's metrics label.
func (r Reason) String() string {
	if r < NumReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// maxReasons bounds every stage's reason enum.
const maxReasons = 32

// ReasonName names reason r of stage s, "" when r is not one of s's
// reasons (or is a success).
func ReasonName(s Stage, r int) string {
	switch s {
	case StageFrag:
		if r <= int(frag.Fragmented) || r >= int(frag.NumReasons) {
			return ""
		}
		return frag.Reason(r).String()
	case StageEncap, StageLocate, StageDecap:
		if r == int(esp.OK) || r >= int(esp.NumReasons) {
			return ""
		}
		return esp.Reason(r).String()
	}
	if r == 0 || r >= int(NumReasons) {
		return ""
	}
	return Reason(r).String()
}

// Direction of traffic through the gateway.
const (
	Out = 0 // inside → outside: encrypted
	In  = 1 // outside → inside: decrypted
)

// Counters are one worker's, as published at the end of its last batch
// (tally.go): the worker stores them atomically, readers load them with
// sync/atomic.
type Counters struct {
	Packets [2]uint64 // by direction, packets that left the gateway
	Bytes   [2]uint64 // inner IP bytes

	Drops [NumStages][maxReasons]uint64

	// BatchSizes counts received batches by size: bucket i holds sizes
	// ≤ BatchBuckets[i].
	BatchSizes [len(BatchBuckets)]uint64
	BatchSum   uint64 // packets in all batches (the histogram's sum)
	RingFull   uint64 // TX descriptors refused by a full ring
	Wakeups    uint64 // poll() calls after the busy-poll found nothing
	Idle       uint64 // empty busy-poll rounds

	SlowToKernel   uint64 // packets written to a tunnel's kernel interface
	SlowFromKernel uint64 // packets from a kernel interface sent into the tunnel
	SlowMisses     uint64 // decrypted packets sent to the kernel because the next hop was unresolved or not inside
	ICMPErrors     uint64 // ICMP frag-needed / packet-too-big sent back inside
	Fragments      uint64 // extra fragments made
	NoMetadata     uint64 // inside frames without the XDP program's tunnel metadata (route looked up again)
	LateView       uint64 // inbound SPIs found in a view published during the batch

	TunnelPackets [2][maps.MaxTunnels]uint64
	TunnelBytes   [2][maps.MaxTunnels]uint64
}

// BatchBuckets are the upper bounds of the batch-size histogram.
var BatchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256}

func (c *Counters) batch(n int) {
	c.BatchSum += uint64(n)
	for i, b := range BatchBuckets {
		if n <= b {
			c.BatchSizes[i]++
			return
		}
	}
	c.BatchSizes[len(BatchBuckets)-1]++
}
