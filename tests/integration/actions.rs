//! Actions end to end, through the binary: a command (a shell script) given its arguments
//! as JSON on stdin and the run's variables, its failures catchable and its timeout kept; a
//! webhook over real HTTP on loopback (the body, the idempotency key and a secret header
//! received; a redirect not followed; the secret never printed); and kill -9 between an
//! action's intent and its end, then resume: a non-idempotent action is not run again
//! without an approval, an idempotent one runs again once, a completed one never again.

use crate::durable::{journal_of, killed, run_ids, runbook, spawn, start_server, text, waiting_at};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Appends its stdin and its variables to `calls.log`, prints a line, exits with $1.
const SCRIPT: &str = "#!/bin/sh\ninput=$(cat)\necho \"$input|$RUNBOOK_RUN|$RUNBOOK_STEP|$RUNBOOK_IDEMPOTENCY_KEY\" >> calls.log\necho \"switched: $input\"\necho \"a warning\" >&2\nexit \"$1\"\n";

pub(crate) fn project(toml: &str, runbook_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runbook.toml"), toml).unwrap();
    std::fs::write(dir.path().join("a.rhai"), runbook_text).unwrap();
    write_script(dir.path());
    dir
}

pub(crate) fn write_script(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("act.sh");
    std::fs::write(&path, SCRIPT).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub(crate) fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

const ACTIONS: &str = r#"
[actions.ok]
command = ["./act.sh", "0"]
expected = "45s"

[actions.fails]
command = ["./act.sh", "3"]

[actions.slow]
command = ["sleep", "5"]
timeout = "300ms"
"#;

#[test]
fn a_command_gets_json_on_stdin_and_the_run_variables_and_fails_catchably() {
    let text_of = r#"let r = action("ok", #{ to: "recovery", ttl: 60, names: ["a", "b"] });
note(`ok=${r.ok} exit=${r.exit} output=${r.output}`);
try { action("fails", #{ n: 1 }); } catch (e) { note(`caught: ${e}`); }
try { action("slow"); } catch (e) { note(`caught slow: ${e}`); }
action("fails");
"#;
    let dir = project(ACTIONS, text_of);
    let out = runbook(dir.path(), &["run", "a.rhai", "--no-progress"], None);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let id = run_ids(dir.path()).pop().unwrap();
    let lines = calls(dir.path());
    assert_eq!(lines.len(), 3, "{lines:?}");
    let first: Vec<&str> = lines[0].split('|').collect();
    let args: serde_json::Value = serde_json::from_str(first[0]).unwrap();
    assert_eq!(
        args,
        serde_json::json!({ "to": "recovery", "ttl": 60, "names": ["a", "b"] })
    );
    assert_eq!(first[1], id);
    assert_eq!(first[2], "1");
    assert_eq!(first[3].len(), 36, "an idempotency key: {}", first[3]);
    // Each action has a key of its own.
    assert_ne!(lines[1].split('|').nth(3), Some(first[3]));
    assert!(all.contains("ok=true exit=0 output=switched:"), "{all}");
    assert!(all.contains("a warning"), "stderr is in the tail: {all}");
    assert!(
        all.contains("caught: ") && all.contains("exited with 3"),
        "{all}"
    );
    assert!(
        all.contains("caught slow: ") && all.contains("timeout of 300ms"),
        "{all}"
    );
    // The uncaught failure ends the run at its line, with RB133.
    assert!(all.contains("a.rhai:5:1") && all.contains("RB133"), "{all}");
    // Exit codes, output and durations are journaled.
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert_eq!(journal.matches("\"type\":\"action_intent\"").count(), 4);
    assert_eq!(journal.matches("\"type\":\"action_done\"").count(), 4);
    assert!(journal.contains("\"exit\":3"), "{journal}");
}

#[test]
fn check_and_plan_never_run_an_action_and_name_unknown_ones() {
    let dir = project(
        ACTIONS,
        "action(\"ok\", #{ to: \"recovery\" });\naction(\"fail\");\n",
    );
    let out = runbook(dir.path(), &["check", "a.rhai"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("RB132"), "{}", text(&out));
    assert!(
        text(&out).contains("did you mean `fails`?"),
        "{}",
        text(&out)
    );
    std::fs::write(
        dir.path().join("b.rhai"),
        "action(\"ok\", #{ to: \"recovery\" });\n",
    )
    .unwrap();
    let plan = runbook(dir.path(), &["plan", "b.rhai", "--format", "json"], None);
    assert!(plan.status.success(), "{}", text(&plan));
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let note = &doc["notes"][0];
    assert!(
        note["text"].as_str().unwrap().contains("expected 45s"),
        "{doc}"
    );
    let check = runbook(dir.path(), &["check", "b.rhai"], None);
    assert!(check.status.success(), "{}", text(&check));
    assert!(calls(dir.path()).is_empty(), "check or plan ran the action");
    // A bad declaration is refused when runbook.toml is read.
    std::fs::write(
        dir.path().join("runbook.toml"),
        "[actions.x]\ncommand = [\"a\"]\nwebhook = \"https://example.invalid/\"\n",
    )
    .unwrap();
    let out = runbook(dir.path(), &["run", "b.rhai"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("both a command and a webhook"),
        "{}",
        text(&out)
    );
}

/// One request a receiver got: its path, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A webhook receiver on loopback: answers `/hook` with 200, `/moved` with a 307 to
/// `/elsewhere`, and records every request.
pub(crate) fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = match path.as_str() {
                "/moved" => "HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
                _ => "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nswitched".to_string(),
            };
            seen.lock().unwrap().push(Received {
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (base, got)
}

#[test]
fn a_webhook_gets_the_arguments_and_the_key_follows_no_redirect_and_keeps_its_secret() {
    let (base, got) = receiver();
    let toml = format!(
        "[actions.dns]\nwebhook = \"{base}/hook\"\nsecret_headers = {{ Authorization = \"DNS_TOKEN_FOR_TEST\" }}\n\n[actions.moved]\nwebhook = \"{base}/moved\"\n"
    );
    let dir = project(
        &toml,
        "let r = action(\"dns\", #{ zone: \"corp\", to: \"recovery\" });\nnote(`status ${r.status} ${r.output}`);\naction(\"moved\", #{});\n",
    );
    let secret = "Bearer s3cret-value-never-printed";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .env("DNS_TOKEN_FOR_TEST", secret)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("status 200 switched"), "{all}");
    assert!(all.contains("a redirect, which is not followed"), "{all}");
    assert!(!all.contains("s3cret"), "the secret was printed: {all}");
    let got = got.lock().unwrap().clone();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/hook", "/moved"],
        "a redirect was followed: {got:?}"
    );
    let hook = &got[0];
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "zone": "corp", "to": "recovery" })
    );
    let header = |name: &str| {
        hook.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some(secret));
    let id = run_ids(dir.path()).pop().unwrap();
    assert_eq!(header("x-runbook-run"), Some(id.clone()));
    let key = header("idempotency-key").unwrap();
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    assert!(journal.contains(&key), "the key is the journaled one");
    assert!(
        !journal.contains("s3cret"),
        "the secret reached the journal"
    );
}

/// A live project (target `sim` of a simulator server) whose runbook runs action `act`
/// (idempotent or not) between two reads.
pub(crate) fn live(idempotent: bool) -> (tempfile::TempDir, Arc<runbook::simulator::Server>) {
    let (addr, server, _sim) = start_server();
    let dir = crate::durable::project(addr);
    let mut toml = std::fs::read_to_string(dir.path().join("runbook.toml")).unwrap();
    toml.push_str(&format!(
        "\n[actions.act]\ncommand = [\"./act.sh\", \"0\"]\nidempotent = {idempotent}\n"
    ));
    std::fs::write(dir.path().join("runbook.toml"), toml).unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "let s = status(\"app-01\");\naction(\"act\", #{ vm: \"app-01\" });\nnote(\"after\");\nlet t = status(\"app-02\");\n",
    )
    .unwrap();
    write_script(dir.path());
    (dir, server)
}

