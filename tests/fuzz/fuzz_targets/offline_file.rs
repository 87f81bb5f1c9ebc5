#![no_main]
//! Arbitrary bytes as a capture file: libpcap opens it (or refuses), every packet it yields goes
//! through the analysis, as `synwatch read` does.
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use synwatch::time::Micros;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("synwatch-fuzz-{}.pcap", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let Ok(mut cap) = pcap::Capture::from_file(&path) else {
        return;
    };
    let lt = cap.get_datalink().0;
    let mut an = common::analyzer(false, 64);
    let mut n = 0;
    while let Ok(p) = cap.next_packet() {
        let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
        an.packet(lt, p.data, ts, p.header.len);
        n += 1;
        if n > 10_000 {
            break;
        }
    }
    an.finish(synwatch::flow::EndReason::EndOfInput);
    common::write_all(&mut an);
});
