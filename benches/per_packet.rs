//! Per-packet cost of decoding and of flow tracking, on packets of the bundled fixtures.
//!
//! `cargo bench --bench per_packet` prints time per iteration over all packets; divide by the
//! packet count printed at the start for ns/packet.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use synwatch::decode::{DecodeOptions, decode};
use synwatch::flow::{FlowTable, TableConfig};
use synwatch::time::Micros;

struct Pkt {
    linktype: i32,
    ts: Micros,
    wire_len: u32,
    data: Vec<u8>,
}

fn load() -> Vec<Pkt> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    for f in [
        "veth-mixed.pcap",
        "http-curl.pcap",
        "nmap-syn.pcap",
        "udp.pcap",
        "ipv6-http.pcap",
        "cooked2-any.pcap",
    ] {
        let Ok(mut cap) = pcap::Capture::from_file(dir.join(f)) else {
            continue;
        };
        let lt = cap.get_datalink().0;
        while let Ok(p) = cap.next_packet() {
            out.push(Pkt {
                linktype: lt,
                ts: Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec),
                wire_len: p.header.len,
                data: p.data.to_vec(),
            });
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let pkts = load();
    eprintln!("{} packets per iteration", pkts.len());
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            for p in &pkts {
                let _ = black_box(decode(
                    p.linktype,
                    &p.data,
                    p.ts,
                    p.wire_len,
                    DecodeOptions::default(),
                ));
            }
        })
    });
    g.bench_function("decode_and_track", |b| {
        b.iter(|| {
            let mut table = FlowTable::new(TableConfig::default());
            let mut n = 0u64;
            for p in &pkts {
                if let Ok(d) = decode(
                    p.linktype,
                    &p.data,
                    p.ts,
                    p.wire_len,
                    DecodeOptions::default(),
                ) {
                    table.packet(&d, None, None, &mut |r| n += r.orig_pkts);
                }
            }
            table.flush(synwatch::flow::EndReason::EndOfInput, &mut |r| {
                n += r.orig_pkts
            });
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
