// Package esptest has an independent implementation check our ESP bytes:
// tshark (Wireshark's dissector) decrypts a capture with the SAs' keys and
// reports, per ESP packet, whether the ICV verified and what was inside.
// End-to-end tests use it on captures taken "on the wire".
//
// The SA table is Wireshark's esp_sa UAT (epan/dissectors/packet-ipsec.c),
// written with the preferences into a private configuration directory, so
// the user's profile plays no part.
package esptest

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cgw-project/cgw/crypto/transform"
	"github.com/cgw-project/cgw/internal/prereq"
)

// SA is one direction of an ESP SA as tshark needs it.
type SA struct {
	Src, Dst netip.Addr // outer addresses
	SPI      uint32
	Suite    transform.Suite
	Keymat   []byte // one direction's KEYMAT (RFC 7296 §2.17 order; GCM: key then salt)
}

// Names returns Wireshark 4.0's esp_sa names of a suite's encryption and
// integrity algorithms (esp_encryption_type_vals, esp_authentication_type_vals).
func Names(s transform.Suite) (encr, auth string, err error) {
	switch s.Encr {
	case transform.ENCR_AES_GCM_16:
		encr = "AES-GCM with 16 octet ICV [RFC4106]"
	case transform.ENCR_AES_CBC:
		encr = "AES-CBC [RFC3602]"
	default:
		return "", "", fmt.Errorf("esptest: no tshark name for encryption %v", s)
	}
	switch s.Integ {
	case transform.AUTH_NONE:
		auth = "NULL"
	case transform.AUTH_HMAC_SHA1_96:
		auth = "HMAC-SHA-1-96 [RFC2404]"
	case transform.AUTH_HMAC_SHA2_256_128:
		auth = "HMAC-SHA-256-128 [RFC4868]"
	case transform.AUTH_HMAC_SHA2_384_192:
		auth = "HMAC-SHA-384-192 [RFC4868]"
	case transform.AUTH_HMAC_SHA2_512_256:
		auth = "HMAC-SHA-512-256 [RFC4868]"
	default:
		return "", "", fmt.Errorf("esptest: no tshark name for integrity %v", s)
	}
	return encr, auth, nil
}

// UATLine is the esp_sa line of one SA: the encryption key with the GCM
// salt appended (as Wireshark wants it), then the integrity key.
func UATLine(sa SA) (string, error) {
	en, an, err := Names(sa.Suite)
	if err != nil {
		return "", err
	}
	if len(sa.Keymat) != sa.Suite.KeymatLen() {
		return "", fmt.Errorf("esptest: SPI %#08x: KEYMAT is %d bytes, %v needs %d", sa.SPI, len(sa.Keymat), sa.Suite, sa.Suite.KeymatLen())
	}
	ek, ak := sa.Keymat, []byte(nil)
	if sa.Suite.Encr != transform.ENCR_AES_GCM_16 {
		ek, ak = sa.Keymat[:sa.Suite.KeyBits/8], sa.Keymat[sa.Suite.KeyBits/8:]
	}
	akHex := ""
	if len(ak) > 0 {
		akHex = "0x" + hex.EncodeToString(ak)
	}
	fam := "IPv4"
	if sa.Src.Is6() && !sa.Src.Is4In6() {
		fam = "IPv6"
	}
	return fmt.Sprintf("\"%s\",\"%s\",\"%s\",\"%#08x\",\"%s\",\"0x%s\",\"%s\",\"%s\"\n",
		fam, sa.Src.Unmap(), sa.Dst.Unmap(), sa.SPI, en, hex.EncodeToString(ek), an, akHex), nil
}

// WriteConfig writes a Wireshark configuration directory under dir with
// the SAs and ESP decryption and ICV checking switched on, and returns it.
func WriteConfig(dir string, sas []SA) (string, error) {
	conf := filepath.Join(dir, "wireshark")
	if err := os.MkdirAll(conf, 0o700); err != nil {
		return "", err
	}
	var uat strings.Builder
	for _, sa := range sas {
		l, err := UATLine(sa)
		if err != nil {
			return "", err
		}
		uat.WriteString(l)
	}
	if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(uat.String()), 0o600); err != nil {
		return "", err
	}
	prefs := "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n"
	if err := os.WriteFile(filepath.Join(conf, "preferences"), []byte(prefs), 0o600); err != nil {
		return "", err
	}
	return conf, nil
}

// Fields runs tshark on a capture with configuration directory conf and
// returns one row of the requested fields per frame matching filter
// (a display filter; "" for all). Multi-valued fields (e.g. ip.proto of
// the outer and inner header) come comma-separated.
func Fields(ctx context.Context, conf, pcap, filter string, fields ...string) ([][]string, error) {
	if err := prereq.Command("tshark"); err != nil {
		return nil, fmt.Errorf("esptest: %w", err)
	}
	tshark := "tshark"
	args := []string{"-n", "-r", pcap, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.CommandContext(ctx, tshark, args...)
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("esptest: tshark %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		for len(f) < len(fields) {
			f = append(f, "")
		}
		rows = append(rows, f)
	}
	return rows, nil
}

