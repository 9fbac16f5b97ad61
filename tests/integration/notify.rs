//! Notifications end to end, through the binary and over real HTTP on loopback: the run's
//! events (started, a manual step waiting with its approve command, an operation failed,
//! finished) and `notify(...)` reach every channel in its kind's shape, with the run id and
//! the recovery time so far; a channel that cannot be reached neither stops nor slows the
//! run (a warning line, its outcome journaled, its secret URL never printed); `check`
//! validates channel names and sends nothing.

use crate::actions::receiver;
use crate::durable::{journal_of, run_ids, runbook, text};
use std::time::{Duration, Instant};

const RUNBOOK: &str = r#"notify("ops", "failing over web-01");
manual_step("call the DBA", #{ instructions: "ask for a go" });
try { verify("web-01", #{ active_location: "recovery" }); } catch (e) { note("not yet"); }
"#;

fn project(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runbook.toml"), toml).unwrap();
    std::fs::write(dir.path().join("n.rhai"), RUNBOOK).unwrap();
    dir
}

#[test]
fn every_event_reaches_every_channel_in_its_shape() {
    let (base, got) = receiver();
    let dir = project(&format!(
        "[notify.ops]\nwebhook = \"{base}/ops\"\n\n[notify.chat]\nwebhook = \"{base}/chat\"\nkind = \"slack\"\n"
    ));
    let out = runbook(
        dir.path(),
        &["run", "n.rhai", "--auto-approve", "--no-progress"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = run_ids(dir.path()).pop().unwrap();
    let got = got.lock().unwrap().clone();
    let ops: Vec<serde_json::Value> = got
        .iter()
        .filter(|r| r.path == "/ops")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let mut events: Vec<&str> = ops.iter().map(|o| o["event"].as_str().unwrap()).collect();
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "message",
            "operation_failed",
            "run_finished",
            "run_started",
            "step_waiting"
        ],
        "{ops:?}"
    );
    for o in &ops {
        assert_eq!(o["run"], id.as_str(), "{o}");
        assert!(o["recovery_seconds"].is_u64(), "{o}");
        assert!(o["text"].is_string(), "{o}");
    }
    let of = |event: &str| ops.iter().find(|o| o["event"] == event).unwrap();
    assert_eq!(of("message")["text"], "failing over web-01");
    let waiting = of("step_waiting");
    assert!(
        waiting["approve"]
            .as_str()
            .unwrap()
            .starts_with(&format!("runbook approve {id} 1")),
        "{waiting}"
    );
    assert_eq!(of("operation_failed")["code"], "RB112");
    let chat: Vec<serde_json::Value> = got
        .iter()
        .filter(|r| r.path == "/chat")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(chat.len(), 4, "notify(\"ops\") goes to ops only: {chat:?}");
    assert!(chat.iter().all(|c| c["text"]
        .as_str()
        .unwrap()
        .starts_with(&format!("runbook run {id}: "))));
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert_eq!(
        journal.matches("\"type\":\"notified\"").count(),
        9,
        "{journal}"
    );
}

#[test]
fn an_unreachable_channel_neither_stops_nor_slows_the_run_and_keeps_its_secret() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = project("[notify.ops]\nwebhook_env = \"OPS_HOOK_FOR_TEST\"\n");
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "n.rhai", "--auto-approve", "--no-progress"])
        .current_dir(dir.path())
        .env(
            "OPS_HOOK_FOR_TEST",
            format!("http://127.0.0.1:{port}/s3cret-path"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the run was slowed"
    );
    assert!(all.contains("was not delivered"), "{all}");
    assert!(all.contains("the run goes on"), "{all}");
    assert!(!all.contains("s3cret"), "the secret URL was printed: {all}");
    let id = run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(journal.contains("\"type\":\"notified\""), "{journal}");
    assert!(journal.contains("\"ok\":false"), "{journal}");
    assert!(!journal.contains("s3cret"), "{journal}");
}

#[test]
fn check_validates_channel_names_and_sends_nothing() {
    let (base, got) = receiver();
    let dir = project(&format!("[notify.ops]\nwebhook = \"{base}/ops\"\n"));
    let out = runbook(dir.path(), &["check", "n.rhai"], None);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.path().join("m.rhai"), "notify(\"opps\", \"x\");\n").unwrap();
    let out = runbook(dir.path(), &["check", "m.rhai"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("RB134"), "{}", text(&out));
    assert!(text(&out).contains("did you mean `ops`?"), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(200));
    assert!(got.lock().unwrap().is_empty(), "check sent a notification");
}

/// A resume replays what the earlier attempt did without telling the channels again: a
/// `notify` before the crash reaches them once.
#[test]
fn a_resumed_run_does_not_tell_again_what_it_told_before_the_crash() {
    let (base, got) = receiver();
    let (addr, _server, _sim) = crate::durable::start_server();
    let dir = crate::durable::project(addr);
    let toml = std::fs::read_to_string(dir.path().join("runbook.toml")).unwrap();
    std::fs::write(
        dir.path().join("runbook.toml"),
        format!("{toml}\n[notify.ops]\nwebhook = \"{base}/ops\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("n.rhai"),
        "notify(\"ops\", \"DNS switched to the recovery site\");\nlet j = failover(\"app-01\", #{ kind: \"planned\" });\nwait_job(j, #{ timeout: \"1h\" });\nnote(\"done\");\n",
    )
    .unwrap();
    let run = ["run", "n.rhai", "--target", "sim", "--yes", "--no-progress"];
    // Killed after the failover's answer (records: start, read, intent, issued).
    let out = runbook(dir.path(), &run, Some("4:after"));
    assert!(crate::durable::killed(&out), "{}", text(&out));
    let id = run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(journal.contains("\"issued\""), "{journal}");
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let deadline = Instant::now() + Duration::from_secs(10);
    let told = || {
        got.lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.contains("DNS switched to the recovery site"))
            .count()
    };
    while told() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(told(), 1, "{:?}", got.lock().unwrap());
}

/// A channel that takes the connection and never answers: the run does not wait for it
/// past its end's short settling, and says (and journals) that notifications may be lost.
#[test]
fn notifications_still_in_delivery_when_the_run_ends_are_said_not_dropped() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let dir = project(&format!(
        "[notify.ops]\nwebhook = \"http://127.0.0.1:{port}/ops\"\n"
    ));
    let started = Instant::now();
    let out = runbook(
        dir.path(),
        &["run", "n.rhai", "--auto-approve", "--no-progress"],
        None,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the run was slowed"
    );
    assert!(
        all.contains("were still being delivered when the run ended"),
        "{all}"
    );
    let id = run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(
        journal.contains("still in delivery when the run ended"),
        "{journal}"
    );
}
