//! The shell's conventions: completion scripts, manual pages made from the same clap
//! definitions, `-q` and `-v`, log filters from `RUNBOOK_LOG` or `RUST_LOG`, and colour that
//! follows `NO_COLOR`.

use crate::common::{cli, root, text};
use clap::CommandFactory;
use runbook::cli::Cli;
use std::process::{Command, Output, Stdio};

/// Runs the binary in the package root with `env` set and every colour and log variable
/// of the test's own environment removed.
fn with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
    command
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("RUNBOOK_LOG")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the runbook binary runs")
}

/// Every command's path, `runbook` first: `runbook check`, `runbook simulator serve`, ...
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in command.get_subcommands() {
            let mut next = path.clone();
            next.push(sub.get_name().to_string());
            walk(sub, next, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), vec!["runbook".into()], &mut out);
    out
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = cli(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for word in ["runbook", "check", "resume", "what-if", "deny-warnings"] {
            assert!(script.contains(word), "{shell} completes {word}:\n{script}");
        }
    }
    let out = cli(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bash"), "{}", text(&out.stderr));
}

#[test]
fn the_manual_page_names_every_command_and_a_page_is_written_for_each() {
    let out = cli(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH runbook 1"),
        "{page}"
    );
    for path in command_paths().into_iter().skip(1) {
        let name = path.join(" ");
        assert!(page.contains(&name), "runbook(1) names `{name}`:\n{page}");
    }
    for flag in ["\\-\\-quiet", "\\-\\-verbose"] {
        assert!(page.contains(flag), "runbook(1) has {flag}");
    }

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man");
    let out = cli(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for path in command_paths() {
        if path.last().is_some_and(|n| n == "help") {
            continue;
        }
        let file = pages.join(format!("{}.1", path.join("-")));
        let page = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{} was written: {e}", file.display()));
        assert!(page.contains(".SH NAME"), "{}", file.display());
    }
    let serve = std::fs::read_to_string(pages.join("runbook-simulator-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-addr"), "{serve}");
}

#[test]
fn help_shows_what_quiet_and_verbose_do_and_the_speed_default() {
    let out = cli(&["run", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("-q, --quiet"), "{help}");
    assert!(help.contains("-v, --verbose..."), "{help}");
    assert!(help.contains("default: 150"), "{help}");
    assert!(help.contains("<FILE>  The runbook to run"), "{help}");
    let out = cli(&["-q", "-v", "api"]);
    assert_eq!(out.status.code(), Some(2), "-q and -v together are refused");
}

#[test]
fn an_invalid_log_filter_is_an_error_naming_its_variable() {
    for var in ["RUNBOOK_LOG", "RUST_LOG"] {
        let out = with_env(&["api"], &[(var, "runbook=loudest")]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(
            stderr.contains(&format!("{var}=`runbook=loudest` is not a log filter")),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing ran");
    }
}

#[test]
fn logs_follow_runbook_log_then_rust_log_then_verbose() {
    let check = ["check", "runbooks/planned-failover.rhai"];
    let logs = |out: &Output| text(&out.stderr).contains("issuing");
    assert!(!logs(&with_env(&check, &[])), "off by default");
    assert!(logs(&with_env(&check, &[("RUST_LOG", "debug")])));
    assert!(logs(&with_env(&check, &[("RUNBOOK_LOG", "runbook=debug")])));
    assert!(
        !logs(&with_env(
            &check,
            &[("RUNBOOK_LOG", "off"), ("RUST_LOG", "debug")]
        )),
        "RUNBOOK_LOG comes first"
    );
    let verbose = ["-v", "check", "runbooks/planned-failover.rhai"];
    assert!(logs(&with_env(&verbose, &[])));
}

#[test]
fn log_colour_follows_no_color() {
    let check = ["check", "runbooks/planned-failover.rhai"];
    let forced = with_env(&check, &[("RUNBOOK_LOG", "debug"), ("CLICOLOR_FORCE", "1")]);
    let stderr = text(&forced.stderr);
    assert!(stderr.contains("issuing"), "{stderr}");
    assert!(
        stderr.contains("\u{1b}["),
        "CLICOLOR_FORCE colours: {stderr}"
    );
    let plain = with_env(
        &check,
        &[
            ("RUNBOOK_LOG", "debug"),
            ("CLICOLOR_FORCE", "1"),
            ("NO_COLOR", "1"),
        ],
    );
    let stderr = text(&plain.stderr);
    assert!(stderr.contains("issuing"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "NO_COLOR wins: {stderr}");
}

#[test]
fn quiet_silences_the_progress_of_a_run_but_not_its_result() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["planned-failover.rhai", "inventory.toml", "runbook.toml"] {
        std::fs::copy(root().join("runbooks").join(file), dir.path().join(file)).unwrap();
    }
    let runbook = dir.path().join("planned-failover.rhai");
    let args = |quiet: bool| {
        let mut a = vec!["run", runbook.to_str().unwrap(), "--speed", "1000000"];
        if quiet {
            a.insert(0, "-q");
        }
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |quiet: bool| {
        let a = args(quiet);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        with_env(&a, &[("NO_COLOR", "1")])
    };
    let loud = run(false);
    assert!(loud.status.success(), "{}", text(&loud.stderr));
    assert!(text(&loud.stderr).contains("started planned_failover of app-01"));
    let quiet = run(true);
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    let stderr = text(&quiet.stderr);
    assert!(!stderr.contains("started planned_failover"), "{stderr}");
    assert!(stderr.contains("SIMULATION"), "the banner stays: {stderr}");
    assert!(
        text(&quiet.stdout).contains("simulation SUCCEEDED"),
        "{}",
        text(&quiet.stdout)
    );
}

/// A server on every interface says which endpoint the client takes (loopback), not the
/// 0.0.0.0 one it would refuse.
#[test]
fn a_simulator_on_every_interface_says_to_use_loopback() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["simulator", "serve", "--addr", "0.0.0.0:0"])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.contains("on http://0.0.0.0:"), "{first}");
    assert!(first.contains("endpoint = \"http://127.0.0.1:"), "{first}");
    assert!(!first.contains("endpoint = \"http://0.0.0.0"), "{first}");
}

#[test]
fn the_readme_says_how_to_install_and_names_the_shell_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for said in [
        "cargo install --locked --path .",
        "runbook completions bash",
        "runbook man",
        "RUST_LOG",
        "NO_COLOR",
        "-q/--quiet",
        "-v/--verbose",
    ] {
        assert!(readme.contains(said), "the README says {said}");
    }
}
