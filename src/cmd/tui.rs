//! `plugfleet tui` (not built yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args, Default)]
pub struct TuiArgs {
    #[command(flatten)]
    pub net: crate::cli::TargetArgs,
}

pub fn run(_args: TuiArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plugfleet tui` is not available yet")
}
