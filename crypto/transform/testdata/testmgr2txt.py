#!/usr/bin/env python3
"""Copy AEAD test vectors out of the Linux kernel's crypto/testmgr.h into the
plain hex format crypto/transform's tests read.

Usage: testmgr2txt.py testmgr.h TEMPLATE... > out.txt

Values are copied byte for byte, cut to their declared lengths (.klen,
.alen, .plen, .clen); the little-endian branch of each #ifdef
__LITTLE_ENDIAN is kept. Nothing is recomputed.
"""
import re
import sys


def tokens(text):
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text.startswith("//", i):
            i = text.index("\n", i)
        elif c == '"':
            i += 1
            out = bytearray()
            while text[i] != '"':
                if text[i] == "\\":
                    e = text[i + 1]
                    if e == "x":
                        m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
                        out.append(int(m.group(0), 16))
                        i += 2 + len(m.group(0))
                    elif e in "01234567":
                        m = re.match(r"[0-7]{1,3}", text[i + 1:])
                        out.append(int(m.group(0), 8))
                        i += 1 + len(m.group(0))
                    else:
                        out += {"n": b"\n", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'"}[e]
                        i += 2
                else:
                    out += text[i].encode()
                    i += 1
            i += 1
            yield ("str", bytes(out))
        elif c.isalnum() or c == "_":
            m = re.match(r"\w+", text[i:])
            yield ("word", m.group(0))
            i += len(m.group(0))
        else:
            yield ("punct", c)
            i += 1


def little_endian(text):
    out, keep = [], [True]
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#ifdef __LITTLE_ENDIAN"):
            keep.append(True)
        elif s.startswith("#else"):
            keep[-1] = not keep[-1]
        elif s.startswith("#endif"):
            keep.pop()
        elif all(keep):
            out.append(line)
    return "\n".join(out)


def template(src, name):
    m = re.search(r"static const struct aead_testvec " + name + r"\[\] = \{(.*?)\n\};", src, re.S)
    if not m:
        sys.exit("template %s not found" % name)
    toks = list(tokens(little_endian(m.group(1))))
    entries, depth, cur, field, val = [], 0, None, None, []

    def finish():
        if field is not None:
            cur[field] = val[:]

    for kind, v in toks:
        if kind == "punct" and v == "{":
            depth += 1
            cur, field, val = {}, None, []
        elif kind == "punct" and v == "}":
            finish()
            entries.append(cur)
            depth -= 1
            field = None
        elif kind == "punct" and v == "." and depth == 1 and (not val or val[-1] != "."):
            finish()
            field, val = None, ["."]
        elif field is None and val == ["."] and kind == "word":
            field, val = v, []
        elif kind == "punct" and v in "=":
            pass
        elif kind == "punct" and v == ",":
            continue
        else:
            val.append((kind, v))
    return entries


def value(parts):
    if all(k == "str" for k, _ in parts):
        return b"".join(v for _, v in parts)
    if len(parts) == 1 and parts[0] == ("word", "zeroed_string"):
        return bytes(48)
    return eval("".join(str(v) for _, v in parts))  # "8 + 20 + 16"


def main():
    src = open(sys.argv[1]).read()
    print("# Copied by testmgr2txt.py from the Linux kernel's crypto/testmgr.h")
    print("# (Linux 6.1.192, Debian package linux-source-6.1 6.1.192-3).")
    print("# One vector per block; byte fields are hex, cut to the declared")
    print("# .klen/.alen/.plen/.clen. authenc keys keep the kernel's blob:")
    print("# rtattr (len, type; little-endian) | be32 enckeylen | authkey | enckey.")
    for name in sys.argv[2:]:
        for i, e in enumerate(template(src, name)):
            f = {k: value(v) for k, v in e.items()}
            print()
            print("template = %s" % name)
            print("index = %d" % i)
            for b, n in (("key", "klen"), ("iv", None), ("assoc", "alen"), ("ptext", "plen"), ("ctext", "clen")):
                if b not in f:
                    continue
                data = f[b]
                if n:
                    data = data[: f[n]]
                    assert len(data) == f[n], (name, i, b)
                elif b == "iv":
                    data = data[: (8 if "rfc4106" in name else 16)]
                print("%s = %s" % (b, data.hex()))
            for k in sorted(f):
                if k not in ("key", "iv", "assoc", "ptext", "ctext", "klen", "alen", "plen", "clen"):
                    print("%s = %s" % (k, f[k]))


main()
