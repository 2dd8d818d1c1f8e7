// Package pcap writes classic libpcap capture files, so tests can hand the
// packets our code builds to independent dissectors (tshark) and tools.
package pcap

import (
	"encoding/binary"
	"os"
	"time"
)

// Link types (tcpdump.org/linktypes.html) used by the project's captures.
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101 // raw IPv4 or IPv6, dissected from the IP header
	LinkTypeIPv4     = 228
)

// Epoch is the timestamp of the first record; records follow 1 ms apart
// so captures are reproducible byte for byte.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Encode returns a capture file (24-byte global header, 16-byte record
// headers, microsecond timestamps, snaplen 65535) holding pkts.
func Encode(linktype uint32, pkts [][]byte) []byte {
	n := 24
	for _, p := range pkts {
		n += 16 + len(p)
	}
	b := make([]byte, 24, n)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4) // magic: microsecond timestamps
	binary.LittleEndian.PutUint16(b[4:], 2)          // version 2.4
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535) // snaplen
	binary.LittleEndian.PutUint32(b[20:], linktype)
	for i, p := range pkts {
		var rh [16]byte
		t := Epoch.Add(time.Duration(i) * time.Millisecond)
		binary.LittleEndian.PutUint32(rh[0:], uint32(t.Unix()))
		binary.LittleEndian.PutUint32(rh[4:], uint32(t.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(p)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(p)))
		b = append(b, rh[:]...)
		b = append(b, p...)
	}
	return b
}

// WriteFile writes pkts to path as a capture file of the given link type.
func WriteFile(path string, linktype uint32, pkts [][]byte) error {
	return os.WriteFile(path, Encode(linktype, pkts), 0o644)
}
