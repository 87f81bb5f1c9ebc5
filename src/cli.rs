//! The command line (clap).

use clap::{Parser, Subcommand, ValueEnum};

use crate::flow::Timeouts;
use crate::output::ConnFormat;
use crate::output::alerts::AlertFormat;
use crate::time::Micros;

/// Parses `NAME=SECONDS` for `--timeout`, checking the name and that the value is a
/// non-negative number of seconds.
fn parse_timeout(s: &str) -> Result<(String, Micros), String> {
    let (name, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=SECONDS, got `{s}`"))?;
    let v: f64 = secs
        .trim()
        .parse()
        .map_err(|_| format!("`{secs}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(format!("`{secs}` is out of range (0 to 1e9 seconds)"));
    }
    let name = name.trim().to_string();
    let value = Micros((v * 1e6).round() as i64);
    // Validate the name (and the value for it) now, so a typo is a usage error before any
    // input is read.
    Timeouts::default().set(&name, value)?;
    Ok((name, value))
}

#[derive(Parser, Debug)]
#[command(
    name = "synwatch",
    version,
    about = "Per-connection TCP handshake verdicts, scans and suspicious ports from packet captures",
    long_about = "synwatch reads packet captures (pcap, pcapng) and reports, per connection, whether the \
TCP handshake completed, who was rejected, and Zeek-compatible conn_state and history.\n\n\
Exit codes: 0 success; 1 an input could not be read, an interface could not be opened, or output \
failed; 2 usage error; 3 an input was damaged (analysed up to the damage) or of a link type \
synwatch cannot decode."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse capture files (pcap or pcapng; `-` reads standard input).
    Read(ReadArgs),
    /// Capture from a network interface until stopped (SIGINT/SIGTERM), --count or --duration.
    Live(LiveArgs),
    /// List the interfaces synwatch can capture from, with addresses and flags.
    Interfaces,
    /// Print a shell completion script (e.g. `synwatch completions bash > /etc/bash_completion.d/synwatch`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; e.g. `synwatch man | man -l -`).
    Man,
    /// Look up ports in the built-in port database (and a rules file's additions).
    Ports(PortsArgs),
    /// Work with rules files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate a rules file; prints what it adds, or the line of the first mistake.
    Check {
        /// The rules file (TOML).
        #[arg(value_name = "FILE")]
        file: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct PortsArgs {
    /// Ports to show: a number (31337) or a range (137-139); several allowed.
    #[arg(value_name = "PORT")]
    pub ports: Vec<String>,

    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<ProtoArg>,

    /// Entries whose names, service or advice contain TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// Only this category.
    #[arg(long, value_enum)]
    pub category: Option<CategoryArg>,

    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Show advice, corrections and sources for every entry (the default for 3 or fewer).
    #[arg(short, long)]
    pub long: bool,

    /// Include a rules file's port entries.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoArg {
    Tcp,
    Udp,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CategoryArg {
    Trojan,
    Risky,
    Proxy,
    Service,
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

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Capture from an interface.
#[derive(clap::Args, Debug)]
pub struct LiveArgs {
    /// The interface (`any` for all; see `synwatch interfaces`).
    #[arg(short, long, value_name = "IFACE")]
    pub interface: String,

    /// A BPF capture filter (tcpdump syntax), checked before capture starts.
    #[arg(short = 'f', long, value_name = "FILTER")]
    pub filter: Option<String>,

    /// Bytes captured per packet.
    #[arg(long, default_value_t = 262_144, value_name = "BYTES")]
    pub snaplen: i32,

    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,

    /// Let the kernel batch packets (higher latency; immediate mode is the default).
    #[arg(long)]
    pub no_immediate: bool,

    /// Kernel capture buffer, MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pub buffer_size: u32,

    /// Stop after this many packets.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// Seconds between `stats` events (written to the JSON alert log, else to a JSON connection
    /// log).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub stats_interval: f64,

    /// Rotate a log file when it grows past SIZE (bytes, or with K, M or G): it is renamed to
    /// PATH.1 (PATH.2, … when taken) and a new one started. 0: never.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "0")]
    pub rotate_size: u64,

    /// After opening the interface, switch to this user (and its groups), like tcpdump -Z.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Parses `1000`, `64K`, `100M`, `2G`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 1000, 64K, 100M, 2G)"))
}

/// Options `read` and `live` share: outputs, rules, analysis settings.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
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

    /// Keep at most N connections whole (about 560 bytes each). Once N flows are open, a new
    /// flow is kept as the bytes of its first packet (about 48) until a second packet, its
    /// timer or its end turns it into a connection; and when more than N are whole, those
    /// that have gone quiet are packed into bytes (about 96 for an established one) until a
    /// packet wakes them. Half-open floods and idle connections cost under 200 bytes a flow.
    /// It changes no result.
    #[arg(long, default_value_t = crate::flow::table::COMPACT_AFTER, value_name = "N")]
    pub compact_after: usize,

    /// Analysis threads (default: one per core but one, left to the capture and merge
    /// threads). Flows are sharded by their address pair; the
    /// records, alerts and summary do not depend on the number (with `--max-flows` split
    /// evenly, only which flows get evicted under pressure can differ).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,

    /// Change a timer, in seconds of packet time, by Zeek's name for it (repeatable), e.g.
    /// `--timeout udp_inactivity_timeout=30`. Names: tcp_attempt_delay (5), tcp_close_delay (5),
    /// tcp_session_timer (6), tcp_connection_linger (5), tcp_SYN_timeout (5),
    /// tcp_inactivity_timeout (300), tcp_interactive_timeout (3600), udp_inactivity_timeout (60),
    /// icmp_inactivity_timeout (60), unknown_ip_inactivity_timeout (60).
    #[arg(long = "timeout", value_name = "NAME=SECONDS", value_parser = parse_timeout)]
    pub timeouts: Vec<(String, Micros)>,

    /// Write alerts to PATH (`-` = standard output, shared with `--conn -` if both).
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<String>,

    /// Format of the alerts.
    #[arg(long, value_enum, default_value_t = AlertFormat::Json)]
    pub alerts_format: AlertFormat,

    /// A rules file (TOML) layered on the built-in port table: extra ports, severities,
    /// allow-lists, the alert fold window. Check one with `synwatch rules check FILE`.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<String>,

    /// Length of the summary's top lists (talkers, ports, alerts); 0 leaves them out.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,

    /// Write a self-contained HTML report (summary and plots) to PATH.
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,

    /// Also write the summary as JSON to PATH (`-` = standard output).
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<String>,

    /// Print no summary.
    #[arg(short, long)]
    pub quiet: bool,
}
