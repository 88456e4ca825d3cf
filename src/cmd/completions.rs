//! `plugfleet completions SHELL`: shell completions generated from the clap definitions.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Prints the completions of `cmd` (the top-level command line, which `main` passes in: it
/// lives in `cli`, above this module).
pub fn run(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(args.shell, &mut cmd, "plugfleet", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
