//! `plugfleet sim` (not built yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args, Default)]
pub struct SimArgs {}

pub fn run(_args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plugfleet sim` is not available yet")
}
