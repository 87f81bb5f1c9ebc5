#![no_main]
//! A sequence of frames (one link type) with times that may go backwards or jump years, through
//! the whole analysis, a small flow table (so eviction runs), then every writer. A second
//! analysis keeps every flow whole from its first packet (no embryos, nothing packed); both
//! must write the same records and alerts.
use libfuzzer_sys::fuzz_target;
use synwatch::time::Micros;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let lt = common::LINKTYPES[usize::from(sel) % common::LINKTYPES.len()];
    // 4 whole connections (half the table), or 1: then every flow but the latest is an
    // embryo or packed, and every packet of another flow packs one.
    let whole_max = if sel & 0x40 != 0 { 1 } else { 4 };
    let mut an = common::analyzer_with(sel & 0x80 != 0, 8, whole_max);
    let mut whole = common::analyzer_with(sel & 0x80 != 0, 8, usize::MAX);
    let same = |a: &synwatch::analyse::Analyzer, b: &synwatch::analyse::Analyzer| {
        assert_eq!(format!("{:?}", a.pending), format!("{:?}", b.pending));
        assert_eq!(format!("{:?}", a.alerts), format!("{:?}", b.alerts));
    };
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
        whole.packet(lt, frame, Micros(ts), frame.len() as u32);
        if an.pending.len() > 64 {
            same(&an, &whole);
            common::write_all(&mut an);
            for x in [&mut an, &mut whole] {
                x.clear_output();
            }
        }
    }
    for x in [&mut an, &mut whole] {
        x.tick(Micros(ts.saturating_add(600_000_000)));
        x.finish(synwatch::flow::EndReason::EndOfInput);
    }
    same(&an, &whole);
    common::write_all(&mut an);
});
