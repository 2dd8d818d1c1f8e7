package transform

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Known-answer tests from published vectors kept as data in testdata/:
//   - linux-testmgr.txt: the Linux kernel's rfc4106(gcm(aes)) and
//     authenc(hmac(sha1|sha256|sha512),cbc(aes)) vectors;
//   - draft-mcgrew-gcm-test-01.txt: complete ESP packets for AES-GCM.
// Each file's header names its source.

type kvBlock struct {
	line   int
	fields map[string][]byte
	text   map[string]string
	octets map[string]int // declared "(N octets)" lengths, draft format
}

func (b *kvBlock) hex(t *testing.T, name string) []byte {
	t.Helper()
	v, ok := b.fields[name]
	if !ok {
		t.Fatalf("vector at line %d has no %q", b.line, name)
	}
	return v
}

var (
	kvLine     = regexp.MustCompile(`^([a-z+_]+) = (.*)$`)
	octetsLine = regexp.MustCompile(`^\((\d+) octets\)$`)
	hexOnly    = regexp.MustCompile(`^[0-9a-f]*$`)
)

// readVectors parses "name = value" blocks. A block starts at the line
// naming first (e.g. "template" or "algorithm"); a value may continue on
// following lines of bare hex; "(N octets)" declares the length of the
// value above it. Lines starting with '#' are comments.
func readVectors(t *testing.T, path, first string) []*kvBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("known-answer data missing: %v", err)
	}
	defer f.Close()
	var out []*kvBlock
	var cur *kvBlock
	var field string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if m := kvLine.FindStringSubmatch(line); m != nil {
			if m[1] == first {
				cur = &kvBlock{line: n, fields: map[string][]byte{}, text: map[string]string{}, octets: map[string]int{}}
				out = append(out, cur)
			}
			if cur == nil {
				t.Fatalf("%s:%d: %q before the first %q", path, n, m[1], first)
			}
			field = m[1]
			val := m[2]
			if o := octetsLine.FindStringSubmatch(val); o != nil {
				cur.octets[field], _ = strconv.Atoi(o[1])
				val = ""
			}
			cur.text[field] = val
			if hexOnly.MatchString(val) && len(val)%2 == 0 {
				cur.fields[field], _ = hex.DecodeString(val)
			}
			continue
		}
		if o := octetsLine.FindStringSubmatch(line); o != nil && cur != nil {
			cur.octets[field], _ = strconv.Atoi(o[1])
			continue
		}
		if cur == nil || !hexOnly.MatchString(line) {
			t.Fatalf("%s:%d: cannot parse %q", path, n, line)
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		cur.fields[field] = append(cur.fields[field], b...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no vectors", path)
	}
	return out
}

// TestKATLinuxRFC4106 runs the kernel's rfc4106(gcm(aes)) vectors. Their
// assoc is the RFC 4106 AAD (SPI || seq, or SPI || seq-hi || seq-lo) with
// the 8-byte IV appended; the key is key || salt.
func TestKATLinuxRFC4106(t *testing.T) {
	ran := 0
	for _, v := range readVectors(t, "testdata/linux-testmgr.txt", "template") {
		if v.text["template"] != "aes_gcm_rfc4106_tv_template" {
			continue
		}
		name := "rfc4106#" + v.text["index"]
		key, iv, assoc := v.hex(t, "key"), v.hex(t, "iv"), v.hex(t, "assoc")
		ptext, ctext := v.hex(t, "ptext"), v.hex(t, "ctext")
		s := Suite{ENCR_AES_GCM_16, (len(key) - 4) * 8, AUTH_NONE}
		if s.KeyBits == 192 {
			t.Logf("%s: AES-192 is not an AWS transform; not run", name)
			continue
		}
		if !bytes.Equal(assoc[len(assoc)-8:], iv) {
			t.Fatalf("%s: assoc does not end with the IV", name)
		}
		hdr, seq, esn := espHeaderFromAAD(t, name, assoc[:len(assoc)-8])
		c := mustNewKeymat(t, s, key)
		checkESPVector(t, name, c, hdr, iv, ptext, ctext, seq, esn)
		ran++
	}
	if ran < 20 {
		t.Fatalf("only %d rfc4106 vectors ran", ran)
	}
}

// espHeaderFromAAD turns an RFC 4106 §5 AAD into the on-wire ESP header
// and the 64-bit sequence number.
func espHeaderFromAAD(t *testing.T, name string, aad []byte) (hdr []byte, seq uint64, esn bool) {
	switch len(aad) {
	case 8:
		return aad, uint64(binary.BigEndian.Uint32(aad[4:])), false
	case 12:
		hdr = append(append([]byte(nil), aad[:4]...), aad[8:12]...)
		return hdr, binary.BigEndian.Uint64(aad[4:]), true
	}
	t.Fatalf("%s: %d-byte AAD is neither SPI||seq nor SPI||seq-hi||seq-lo", name, len(aad))
	return nil, 0, false
}