// Packet is what tshark found in one ESP packet of a capture.
type Packet struct {
	Frame     int
	SPI       uint32
	Seq       uint64
	OuterSrc  netip.Addr
	OuterDst  netip.Addr
	ICVGood   bool
	ICVBad    bool
	Decrypted bool     // tshark decrypted it (the SPI was in the table)
	InnerSrc  string   // inner IPv4 source, "" if none
	InnerDst  string   // inner IPv4 destination
	InnerProt int      // inner IP protocol (1 ICMP, 6 TCP, 17 UDP), -1 if none
	InnerMF   bool     // the inner packet is a fragment with more to come
	InnerOff  int      // inner fragment offset (bytes)
	InnerLen  int      // inner IP total length
	MSS       []int    // TCP MSS option values seen in the inner packet
	Malformed bool     // tshark flagged the frame malformed
	Raw       []string // the tshark row
}

var packetFields = []string{
	"frame.number", "esp.spi", "esp.sequence", "ip.src", "ip.dst",
	"esp.icv_good", "esp.icv_bad", "esp.decrypted_data",
	"ip.proto", "ip.flags.mf", "ip.frag_offset", "ip.len",
	"tcp.options.mss_val", "_ws.malformed",
}

// Decode returns every ESP packet of a capture (filter "esp", plus extra
// as a display filter conjunction if not empty), decrypted with sas.
// conf is scratch space for the Wireshark configuration.
func Decode(ctx context.Context, dir, pcap string, sas []SA, extra string) ([]Packet, error) {
	conf, err := WriteConfig(dir, sas)
	if err != nil {
		return nil, err
	}
	filter := "esp"
	if extra != "" {
		filter += " && (" + extra + ")"
	}
	rows, err := Fields(ctx, conf, pcap, filter, packetFields...)
	if err != nil {
		return nil, err
	}
	var ps []Packet
	for _, r := range rows {
		ps = append(ps, parsePacket(r))
	}
	return ps, nil
}

func parsePacket(r []string) Packet {
	p := Packet{Raw: r, InnerProt: -1}
	p.Frame, _ = strconv.Atoi(r[0])
	spi, _ := strconv.ParseUint(strings.TrimPrefix(r[1], "0x"), 16, 32)
	p.SPI = uint32(spi)
	p.Seq, _ = strconv.ParseUint(r[2], 10, 64)
	srcs, dsts := strings.Split(r[3], ","), strings.Split(r[4], ",")
	p.OuterSrc, _ = netip.ParseAddr(srcs[0])
	p.OuterDst, _ = netip.ParseAddr(dsts[0])
	p.ICVGood = r[5] == "1" || r[5] == "True"
	p.ICVBad = r[6] == "1" || r[6] == "True"
	p.Decrypted = r[7] != ""
	// Second occurrence of the IP fields is the inner header.
	protos, mfs, offs, lens := strings.Split(r[8], ","), strings.Split(r[9], ","), strings.Split(r[10], ","), strings.Split(r[11], ",")
	if len(srcs) > 1 && len(dsts) > 1 {
		p.InnerSrc, p.InnerDst = srcs[1], dsts[1]
	}
	if len(protos) > 1 {
		p.InnerProt, _ = strconv.Atoi(protos[1])
	}
	if len(mfs) > 1 {
		p.InnerMF = mfs[1] == "1" || mfs[1] == "True"
	}
	if len(offs) > 1 {
		p.InnerOff, _ = strconv.Atoi(offs[1])
	}
	if len(lens) > 1 {
		p.InnerLen, _ = strconv.Atoi(lens[1])
	}
	for _, m := range strings.Split(r[12], ",") {
		if v, err := strconv.Atoi(m); err == nil {
			p.MSS = append(p.MSS, v)
		}
	}
	p.Malformed = r[13] != ""
	return p
}

// Summary counts a capture's ESP packets.
type Summary struct {
	ESP       int         // ESP packets
	Decrypted int         // decrypted with a good ICV and an inner IPv4 header
	Bad       []Packet    // ESP packets that did not decrypt cleanly, or were malformed
	ByProto   map[int]int // decrypted packets by inner protocol
}

// Summarize counts ps.
func Summarize(ps []Packet) Summary {
	s := Summary{ESP: len(ps), ByProto: map[int]int{}}
	for _, p := range ps {
		if p.Decrypted && p.ICVGood && !p.ICVBad && p.InnerProt >= 0 && !p.Malformed {
			s.Decrypted++
			s.ByProto[p.InnerProt]++
			continue
		}
		s.Bad = append(s.Bad, p)
	}
	return s
}
