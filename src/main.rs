use std::process::ExitCode;

use clap::Parser;

use std::sync::Arc;

use synwatch::classify::ports::{Category, PortDb, PortProto, parse_port_range};
use synwatch::cli::{
    CategoryArg, Checksums, Cli, Command, PortsArgs, ProtoArg, ReadArgs, RulesCommand,
};
use synwatch::decode::DecodeOptions;
use synwatch::flow::{TableConfig, Timeouts};
use synwatch::output::ports::{PortQuery, render_json, render_table};
use synwatch::pipeline::{ConnTarget, InputHealth, ReadOptions, run_read};
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

fn read(args: ReadArgs) -> ExitCode {
    let (db, rules) = match load_db_and_rules(args.rules.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("synwatch: {e}");
            return ExitCode::from(2);
        }
    };
    let conn = ConnTarget::from_arg(args.conn.as_deref());
    let alerts = ConnTarget::from_arg(args.alerts.as_deref());
    let summary_to_stderr =
        matches!(conn, ConnTarget::Stdout) || matches!(alerts, ConnTarget::Stdout);
    let mut timeouts = Timeouts::default();
    for (name, value) in &args.timeouts {
        if let Err(e) = timeouts.set(name, *value) {
            eprintln!("synwatch: --timeout: {e}");
            return ExitCode::from(2);
        }
    }
    let opts = ReadOptions {
        inputs: args.files,
        conn,
        conn_format: args.conn_format,
        decode: DecodeOptions {
            verify_checksums: args.checksums == Checksums::Verify,
        },
        table: TableConfig {
            max_flows: args.max_flows,
            timeouts,
        },
        alerts,
        alerts_format: args.alerts_format,
        db,
        rules,
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
        if let Some(msg) = src.describe() {
            eprintln!("synwatch: {msg}");
        }
    }
    if !args.quiet {
        let text = summary.render();
        if summary_to_stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    match summary.input_health() {
        InputHealth::AllComplete => ExitCode::SUCCESS,
        InputHealth::SomeUnreadable => ExitCode::from(1),
        InputHealth::SomeDamaged => ExitCode::from(3),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Read(args) => read(args),
        Command::Ports(args) => ports(args),
        Command::Rules { command } => rules(command),
    }
}
