package message

// Message is a decoded ISAKMP message. Raw is the payload bytes after
// decryption (up to the end of the payload chain).
type Message struct {
	Header   Header
	Payloads []Payload
	Raw      []byte
}

// Encode writes the header and payloads in clear (Length set here).
func Encode(h Header, ps []Payload) []byte {
	body := EncodePayloads(ps)
	if len(ps) > 0 {
		h.Next = ps[0].Type
	}
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	b = append(b, body...)
	h.Length = uint32(len(b))
	h.put(b)
	return b
}

// EncodeRaw writes header h (Length set here, Next and Flags as given)
// followed by body as is: for tests that send what Encode would not.
func EncodeRaw(h Header, body []byte) []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(body))
	h.Length = uint32(HeaderLen + len(body))
	h.put(b)
	return append(b, body...)
}

// Decode parses an unencrypted message.
func Decode(pkt []byte) (Message, error) {
	h, err := DecodeHeader(pkt)
	if err != nil {
		return Message{}, err
	}
	if h.Flags&FlagEncryption != 0 {
		return Message{}, malformed("encrypted message where a clear one was expected")
	}
	body := pkt[HeaderLen:h.Length]
	ps, end, err := ParsePayloads(h.Next, body)
	if err != nil {
		return Message{}, err
	}
	return Message{Header: h, Payloads: ps, Raw: body[:end]}, nil
}
