//! Classification: what ports mean (the reviewed port database).

pub mod ports;
