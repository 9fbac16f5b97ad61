//! A reader that goes away (`runbook check | head -1`, a terminal closed during a run):
//! no panic, the same exit code, and a run finishes its work with its journal complete.

use crate::common::root;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Which stream of the child is closed before it writes anything.
#[derive(Debug, Clone, Copy)]
enum Closed {
    Stdout,
    Stderr,
}

/// Runs the binary in `dir` with `closed` closed from the start; returns the exit code and
/// what the other stream said.
fn run_closed(dir: &Path, args: &[&str], closed: Closed) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runbook binary runs");
    let mut other = String::new();
    match closed {
        Closed::Stdout => {
            drop(child.stdout.take());
            let _ = child.stderr.take().unwrap().read_to_string(&mut other);
        }
        Closed::Stderr => {
            drop(child.stderr.take());
            let _ = child.stdout.take().unwrap().read_to_string(&mut other);
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !other.contains("panicked"),
        "{args:?} with {closed:?} closed: {other}"
    );
    (status.code(), other)
}

#[test]
fn check_and_plan_exit_quietly_with_their_code_when_output_goes_away() {
    let dir = root();
    for closed in [Closed::Stdout, Closed::Stderr] {
        for (args, code) in [
            (vec!["check", "runbooks/*.rhai"], 0),
            (vec!["check", "--format", "json", "runbooks/*.rhai"], 0),
            (
                vec!["check", "--format", "short", "tests/fixtures/*.rhai"],
                1,
            ),
            (vec!["check", "no/such.rhai"], 2),
            (vec!["plan", "runbooks/site-failover.rhai"], 0),
            (vec!["explain"], 0),
            (vec!["api"], 0),
        ] {
            let (status, _) = run_closed(&dir, &args, closed);
            assert_eq!(status, Some(code), "{args:?} with {closed:?} closed");
        }
    }
}

#[test]
fn a_run_whose_output_goes_away_finishes_its_work_and_its_journal() {
    for closed in [Closed::Stdout, Closed::Stderr] {
        let dir = tempfile::tempdir().unwrap();
        for file in ["planned-failover.rhai", "inventory.toml", "runbook.toml"] {
            std::fs::copy(root().join("runbooks").join(file), dir.path().join(file)).unwrap();
        }
        let (status, _) = run_closed(
            dir.path(),
            &[
                "run",
                "planned-failover.rhai",
                "--speed",
                "1000000",
                "--no-progress",
                "--auto-approve",
            ],
            closed,
        );
        assert_eq!(status, Some(0), "{closed:?} closed");
        let runs: Vec<_> = std::fs::read_dir(dir.path().join(".runbook/runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1);
        let journal = std::fs::read_to_string(runs[0].join("journal.jsonl")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(journal.lines().last().unwrap()).unwrap();
        assert_eq!(last["type"], "end", "{closed:?} closed: {journal}");
        assert_eq!(last["state"], "succeeded", "{closed:?} closed: {last}");
        assert!(
            journal.contains("\"commit\"") && journal.contains("\"reverse_replicate\""),
            "the whole runbook ran: {journal}"
        );
    }
}
