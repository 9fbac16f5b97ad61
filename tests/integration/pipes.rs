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

/// Waits until a run in `dir` waits at its first manual step; returns the run's id.
fn waiting_at_step_1(dir: &Path) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let runs = dir.join(".runbook/runs");
        for entry in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
            let waiting: Option<serde_json::Value> =
                std::fs::read_to_string(entry.path().join("waiting.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            if waiting.is_some_and(|w| w["step"] == 1) {
                return entry.file_name().to_string_lossy().into_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never waited at its step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_run_whose_terminal_hangs_up_goes_on_and_completes_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "manual_step(\"Stop the batch jobs\", #{ timeout: \"10m\" });\nlet j = failover(\"web-01\", #{ kind: \"planned\" });\nwait_job(j);\nwait_job(commit(\"web-01\"));\nwait_job(reverse_replicate(\"web-01\"));\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "plan.rhai", "--speed", "1000000", "--no-progress"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = waiting_at_step_1(dir.path());
    // The terminal goes away: its output is closed and the run gets a hang-up.
    drop(child.stdout.take());
    drop(child.stderr.take());
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    let approve = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["approve", &id, "1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let journal = std::fs::read_to_string(
        dir.path()
            .join(".runbook/runs")
            .join(&id)
            .join("journal.jsonl"),
    )
    .unwrap();
    let last: serde_json::Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "end", "{journal}");
    assert_eq!(last["state"], "succeeded", "{journal}");
    assert!(journal.contains("\"reverse_replicate\""), "{journal}");
}
