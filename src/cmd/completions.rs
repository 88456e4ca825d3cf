//! `plugfleet completions SHELL`: shell completions generated from the clap definitions.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Prints the completions of `cmd` (the top-level command line, which `main` passes in: it
/// lives in `cli`, above this module). The script is built in memory and written in one go, so
/// a reader that goes away early (`| head`) ends the command quietly instead of panicking inside
/// clap_complete.
pub fn run(args: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "plugfleet", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::anyhow!("cannot write the completions: {e}")),
    }
}
