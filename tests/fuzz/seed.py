#!/usr/bin/env python3
"""Seed corpora for the fuzz targets from the recorded fixtures (pcap files only).

usage: seed.py FIXTURES_DIR CORPUS_DIR
Writes CORPUS_DIR/{decode_packet,flow_sequence,offline_file}/<name>.
"""
import os
import struct
import sys

LINKTYPES = [1, 0, 9, 10, 12, 14, 50, 51, 101, 105, 108, 113, 127, 228, 229, 276]


def packets(path):
    data = open(path, "rb").read()
    if len(data) < 24:
        return None, []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None, []
    lt = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from(e + "IIII", data, off)
        off += 16
        out.append((sec * 1_000_000 + usec, data[off:off + incl]))
        off += incl
    return lt, out


def main():
    fx, corpus = sys.argv[1], sys.argv[2]
    for t in ("decode_packet", "flow_sequence", "offline_file"):
        os.makedirs(os.path.join(corpus, t), exist_ok=True)
    for name in sorted(os.listdir(fx)):
        path = os.path.join(fx, name)
        if not name.endswith((".pcap", ".pcapng")) or os.path.getsize(path) > 300_000:
            continue
        open(os.path.join(corpus, "offline_file", name), "wb").write(open(path, "rb").read())
        lt, pkts = packets(path)
        if lt not in LINKTYPES or not pkts:
            continue
        sel = LINKTYPES.index(lt)
        for i, (_, frame) in enumerate(pkts[:40]):
            open(os.path.join(corpus, "decode_packet", "%s-%d" % (name, i)), "wb").write(bytes([sel]) + frame)
        seq, prev = bytearray([sel]), pkts[0][0]
        for ts, frame in pkts[:200]:
            step = max(-32768, min(32767, (ts - prev) // 1000))
            prev = ts
            seq += struct.pack("<hH", step, len(frame)) + frame
        open(os.path.join(corpus, "flow_sequence", name), "wb").write(bytes(seq))


if __name__ == "__main__":
    main()
