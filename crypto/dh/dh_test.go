package dh

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
)

// vectors reads a testdata file of "group key = hex" lines into one
// ordered list of (key, value) per group; keys may repeat.
type kv struct {
	key string
	val []byte
}

func vectors(t *testing.T, name string) map[ID][]kv {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[ID][]kv{}
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var grp, key, eq, val string
		if n, _ := fmt.Sscan(line, &grp, &key, &eq, &val); n != 4 || eq != "=" {
			t.Fatalf("%s: bad line %q", name, line)
		}
		id, err := strconv.Atoi(grp)
		if err != nil {
			t.Fatalf("%s: bad group in %q", name, line)
		}
		b, err := hex.DecodeString(val)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, line, err)
		}
		out[ID(id)] = append(out[ID(id)], kv{key, b})
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func one(t *testing.T, kvs []kv, key string) []byte {
	t.Helper()
	for _, e := range kvs {
		if e.key == key {
			return e.val
		}
	}
	t.Fatalf("test vector has no %q", key)
	return nil
}

func mustGroup(t testing.TB, id ID) Group {
	t.Helper()
	g, err := Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// piFloor returns ⌊2^e · π⌋, from Machin's formula π = 16·atan(1/5) −
// 4·atan(1/239) in fixed point with guard bits.
func piFloor(e uint) *big.Int {
	const guard = 64
	one := new(big.Int).Lsh(big.NewInt(1), e+guard)
	atanInv := func(x int64) *big.Int {
		// atan(1/x) = Σ (−1)^k / ((2k+1)·x^(2k+1))
		sum := new(big.Int)
		xx := big.NewInt(x * x)
		term := new(big.Int).Quo(one, big.NewInt(x)) // 1/x^(2k+1)
		for k := int64(0); term.Sign() != 0; k++ {
			t := new(big.Int).Quo(term, big.NewInt(2*k+1))
			if k%2 == 0 {
				sum.Add(sum, t)
			} else {
				sum.Sub(sum, t)
			}
			term.Quo(term, xx)
		}
		return sum
	}
	pi := new(big.Int).Mul(atanInv(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atanInv(239), big.NewInt(4)))
	return pi.Rsh(pi, guard)
}

// TestParameters checks the typed-in constants against what defines them,
// so a typo cannot survive.
func TestParameters(t *testing.T) {
	// RFC 2409 §6.2 and RFC 3526 §§2–7: p = 2^n − 2^(n−64) − 1 +
	// 2^64·(⌊2^(n−130)·π⌋ + k), generator 2.
	formula := map[ID]int64{
		MODP1024: 129093, MODP1536: 741804, MODP2048: 124476, MODP3072: 1690314,
		MODP4096: 240904, MODP6144: 929484, MODP8192: 4743158,
	}
	for id, k := range formula {
		m := mustGroup(t, id).(*modp)
		n := uint(m.p.BitLen())
		want := new(big.Int).Lsh(big.NewInt(1), n)
		want.Sub(want, new(big.Int).Lsh(big.NewInt(1), n-64))
		want.Sub(want, big.NewInt(1))
		mid := piFloor(n - 130)
		mid.Add(mid, big.NewInt(k))
		want.Add(want, mid.Lsh(mid, 64))
		if m.p.Cmp(want) != 0 {
			t.Errorf("%v: p differs from the RFC's formula with k=%d", id, k)
		}
		if m.g.Cmp(big.NewInt(2)) != 0 || m.q != nil {
			t.Errorf("%v: want generator 2 and no subgroup order", id)
		}
		// The formula pins the value; primality of p and (p−1)/2 is
		// a further check of the RFC's claim (Baillie-PSW only: the
		// 8192-bit group would make Miller-Rabin rounds slow).
		if !m.p.ProbablyPrime(0) {
			t.Errorf("%v: p is not prime", id)
		}
		if q := new(big.Int).Rsh(m.p, 1); !q.ProbablyPrime(0) {
			t.Errorf("%v: (p-1)/2 is not prime", id)
		}
	}
	// RFC 5114 §2.1–2.3: p and q prime, q | p−1, g of order q.
	sub := map[ID][2]int{MODP1024S160: {1024, 160}, MODP2048S224: {2048, 224}, MODP2048S256: {2048, 256}}
	for id, bits := range sub {
		m := mustGroup(t, id).(*modp)
		if m.p.BitLen() != bits[0] || m.q.BitLen() != bits[1] {
			t.Errorf("%v: p is %d bits, q %d bits; want %d, %d", id, m.p.BitLen(), m.q.BitLen(), bits[0], bits[1])
		}
		if !m.p.ProbablyPrime(4) || !m.q.ProbablyPrime(8) {
			t.Errorf("%v: p or q is not prime", id)
		}
		if new(big.Int).Mod(m.pMinus1, m.q).Sign() != 0 {
			t.Errorf("%v: q does not divide p-1", id)
		}
		if new(big.Int).Exp(m.g, m.q, m.p).Cmp(big.NewInt(1)) != 0 || m.g.Cmp(big.NewInt(1)) == 0 {
			t.Errorf("%v: g^q mod p != 1", id)
		}
	}
}

// TestRFC5114 uses RFC 5114 Appendix A's test data for groups 22–24.
func TestRFC5114(t *testing.T) {
	v := vectors(t, "rfc5114-appendix-a.txt")
	for _, id := range []ID{MODP1024S160, MODP2048S224, MODP2048S256} {
		kvs, m := v[id], mustGroup(t, id).(*modp)
		if kvs == nil {
			t.Fatalf("%v: no test data", id)
		}
		a, yA, err := m.keyPair(new(big.Int).SetBytes(one(t, kvs, "xA")))
		if err != nil {
			t.Fatal(err)
		}
		b, yB, err := m.keyPair(new(big.Int).SetBytes(one(t, kvs, "xB")))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(yA, one(t, kvs, "yA")) || !bytes.Equal(yB, one(t, kvs, "yB")) {
			t.Errorf("%v: public values differ from RFC 5114", id)
		}
		zA, errA := a.SharedSecret(yB)
		zB, errB := b.SharedSecret(yA)
		if errA != nil || errB != nil {
			t.Fatalf("%v: %v, %v", id, errA, errB)
		}
		if want := one(t, kvs, "Z"); !bytes.Equal(zA, want) || !bytes.Equal(zB, want) {
			t.Errorf("%v: shared secret differs from RFC 5114", id)
		}
	}
}

// TestRFC5903 uses RFC 5903 §8's vectors for groups 19–21.
func TestRFC5903(t *testing.T) {
	v := vectors(t, "rfc5903-section8.txt")
	for _, id := range []ID{ECP256, ECP384, ECP521} {
		kvs, e := v[id], mustGroup(t, id).(*ecp)
		if kvs == nil {
			t.Fatalf("%v: no test data", id)
		}
		pair := func(priv string) (Private, []byte) {
			k, err := e.curve.NewPrivateKey(one(t, kvs, priv))
			if err != nil {
				t.Fatal(err)
			}
			p, pub, err := e.keyPair(k)
			if err != nil {
				t.Fatal(err)
			}
			return p, pub
		}
		i, gi := pair("i")
		r, gr := pair("r")
		if want := append(one(t, kvs, "gix"), one(t, kvs, "giy")...); !bytes.Equal(gi, want) {
			t.Errorf("%v: g^i = %x, want %x", id, gi, want)
		}
		if want := append(one(t, kvs, "grx"), one(t, kvs, "gry")...); !bytes.Equal(gr, want) {
			t.Errorf("%v: g^r = %x, want %x", id, gr, want)
		}
		zi, errI := i.SharedSecret(gr)
		zr, errR := r.SharedSecret(gi)
		if errI != nil || errR != nil {
			t.Fatalf("%v: %v, %v", id, errI, errR)
		}
		if want := one(t, kvs, "girx"); !bytes.Equal(zi, want) || !bytes.Equal(zr, want) {
			t.Errorf("%v: g^ir = %x / %x, want %x", id, zi, zr, want)
		}
		if len(gi) != e.PublicLen() || len(zi) != e.SecretLen() {
			t.Errorf("%v: lengths %d, %d; want %d, %d", id, len(gi), len(zi), e.PublicLen(), e.SecretLen())
		}
	}
}

// TestRFC7748 uses RFC 7748 §5.2 and §6.1 for group 31.
func TestRFC7748(t *testing.T) {
	kvs := vectors(t, "rfc7748.txt")[Curve25519]
	x := mustGroup(t, Curve25519).(x25519)
	pair := func(scalar []byte) (Private, []byte) {
		k, err := ecdh.X25519().NewPrivateKey(scalar)
		if err != nil {
			t.Fatal(err)
		}
		p, pub, err := x.keyPair(k)
		if err != nil {
			t.Fatal(err)
		}
		return p, pub
	}
	// §5.2: scalar k applied to u.
	var k, u []byte
	n := 0
	for _, e := range kvs {
		switch e.key {
		case "k":
			k = e.val
		case "u":
			u = e.val
		case "out":
			p, _ := pair(k)
			got, err := p.SharedSecret(u)
			if err != nil || !bytes.Equal(got, e.val) {
				t.Errorf("§5.2 vector %d: got %x, %v; want %x", n, got, err, e.val)
			}
			n++
		}
	}
	if n != 2 {
		t.Fatalf("ran %d §5.2 vectors, want 2", n)
	}
	// §6.1: Alice and Bob.
	a, aPub := pair(one(t, kvs, "alicePriv"))
	b, bPub := pair(one(t, kvs, "bobPriv"))
	if !bytes.Equal(aPub, one(t, kvs, "alicePub")) || !bytes.Equal(bPub, one(t, kvs, "bobPub")) {
		t.Errorf("§6.1 public keys differ")
	}
	ka, errA := a.SharedSecret(bPub)
	kb, errB := b.SharedSecret(aPub)
	if errA != nil || errB != nil || !bytes.Equal(ka, one(t, kvs, "K")) || !bytes.Equal(kb, ka) {
		t.Errorf("§6.1 K = %x / %x (%v, %v), want %x", ka, kb, errA, errB, one(t, kvs, "K"))
	}
}

// TestAgreement runs a fresh exchange in every group.
func TestAgreement(t *testing.T) {
	for _, id := range IDs() {
		g := mustGroup(t, id)
		a, aPub, err := g.Generate(rand.Reader)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		b, bPub, err := g.Generate(rand.Reader)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		if len(aPub) != g.PublicLen() || len(bPub) != g.PublicLen() {
			t.Errorf("%v: public values %d, %d bytes, want %d", g, len(aPub), len(bPub), g.PublicLen())
		}
		if bytes.Equal(aPub, bPub) {
			t.Errorf("%v: two key pairs share a public value", g)
		}
		za, errA := a.SharedSecret(bPub)
		zb, errB := b.SharedSecret(aPub)
		if errA != nil || errB != nil {
			t.Fatalf("%v: %v, %v", g, errA, errB)
		}
		if !bytes.Equal(za, zb) || len(za) != g.SecretLen() {
			t.Errorf("%v: secrets differ or have wrong length (%d, want %d)", g, len(za), g.SecretLen())
		}
	}
}

// TestMODPLeadingZeros: public values and secrets keep the prime's length
// even when their top byte is zero (RFC 7296 §2.14).
func TestMODPLeadingZeros(t *testing.T) {
	m := mustGroup(t, MODP1024).(*modp)
	// Exponent 1 gives y = g = 2: 127 leading zero bytes.
	_, pub, err := m.keyPair(big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 128 || pub[127] != 2 || !bytes.Equal(pub[:127], make([]byte, 127)) {
		t.Errorf("public value for x=1: %x", pub)
	}
	k := &modpPrivate{m: m, x: big.NewInt(1)}
	peer := make([]byte, 128)
	peer[127] = 5
	z, err := k.SharedSecret(peer)
	if err != nil || !bytes.Equal(z, peer) {
		t.Errorf("5^1: got %x, %v", z, err)
	}
}

func TestRejectMODP(t *testing.T) {
	for _, id := range []ID{MODP1024, MODP1536, MODP2048, MODP3072, MODP4096, MODP6144, MODP8192, MODP1024S160, MODP2048S224, MODP2048S256} {
		m := mustGroup(t, id).(*modp)
		priv, pub, err := m.Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		num := func(n *big.Int) []byte { return n.FillBytes(make([]byte, m.size)) }
		bad := map[string][]byte{
			"0":         num(big.NewInt(0)),
			"1":         num(big.NewInt(1)),
			"p-1":       num(m.pMinus1),
			"p":         num(m.p),
			"all ones":  bytes.Repeat([]byte{0xff}, m.size),
			"short":     pub[1:],
			"long":      append([]byte{0}, pub...),
			"empty":     nil,
			"truncated": pub[:m.size/2],
		}
		if m.q != nil {
			// 2 lies outside the order-q subgroup of these groups.
			if new(big.Int).Exp(big.NewInt(2), m.q, m.p).Cmp(big.NewInt(1)) == 0 {
				t.Fatalf("%v: 2 is in the subgroup; pick another test value", m)
			}
			bad["not in subgroup"] = num(big.NewInt(2))
			// g·y for a valid y is still in the subgroup; p−y is not.
			bad["p-y"] = num(new(big.Int).Sub(m.p, new(big.Int).SetBytes(pub)))
		}
		for name, v := range bad {
			if _, err := priv.SharedSecret(v); !errors.Is(err, ErrPublic) {
				t.Errorf("%v: peer value %s: err = %v, want ErrPublic", m, name, err)
			}
		}
	}
}

func TestRejectECP(t *testing.T) {
	for _, id := range []ID{ECP256, ECP384, ECP521} {
		g := mustGroup(t, id)
		priv, pub, err := g.Generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		offCurve := bytes.Clone(pub)
		offCurve[len(offCurve)-1] ^= 1 // y+1 or y−1: not on the curve
		bad := map[string][]byte{
			"zero (infinity has no x||y form)": make([]byte, g.PublicLen()),
			"off curve":                        offCurve,
			"with 0x04 prefix":                 append([]byte{4}, pub...),
			"x only":                           pub[:g.PublicLen()/2],
			"coordinate >= p":                  bytes.Repeat([]byte{0xff}, g.PublicLen()),
		}
		for name, v := range bad {
			if _, err := priv.SharedSecret(v); !errors.Is(err, ErrPublic) {
				t.Errorf("%v: peer value %s: err = %v, want ErrPublic", g, name, err)
			}
		}
	}
}

func TestRejectX25519(t *testing.T) {
	g := mustGroup(t, Curve25519)
	priv, pub, err := g.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 32)
	one[0] = 1
	bad := map[string][]byte{
		"u=0 (all-zero secret, RFC 8031 §2.3)": make([]byte, 32),
		"u=1 (low order, all-zero secret)":     one,
		"31 bytes":                             pub[:31],
		"33 bytes":                             append(bytes.Clone(pub), 0),
	}
	for name, v := range bad {
		if _, err := priv.SharedSecret(v); !errors.Is(err, ErrPublic) {
			t.Errorf("peer value %s: err = %v, want ErrPublic", name, err)
		}
	}
}

func TestLookup(t *testing.T) {
	want := []ID{2, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 31}
	if got := IDs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
	for _, id := range want {
		if g := mustGroup(t, id); g.ID() != id || id.String() != g.String() {
			t.Errorf("group %d: ID %d, String %q/%q", id, g.ID(), g.String(), id.String())
		}
	}
	for _, id := range []ID{0, 1, 3, 25, 30, 32} {
		if _, err := Lookup(id); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Lookup(%d) = %v, want ErrUnsupported", id, err)
		}
	}
	// Unimplemented IANA groups are named too (a peer's offer is logged
	// by name); unknown IDs by number.
	if s := ID(30).String(); s != "ecp512bp" {
		t.Errorf("ID(30).String() = %q", s)
	}
	if s := ID(99).String(); s != "dh99" {
		t.Errorf("ID(99).String() = %q", s)
	}
	if k, ok := Keyword(99); ok || k != "" {
		t.Errorf("Keyword(99) = %q %v", k, ok)
	}
	if k, ok := Keyword(None); !ok || k != "none" {
		t.Errorf("Keyword(None) = %q %v", k, ok)
	}
	if s := MODP2048.String(); s != "modp2048" {
		t.Errorf("MODP2048.String() = %q", s)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("entropy source down") }

// TestGenerateRandError: MODP groups read their exponent from rand and
// report its failure. (crypto/ecdh ignores a caller's reader since Go
// 1.26 and always uses the system's generator.)
func TestGenerateRandError(t *testing.T) {
	for _, id := range IDs() {
		if _, ok := mustGroup(t, id).(*modp); !ok {
			continue
		}
		if _, _, err := mustGroup(t, id).Generate(failReader{}); err == nil {
			t.Errorf("%v: Generate with a failing reader succeeded", id)
		}
	}
}

// TestExponentSize: safe-prime exponents have exactly expBits bits, RFC
// 5114 exponents lie in [1, q−1].
func TestExponentSize(t *testing.T) {
	for _, id := range IDs() {
		m, ok := mustGroup(t, id).(*modp)
		if !ok {
			continue
		}
		for range 8 {
			x, err := m.exponent(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if m.q != nil {
				if x.Sign() <= 0 || x.Cmp(m.q) >= 0 {
					t.Errorf("%v: exponent outside [1, q-1]", m)
				}
			} else if x.BitLen() != m.expBits {
				t.Errorf("%v: exponent has %d bits, want %d", m, x.BitLen(), m.expBits)
			}
		}
	}
}