pub(crate) const RUN: [&str; 6] = [
    "run",
    "plan.rhai",
    "--target",
    "sim",
    "--yes",
    "--no-progress",
];

/// The sequence numbers of the action's intent and end in a clean run's journal.
pub(crate) fn action_records(idempotent: bool) -> (u64, u64) {
    let (dir, _keep) = live(idempotent);
    let out = runbook(dir.path(), &RUN, None);
    assert!(out.status.success(), "{}", text(&out));
    let id = run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    let seq = |kind: &str| {
        journal
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["type"] == kind)
            .and_then(|r| r["seq"].as_u64())
            .unwrap()
    };
    (seq("action_intent"), seq("action_done"))
}

#[test]
fn killed_between_intent_and_end_an_idempotent_action_runs_again_once() {
    let (intent, _) = action_records(true);
    let (dir, _keep) = live(true);
    let out = runbook(dir.path(), &RUN, Some(&format!("{intent}:after")));
    assert!(killed(&out), "{}", text(&out));
    assert!(calls(dir.path()).is_empty(), "killed before it started");
    let id = run_ids(dir.path()).pop().unwrap();
    let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(calls(dir.path()).len(), 1, "{:?}", calls(dir.path()));
    // Its key is the one the first attempt was given.
    let journal = std::fs::read_to_string(journal_of(dir.path(), &id)).unwrap();
    let key = calls(dir.path())[0].split('|').nth(3).unwrap().to_string();
    assert_eq!(journal.matches(&key).count(), 2, "{journal}");
}

