package prf

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/crypto/transform"
)

// record is one blank-line-separated block of "Name = value" lines.
type record struct {
	file string
	line int
	kv   map[string]string
}

func records(t *testing.T, name string) []record {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	cur := record{file: name, kv: map[string]string{}}
	flush := func() {
		if len(cur.kv) > 0 {
			out = append(out, cur)
		}
		cur = record{file: name, kv: map[string]string{}}
	}
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "":
			flush()
		case line[0] == '#':
		default:
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				t.Fatalf("%s:%d: want \"name = value\", got %q", name, n, line)
			}
			if len(cur.kv) == 0 {
				cur.line = n
			}
			cur.kv[k] = v
		}
	}
	flush()
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no records", name)
	}
	return out
}

func (r record) has(k string) bool { _, ok := r.kv[k]; return ok }

// bytes decodes a hex value, or "repeat:<n>:<hex byte>".
func (r record) bytes(t *testing.T, k string) []byte {
	t.Helper()
	v, ok := r.kv[k]
	if !ok {
		t.Fatalf("%s:%d: no %q", r.file, r.line, k)
	}
	if rest, ok := strings.CutPrefix(v, "repeat:"); ok {
		n, b, _ := strings.Cut(rest, ":")
		cnt, err1 := strconv.Atoi(n)
		c, err2 := hex.DecodeString(b)
		if err1 != nil || err2 != nil || len(c) != 1 {
			t.Fatalf("%s:%d: bad %s", r.file, r.line, v)
		}
		return bytes.Repeat(c, cnt)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		t.Fatalf("%s:%d: %s: %v", r.file, r.line, k, err)
	}
	return b
}

func (r record) int(t *testing.T, k string) int {
	t.Helper()
	n, err := strconv.Atoi(r.kv[k])
	if err != nil {
		t.Fatalf("%s:%d: %s: %v", r.file, r.line, k, err)
	}
	return n
}

