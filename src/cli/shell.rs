//! What a shell expects of a command-line tool, all from the one clap definition of the
//! commands: completion scripts, manual pages, logs filtered by `RUNBOOK_LOG` or `RUST_LOG`
//! (or `-v`), and colour decided the way other tools decide it (`NO_COLOR`, `CLICOLOR`,
//! `CLICOLOR_FORCE`, a terminal).

use super::Cli;
use crate::error::{exit, Error};
use crate::verbosity::inform;
use clap::CommandFactory;
use std::path::Path;
use tracing_subscriber::EnvFilter;

/// Whether what goes to stderr may be coloured, by anstream's rules: `NO_COLOR` turns
/// colour off, `CLICOLOR_FORCE` on, else only a terminal gets it.
pub(crate) fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// The variables that filter the logs, in the order they are looked at.
const LOG_VARIABLES: [&str; 2] = ["RUNBOOK_LOG", "RUST_LOG"];

/// The log filter: `RUNBOOK_LOG`, else `RUST_LOG`, else what `-v` asks for (none: off).
/// A variable set to something that is not a filter is an error, not silence.
fn log_filter(verbose: u8) -> Result<EnvFilter, Error> {
    for name in LOG_VARIABLES {
        let value = match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => value,
            Ok(_) | Err(std::env::VarError::NotPresent) => continue,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::Usage(format!("{name} is not valid UTF-8")))
            }
        };
        return EnvFilter::builder().parse(&value).map_err(|e| {
            Error::Usage(format!(
                "{name}=`{value}` is not a log filter ({e}); write a level such as `debug`, or targets with levels such as `runbook=debug,reqwest=warn` (or unset {name})"
            ))
        });
    }
    Ok(EnvFilter::new(match verbose {
        0 => "off",
        1 => "runbook=debug",
        2 => "runbook=trace",
        _ => "trace",
    }))
}

/// Sends logs to stderr, filtered as [`log_filter`] says, coloured as [`stderr_color`] says.
pub(crate) fn init_logging(verbose: u8) -> Result<(), Error> {
    let filter = log_filter(verbose)?;
    // A second initialisation (a test calling `main` twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_color())
        // It would report a closed stderr with `eprintln!`, which panics on it.
        .log_internal_errors(false)
        .try_init();
    Ok(())
}

/// `runbook completions SHELL`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<i32, Error> {
    let mut command = Cli::command();
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    Ok(exit::OK)
}

/// `runbook man`: the manual page runbook(1) on stdout, or with `dir` a page for every
/// command (`runbook.1`, `runbook-check.1`, `runbook-simulator-serve.1`, ...) in that folder.
pub(super) fn man(dir: Option<&Path>) -> Result<i32, Error> {
    let command = Cli::command();
    let Some(dir) = dir else {
        let page = main_page(command)
            .map_err(|e| Error::Internal(format!("cannot render the manual page: {e}")))?;
        out!("{page}");
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, &e))?;
    clap_mangen::generate_to(command, dir).map_err(|e| Error::write(dir, &e))?;
    inform!(
        "wrote the manual pages to {} (read one with `man -l {}`)",
        crate::paths::display(dir),
        crate::paths::display(&dir.join("runbook.1"))
    );
    Ok(exit::OK)
}

/// runbook(1): clap_mangen's page of the top command, then every command of the tree
/// (`runbook simulator serve` too) with what it does and the page that describes it.
fn main_page(mut command: clap::Command) -> std::io::Result<String> {
    command.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    let mut roff = roff::Roff::new();
    roff.control("SH", ["ALL COMMANDS"]);
    fn list(roff: &mut roff::Roff, path: &[&str], command: &clap::Command) {
        for sub in command.get_subcommands().filter(|c| c.get_name() != "help") {
            let mut path = path.to_vec();
            path.push(sub.get_name());
            let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
            roff.control("TP", []);
            roff.text([roff::bold(path.join(" "))]);
            roff.text([roff::roman(format!("{about}. See {}(1).", path.join("-")))]);
            list(roff, &path, sub);
        }
    }
    list(&mut roff, &[command.get_name()], &command);
    roff.to_writer(&mut page)?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and every argument says what it is for in `--help` (the man page and
    /// completions show the same text).
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if command.get_about().is_none() && path != "runbook" {
                missing.push(format!("command `{path}`"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("argument `{id}` of `{path}`"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        walk(&command, "runbook", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
        assert!(command.get_about().is_some());
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