#[test]
fn killed_between_intent_and_end_a_plain_action_waits_for_an_approval() {
    let (intent, _) = action_records(false);
    let (dir, _keep) = live(false);
    let out = runbook(dir.path(), &RUN, Some(&format!("{intent}:after")));
    assert!(killed(&out), "{}", text(&out));
    let id = run_ids(dir.path()).pop().unwrap();
    let child = spawn(dir.path(), &["resume", &id, "--no-progress"]);
    let pid = child.id();
    let waiting = waiting_at(dir.path(), 1, pid);
    assert_eq!(waiting, id);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        calls(dir.path()).is_empty(),
        "run again without an approval"
    );
    let ok = runbook(dir.path(), &["approve", &id, "1"], None);
    assert!(ok.status.success(), "{}", text(&ok));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(calls(dir.path()).len(), 1, "{:?}", calls(dir.path()));
}

#[test]
fn killed_after_the_end_was_recorded_an_action_never_runs_again() {
    for idempotent in [false, true] {
        let (_, done) = action_records(idempotent);
        let (dir, _keep) = live(idempotent);
        let out = runbook(dir.path(), &RUN, Some(&format!("{done}:after")));
        assert!(killed(&out), "{}", text(&out));
        assert_eq!(calls(dir.path()).len(), 1);
        let id = run_ids(dir.path()).pop().unwrap();
        let resumed = runbook(dir.path(), &["resume", &id, "--no-progress"], None);
        assert!(resumed.status.success(), "{}", text(&resumed));
        assert!(
            text(&resumed).contains("not run again"),
            "{}",
            text(&resumed)
        );
        assert_eq!(calls(dir.path()).len(), 1, "idempotent={idempotent}");
    }
}

#[test]
fn a_webhook_that_never_answers_fails_at_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Accepts connections and never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = project(
        &format!("[actions.hang]\nwebhook = \"{base}/hook\"\ntimeout = \"400ms\"\n"),
        "try { action(\"hang\", #{}); } catch (e) { note(`caught: ${e}`); }\n",
    );
    let started = std::time::Instant::now();
    let out = runbook(dir.path(), &["run", "a.rhai", "--no-progress"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no answer within its timeout of 400ms"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