func (r record) prf(t *testing.T) *PRF {
	t.Helper()
	p, err := Lookup(ID(r.int(t, "PRF")))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (r record) check(t *testing.T, what string, got []byte, key string) {
	t.Helper()
	if want := r.bytes(t, key); !bytes.Equal(got, want) {
		t.Errorf("%s:%d (PRF %s): %s = %x, want %x", r.file, r.line, r.kv["PRF"], what, got, want)
	}
}

func TestHMAC(t *testing.T) {
	seen := map[string]int{}
	for _, r := range records(t, "hmac.txt") {
		p := r.prf(t)
		r.check(t, "prf", p.Sum(r.bytes(t, "Key"), r.bytes(t, "Data")), "Out")
		// The data may come in pieces.
		d := r.bytes(t, "Data")
		r.check(t, "prf in pieces", p.Sum(r.bytes(t, "Key"), d[:3], nil, d[3:]), "Out")
		seen[p.String()]++
	}
	if len(seen) != 4 {
		t.Errorf("hmac.txt covers %v, want all four PRFs", seen)
	}
}

// TestIKEv2KDF runs the IKEv2 key schedule against the NIST CAVS answers
// (ikev2-kdf.txt) and the independent reference (ikev2-kdf-ref.txt).
func TestIKEv2KDF(t *testing.T) {
	seen := map[ID]int{}
	for _, file := range []string{"ikev2-kdf.txt", "ikev2-kdf-ref.txt"} {
		for _, r := range records(t, file) {
			p := r.prf(t)
			seen[p.ID()]++
			ni, nr := r.bytes(t, "Ni"), r.bytes(t, "Nr")
			spii, spir := r.bytes(t, "SPIi"), r.bytes(t, "SPIr")
			skeyseed := p.SKEYSEED(ni, nr, r.bytes(t, "g^ir"))
			r.check(t, "SKEYSEED", skeyseed, "SKEYSEED")
			dkm := r.bytes(t, "DKM")
			km, err := p.Plus(skeyseed, len(dkm), ni, nr, spii, spir)
			if err != nil {
				t.Fatal(err)
			}
			r.check(t, "DKM", km, "DKM")

			// IKESAKeys takes its keys in order from the same stream.
			for _, s := range transform.Suites() {
				l, err := KeyLensFor(s)
				if err != nil {
					t.Fatal(err)
				}
				n := 3*p.Size() + 2*l.Integ + 2*l.Encr
				if n > len(dkm) {
					continue
				}
				k, err := p.IKESAKeys(skeyseed, ni, nr, spii, spir, l)
				if err != nil {
					t.Fatal(err)
				}
				cat := bytes.Join([][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr}, nil)
				if !bytes.Equal(cat, dkm[:n]) {
					t.Errorf("%s:%d: IKESAKeys for %v do not split DKM in RFC 7296 §2.14 order", r.file, r.line, s)
				}
				if len(k.SKd) != p.Size() || len(k.SKpi) != p.Size() || len(k.SKai) != l.Integ || len(k.SKei) != l.Encr {
					t.Errorf("%s:%d: IKESAKeys lengths for %v", r.file, r.line, s)
				}
			}

			skd := dkm[:p.Size()]
			girNew := r.bytes(t, "g^ir (new)")
			if r.has("DKM(Child SA)") {
				child, err := p.ChildKeymat(skd, nil, ni, nr, len(r.bytes(t, "DKM(Child SA)")))
				if err != nil {
					t.Fatal(err)
				}
				r.check(t, "DKM(Child SA)", child, "DKM(Child SA)")
			}
			if r.has("DKM(Child SA D-H)") {
				child, err := p.ChildKeymat(skd, girNew, ni, nr, len(r.bytes(t, "DKM(Child SA D-H)")))
				if err != nil {
					t.Fatal(err)
				}
				r.check(t, "DKM(Child SA D-H)", child, "DKM(Child SA D-H)")
			}
			r.check(t, "SKEYSEED(Rekey)", p.RekeySKEYSEED(skd, girNew, ni, nr), "SKEYSEED(Rekey)")
		}
	}
	for _, id := range IDs() {
		if seen[id] == 0 {
			t.Errorf("no IKEv2 KDF vector for PRF %d", id)
		}
	}
}

// TestIKESAKeysCAVS: the SHA-1 CAVS case's 132-byte DKM is exactly the
// keys of an AES-CBC-128 / HMAC-SHA1-96 IKE SA (3·20 + 2·20 + 2·16).
func TestIKESAKeysCAVS(t *testing.T) {
	r := records(t, "ikev2-kdf.txt")[0]
	p := r.prf(t)
	l, err := KeyLensFor(transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 128, Integ: transform.AUTH_HMAC_SHA1_96})
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.IKESAKeys(r.bytes(t, "SKEYSEED"), r.bytes(t, "Ni"), r.bytes(t, "Nr"), r.bytes(t, "SPIi"), r.bytes(t, "SPIr"), l)
	if err != nil {
		t.Fatal(err)
	}
	dkm := r.bytes(t, "DKM")
	if len(dkm) != 132 || !bytes.Equal(k.SKpr, dkm[112:]) {
		t.Errorf("SK_pr = %x, want the DKM's last 20 bytes %x", k.SKpr, dkm[112:])
	}
	if !bytes.Equal(k.SKd, dkm[:20]) || !bytes.Equal(k.SKai, dkm[20:40]) || !bytes.Equal(k.SKar, dkm[40:60]) ||
		!bytes.Equal(k.SKei, dkm[60:76]) || !bytes.Equal(k.SKer, dkm[76:92]) || !bytes.Equal(k.SKpi, dkm[92:112]) {
		t.Errorf("IKE SA keys are not the DKM in order")
	}
	// Growing one key must not overwrite the next.
	_ = append(k.SKd, 0xee)
	if k.SKai[0] != dkm[20] {
		t.Errorf("keys share capacity: append to SK_d changed SK_ai")
	}
}

