package message

import "fmt"

// NotifyType is a Notify Message Type (§3.10.1, IANA "IKEv2 Notify
// Message Types"). Types below 16384 are errors, the rest status.
type NotifyType uint16

// Error types (§3.10.1).
const (
	UNSUPPORTED_CRITICAL_PAYLOAD NotifyType = 1
	INVALID_IKE_SPI              NotifyType = 4
	INVALID_MAJOR_VERSION        NotifyType = 5
	INVALID_SYNTAX               NotifyType = 7
	INVALID_MESSAGE_ID           NotifyType = 9
	INVALID_SPI                  NotifyType = 11
	NO_PROPOSAL_CHOSEN           NotifyType = 14
	INVALID_KE_PAYLOAD           NotifyType = 17
	AUTHENTICATION_FAILED        NotifyType = 24
	SINGLE_PAIR_REQUIRED         NotifyType = 34
	NO_ADDITIONAL_SAS            NotifyType = 35
	INTERNAL_ADDRESS_FAILURE     NotifyType = 36
	FAILED_CP_REQUIRED           NotifyType = 37
	TS_UNACCEPTABLE              NotifyType = 38
	INVALID_SELECTORS            NotifyType = 39
	TEMPORARY_FAILURE            NotifyType = 43 // RFC 7296 §2.25
	CHILD_SA_NOT_FOUND           NotifyType = 44 // RFC 7296 §2.25
)

// Status types (§3.10.1 and the RFCs named).
const (
	INITIAL_CONTACT                 NotifyType = 16384
	SET_WINDOW_SIZE                 NotifyType = 16385
	ADDITIONAL_TS_POSSIBLE          NotifyType = 16386
	IPCOMP_SUPPORTED                NotifyType = 16387
	NAT_DETECTION_SOURCE_IP         NotifyType = 16388
	NAT_DETECTION_DESTINATION_IP    NotifyType = 16389
	COOKIE                          NotifyType = 16390
	USE_TRANSPORT_MODE              NotifyType = 16391
	HTTP_CERT_LOOKUP_SUPPORTED      NotifyType = 16392
	REKEY_SA                        NotifyType = 16393
	ESP_TFC_PADDING_NOT_SUPPORTED   NotifyType = 16394
	NON_FIRST_FRAGMENTS_ALSO        NotifyType = 16395
	MOBIKE_SUPPORTED                NotifyType = 16396 // RFC 4555
	ADDITIONAL_IP4_ADDRESS          NotifyType = 16397 // RFC 4555
	ADDITIONAL_IP6_ADDRESS          NotifyType = 16398 // RFC 4555
	NO_ADDITIONAL_ADDRESSES         NotifyType = 16399 // RFC 4555
	MULTIPLE_AUTH_SUPPORTED         NotifyType = 16404 // RFC 4739
	REDIRECT_SUPPORTED              NotifyType = 16406 // RFC 5685
	EAP_ONLY_AUTHENTICATION         NotifyType = 16417 // RFC 5998
	CHILDLESS_IKEV2_SUPPORTED       NotifyType = 16418 // RFC 6023
	IKEV2_MESSAGE_ID_SYNC_SUPPORTED NotifyType = 16420 // RFC 6311
	IKEV2_FRAGMENTATION_SUPPORTED   NotifyType = 16430 // RFC 7383
	SIGNATURE_HASH_ALGORITHMS       NotifyType = 16431 // RFC 7427
)

