//! `plugfleet discover` (not built yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args, Default)]
pub struct DiscoverArgs {}

pub fn run(_args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plugfleet discover` is not available yet")
}
