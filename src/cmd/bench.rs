//! `plugfleet bench`: benchmarks that print figures (never timed asserts). Each suite lives in
//! `crate::bench`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// Time until N simulated plugs are known, by broadcast and by sweep.
    Discovery,
    /// Frame render time, CPU per poll cycle and memory with 250 plugs.
    Tui,
    /// A batch of firmware updates against a single one; file server throughput.
    Firmware,
}

#[derive(Debug, Clone, Args, Default)]
pub struct BenchArgs {
    /// Which suites to run (default: all).
    #[arg(value_enum)]
    pub suites: Vec<Suite>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let suites = if args.suites.is_empty() {
        vec![Suite::Discovery, Suite::Tui, Suite::Firmware]
    } else {
        args.suites
    };
    for suite in suites {
        match suite {
            Suite::Discovery => crate::bench::discovery::run()?,
            Suite::Tui => crate::bench::tui::run()?,
            Suite::Firmware => crate::bench::firmware::run()?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