var notifyNames = map[NotifyType]string{
	UNSUPPORTED_CRITICAL_PAYLOAD:    "UNSUPPORTED_CRITICAL_PAYLOAD",
	INVALID_IKE_SPI:                 "INVALID_IKE_SPI",
	INVALID_MAJOR_VERSION:           "INVALID_MAJOR_VERSION",
	INVALID_SYNTAX:                  "INVALID_SYNTAX",
	INVALID_MESSAGE_ID:              "INVALID_MESSAGE_ID",
	INVALID_SPI:                     "INVALID_SPI",
	NO_PROPOSAL_CHOSEN:              "NO_PROPOSAL_CHOSEN",
	INVALID_KE_PAYLOAD:              "INVALID_KE_PAYLOAD",
	AUTHENTICATION_FAILED:           "AUTHENTICATION_FAILED",
	SINGLE_PAIR_REQUIRED:            "SINGLE_PAIR_REQUIRED",
	NO_ADDITIONAL_SAS:               "NO_ADDITIONAL_SAS",
	INTERNAL_ADDRESS_FAILURE:        "INTERNAL_ADDRESS_FAILURE",
	FAILED_CP_REQUIRED:              "FAILED_CP_REQUIRED",
	TS_UNACCEPTABLE:                 "TS_UNACCEPTABLE",
	INVALID_SELECTORS:               "INVALID_SELECTORS",
	TEMPORARY_FAILURE:               "TEMPORARY_FAILURE",
	CHILD_SA_NOT_FOUND:              "CHILD_SA_NOT_FOUND",
	INITIAL_CONTACT:                 "INITIAL_CONTACT",
	SET_WINDOW_SIZE:                 "SET_WINDOW_SIZE",
	ADDITIONAL_TS_POSSIBLE:          "ADDITIONAL_TS_POSSIBLE",
	IPCOMP_SUPPORTED:                "IPCOMP_SUPPORTED",
	NAT_DETECTION_SOURCE_IP:         "NAT_DETECTION_SOURCE_IP",
	NAT_DETECTION_DESTINATION_IP:    "NAT_DETECTION_DESTINATION_IP",
	COOKIE:                          "COOKIE",
	USE_TRANSPORT_MODE:              "USE_TRANSPORT_MODE",
	HTTP_CERT_LOOKUP_SUPPORTED:      "HTTP_CERT_LOOKUP_SUPPORTED",
	REKEY_SA:                        "REKEY_SA",
	ESP_TFC_PADDING_NOT_SUPPORTED:   "ESP_TFC_PADDING_NOT_SUPPORTED",
	NON_FIRST_FRAGMENTS_ALSO:        "NON_FIRST_FRAGMENTS_ALSO",
	MOBIKE_SUPPORTED:                "MOBIKE_SUPPORTED",
	ADDITIONAL_IP4_ADDRESS:          "ADDITIONAL_IP4_ADDRESS",
	ADDITIONAL_IP6_ADDRESS:          "ADDITIONAL_IP6_ADDRESS",
	NO_ADDITIONAL_ADDRESSES:         "NO_ADDITIONAL_ADDRESSES",
	MULTIPLE_AUTH_SUPPORTED:         "MULTIPLE_AUTH_SUPPORTED",
	REDIRECT_SUPPORTED:              "REDIRECT_SUPPORTED",
	EAP_ONLY_AUTHENTICATION:         "EAP_ONLY_AUTHENTICATION",
	CHILDLESS_IKEV2_SUPPORTED:       "CHILDLESS_IKEV2_SUPPORTED",
	IKEV2_MESSAGE_ID_SYNC_SUPPORTED: "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
	IKEV2_FRAGMENTATION_SUPPORTED:   "IKEV2_FRAGMENTATION_SUPPORTED",
	SIGNATURE_HASH_ALGORITHMS:       "SIGNATURE_HASH_ALGORITHMS",
}

func (t NotifyType) String() string {
	if s, ok := notifyNames[t]; ok {
		return s
	}
	if t.IsError() {
		return fmt.Sprintf("ERROR_%d", uint16(t))
	}
	return fmt.Sprintf("STATUS_%d", uint16(t))
}

// IsError reports whether t is an error type (< 16384, §3.10.1). An
// unrecognised error type in a response means the request failed; an
// unrecognised status type is ignored.
func (t NotifyType) IsError() bool { return t < 16384 }