func TestKeyLensFor(t *testing.T) {
	for _, c := range []struct {
		s    transform.Suite
		want KeyLens
	}{
		{transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 128}, KeyLens{Encr: 20}},
		{transform.Suite{Encr: transform.ENCR_AES_GCM_16, KeyBits: 256}, KeyLens{Encr: 36}},
		{transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 128, Integ: transform.AUTH_HMAC_SHA1_96}, KeyLens{Integ: 20, Encr: 16}},
		{transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 256, Integ: transform.AUTH_HMAC_SHA2_256_128}, KeyLens{Integ: 32, Encr: 32}},
		{transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 128, Integ: transform.AUTH_HMAC_SHA2_384_192}, KeyLens{Integ: 48, Encr: 16}},
		{transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 256, Integ: transform.AUTH_HMAC_SHA2_512_256}, KeyLens{Integ: 64, Encr: 32}},
	} {
		got, err := KeyLensFor(c.s)
		if err != nil || got != c.want {
			t.Errorf("KeyLensFor(%v) = %+v, %v; want %+v", c.s, got, err, c.want)
		}
	}
	bad := transform.Suite{Encr: transform.ENCR_AES_CBC, KeyBits: 192, Integ: transform.AUTH_HMAC_SHA1_96}
	if _, err := KeyLensFor(bad); err == nil {
		t.Errorf("KeyLensFor(%v) accepted an unimplemented suite", bad)
	}
	p, _ := Lookup(PRF_HMAC_SHA2_256)
	if _, err := p.IKESAKeys(nil, nil, nil, nil, nil, KeyLens{}); err == nil {
		t.Errorf("IKESAKeys accepted a zero encryption key length")
	}
}

// TestChildSAKeys: KEYMAT is split initiator→responder first, and each
// half is what transform.New takes (RFC 7296 §2.17).
func TestChildSAKeys(t *testing.T) {
	p, _ := Lookup(PRF_HMAC_SHA2_256)
	skd := bytes.Repeat([]byte{1}, 32)
	ni, nr, gir := bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 256)
	for _, s := range transform.Suites() {
		for _, g := range [][]byte{nil, gir} {
			i2r, r2i, err := p.ChildSAKeys(skd, g, ni, nr, s)
			if err != nil {
				t.Fatal(err)
			}
			km, err := p.ChildKeymat(skd, g, ni, nr, 2*s.KeymatLen())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(bytes.Clone(i2r), r2i...), km) || len(i2r) != s.KeymatLen() {
				t.Errorf("%v: ChildSAKeys is not KEYMAT split in half", s)
			}
			if _, err := transform.New(s, i2r); err != nil {
				t.Errorf("%v: transform.New refused the initiator's keys: %v", s, err)
			}
			if _, err := transform.New(s, r2i); err != nil {
				t.Errorf("%v: transform.New refused the responder's keys: %v", s, err)
			}
		}
	}
	if _, _, err := p.ChildSAKeys(skd, nil, ni, nr, transform.Suite{}); err == nil {
		t.Errorf("ChildSAKeys accepted an invalid suite")
	}
}

func TestPlusLimits(t *testing.T) {
	for _, id := range IDs() {
		p, _ := Lookup(id)
		max, err := p.Plus([]byte("k"), 255*p.Size(), []byte("s"))
		if err != nil || len(max) != 255*p.Size() {
			t.Fatalf("%v: 255 blocks: %d bytes, %v", p, len(max), err)
		}
		if _, err := p.Plus([]byte("k"), 255*p.Size()+1, []byte("s")); !errors.Is(err, ErrTooLong) {
			t.Errorf("%v: 255 blocks + 1 byte: err = %v, want ErrTooLong", p, err)
		}
		if _, err := p.Plus([]byte("k"), -1); !errors.Is(err, ErrTooLong) {
			t.Errorf("%v: negative length: err = %v", p, err)
		}
		if b, err := p.Plus([]byte("k"), 0, []byte("s")); err != nil || len(b) != 0 {
			t.Errorf("%v: zero length: %x, %v", p, b, err)
		}
		// Shorter outputs are prefixes; the seed may be split anywhere.
		short, _ := p.Plus([]byte("k"), p.Size()+5, []byte("s"))
		split, _ := p.Plus([]byte("k"), 255*p.Size(), nil, []byte(""), []byte("s"))
		if !bytes.Equal(short, max[:len(short)]) || !bytes.Equal(split, max) {
			t.Errorf("%v: prf+ output depends on length or seed split", p)
		}
		// The last block uses counter 255: T255 = prf(K, T254 | S | 0xff).
		last := p.Sum([]byte("k"), max[253*p.Size():254*p.Size()], []byte("s"), []byte{255})
		if !bytes.Equal(last, max[254*p.Size():]) {
			t.Errorf("%v: block 255 is not prf(K, T254 | S | 0xff)", p)
		}
	}
}

