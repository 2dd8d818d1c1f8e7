#!/usr/bin/python3
"""Seal inner packets into ESP tunnel-mode packets with scapy's own ESP
implementation (scapy.layers.ipsec.SecurityAssociation), as an independent
sender for dataplane/esp's Decap tests.

Input (stdin, JSON):
  {"cases": [{"crypt_algo": "AES-GCM"|"AES-CBC", "crypt_key": hex,
              "auth_algo": null|"HMAC-SHA1-96"|"SHA2-256-128"|...,
              "auth_key": hex, "spi": int, "esn": bool, "esn_hi": int,
              "udp": bool, "src": "192.0.2.10", "dst": "203.0.113.1",
              "packets": [{"seq": int (low 32 bits), "inner": hex}]}]}
Output (stdout, JSON): {"cases": [[outer packet hex, ...], ...]}, each
outer packet starting at its IPv4 header.

Needs the Debian package python3-scapy; run with /usr/bin/python3.
"""
import hashlib
import hmac
import json
import struct
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.compat import raw


# scapy name -> (hashlib constructor, truncated ICV bytes), RFC 2404, RFC 4868.
HMACS = {
    "HMAC-SHA1-96": (hashlib.sha1, 12),
    "SHA2-256-128": (hashlib.sha256, 16),
    "SHA2-384-192": (hashlib.sha384, 24),
    "SHA2-512-256": (hashlib.sha512, 32),
}


def esn_icv(case, pkt, esp_off):
    """scapy 2.5 leaves the ESN high bits out of its HMAC (_encrypt_esp
    calls auth_algo.sign without them), so recompute the ICV with them
    appended to the authenticated data as RFC 4303 §2.2.1 and Appendix A
    (ICV computation with ESN) require."""
    h, n = HMACS[case["auth_algo"]]
    end = len(pkt) - n
    data = bytes(pkt[esp_off:end]) + struct.pack("!L", case["esn_hi"])
    pkt[end:] = hmac.new(bytes.fromhex(case["auth_key"]), data, h).digest()[:n]


def seal(case):
    kw = dict(
        spi=case["spi"],
        crypt_algo=case["crypt_algo"],
        crypt_key=bytes.fromhex(case["crypt_key"]),
        tunnel_header=IP(src=case["src"], dst=case["dst"], ttl=64),
        esn_en=case["esn"],
        esn=case["esn_hi"],
    )
    if case.get("auth_algo"):
        kw["auth_algo"] = case["auth_algo"]
        kw["auth_key"] = bytes.fromhex(case["auth_key"])
    if case["udp"]:
        kw["nat_t_header"] = UDP(sport=4500, dport=4500)
    sa = SecurityAssociation(ESP, **kw)
    out = []
    for p in case["packets"]:
        b = bytes.fromhex(p["inner"])
        inner = IPv6(b) if b[0] >> 4 == 6 else IP(b)
        pkt = bytearray(raw(sa.encrypt(inner, seq_num=p["seq"])))
        ihl = (pkt[0] & 0x0F) * 4
        if case["esn"] and case.get("auth_algo"):
            esn_icv(case, pkt, ihl + (8 if case["udp"] else 0))
        if case["udp"]:
            # scapy 2.5 computes the NAT-T UDP length before it appends the
            # ESP payload, leaving it at 8: set it right (RFC 768). The
            # checksum is 0, so nothing else changes.
            struct.pack_into("!H", pkt, ihl + 4, len(pkt) - ihl)
        out.append(pkt.hex())
    return out


def main():
    req = json.load(sys.stdin)
    json.dump({"cases": [seal(c) for c in req["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
