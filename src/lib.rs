//! synwatch: a packet-capture traffic classifier for network defenders.
//!
//! Data flow (GUIDE §1): [`capture`] → [`decode`] → [`flow`] → [`classify`] / [`detect`] →
//! [`output`], wired together by [`pipeline`]; [`analyse`] runs decode, flow and detection for
//! one packet. [`rules`] reads the user's rules file.

pub mod analyse;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod flow;
pub mod output;
pub mod pipeline;
pub mod rules;
pub mod time;
