//! `plugfleet config path|init|check`: where the config file lives, a commented default, and a
//! check that reports the first problem with its file, line and key (exit status 2, like every
//! command that meets a bad file).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cmd::args::UsageError;
use crate::config::{self, Config};

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ConfigAction {
    /// Print the path of the config file in use.
    Path,
    /// Write a commented default config file (never overwrites an existing one).
    Init,
    /// Parse the config file and report the first problem.
    Check,
}

/// The file in use: `--config PATH` if given, else the platform default.
pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<(PathBuf, bool)> {
    match explicit {
        Some(p) => Ok((p, true)),
        None => Ok((config::default_path()?, false)),
    }
}

pub fn run(args: ConfigArgs, explicit: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, is_explicit) = resolve(explicit)?;
    match args.action {
        ConfigAction::Path => println!("{}", path.display()),
        ConfigAction::Init => {
            if config::write_default(&path)? {
                println!("wrote {}", path.display());
            } else {
                println!("{} already exists; left unchanged", path.display());
            }
        }
        ConfigAction::Check => {
            if !is_explicit && std::fs::symlink_metadata(&path).is_err() {
                // Nothing to check: say so rather than "ok".
                println!(
                    "{}: no config file; the defaults apply (`plugfleet config init` writes one)",
                    path.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            // Exit 2 like every command that meets a bad file, the cause printed once.
            Config::load(&path, is_explicit).map_err(|e| UsageError(e.to_string()))?;
            println!("{}: ok", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
