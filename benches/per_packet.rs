//! Per-packet cost of each stage, on packets of the bundled fixtures (criterion prints the
//! throughput in packets per second):
//!
//! - `decode`: link layers, IP, TCP/UDP/ICMP (`decode::decode`);
//! - `flow_table`: the flow table on packets decoded beforehand (lookup, creation, timers,
//!   the TCP state machine, records at the end);
//! - `state_machine`: one connection's TCP state machine alone, on an HTTP exchange's segments
//!   (handshake, request, response, close) replayed into a fresh `Connection`;
//! - `decode_and_track`: the two together;
//! - `cold/pack_and_unpack`: one quiet connection packed into bytes and back (past
//!   `--compact-after` whole connections);
//! - `analyse`: everything a worker does per packet (`analyse::Analyzer`: decode, fragments,
//!   tunnels, flow table, and the judging of records by the summary and the detectors).
//!
//! `cargo bench --bench per_packet`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use synwatch::analyse::Analyzer;
use synwatch::classify::ports::PortDb;
use synwatch::decode::{DecodeOptions, Decoded, decode};
use synwatch::detect::Detector;
use synwatch::flow::key::Directed;
use synwatch::flow::pack::Writer;
use synwatch::flow::{Connection, EndReason, FlowTable, TableConfig, Timeouts};
use synwatch::rules::Rules;
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
    // Building a table (its timer queue's buckets) is not per-packet work: setup.
    g.bench_function("decode_and_track", |b| {
        b.iter_batched(
            || FlowTable::new(TableConfig::default()),
            |mut table| {
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
                table.flush(EndReason::EndOfInput, &mut |r| n += r.orig_pkts);
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    let decoded: Vec<Decoded> = pkts
        .iter()
        .filter_map(|p| {
            decode(
                p.linktype,
                &p.data,
                p.ts,
                p.wire_len,
                DecodeOptions::default(),
            )
            .ok()
        })
        .collect();
    g.bench_function("flow_table", |b| {
        b.iter_batched(
            || FlowTable::new(TableConfig::default()),
            |mut table| {
                let mut n = 0u64;
                for d in &decoded {
                    table.packet(d, None, None, &mut |r| n += r.orig_pkts);
                }
                table.flush(EndReason::EndOfInput, &mut |r| n += r.orig_pkts);
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    let db = Arc::new(PortDb::builtin().expect("built-in port table"));
    // Building an analyzer (histograms, detector tables) is not per-packet work: setup.
    g.bench_function("analyse", |b| {
        b.iter_batched(
            || {
                Analyzer::new(
                    TableConfig::default(),
                    DecodeOptions::default(),
                    Detector::new(db.clone(), Rules::default()),
                )
            },
            |mut an| {
                for p in &pkts {
                    an.packet(p.linktype, &p.data, p.ts, p.wire_len);
                }
                an.finish(EndReason::EndOfInput);
                black_box(an.pending.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // One TCP connection (the first of http-curl.pcap: handshake, GET, response, close).
    let conv: Vec<Decoded> = {
        let mut cap = pcap::Capture::from_file(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/http-curl.pcap"),
        )
        .expect("fixture");
        let lt = cap.get_datalink().0;
        let mut v = Vec::new();
        while let Ok(p) = cap.next_packet() {
            let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
            if let Ok(d) = decode(lt, p.data, ts, p.header.len, DecodeOptions::default()) {
                v.push(d);
            }
        }
        let first = Directed::of(&v[0]).expect("ports").key;
        v.retain(|d| Directed::of(d).is_some_and(|x| x.key == first));
        v
    };
    eprintln!("{} segments in the state-machine conversation", conv.len());
    let mut g = c.benchmark_group("state_machine");
    g.throughput(Throughput::Elements(conv.len() as u64));
    g.bench_function("tcp_conversation", |b| {
        let dir = Directed::of(&conv[0]).expect("ports");
        b.iter(|| {
            let mut c = Connection::new(
                1,
                dir.key,
                dir.src,
                dir.dst,
                &conv[0],
                Timeouts::default().interned(),
                conv[0].ts,
            );
            for d in &conv {
                let x = Directed::of(d).expect("ports");
                let side = c.side_of(&x.src);
                c.set_clock(d.ts, d);
                c.packet(side, d);
            }
            black_box(c.conn_state())
        })
    });
    g.finish();

    // A connection packed when it goes quiet and unpacked when a packet wakes it (the flow
    // table does this past `--compact-after` whole connections): the same conversation's
    // connection after its handshake and request, before the close.
    let mut g = c.benchmark_group("cold");
    g.throughput(Throughput::Elements(1));
    let dir = Directed::of(&conv[0]).expect("ports");
    let cfg = Timeouts::default().interned();
    let mut quiet = Connection::new(1, dir.key, dir.src, dir.dst, &conv[0], cfg, conv[0].ts);
    for d in conv.iter().take(5) {
        let x = Directed::of(d).expect("ports");
        let side = quiet.side_of(&x.src);
        quiet.set_clock(d.ts, d);
        quiet.packet(side, d);
    }
    let epoch = conv[0].ts;
    let mut w = Writer::default();
    quiet.pack(&mut w, epoch);
    eprintln!(
        "a quiet connection packs into {} bytes",
        w.finish().map_or(0, <[u8]>::len)
    );
    g.bench_function("pack_and_unpack", |b| {
        b.iter(|| {
            w.clear();
            black_box(&quiet).pack(&mut w, epoch);
            let bytes = w.finish().expect("fits");
            black_box(Connection::unpack(bytes, epoch, quiet.timers.expire, cfg))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
