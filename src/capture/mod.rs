//! Capture: where packets come from. The capture thread owns the `pcap::Capture` and hands
//! packets to analysis in recycled [`batch::PacketBatch`]es (GUIDE §1).

pub mod batch;
pub mod file;
pub mod live;
pub mod mapped;

pub use batch::{Linktype, PacketBatch, PacketMeta};
