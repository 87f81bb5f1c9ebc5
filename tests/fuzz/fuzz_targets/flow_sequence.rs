#![no_main]
//! A sequence of frames (one link type) with times that may go backwards or jump years, through
//! the whole analysis, a small flow table (so eviction runs), then every writer.
use libfuzzer_sys::fuzz_target;
use synwatch::time::Micros;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let lt = common::LINKTYPES[usize::from(sel) % common::LINKTYPES.len()];
    let mut an = common::analyzer(sel & 0x80 != 0, 8);
    let mut ts: i64 = 1_600_000_000_000_000;
    // Each packet: time step (i16, seconds scaled), length (u16 mod 1500), bytes.
    while rest.len() >= 4 {
        let step = i64::from(i16::from_le_bytes([rest[0], rest[1]]));
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]])) % 1500;
        rest = &rest[4..];
        let n = len.min(rest.len());
        let (frame, tail) = rest.split_at(n);
        rest = tail;
        ts = ts.saturating_add(step.saturating_mul(if sel & 1 == 0 {
            1_000
        } else {
            1_000_000_000
        }));
        an.packet(lt, frame, Micros(ts), frame.len() as u32);
        if an.pending.len() > 64 {
            common::write_all(&mut an);
            an.pending.clear();
            an.alerts.clear();
        }
    }
    an.tick(Micros(ts.saturating_add(600_000_000)));
    an.finish(synwatch::flow::EndReason::EndOfInput);
    common::write_all(&mut an);
});