func mustNewKeymat(t *testing.T, s Suite, keymat []byte) Cipher {
	t.Helper()
	c, err := New(s, keymat)
	if err != nil {
		t.Fatalf("New(%v): %v", s, err)
	}
	return c
}

// checkESPVector seals hdr || iv || ptext with the given IV and wants
// ctext (ciphertext || ICV, ICV possibly longer than ours: truncation
// keeps the leading bytes), then opens hdr || iv || ciphertext || ICV and
// wants ptext back.
func checkESPVector(t *testing.T, name string, c Cipher, hdr, iv, ptext, ctext []byte, seq uint64, esn bool) {
	t.Helper()
	icv := c.ICVLen()
	if len(ctext) < len(ptext)+icv {
		t.Fatalf("%s: ctext of %d bytes cannot hold %d of ciphertext and a %d-byte ICV", name, len(ctext), len(ptext), icv)
	}
	want := ctext[:len(ptext)+icv]
	pkt := append(append(append([]byte(nil), hdr...), iv...), ptext...)
	pkt = append(pkt, make([]byte, icv)...)
	sealWithIV(c, pkt, len(hdr), seq, esn)
	if got := pkt[len(hdr)+len(iv):]; !bytes.Equal(got, want) {
		t.Errorf("%s: sealed\n  %x\nwant\n  %x", name, got, want)
	}
	pkt = append(append(append([]byte(nil), hdr...), iv...), want...)
	if err := openAt(c, pkt, len(hdr), seq, esn); err != nil {
		t.Errorf("%s: Open: %v", name, err)
	} else if got := pkt[len(hdr)+len(iv) : len(pkt)-icv]; !bytes.Equal(got, ptext) {
		t.Errorf("%s: opened\n  %x\nwant\n  %x", name, got, ptext)
	}
	pkt[len(pkt)-1] ^= 1
	if err := openAt(c, pkt, len(hdr), seq, esn); err != ErrAuth {
		t.Errorf("%s: last ICV byte flipped: Open = %v, want ErrAuth", name, err)
	}
}

// sealWithIV is the test hook that seals with the IV already in pkt, after
// a header of hdrLen bytes (8 for ESP; the kernel's authenc vectors also
// use 0).
func sealWithIV(c Cipher, pkt []byte, hdrLen int, seq uint64, esn bool) {
	switch c := c.(type) {
	case *gcmCipher:
		if hdrLen != espHdrLen {
			panic("GCM vectors always have an ESP header")
		}
		c.seal(pkt, seq, esn)
	case *cbcCipher:
		c.seal(pkt, hdrLen, seq, esn)
	}
}

func openAt(c Cipher, pkt []byte, hdrLen int, seq uint64, esn bool) error {
	if c, ok := c.(*cbcCipher); ok {
		return c.open(pkt, hdrLen, seq, esn)
	}
	return c.Open(pkt, seq, esn)
}

// TestKATLinuxAuthenc runs the kernel's authenc(hmac(H),cbc(aes)) vectors.
// Their key is a netlink attribute: rtattr{len, type} in host (here
// little-endian) order, then enckeylen as be32, then the HMAC key, then the
// AES key. assoc is what the kernel authenticates before the ciphertext:
// the ESP header (8 bytes, or nothing in the RFC 3602 cipher-only cases)
// followed by the IV; ctext carries the full, untruncated HMAC.
func TestKATLinuxAuthenc(t *testing.T) {
	integ := map[string]IntegID{
		"hmac_sha1_aes_cbc_tv_temp":   AUTH_HMAC_SHA1_96,
		"hmac_sha256_aes_cbc_tv_temp": AUTH_HMAC_SHA2_256_128,
		"hmac_sha512_aes_cbc_tv_temp": AUTH_HMAC_SHA2_512_256,
	}
	ran := map[IntegID]int{}
	for _, v := range readVectors(t, "testdata/linux-testmgr.txt", "template") {
		id, ok := integ[v.text["template"]]
		if !ok {
			continue
		}
		name := strings.TrimSuffix(v.text["template"], "_tv_temp") + "#" + v.text["index"]
		blob := v.hex(t, "key")
		if len(blob) < 8 || binary.LittleEndian.Uint16(blob) != 8 || binary.LittleEndian.Uint16(blob[2:]) != 1 {
			t.Fatalf("%s: key does not start with rtattr{8, CRYPTO_AUTHENC_KEYA_PARAM}: %x", name, blob)
		}
		encLen := int(binary.BigEndian.Uint32(blob[4:]))
		keys := blob[8:]
		authKey, encKey := keys[:len(keys)-encLen], keys[len(keys)-encLen:]
		s := Suite{ENCR_AES_CBC, encLen * 8, id}
		if s.KeyBits == 192 {
			t.Logf("%s: AES-192 is not an AWS transform; not run", name)
			continue
		}
		if g := s.integ(); g == nil || len(authKey) != g.KeyLen {
			t.Fatalf("%s: %d-byte HMAC key, want the %v key length", name, len(authKey), s)
		}
		keymat := append(append([]byte(nil), encKey...), authKey...) // RFC 7296 §2.17 order
		iv, assoc := v.hex(t, "iv"), v.hex(t, "assoc")
		if !bytes.Equal(assoc[len(assoc)-16:], iv) {
			t.Fatalf("%s: assoc does not end with the IV", name)
		}
		c := mustNewKeymat(t, s, keymat)
		checkESPVector(t, name, c, assoc[:len(assoc)-16], iv, v.hex(t, "ptext"), v.hex(t, "ctext"), 0, false)
		ran[id]++
	}
	for _, id := range integ {
		if ran[id] < 5 {
			t.Errorf("only %d vectors ran for integrity transform %d", ran[id], id)
		}
	}
}

