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
