#!/usr/bin/python3
"""Verify and decrypt ESP tunnel-mode packets made by dataplane/esp's Encap
with scapy's own ESP implementation, as an independent receiver.

Input (stdin, JSON):
  {"cases": [{"crypt_algo", "crypt_key", "auth_algo", "auth_key", "spi",
              "esn", "esn_hi": high 32 bits of the sequence numbers,
              "packets": [outer packet hex, from the IPv4 header]}]}
Output (stdout, JSON): {"cases": [[{"ok": bool, "error": str,
  "spi": int, "seq": int, "data": hex, "padlen": int, "nh": int}, ...]]}

scapy 2.5 leaves the ESN high bits out of HMAC verification, so with ESN
and an HMAC the ICV is checked here with Python's hmac (RFC 4303 §2.2.1)
and scapy only decrypts. GCM's tag (with the ESN AAD, RFC 4106 §5) is
checked by scapy's decrypt itself.

Needs the Debian package python3-scapy; run with /usr/bin/python3.
"""
import hashlib
import hmac
import json
import struct
import sys

from scapy.layers.inet import IP
from scapy.layers.ipsec import ESP, SecurityAssociation

HMACS = {
    "HMAC-SHA1-96": (hashlib.sha1, 12),
    "SHA2-256-128": (hashlib.sha256, 16),
    "SHA2-384-192": (hashlib.sha384, 24),
    "SHA2-512-256": (hashlib.sha512, 32),
}


def open_case(case):
    kw = dict(spi=case["spi"], crypt_algo=case["crypt_algo"],
              crypt_key=bytes.fromhex(case["crypt_key"]),
              esn_en=case["esn"], esn=case["esn_hi"])
    if case.get("auth_algo"):
        kw["auth_algo"] = case["auth_algo"]
        kw["auth_key"] = bytes.fromhex(case["auth_key"])
    sa = SecurityAssociation(ESP, **kw)
    res = []
    for h in case["packets"]:
        pkt = IP(bytes.fromhex(h))
        r = {"ok": False, "error": "", "spi": 0, "seq": 0, "data": "", "padlen": -1, "nh": -1}
        try:
            esp = pkt[ESP]
            r["spi"], r["seq"] = esp.spi, esp.seq
            if case.get("auth_algo"):
                if case["esn"]:
                    hf, n = HMACS[case["auth_algo"]]
                    raw_esp = bytes(esp)
                    want = hmac.new(bytes.fromhex(case["auth_key"]),
                                    raw_esp[:-n] + struct.pack("!L", case["esn_hi"]), hf).digest()[:n]
                    if not hmac.compare_digest(want, raw_esp[-n:]):
                        raise ValueError("ICV mismatch (python hmac, ESN)")
                else:
                    sa.auth_algo.verify(esp, sa.auth_key)
            icv = sa.crypt_algo.icv_size or sa.auth_algo.icv_size
            plain = sa.crypt_algo.decrypt(sa, esp, sa.crypt_key, icv,
                                          esn_en=case["esn"], esn=case["esn_hi"])
            # plain.padding is unusable in scapy 2.5 (CryptAlgo.decrypt
            # slices it from the already-truncated data); the pad length
            # is right, and tshark's check compares the pad bytes.
            r.update(ok=True, data=bytes(plain.data).hex(), padlen=plain.padlen, nh=plain.nh)
        except Exception as e:  # a failed check is a result, not a crash
            r["error"] = "%s: %s" % (type(e).__name__, e)
        res.append(r)
    return res


def main():
    req = json.load(sys.stdin)
    json.dump({"cases": [open_case(c) for c in req["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
