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
    /// CPU per plug-poll, latency, sockets and memory at 50 / 250 / 2,500 plugs, fresh vs kept
    /// connections; then the newer-protocol plugs (as `newer`).
    Poll,
    /// KLAP/AES plugs: handshake cost, CPU per poll on a kept session, handshakes per minute,
    /// 252 mixed plugs (legacy + KLAP + AES) at a 1 s interval.
    Newer,
}

#[derive(Debug, Clone, Args, Default)]
pub struct BenchArgs {
    /// Which suites to run (default: all).
    #[arg(value_enum)]
    pub suites: Vec<Suite>,
    /// Fleet sizes of the poll suite (default 50,250,2500).
    #[arg(long, value_delimiter = ',', value_name = "N,…")]
    pub plugs: Vec<usize>,
    /// Cycles measured per run of the poll suite (default 15).
    #[arg(long, value_name = "N")]
    pub cycles: Option<u64>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let suites = if args.suites.is_empty() {
        vec![Suite::Discovery, Suite::Tui, Suite::Firmware, Suite::Poll]
    } else {
        args.suites
    };
    let plugs = if args.plugs.is_empty() {
        crate::bench::poll::SIZES.to_vec()
    } else {
        args.plugs
    };
    if plugs.iter().any(|n| *n == 0 || *n > 10_000) {
        anyhow::bail!("--plugs: each fleet size must be between 1 and 10000");
    }
    let cycles = args.cycles.unwrap_or(crate::bench::poll::CYCLES);
    if !(1..=600).contains(&cycles) {
        anyhow::bail!("--cycles must be between 1 and 600, not {cycles}");
    }
    for suite in suites {
        match suite {
            Suite::Discovery => crate::bench::discovery::run()?,
            Suite::Tui => crate::bench::tui::run()?,
            Suite::Firmware => crate::bench::firmware::run()?,
            Suite::Poll => {
                crate::bench::poll::run(&plugs, cycles)?;
                crate::bench::newer::run(cycles)?;
            }
            Suite::Newer => crate::bench::newer::run(cycles)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
