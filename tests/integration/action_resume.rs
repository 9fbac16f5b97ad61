//! Actions across attempts, through the binary: the approval to run a cut-off action again
//! is a step of the run, numbered alike by every later attempt (an old approval never
//! approves another step); an action that failed where the run stopped is run again by
//! the resume (asked first when it is not idempotent), and one that never started (a
//! missing variable) is simply run.

use crate::actions::{action_records, calls, live, RUN};
use crate::durable::{journal_of, killed, run_ids, runbook, spawn, text, waiting_at};

/// The runbook of [`live`] with a manual step after the action.
const WITH_STEP: &str = "let s = status(\"app-01\");\naction(\"act\", #{ vm: \"app-01\" });\nmanual_step(\"later\");\nlet t = status(\"app-02\");\n";

#[test]
fn the_approval_to_run_an_action_again_is_a_step_every_later_attempt_counts() {
    let (intent, _) = action_records(false);
    let (dir, _keep) = live(false);
    std::fs::write(dir.path().join("plan.rhai"), WITH_STEP).unwrap();
    let out = runbook(dir.path(), &RUN, Some(&format!("{intent}:after")));
    assert!(killed(&out), "{}", text(&out));
    let id = run_ids(dir.path()).pop().unwrap();
    // The first resume asks to run the action again (step 1), then waits at `later` (2).
    let mut first = spawn(dir.path(), &["resume", &id, "--no-progress"]);
    waiting_at(dir.path(), 1, first.id());
    let ok = runbook(dir.path(), &["approve", &id, "1"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    waiting_at(dir.path(), 2, first.id());
    assert_eq!(calls(dir.path()).len(), 1, "{:?}", calls(dir.path()));
    first.kill().unwrap();
    first.wait().unwrap();
    // The second resume replays the approval as step 1: `later` is step 2 again, which
    // the approval of step 1 does not approve.
    let second = spawn(dir.path(), &["resume", &id, "--no-progress"]);
    let pid = second.id();
    waiting_at(dir.path(), 2, pid);
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(
        journal.contains("\"type\":\"step\"") && journal.contains("run action `act` again"),
        "{journal}"
    );
    let ok = runbook(dir.path(), &["approve", &id, "2"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(calls(dir.path()).len(), 1, "{:?}", calls(dir.path()));
}

/// [`live`] with action `act` replaced by `action` (the TOML lines after its name).
fn live_with(
    action: &str,
) -> (
    tempfile::TempDir,
    std::sync::Arc<runbook::simulator::Server>,
) {
    let (dir, server) = live(false);
    let path = dir.path().join("runbook.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    let start = toml.find("[actions.act]").unwrap();
    std::fs::write(
        &path,
        format!("{}[actions.act]\n{action}\n", &toml[..start]),
    )
    .unwrap();
    (dir, server)
}

/// Runs `sh -c` that logs a call and fails while `fail.flag` exists.
const FLAKY: &str = "command = [\"sh\", \"-c\", \"echo call >> calls.log; test ! -e fail.flag\"]";

#[test]
fn an_action_that_failed_where_the_run_stopped_runs_again_on_resume() {
    // Idempotent: run again without asking.
    let (dir, _keep) = live_with(&format!("{FLAKY}\nidempotent = true"));
    std::fs::write(dir.path().join("fail.flag"), "").unwrap();
    let out = runbook(dir.path(), &RUN, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(calls(dir.path()).len(), 1);
    std::fs::remove_file(dir.path().join("fail.flag")).unwrap();
    let id = run_ids(dir.path()).pop().unwrap();
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(calls(dir.path()).len(), 2, "run again once");
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert_eq!(journal.matches("\"type\":\"action_done\"").count(), 2);

    // Not idempotent: the operator is asked first, as a step.
    let (dir, _keep) = live_with(FLAKY);
    std::fs::write(dir.path().join("fail.flag"), "").unwrap();
    let out = runbook(dir.path(), &RUN, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::remove_file(dir.path().join("fail.flag")).unwrap();
    let id = run_ids(dir.path()).pop().unwrap();
    let child = spawn(dir.path(), &["resume", &id, "--no-progress"]);
    waiting_at(dir.path(), 1, child.id());
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(calls(dir.path()).len(), 1, "run again without an approval");
    let ok = runbook(dir.path(), &["approve", &id, "1"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(calls(dir.path()).len(), 2);
}

#[test]
fn a_caught_failure_the_run_went_on_from_is_replayed_not_run_again() {
    let (dir, _keep) = live_with(FLAKY);
    std::fs::write(
        dir.path().join("plan.rhai"),
        "let s = status(\"app-01\");\nlet failed = false;\ntry { action(\"act\"); } catch (e) { failed = true; }\nlet t = status(\"app-02\");\nif failed { throw \"stop\"; }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("fail.flag"), "").unwrap();
    let out = runbook(dir.path(), &RUN, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    std::fs::remove_file(dir.path().join("fail.flag")).unwrap();
    let id = run_ids(dir.path()).pop().unwrap();
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(
        text(&resumed).contains("not run again"),
        "{}",
        text(&resumed)
    );
    assert_eq!(calls(dir.path()).len(), 1, "the script went on from it");
}

#[test]
fn an_action_that_never_started_is_run_by_the_resume_without_asking() {
    let (base, got) = crate::actions::receiver();
    let (dir, _keep) = live_with(&format!(
        "webhook = \"{base}/hook\"\nsecret_headers = {{ Authorization = \"HOOK_TOKEN_NEVER_SET\" }}"
    ));
    let out = runbook(dir.path(), &RUN, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("HOOK_TOKEN_NEVER_SET"),
        "{}",
        text(&out)
    );
    assert!(got.lock().unwrap().is_empty());
    let id = run_ids(dir.path()).pop().unwrap();
    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["resume", &id, "--no-progress"])
        .current_dir(dir.path())
        .env("AZURE_ACCESS_TOKEN", crate::durable::TOKEN)
        .env("HOOK_TOKEN_NEVER_SET", "Bearer x")
        .env_remove("RUNBOOK_CRASH_AT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(got.lock().unwrap().len(), 1, "it ran once");
}