func TestPSKAuth(t *testing.T) {
	n := 0
	for _, r := range records(t, "misc-ref.txt") {
		if r.kv["Kind"] != "psk-auth" {
			continue
		}
		n++
		p := r.prf(t)
		r.check(t, "AUTH", p.PSKAuth(r.bytes(t, "PSK"), r.bytes(t, "Octets")), "AUTH")
	}
	if n != 4 {
		t.Fatalf("ran %d psk-auth records, want 4", n)
	}
}

func TestAuthOctets(t *testing.T) {
	p, _ := Lookup(PRF_HMAC_SHA2_256)
	msg, nonce, skp, id := []byte("IKE_SA_INIT bytes"), []byte("peer nonce"), []byte("SK_pi"), []byte{1, 0, 0, 0, 192, 0, 2, 1}
	got := p.AuthOctets(msg, nonce, skp, id)
	want := append(append(append([]byte{}, msg...), nonce...), p.Sum(skp, id)...)
	if !bytes.Equal(got, want) {
		t.Errorf("AuthOctets = %x, want %x", got, want)
	}
}

func TestIKEv1KDF(t *testing.T) {
	kinds := map[string]int{}
	for _, r := range records(t, "ikev1-kdf.txt") {
		p := r.prf(t)
		switch {
		case r.has("pre-shared-key"):
			kinds["psk"]++
			r.check(t, "SKEYID", p.IKEv1SKEYIDPSK(r.bytes(t, "pre-shared-key"), r.bytes(t, "Ni"), r.bytes(t, "Nr")), "SKEYID")
			k := p.IKEv1PSK(r.bytes(t, "pre-shared-key"), r.bytes(t, "Ni"), r.bytes(t, "Nr"), []byte{1}, nil, nil)
			r.check(t, "IKEv1PSK SKEYID", k.SKEYID, "SKEYID")
		case r.has("SKEYID_d"):
			kinds["chain"]++
			k := p.IKEv1Derive(r.bytes(t, "SKEYID"), r.bytes(t, "g^xy"), r.bytes(t, "CKY_I"), r.bytes(t, "CKY_R"))
			r.check(t, "SKEYID_d", k.SKEYIDd, "SKEYID_d")
			r.check(t, "SKEYID_a", k.SKEYIDa, "SKEYID_a")
			r.check(t, "SKEYID_e", k.SKEYIDe, "SKEYID_e")
		case r.has("Ka"):
			kinds["appb"]++
			e := r.bytes(t, "SKEYID_e")
			r.check(t, "Ka", p.IKEv1EncryptionKey(e, r.int(t, "Ka length")), "Ka")
			// A key no longer than SKEYID_e is its prefix (Appendix B).
			if k := p.IKEv1EncryptionKey(e, 15); !bytes.Equal(k, e[:15]) {
				t.Errorf("%s:%d: 15-byte key is not SKEYID_e's prefix", r.file, r.line)
			}
			if k := p.IKEv1EncryptionKey(e, len(e)); !bytes.Equal(k, e) {
				t.Errorf("%s:%d: full-length key is not SKEYID_e", r.file, r.line)
			}
		}
	}
	if kinds["psk"] != 3 || kinds["chain"] != 3 || kinds["appb"] != 3 {
		t.Errorf("ran %v, want 3 of each", kinds)
	}
}

