//! `plugfleet man [COMMAND]`: the manual page in roff, generated from the clap definitions
//! (`clap_mangen`), written to stdout: `plugfleet man | man -l -`, or
//! `plugfleet man > ~/.local/share/man/man1/plugfleet.1`. Without COMMAND the page is
//! plugfleet(1) with an ENVIRONMENT section that lists every variable the flags read (taken
//! from the definitions, so it cannot fall behind) and the few read elsewhere; with COMMAND it
//! is that command's page, plugfleet-COMMAND(1).

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args;
use roff::{Roff, bold, roman};

use crate::cmd::args::UsageError;

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The command whose page to print (status, discover, update, …) [default: the main page].
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// Variables read outside the flags: (name, what it does).
pub const OTHER_ENV: &[(&str, &str)] = &[
    (
        "PLUGFLEET_LOG_DIR",
        "Folder of the log file plugfleet.log (default: $XDG_STATE_HOME/plugfleet, else \
         ~/.local/state/plugfleet). The demo logs into its own temporary folder instead.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, the TUI draws without colours (glyphs and text stay).",
    ),
    (
        "XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME",
        "Where the config file, the update journal and recordings, and the log live on Linux \
         (the platform's folders elsewhere).",
    ),
];

/// Every `(variable, flag, help)` of `cmd` and its subcommands, each variable once, in the
/// order met (the root's flags first).
pub fn env_vars(cmd: &clap::Command) -> Vec<(String, String, String)> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, String, String)>) {
        for a in cmd.get_arguments() {
            let Some(env) = a.get_env() else { continue };
            let env = env.to_string_lossy().into_owned();
            if out.iter().any(|(e, _, _)| *e == env) {
                continue;
            }
            let flag = a
                .get_long()
                .map(|l| format!("--{l}"))
                .unwrap_or_else(|| a.get_id().to_string());
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            out.push((env, flag, help));
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, &mut out);
    out
}

/// The roff text of the page for `command` (`None`: the main page) of the command line `cmd`.
pub fn page(mut cmd: clap::Command, command: Option<&str>) -> Result<Vec<u8>, UsageError> {
    cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    let io = |e: std::io::Error| UsageError(format!("cannot render the manual page: {e}"));
    match command {
        None => {
            let subs: Vec<String> = cmd
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(|s| s.get_name().to_owned())
                .collect();
            let vars = env_vars(&cmd);
            let root = cmd.get_name().to_owned();
            clap_mangen::Man::new(cmd).render(&mut out).map_err(io)?;
            let mut r = Roff::new();
            r.control("SH", ["ENVIRONMENT"]);
            r.text([roman(
                "A flag wins over its variable, and both over the config file. List values \
                 (hosts, targets, sweeps) are separated by commas.",
            )]);
            for (env, flag, help) in &vars {
                r.control("TP", []);
                r.text([bold(env.as_str())]);
                r.text([roman(format!("{flag}: {help}"))]);
            }
            for (env, help) in OTHER_ENV {
                r.control("TP", []);
                r.text([bold(*env)]);
                r.text([roman(*help)]);
            }
            r.control("SH", ["SEE ALSO"]);
            let see: Vec<String> = subs.iter().map(|s| format!("{root}-{s}(1)")).collect();
            r.text([roman(see.join(", "))]);
            r.to_writer(&mut out).map_err(io)?;
        }
        Some(name) => {
            let Some(sub) = cmd.find_subcommand(name).cloned() else {
                let names: Vec<&str> = cmd
                    .get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| s.get_name())
                    .collect();
                return Err(UsageError(format!(
                    "no command `{}`; pages exist for: {}",
                    crate::text::printable(name, 40),
                    names.join(", ")
                )));
            };
            let source = format!(
                "{} {}",
                cmd.get_name(),
                cmd.get_version().unwrap_or_default()
            );
            clap_mangen::Man::new(sub)
                .source(source)
                .render(&mut out)
                .map_err(io)?;
        }
    }
    Ok(out)
}

/// Prints the page (`cmd` is the top-level command line, which `main` passes in: it lives in
/// `cli`, above this module).
pub fn run(args: ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let text = page(cmd, args.command.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&text)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn sample() -> Command {
        Command::new("tool")
            .version("1.0")
            .about("A tool")
            .arg(
                Arg::new("host")
                    .long("host")
                    .env("TOOL_HOST")
                    .help("A host"),
            )
            .subcommand(
                Command::new("sub")
                    .about("Sub things")
                    .arg(
                        Arg::new("port")
                            .long("port")
                            .env("TOOL_PORT")
                            .help("A port"),
                    )
                    .arg(Arg::new("again").long("again").env("TOOL_HOST")),
            )
    }

    #[test]
    fn every_variable_of_the_tree_is_listed_once() {
        let v = env_vars(&sample());
        let names: Vec<&str> = v.iter().map(|(e, _, _)| e.as_str()).collect();
        assert_eq!(names, ["TOOL_HOST", "TOOL_PORT"]);
        assert_eq!(v[1].1, "--port");
        assert_eq!(v[1].2, "A port");
    }

    #[test]
    fn the_main_page_has_the_environment_and_see_also_sections() {
        let text = String::from_utf8(page(sample(), None).unwrap()).unwrap();
        assert!(text.contains("\n.TH tool 1 "), "{text}");
        assert!(text.contains(".SH ENVIRONMENT"), "{text}");
        assert!(text.contains("TOOL_PORT"), "{text}");
        assert!(text.contains("PLUGFLEET_LOG_DIR"), "{text}");
        assert!(text.contains("tool\\-sub(1)"), "{text}");
    }

    #[test]
    fn a_command_gets_its_own_page_and_an_unknown_one_is_a_usage_error() {
        let text = String::from_utf8(page(sample(), Some("sub")).unwrap()).unwrap();
        assert!(text.contains("\n.TH tool-sub 1  \"tool 1.0\""), "{text}");
        assert!(text.contains("Sub things"), "{text}");
        let e = page(sample(), Some("nope")).unwrap_err();
        assert!(
            e.0.contains("no command `nope`") && e.0.contains("sub"),
            "{e}"
        );
    }
}
