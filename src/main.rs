use std::process::ExitCode;

use clap::Parser;

use std::sync::Arc;

use synwatch::capture::live::LiveOptions;
use synwatch::classify::ports::{Category, PortDb, PortProto, parse_port_range};
use synwatch::cli::{
    CategoryArg, Checksums, Cli, Command, CommonArgs, LiveArgs, PortsArgs, ProtoArg, ReadArgs,
    RulesCommand,
};
use synwatch::decode::DecodeOptions;
use synwatch::flow::{TableConfig, Timeouts};
use synwatch::output::ports::{PortQuery, render_json, render_table};
use synwatch::pipeline::{ConnTarget, InputHealth, LiveControl, ReadOptions, run_live, run_read};
use synwatch::rules::Rules;

/// The built-in port table with a rules file's entries on top.
fn load_db_and_rules(rules: Option<&str>) -> Result<(Arc<PortDb>, Rules), String> {
    let mut db = PortDb::builtin().map_err(|e| format!("built-in port table: {e}"))?;
    let rules = match rules {
        Some(path) => Rules::load(path).map_err(|e| e.to_string())?,
        None => Rules::default(),
    };
    if !rules.ports.is_empty() {
        db.overlay(rules.ports.clone())
            .map_err(|e| format!("port entries of the rules file: {e}"))?;
    }
    Ok((Arc::new(db), rules))
}

fn ports(args: PortsArgs) -> ExitCode {
    let (db, _) = match load_db_and_rules(args.rules.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("synwatch: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ranges = Vec::new();
    for p in &args.ports {
        match parse_port_range(p) {
            Some(r) => ranges.push(r),
            None => {
                eprintln!("synwatch: `{p}` is not a port (0-65535) or a range like 137-139");
                return ExitCode::from(2);
            }
        }
    }
    let query = PortQuery {
        ranges,
        proto: args.proto.map(|p| match p {
            ProtoArg::Tcp => PortProto::Tcp,
            ProtoArg::Udp => PortProto::Udp,
        }),
        search: args.search.clone(),
        category: args.category.map(|c| match c {
            CategoryArg::Trojan => Category::Trojan,
            CategoryArg::Risky => Category::Risky,
            CategoryArg::Proxy => Category::Proxy,
            CategoryArg::Service => Category::Service,
        }),
    };
    let answers = query.run(&db);
    if args.json {
        print!("{}", render_json(&answers));
    } else {
        print!("{}", render_table(&answers, args.long));
    }
    ExitCode::SUCCESS
}

fn rules(cmd: RulesCommand) -> ExitCode {
    match cmd {
        RulesCommand::Check { file } => match load_db_and_rules(Some(&file)) {
            Ok((_, r)) => {
                println!(
                    "{file}: ok: {} port entr{}, {} allow entr{}, fold window {} s",
                    r.ports.len(),
                    if r.ports.len() == 1 { "y" } else { "ies" },
                    r.allow.len(),
                    if r.allow.len() == 1 { "y" } else { "ies" },
                    r.fold_window.as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("synwatch: {e}");
                ExitCode::from(1)
            }
        },
    }
}

/// The analysis options `read` and `live` share; Err is the exit code after a message.
fn common_options(c: &CommonArgs, inputs: Vec<String>) -> Result<ReadOptions, ExitCode> {
    let (db, rules) = load_db_and_rules(c.rules.as_deref()).map_err(|e| {
        eprintln!("synwatch: {e}");
        ExitCode::from(2)
    })?;
    let mut timeouts = Timeouts::default();
    for (name, value) in &c.timeouts {
        timeouts.set(name, *value).map_err(|e| {
            eprintln!("synwatch: --timeout: {e}");
            ExitCode::from(2)
        })?;
    }
    Ok(ReadOptions {
        inputs,
        conn: ConnTarget::from_arg(c.conn.as_deref()),
        conn_format: c.conn_format,
        decode: DecodeOptions {
            verify_checksums: c.checksums == Checksums::Verify,
        },
        table: TableConfig {
            max_flows: c.max_flows,
            compact_after: c.compact_after,
            timeouts,
        },
        alerts: ConnTarget::from_arg(c.alerts.as_deref()),
        alerts_format: c.alerts_format,
        db,
        rules,
        top_n: c.top,
        progress: !c.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        workers: c
            .workers
            .map_or_else(synwatch::pipeline::default_workers, usize::from),
    })
}

/// Writes the HTML report when asked; Err is a message.
fn write_report(
    path: Option<&str>,
    summary: &synwatch::output::summary::Summary,
    title: &str,
) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    std::fs::write(path, synwatch::output::report::render(summary, title))
        .map_err(|e| format!("cannot write the report to {path}: {e}"))
}

/// Writes the summary as JSON when asked; Err is a message.
fn write_summary_json(
    path: Option<&str>,
    summary: &synwatch::output::summary::Summary,
) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let mut text = serde_json::to_string_pretty(&summary.to_json())
        .map_err(|e| format!("cannot render the summary as JSON: {e}"))?;
    text.push('\n');
    if path == "-" {
        print!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).map_err(|e| format!("cannot write the summary to {path}: {e}"))
    }
}

