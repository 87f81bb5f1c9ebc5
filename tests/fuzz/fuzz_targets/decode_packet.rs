#![no_main]
//! One frame of any link type through decode, defragmentation, tunnels, flow and detection.
use libfuzzer_sys::fuzz_target;
use synwatch::time::Micros;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let lt = common::LINKTYPES[usize::from(sel) % common::LINKTYPES.len()];
    let mut an = common::analyzer(sel & 0x80 != 0, 1000);
    // The wire length may claim more than was captured (snap length).
    let wire = frame.len() as u32 + u32::from(sel & 0x40);
    an.packet(lt, frame, Micros(1_000_000), wire);
    an.finish(synwatch::flow::EndReason::EndOfInput);
    common::write_all(&mut an);
});
