//! synwatch: a packet-capture traffic classifier for network defenders.
//!
//! Data flow (GUIDE §1): [`capture`] → [`decode`] → [`flow`] → [`classify`] / [`detect`] →
//! [`output`], wired together by [`pipeline`]; [`analyse`] runs decode, flow and detection for
//! one packet. [`rules`] reads the user's rules file.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod analyse;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod counters;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod output;
pub mod pipeline;
pub mod rules;
pub mod time;
