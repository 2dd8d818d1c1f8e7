package esp

// Reason says what became of one packet. Every drop has its own reason so
// the worker can count drops per reason and per SA (VPP-style node
// counters); OK is the only success.
type Reason uint8

const (
	OK Reason = iota

	// Decapsulation: outer headers (before any crypto).
	Short         // packet shorter than its headers claim or than ESP header + IV + ICV + one block
	BadOuter      // outer IPv4 header invalid: version, IHL, total length or header checksum
	OuterFragment // outer IPv4 fragment: reassembly is not done here (RFC 4303 §3.4.1)
	NotESP        // outer protocol is neither ESP (50) nor UDP
	BadUDP        // UDP length field inconsistent with the IP length
	NATKeepalive  // RFC 3948 §2.3 one-byte 0xFF keepalive: not an error, just consumed
	IKE           // RFC 3948 §2.2 non-ESP marker: an IKE message on port 4500, for the control plane
	WrongSPI      // SPI is not this SA's (the caller looked up the wrong SA)
	BadLength     // ciphertext not a whole number of cipher blocks

	// Decapsulation: anti-replay and crypto.
	Replayed // sequence number already received (RFC 4303 §3.4.3)
	TooOld   // sequence number left of the replay window
	BadSeq   // sequence number 0 or otherwise impossible (RFC 4303 §2.2)
	BadICV   // integrity check failed (RFC 4303 §3.4.4)

	// Decapsulation: after decryption.
	BadPadding    // pad length too long or pad bytes not 1, 2, 3, … (RFC 4303 §2.4)
	BadNextHeader // next header neither IPv4 (4) nor IPv6 (41) in tunnel mode
	Dummy         // next header 59: a traffic-flow-confidentiality dummy packet (RFC 4303 §2.6)
	BadInner      // inner IP header inconsistent with the decrypted payload

	// Encapsulation.
	NoRoom       // buffer lacks Headroom() in front or Tailroom() behind the inner packet
	TooBig       // outer packet would exceed 65535 bytes
	NotIP        // inner packet is neither a plausible IPv4 nor IPv6 packet
	SeqExhausted // the SA used up its sequence numbers and must be rekeyed (RFC 4303 §3.3.3)
	SAExpired    // the SA reached a hard lifetime limit (RFC 4301 §4.4.2.1; checked by the caller, which holds the limits) and must be rekeyed

	NumReasons // number of reasons, for sizing counter arrays
)

var reasonNames = [NumReasons]string{
	OK:            "ok",
	Short:         "short",
	BadOuter:      "bad_outer_header",
	OuterFragment: "outer_fragment",
	NotESP:        "not_esp",
	BadUDP:        "bad_udp_header",
	NATKeepalive:  "nat_keepalive",
	IKE:           "ike_on_4500",
	WrongSPI:      "wrong_spi",
	BadLength:     "bad_length",
	Replayed:      "replayed",
	TooOld:        "too_old",
	BadSeq:        "invalid_seq",
	BadICV:        "bad_icv",
	BadPadding:    "bad_padding",
	BadNextHeader: "bad_next_header",
	Dummy:         "dummy_packet",
	BadInner:      "bad_inner_header",
	NoRoom:        "no_headroom_or_tailroom",
	TooBig:        "too_big",
	NotIP:         "inner_not_ip",
	SeqExhausted:  "seq_exhausted",
	SAExpired:     "sa_expired",
}

// String is a short snake_case name suitable as a metrics label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}
