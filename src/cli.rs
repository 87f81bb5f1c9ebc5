//! The command line (clap).

use clap::{Parser, Subcommand, ValueEnum};

use crate::output::ConnFormat;

#[derive(Parser, Debug)]
#[command(
    name = "synwatch",
    version,
    about = "Per-connection TCP handshake verdicts, scans and suspicious ports from packet captures",
    long_about = "synwatch reads packet captures (pcap, pcapng) and reports, per connection, whether the \
TCP handshake completed, who was rejected, and Zeek-compatible conn_state and history.\n\n\
Exit codes: 0 success; 1 an input could not be read or output failed; 2 usage error; \
3 an input was damaged (analysed up to the damage)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse capture files (pcap or pcapng; `-` reads standard input).
    Read(ReadArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Accept every packet (loopback and offloaded captures have bad checksums everywhere).
    Ignore,
    /// Skip packets with bad IPv4/TCP/UDP/ICMP checksums, as Zeek does without -C.
    Verify,
}

#[derive(clap::Args, Debug)]
pub struct ReadArgs {
    /// Capture files, read as one stream in the order given; `-` is standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,

    /// Write connection records to PATH (`-` = standard output).
    #[arg(long, value_name = "PATH")]
    pub conn: Option<String>,

    /// Format of the connection records.
    #[arg(long, value_enum, default_value_t = ConnFormat::Json)]
    pub conn_format: ConnFormat,

    /// Checksum policy.
    #[arg(long, value_enum, default_value_t = Checksums::Ignore)]
    pub checksums: Checksums,

    /// Most connections tracked at once; beyond it the least recently active is ended early
    /// (written with reason `evicted`).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_flows: usize,

    /// Print no summary.
    #[arg(short, long)]
    pub quiet: bool,
}
