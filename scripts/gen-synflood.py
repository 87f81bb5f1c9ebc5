#!/usr/bin/env python3
"""Writes a capture of a spoofed SYN flood with a few real connections inside it.

usage: gen-synflood.py N OUT.pcap [RATE]

N SYNs to 10.0.0.2:80 from N pseudo-random IPv4 sources (one SYN each, RATE per second, default
10000), and, spread through the flood, 3 complete HTTP-like TCP connections from 192.168.1.5
(source ports 50001-50003) to 10.0.0.2:80: handshake, 10 bytes each way, FIN both ways. Packets
are hand-built (a real flood tool would need a network to flood); the verdict for the three real
connections must stay SF / ShADdFf whatever the flood does to the flow table.
"""
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(src, dst, sport, dport, flags, seq, ack, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + tcp


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    server = bytes([10, 0, 0, 2])
    client = bytes([192, 168, 1, 5])
    S, A, PA, FA, SA = 0x02, 0x10, 0x18, 0x11, 0x12
    real = {}
    for k, at in enumerate((n // 4, n // 2, 3 * n // 4)):
        c, s = 1000, 5000
        sp = 50001 + k
        real[at] = [
            (client, server, sp, 80, S, c, 0, b""),
            (server, client, 80, sp, SA, s, c + 1, b""),
            (client, server, sp, 80, A, c + 1, s + 1, b""),
            (client, server, sp, 80, PA, c + 1, s + 1, b"GET /x\r\n\r\n"),
            (server, client, 80, sp, PA, s + 1, c + 11, b"HTTP/1.0 2"),
            (client, server, sp, 80, FA, c + 11, s + 11, b""),
            (server, client, 80, sp, FA, s + 11, c + 12, b""),
            (client, server, sp, 80, A, c + 12, s + 12, b""),
        ]
    x = 0x12345678
    t0 = 1_700_000_000_000_000
    step = max(1, 1_000_000 // rate)
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        t = t0

        def put(fr):
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(fr), len(fr)) + fr)

        for i in range(n):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF
            src = struct.pack("!I", (x ^ (x >> 7) ^ (i << 3)) & 0xDFFFFFFF | 0x01000000)
            put(frame(src, server, 1024 + (x >> 16) % 60000, 80, S, x, 0))
            t += step
            for p in real.get(i, []):
                put(frame(*p))
                t += 100
    print("%s: %d flood SYNs, 3 real connections" % (out, n))


if __name__ == "__main__":
    main()