/// Colour in the summary when it goes to a terminal and NO_COLOR is not set.
fn use_colour(opts: &ReadOptions) -> bool {
    use std::io::IsTerminal;
    let to_stderr =
        matches!(opts.conn, ConnTarget::Stdout) || matches!(opts.alerts, ConnTarget::Stdout);
    let tty = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    tty && std::env::var_os("NO_COLOR").is_none()
}

/// Prints the summary where it does not mix with records on standard output.
fn print_summary(opts: &ReadOptions, quiet: bool, text: &str) {
    if quiet {
        return;
    }
    if matches!(opts.conn, ConnTarget::Stdout) || matches!(opts.alerts, ConnTarget::Stdout) {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

fn read(args: ReadArgs) -> ExitCode {
    let opts = match common_options(&args.common, args.files) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let summary = match run_read(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synwatch: {e}");
            return ExitCode::from(1);
        }
    };
    // Problems with inputs go to stderr, one line each, whatever else is printed.
    for src in &summary.sources {
        for msg in src.messages() {
            eprintln!("synwatch: {msg}");
        }
    }
    let mut summary = summary;
    summary.colour = use_colour(&opts);
    print_summary(&opts, args.common.quiet, &summary.render());
    if let Err(e) =
        write_summary_json(args.common.summary_json.as_deref(), &summary).and_then(|()| {
            write_report(
                args.common.report.as_deref(),
                &summary,
                &opts.inputs.join(", "),
            )
        })
    {
        eprintln!("synwatch: {e}");
        return ExitCode::from(1);
    }
    match summary.input_health() {
        InputHealth::AllComplete => ExitCode::SUCCESS,
        InputHealth::SomeUnreadable => ExitCode::from(1),
        InputHealth::SomeDamaged => ExitCode::from(3),
    }
}

/// Switches to `name`'s user and groups (after the device is open), like `tcpdump -Z`.
fn drop_privileges(name: &str) -> Result<(), String> {
    use nix::unistd::{User, initgroups, setgid, setuid};
    let user = User::from_name(name)
        .map_err(|e| format!("--user {name}: cannot look the user up: {e}"))?
        .ok_or_else(|| format!("--user {name}: no such user"))?;
    let cname = std::ffi::CString::new(name).map_err(|_| format!("--user {name}: bad name"))?;
    initgroups(&cname, user.gid)
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(|e| {
            format!(
                "--user {name}: cannot switch to uid {} gid {}: {e} (run as root to use --user)",
                user.uid, user.gid
            )
        })
}

fn live(args: LiveArgs) -> ExitCode {
    let opts = match common_options(&args.common, vec![args.interface.clone()]) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let bad_secs = |v: f64| !v.is_finite() || v <= 0.0 || v > 1e9;
    if args.duration.is_some_and(bad_secs) || bad_secs(args.stats_interval) {
        eprintln!("synwatch: --duration and --stats-interval take a positive number of seconds");
        return ExitCode::from(2);
    }
    let live_opts = LiveOptions {
        interface: args.interface.clone(),
        filter: args.filter.clone(),
        snaplen: args.snaplen,
        promisc: !args.no_promisc,
        immediate: !args.no_immediate,
        buffer_size: i32::try_from(u64::from(args.buffer_size) << 20).unwrap_or(i32::MAX),
        count: args.count,
        duration: args.duration.map(std::time::Duration::from_secs_f64),
    };
    // Open (and check the filter) before anything else starts.
    let cap = match synwatch::capture::live::open(&live_opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synwatch: {e}");
            return ExitCode::from(1);
        }
    };
    let ctl = LiveControl {
        stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        reopen: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        stats_interval: std::time::Duration::from_secs_f64(args.stats_interval),
        rotate_size: args.rotate_size,
    };
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for (sig, flag) in [
        (SIGINT, &ctl.stop),
        (SIGTERM, &ctl.stop),
        (SIGHUP, &ctl.reopen),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            eprintln!("synwatch: cannot install a signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(u) = &args.user
        && let Err(e) = drop_privileges(u)
    {
        eprintln!("synwatch: {e}");
        return ExitCode::from(1);
    }
    let (summary, report) = match run_live(cap, &live_opts, &opts, ctl) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("synwatch: {e}");
            return ExitCode::from(1);
        }
    };
    let mut summary = summary;
    summary.colour = use_colour(&opts);
    let mut text = summary.render();
    text.push_str(&format!(
        "  capture      {}: {} packets captured, {} received by the filter, {} dropped by the kernel, {} by the interface, {} by synwatch (analysis behind)\n",
        report.interface,
        report.captured,
        report.pcap_received,
        report.kernel_dropped,
        report.if_dropped,
        report.dropped
    ));
    print_summary(&opts, args.common.quiet, &text);
    let title = format!("live capture on {}", live_opts.interface);
    if let Err(e) = write_summary_json(args.common.summary_json.as_deref(), &summary)
        .and_then(|()| write_report(args.common.report.as_deref(), &summary, &title))
    {
        eprintln!("synwatch: {e}");
        return ExitCode::from(1);
    }
    if let Some(e) = &report.error {
        eprintln!(
            "synwatch: capture on {} ended with an error: {e}",
            report.interface
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn interfaces() -> ExitCode {
    match synwatch::capture::live::list_interfaces() {
        Ok(s) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synwatch: {e}");
            ExitCode::from(1)
        }
    }
}

fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "synwatch", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn man() -> ExitCode {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut out = std::io::stdout();
    let page = clap_mangen::Man::new(cmd.clone());
    if let Err(e) = page.render(&mut out) {
        eprintln!("synwatch: cannot write the manual page: {e}");
        return ExitCode::from(1);
    }
    // One section per subcommand, so `man synwatch` documents every option.
    for sub in cmd.get_subcommands() {
        let title = format!(
            ".SH \"SYNWATCH {}\"\n{}\n",
            sub.get_name().to_uppercase(),
            sub.get_about().map(|a| a.to_string()).unwrap_or_default()
        );
        if let Err(e) = std::io::Write::write_all(&mut out, title.as_bytes())
            .and_then(|()| clap_mangen::Man::new(sub.clone()).render_options_section(&mut out))
        {
            eprintln!("synwatch: cannot write the manual page: {e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Read(args) => read(args),
        Command::Live(args) => live(args),
        Command::Interfaces => interfaces(),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
        Command::Ports(args) => ports(args),
        Command::Rules { command } => rules(command),
    }
}
