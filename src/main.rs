use std::process::ExitCode;

use clap::Parser;

use synwatch::cli::{Checksums, Cli, Command, ReadArgs};
use synwatch::decode::DecodeOptions;
use synwatch::flow::TableConfig;
use synwatch::pipeline::{ConnTarget, InputHealth, ReadOptions, run_read};

fn read(args: ReadArgs) -> ExitCode {
    let conn = ConnTarget::from_arg(args.conn.as_deref());
    let summary_to_stderr = matches!(conn, ConnTarget::Stdout);
    let opts = ReadOptions {
        inputs: args.files,
        conn,
        conn_format: args.conn_format,
        decode: DecodeOptions {
            verify_checksums: args.checksums == Checksums::Verify,
        },
        table: TableConfig {
            max_flows: args.max_flows,
            ..TableConfig::default()
        },
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
    }
}
