//! The `plugfleet` binary: parse the command line, then run the chosen command.

use std::process::ExitCode;

use clap::Parser;
use plugfleet::cli::{Cli, Command, UsageError};
use plugfleet::cmd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to a file, never to the screen; the guard flushes them at exit.
    let _log = plugfleet::logging::init(&cli.log_level).ok();
    let result = match cli.command {
        None => cmd::tui::run(cli.tui, cli.config.as_deref()),
        Some(Command::Demo(a)) => cmd::demo::run(a),
        Some(Command::Sim(a)) => cmd::sim::run(a),
        Some(Command::Discover(a)) => cmd::discover::run(a),
        Some(Command::Status(a)) => cmd::status::run(a),
        Some(Command::Update(a)) => cmd::update::run(a),
        Some(Command::Bench(a)) => cmd::bench::run(a),
        Some(Command::Config(a)) => cmd::config::run(a, cli.config),
        Some(Command::Completions(a)) => cmd::completions::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                // The reader went away (`plugfleet discover --json | head`): not an error.
                return ExitCode::SUCCESS;
            }
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("plugfleet: {e}");
                ExitCode::from(2)
            } else {
                eprintln!("plugfleet: error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
