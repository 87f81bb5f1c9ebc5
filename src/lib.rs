//! synwatch: a packet-capture traffic classifier for network defenders.
//!
//! Data flow (GUIDE §1): [`capture`] → [`decode`] → [`flow`] → [`output`], wired together by
//! [`pipeline`].

pub mod capture;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod output;
pub mod pipeline;
pub mod time;
