//! `plugfleet update` (not built yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args, Default)]
pub struct UpdateArgs {}

pub fn run(_args: UpdateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plugfleet update` is not available yet")
}