func TestIKEv1QuickKeymat(t *testing.T) {
	n := 0
	for _, r := range records(t, "misc-ref.txt") {
		if r.kv["Kind"] != "ikev1-quick" {
			continue
		}
		n++
		p := r.prf(t)
		var g []byte
		if r.has("g(qm)^xy") {
			g = r.bytes(t, "g(qm)^xy")
		}
		want := r.bytes(t, "KEYMAT")
		got := p.IKEv1QuickKeymat(r.bytes(t, "SKEYID_d"), g, byte(r.int(t, "Protocol")), r.bytes(t, "SPI"), r.bytes(t, "Ni"), r.bytes(t, "Nr"), len(want))
		r.check(t, "KEYMAT", got, "KEYMAT")
	}
	if n != 3 {
		t.Fatalf("ran %d ikev1-quick records, want 3", n)
	}
}

func TestIKEv1Hashes(t *testing.T) {
	p, _ := Lookup(PRF_HMAC_SHA1)
	sk, gi, gr, ci, cr, sa, id := []byte("skeyid"), []byte("gxi"), []byte("gxr"), []byte("ckyi...."), []byte("ckyr...."), []byte("sai"), []byte("id")
	if got, want := p.IKEv1HashI(sk, gi, gr, ci, cr, sa, id), p.Sum(sk, gi, gr, ci, cr, sa, id); !bytes.Equal(got, want) {
		t.Errorf("HASH_I input order wrong")
	}
	if got, want := p.IKEv1HashR(sk, gi, gr, ci, cr, sa, id), p.Sum(sk, gr, gi, cr, ci, sa, id); !bytes.Equal(got, want) {
		t.Errorf("HASH_R input order wrong")
	}
	// Hash is the bare hash (SHA-1 of "abc", FIPS 180-2 appendix A.1).
	if got := hex.EncodeToString(p.Hash([]byte("a"), []byte("bc"))); got != "a9993e364706816aba3e25717850c26c9cd0d89d" {
		t.Errorf("Hash(abc) = %s", got)
	}
}

func TestLookup(t *testing.T) {
	for _, c := range []struct {
		id   ID
		name string
		size int
	}{{2, "prfsha1", 20}, {5, "prfsha256", 32}, {6, "prfsha384", 48}, {7, "prfsha512", 64}} {
		p, err := Lookup(c.id)
		if err != nil || p.ID() != c.id || p.String() != c.name || p.Size() != c.size {
			t.Errorf("Lookup(%d) = %v %v", c.id, p, err)
		}
	}
	for _, id := range []ID{0, 1, 3, 4, 8} {
		if _, err := Lookup(id); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Lookup(%d): err = %v, want ErrUnsupported", id, err)
		}
	}
	for attr, want := range map[uint16]ID{2: 2, 4: 5, 5: 6, 6: 7} {
		if p, err := LookupIKEv1Hash(attr); err != nil || p.ID() != want {
			t.Errorf("LookupIKEv1Hash(%d) = %v, %v; want PRF %d", attr, p, err, want)
		}
	}
	if _, err := LookupIKEv1Hash(1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("LookupIKEv1Hash(1 = MD5) accepted")
	}
}

// The name table covers IDs this package does not implement too, so the
// control plane can log a peer's offer by name.
func TestNames(t *testing.T) {
	for id, want := range map[ID]string{1: "prfmd5", 2: "prfsha1", 4: "prfaesxcbc", 5: "prfsha256",
		6: "prfsha384", 7: "prfsha512", 8: "prfaescmac", 3: "prf3", 99: "prf99"} {
		if got := id.String(); got != want {
			t.Errorf("ID(%d).String() = %q, want %q", id, got, want)
		}
		if k, ok := Keyword(id); ok != (want != "prf3" && want != "prf99") || (ok && k != want) {
			t.Errorf("Keyword(%d) = %q %v", id, k, ok)
		}
	}
}
