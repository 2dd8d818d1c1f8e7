package message

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgw-project/cgw/internal/prereq"
)

// writePcap writes IKE messages as IPv4/UDP-500 datagrams
// 192.0.2.10 -> 203.0.113.1 in a raw-IP (linktype 101) pcap file.
func writePcap(t *testing.T, path string, msgs [][]byte) {
	var b bytes.Buffer
	// Global header: magic, 2.4, zone, sigfigs, snaplen, linktype raw IP.
	for _, v := range []any{uint32(0xa1b2c3d4), uint16(2), uint16(4), int32(0), uint32(0), uint32(65535), uint32(101)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	for i, m := range msgs {
		n := 20 + 8 + len(m)
		ip := []byte{0x45, 0, byte(n >> 8), byte(n), 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 10, 203, 0, 113, 1}
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(ip[j])<<8 | uint32(ip[j+1])
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := []byte{0x01, 0xf4, 0x01, 0xf4, byte((8 + len(m)) >> 8), byte(8 + len(m)), 0, 0}
		for _, v := range []uint32{uint32(i + 1), 0, uint32(n), uint32(n)} {
			binary.Write(&b, binary.LittleEndian, v)
		}
		b.Write(ip)
		b.Write(udp)
		b.Write(m)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTsharkDecrypts has Wireshark, an independent implementation, parse
// and decrypt our Encrypted payloads with the same SK_* keys, verify their
// ICVs, and read the inner payloads back: a check of the SK framing (IV,
// padding, AAD, ICV coverage) that a self-consistent round trip cannot
// give.
func TestTsharkDecrypts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs tshark; run without -short")
	}
	if err := prereq.Command("tshark"); err != nil {
		t.Fatal(err)
	}
	tshark := "tshark"
	hexKey := func(n int, seed byte) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i)
		}
		return hex.EncodeToString(b)
	}
	for _, c := range []struct {
		kw      string // proposal keywords
		wsEncr  string // Wireshark's names
		wsInteg string
	}{
		{"aes128 sha256 prfsha256 modp2048", "AES-CBC-128 [RFC3602]", "HMAC_SHA2_256_128 [RFC4868]"},
		{"aes256 sha1 prfsha256 modp2048", "AES-CBC-256 [RFC3602]", "HMAC_SHA1_96 [RFC2404]"},
		{"aes256 sha512 prfsha256 modp2048", "AES-CBC-256 [RFC3602]", "HMAC_SHA2_512_256 [RFC4868]"},
		{"aes128gcm16 prfsha256 ecp256", "AES-GCM-128 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"},
		{"aes256gcm16 prfsha256 ecp256", "AES-GCM-256 with 16 octet ICV [RFC5282]", "NONE [RFC4306]"},
	} {
		t.Run(strings.ReplaceAll(c.kw, " ", "-"), func(t *testing.T) {
			p := prop(ProtoIKE, c.kw)
			le, la, err := SKLengths(p)
			if err != nil {
				t.Fatal(err)
			}
			skei, skai, sker, skar := hexKey(le, 0x10), hexKey(la, 0x20), hexKey(le, 0x30), hexKey(la, 0x40)
			dec := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
			keys, err := NewKeys(p, dec(skei), dec(skai), dec(sker), dec(skar))
			if err != nil {
				t.Fatal(err)
			}
			req := authMessage(FlagInitiator)
			resp := authMessage(FlagResponse)
			resp.Payloads = []Payload{&Notify{NotifyType: AUTHENTICATION_FAILED}}
			var msgs [][]byte
			for _, m := range []*Message{req, resp} {
				raw, err := EncodeEncrypted(m, keys)
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, raw)
			}
			pcap := filepath.Join(t.TempDir(), "sk.pcap")
			writePcap(t, pcap, msgs)
			spii, spir := spi(1), spi(2)
			uat := fmt.Sprintf(`uat:ikev2_decryption_table:%x,%x,%s,%s,"%s",%s,%s,"%s"`,
				spii[:], spir[:], skei, sker, c.wsEncr, skai, skar, c.wsInteg)
			out, err := exec.Command(tshark, "-n", "-r", pcap, "-o", uat, "-V").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			text := string(out)
			if os.Getenv("CGW_TSHARK_DUMP") != "" {
				t.Log(text)
			}
			for _, want := range []string{
				"Identification - Initiator", "ID_IPV4_ADDR", "192.0.2.10", // IDi
				"Authentication", "Shared Key Message Integrity Code",
				"Traffic Selector - Initiator", "Traffic Selector - Responder",
				"INITIAL_CONTACT", "AUTHENTICATION_FAILED",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("tshark did not decrypt to %q; output:\n%s", want, text)
					return
				}
			}
			// Wireshark checks the HMAC, or the GCM tag (which covers the
			// AAD), itself.
			if strings.Count(text, "Integrity Checksum Data") != 2 || strings.Count(text, "[correct]") != 2 {
				t.Errorf("tshark did not find both ICVs correct:\n%s", text)
			}
			if strings.Contains(text, "[incorrect") || strings.Contains(text, "Malformed") {
				t.Errorf("tshark reports a problem:\n%s", text)
			}
			// The check can fail: with one key byte changed, tshark must
			// not find the plaintext.
			wrong := fmt.Sprintf(`uat:ikev2_decryption_table:%x,%x,%s,%s,"%s",%s,%s,"%s"`,
				spii[:], spir[:], "ff"+skei[2:], sker, c.wsEncr, skai, skar, c.wsInteg)
			out, err = exec.Command(tshark, "-n", "-r", pcap, "-o", wrong, "-V").CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			if strings.Contains(string(out), "ID_IPV4_ADDR: 192.0.2.10") {
				t.Errorf("tshark decrypted the request with a wrong SK_ei:\n%s", out)
			}
		})
	}
}