// TestKATDraftMcGrew opens each complete ESP packet of
// draft-mcgrew-gcm-test-01 §4, checks the plaintext, and reseals it with
// the packet's IV to the same bytes.
func TestKATDraftMcGrew(t *testing.T) {
	ran := 0
	for i, v := range readVectors(t, "testdata/draft-mcgrew-gcm-test-01.txt", "algorithm") {
		name := "draft-mcgrew-gcm-test-01 case " + strconv.Itoa(i+1)
		if v.text["algorithm"] != "AES-GCM-ESP" {
			t.Logf("%s: %s (RFC 4543 GMAC) is not an AWS transform; not run", name, v.text["algorithm"])
			continue
		}
		for f, n := range v.octets {
			if len(v.fields[f]) != n {
				t.Fatalf("%s: %s has %d octets, the draft says %d (transcription error)", name, f, len(v.fields[f]), n)
			}
		}
		key, spi, seqB, nonce := v.hex(t, "key"), v.hex(t, "spi"), v.hex(t, "seq"), v.hex(t, "nonce")
		plain, aad, ct, packet := v.hex(t, "plaintext"), v.hex(t, "aad"), v.hex(t, "ctext+tag"), v.hex(t, "packet")
		if len(key) == 24 {
			t.Logf("%s: AES-192 is not an AWS transform; not run", name)
			continue
		}
		var seq uint64
		esn := len(seqB) == 8
		if esn {
			seq = binary.BigEndian.Uint64(seqB)
		} else {
			seq = uint64(binary.BigEndian.Uint32(seqB))
		}
		// The data must agree with RFC 4106's layout before it can
		// judge our code: packet = SPI || seq-lo || IV || ctext+tag.
		hdr := binary.BigEndian.AppendUint32(append([]byte(nil), spi...), uint32(seq))
		if w := append(append(append([]byte(nil), hdr...), nonce[4:]...), ct...); !bytes.Equal(packet, w) {
			t.Fatalf("%s: packet is not SPI || seq-lo || IV || ctext+tag", name)
		}
		if w := append(append([]byte(nil), spi...), seqB...); !bytes.Equal(aad, w) {
			t.Fatalf("%s: aad is not SPI || seq", name)
		}
		s := Suite{ENCR_AES_GCM_16, len(key) * 8, AUTH_NONE}
		c := mustNewKeymat(t, s, append(append([]byte(nil), key...), nonce[:4]...))

		pkt := bytes.Clone(packet)
		if err := c.Open(pkt, seq, esn); err != nil {
			t.Errorf("%s: Open: %v", name, err)
			continue
		}
		if got := plainRegion(c, pkt); !bytes.Equal(got, plain) {
			t.Errorf("%s: opened\n  %x\nwant\n  %x", name, got, plain)
		}
		sealWithIV(c, pkt, espHdrLen, seq, esn)
		if !bytes.Equal(pkt, packet) {
			t.Errorf("%s: resealed\n  %x\nwant\n  %x", name, pkt, packet)
		}
		// Where the draft's IV happens to be the sequence number, Seal
		// itself must produce the packet.
		if binary.BigEndian.Uint64(nonce[4:]) == seq {
			pkt2 := bytes.Clone(packet)
			c.Open(pkt2, seq, esn)
			c.Seal(pkt2, seq, esn)
			if !bytes.Equal(pkt2, packet) {
				t.Errorf("%s: Seal (IV = seq)\n  %x\nwant\n  %x", name, pkt2, packet)
			}
		}
		ran++
	}
	if ran != 15 {
		t.Fatalf("%d draft-mcgrew-gcm-test-01 packets ran, want 15", ran)
	}
}
