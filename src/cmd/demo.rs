//! `plugfleet demo` (not built yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Clone, Args, Default)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`plugfleet demo` is not available yet")
}
