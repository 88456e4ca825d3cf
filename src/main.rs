//! The `plugfleet` binary: parse the command line, apply the config file, then run the chosen
//! command.

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use plugfleet::cli::{Cli, Command};
use plugfleet::cmd;
use plugfleet::cmd::args::{UsageError, given};
use plugfleet::config::Config;

/// mimalloc instead of glibc's malloc: the poll hot path allocates small, short-lived blocks
/// (a reply's JSON tree, a report's strings, a poll's future) by the thousand per second, and
/// glibc's `malloc_consolidate` alone was 3 % of the poller's CPU (docs/BENCHMARKS.md, Poll).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The demo writes only into its own temporary folder, its log file included.
    let demo = match &cli.command {
        Some(Command::Demo(_)) => match cmd::demo::DemoFolder::create() {
            Ok(f) => Some(f),
            Err(e) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "plugfleet: error: cannot create the demo's temporary folder: {e}"
                );
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    // Logs go to a file, never to the screen; the guard flushes them at exit. Without a log file
    // the program still runs: one warning now, before the TUI takes the screen.
    let logging = match &demo {
        Some(f) => plugfleet::logging::init_in(&cli.log_level, f.path()),
        None => plugfleet::logging::init(&cli.log_level),
    };
    let _log = match logging {
        Ok(guard) => {
            if let Some(why) = &guard.no_file {
                say(&format!(
                    "plugfleet: warning: {why}; running without a log file"
                ));
            }
            Some(guard)
        }
        Err(e) => {
            say(&format!(
                "plugfleet: warning: {e:#}; running without a log file"
            ));
            None
        }
    };
    match run(cli, &matches, demo.as_ref()) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                // The reader went away (`plugfleet discover --json | head`): not an error.
                return ExitCode::SUCCESS;
            }
            if e.downcast_ref::<UsageError>().is_some() {
                say(&format!("plugfleet: {e}"));
                ExitCode::from(2)
            } else {
                say(&format!("plugfleet: error: {e:#}"));
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs the command with the config file applied under the flags: a flag always wins, and a
/// bad config file stops everything before any plug is contacted.
fn run(
    cli: Cli,
    matches: &ArgMatches,
    demo: Option<&cmd::demo::DemoFolder>,
) -> anyhow::Result<ExitCode> {
    let explicit = cli.config.clone();
    let config = || -> anyhow::Result<Config> {
        let (path, is_explicit) = cmd::config::resolve(explicit.clone())?;
        let cfg = Config::load(&path, is_explicit).map_err(|e| UsageError(e.to_string()))?;
        if let Some(w) = plugfleet::config::credentials_warning(&path, &cfg) {
            eprintln!("plugfleet: warning: {w}");
        }
        Ok(cfg)
    };
    let sub = |name: &str| matches.subcommand_matches(name).unwrap_or(matches);
    match cli.command {
        None => {
            let cfg = config()?;
            let mut a = cli.tui;
            a.net.apply_config(&cfg, matches);
            a.net.resolve_hosts(given(matches, "port"))?;
            cmd::tui::run(a, &cfg)
        }
        Some(Command::Demo(mut a)) => {
            // The demo's fleet is its own (loopback); only how it is viewed comes from the file.
            a.view.apply_config(&config()?);
            let folder = demo.ok_or_else(|| anyhow::anyhow!("the demo has no folder"))?;
            cmd::demo::run(a, folder)
        }
        Some(Command::Discover(mut a)) => {
            a.net.apply_config(&config()?, sub("discover"));
            a.net.resolve_hosts(given(sub("discover"), "port"))?;
            cmd::discover::run(a)
        }
        Some(Command::Status(mut a)) => {
            let cfg = config()?;
            a.net.apply_config(&cfg, sub("status"));
            a.net.resolve_hosts(given(sub("status"), "port"))?;
            a.names = plugfleet::fleet::identity::Names::from_config(&cfg);
            a.ratings = plugfleet::fleet::ratings::Overrides::from_config(&cfg);
            a.plausibility = Box::new(cfg.plausibility.clone());
            cmd::status::run(a)
        }
        Some(Command::History(mut a)) => {
            let cfg = config()?;
            a.net.apply_config(&cfg, sub("history"));
            a.net.resolve_hosts(given(sub("history"), "port"))?;
            a.names = plugfleet::fleet::identity::Names::from_config(&cfg);
            a.ratings = plugfleet::fleet::ratings::Overrides::from_config(&cfg);
            if cfg.safety.read_only == Some(true) {
                a.read_only = true;
            }
            cmd::history::run(a)
        }
        // `update` reads the file itself (ceilings, firmware folders, concurrency).
        Some(Command::Update(mut a)) => {
            a.net.resolve_hosts(given(sub("update"), "port"))?;
            cmd::update::run(a, cli.config)
        }
        Some(Command::Sim(a)) => cmd::sim::run(a),
        Some(Command::Bench(a)) => cmd::bench::run(a),
        Some(Command::Config(a)) => cmd::config::run(a, cli.config),
        Some(Command::Completions(a)) => cmd::completions::run(a, Cli::command()),
        Some(Command::Man(a)) => cmd::man::run(a, Cli::command()),
    }
}

/// One line on stderr. Not `eprintln!`, which panics when stderr is gone (a terminal that hung
/// up): the exit status must still say what happened.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    // A JSON writer (`serde_json::to_writer` on stdout) wraps the I/O error in its own type.
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
