//! Flow tracking: keys, the per-connection TCP state machine and history, timers, records.

pub mod cold;
pub mod conn;
pub mod content;
pub mod embryo;
pub mod history;
pub mod key;
pub mod pack;
pub mod record;
pub mod server_ports;
pub mod table;
pub mod tcp;
#[cfg(test)]
mod tests;
pub mod timers;

pub use conn::{ConnState, Connection, EndReason, Timeouts};
pub use record::{ConnRecord, Handshake};
pub use table::{FlowStats, FlowTable, TableConfig};
