#!/usr/bin/env python3
"""Writes a capture of N concurrent TCP connections, for measuring memory per flow.

usage: gen-flows.py N OUT.pcap MODE

MODE `syn`: one SYN per connection (a half-open flood: each stays until its attempt timer).
MODE `established`: SYN, SYN-ACK, ACK, then one data segment each way; none closes, so all N
stay open (S1) until the end of input. Clients are 1000 addresses in 100.64.0.0/10 with
distinct source ports; servers 10.0.0.2:80 and :443. Packets are hand-built (no network can
hold a million real connections here) with zero checksums (synwatch's default ignores them).
All N connections start within 4 s (syn: before the first attempt timer, 5 s, ends any) or
60 s (established: well inside the 300 s inactivity timeout) of packet time, so all are open
at once.
"""
import struct
import sys

S, A, PA, SA = 0x02, 0x10, 0x18, 0x12


def main():
    n, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert mode in ("syn", "established")
    eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
    server = bytes([10, 0, 0, 2])
    t = 1_700_000_000_000_000
    span = 4_000_000 if mode == "syn" else 60_000_000
    step = max(1, span // max(n, 1))
    pkts = 0
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(src, dst, sp, dp, flags, seq, ack, payload=b""):
            nonlocal pkts
            tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
            fr = eth + ip + tcp
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(fr), len(fr)) + fr)
            pkts += 1

        for i in range(n):
            c = struct.pack("!I", (100 << 24) | (64 << 16) | (i % 1000))
            sp, dp = 1024 + i // 1000, 80 if i % 2 else 443
            put(c, server, sp, dp, S, 1000, 0)
            if mode == "established":
                put(server, c, dp, sp, SA, 5000, 1001)
                put(c, server, sp, dp, A, 1001, 5001)
                put(c, server, sp, dp, PA, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n")
                put(server, c, dp, sp, PA, 5001, 1019, b"HTTP/1.0 200 OK\r\n\r\n")
            t += step
    print("%s: %d connections (%s), %d packets" % (out, n, mode, pkts))


if __name__ == "__main__":
    main()
