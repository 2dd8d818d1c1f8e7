package esp

import (
	"encoding/binary"
	"os"
	"time"
)

// writePcap writes IPv4 packets to a classic libpcap file (24-byte global
// header, 16-byte record headers) with LINKTYPE_IPV4 (228): each record
// starts at the outer IPv4 header, which is what Encap produces.
func writePcap(path string, pkts [][]byte) error {
	const linktypeIPv4 = 228
	b := make([]byte, 24, 24+len(pkts)*1600)
	binary.LittleEndian.PutUint32(b[0:], 0xa1b2c3d4) // magic, microsecond timestamps
	binary.LittleEndian.PutUint16(b[4:], 2)          // version 2.4
	binary.LittleEndian.PutUint16(b[6:], 4)
	binary.LittleEndian.PutUint32(b[16:], 65535) // snaplen
	binary.LittleEndian.PutUint32(b[20:], linktypeIPv4)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, p := range pkts {
		var rh [16]byte
		t := ts.Add(time.Duration(i) * time.Millisecond)
		binary.LittleEndian.PutUint32(rh[0:], uint32(t.Unix()))
		binary.LittleEndian.PutUint32(rh[4:], uint32(t.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(p)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(p)))
		b = append(b, rh[:]...)
		b = append(b, p...)
	}
	return os.WriteFile(path, b, 0o644)
}
