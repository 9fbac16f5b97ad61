//! `runbook lsp` driven as an editor drives it: the built binary spawned, JSON-RPC with
//! Content-Length framing on its standard input and output, messages read until the one
//! expected arrives (with a deadline, never a sleep).

use runbook::script::registry;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any one answer may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// An editor's side of the connection.
struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
    /// Every notification seen so far, in order.
    seen: Vec<Value>,
    _cache: tempfile::TempDir,
}

impl Client {
    /// Starts the server in `dir` and initializes it, as a client with no capabilities.
    fn start(dir: &Path) -> Client {
        Client::start_with(dir, json!({}))
    }

    /// Starts the server in `dir` and initializes it, as a client with `capabilities`.
    fn start_with(dir: &Path, capabilities: Value) -> Client {
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .arg("lsp")
            .current_dir(dir)
            .env("XDG_CACHE_HOME", cache.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the runbook binary starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            messages,
            next_id: 0,
            seen: Vec::new(),
            _cache: cache,
        };
        let root = url(dir);
        let init = client.request(
            "initialize",
            json!({ "processId": null, "rootUri": root, "capabilities": capabilities }),
        );
        let capabilities = &init["capabilities"];
        assert_eq!(capabilities["hoverProvider"], json!(true), "{init}");
        assert_eq!(capabilities["definitionProvider"], json!(true), "{init}");
        assert!(capabilities["completionProvider"].is_object(), "{init}");
        assert!(capabilities["codeActionProvider"].is_object(), "{init}");
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its result (an error response fails the test).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let response = self.wait(|m| m["id"] == json!(id) && m.get("method").is_none());
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    /// Reads messages until one satisfies `wanted`; fails after the deadline.
    fn wait(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => {
                    if message.get("method").is_some() && message.get("id").is_none() {
                        self.seen.push(message.clone());
                    }
                    if wanted(&message) {
                        return message;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no expected message within {DEADLINE:?}; seen: {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server closed its output; seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits for the diagnostics of `uri` at `version` (the document's own check).
    fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let message = self.wait(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["version"] == json!(version)
        });
        message["params"]["diagnostics"].as_array().unwrap().clone()
    }

    /// Waits for diagnostics of `uri` that satisfy `wanted`.
    fn diagnostics_where(&mut self, uri: &str, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let message = self.wait(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && wanted(m["params"]["diagnostics"].as_array().unwrap())
        });
        message["params"]["diagnostics"].as_array().unwrap().clone()
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "rhai", "version": 1, "text": text } }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, (line, character): (u32, u32)) -> Value {
        self.request(
            method,
            json!({
                "textDocument": { "uri": uri },
                "position": { "line": line, "character": character },
                "context": { "triggerKind": 1 },
            }),
        )
    }

    /// Shuts the server down as an editor does and checks that it exits cleanly.
    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut child = self.child;
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx
            .recv_timeout(DEADLINE)
            .expect("the server exits after `exit`")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// One framed message, or `None` at the end of the stream.
fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    Some(serde_json::from_slice(&body).expect("a JSON message"))
}

fn url(path: &Path) -> String {
    url::Url::from_file_path(std::fs::canonicalize(path).unwrap())
        .unwrap()
        .to_string()
}

/// The protocol's position of the first `needle` in `text` (plus `after` characters),
/// counted here in UTF-16 code units independently of the server.
fn position(text: &str, needle: &str, after: usize) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in the text"));
    let at = at
        + needle
            .chars()
            .take(after)
            .map(char::len_utf8)
            .sum::<usize>();
    let before = &text[..at];
    let line = before.matches('\n').count();
    let column = before.rsplit('\n').next().unwrap().encode_utf16().count();
    (line as u32, column as u32)
}

/// A project folder: runbook.toml naming an inventory, and the files given.
fn project(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(
        root.join("runbook.toml"),
        "inventory = \"inventory.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("inventory.toml"),
        "[plans]\nweb-tier = [\"web-01\", \"web-02\"]\n\n[[items]]\nname = \"sql-01\"\nlast_test_failover = \"2026-11-20T21:00:00Z\"\n\n[[items]]\nname = \"web-01\"\n\n[[items]]\nname = \"web-02\"\n\n[[items]]\nname = \"fs-01\"\nactive_location = \"recovery\"\nstate = \"failover_committed\"\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
    }
    (dir, root)
}

const PLAN: &str = r#"import "runbook/failover" as failover;

let db = vm("sql-01");
let web = vms(#{ plan: "web-tier" });
note("😀 sql first"); failover::gruop([db], #{ kind: "planned" }, "1h");
verify(db, #{ active_location: "recovery" });
failover::protect([db], "2h");
"#;

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics
        .iter()
        .map(|d| d["code"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn a_typo_is_diagnosed_explained_completed_and_fixed_as_an_editor_sees_it() {
    let (_dir, root) = project(&[("plan.rhai", PLAN)]);
    let uri = url(&root.join("plan.rhai"));
    let mut client = Client::start(&root);
    client.open(&uri, PLAN);

    // The diagnostic: code, severity, a range in UTF-16 units (😀 is two), a link to the
    // code's explanation, and the quick fix's replacement.
    let diagnostics = client.diagnostics(&uri, 1);
    assert_eq!(codes(&diagnostics), ["RB002"], "{diagnostics:#?}");
    let typo = &diagnostics[0];
    assert_eq!(typo["severity"], json!(1));
    assert_eq!(typo["source"], json!("runbook"));
    assert_eq!(
        typo["range"],
        json!({ "start": { "line": 4, "character": 32 }, "end": { "line": 4, "character": 37 } })
    );
    let message = typo["message"].as_str().unwrap();
    assert!(
        message.contains("did you mean `failover::group`?"),
        "{message}"
    );
    let href = typo["codeDescription"]["href"].as_str().unwrap();
    let explanation = url::Url::parse(href).unwrap().to_file_path().unwrap();
    let text = std::fs::read_to_string(&explanation).unwrap();
    assert!(text.starts_with("**RB002** (unknown-function)"), "{text}");

    // Hover: a primitive's and an option's documentation come from the registry, a VM's
    // state and a recovery plan's groups from the inventory.
    let hover = |client: &mut Client, needle: &str, after: usize| -> String {
        let hover = client.at("textDocument/hover", &uri, position(PLAN, needle, after));
        hover["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let shown = hover(&mut client, "vm(", 0);
    assert!(shown.contains(registry::find("vm").unwrap().doc), "{shown}");
    let shown = hover(&mut client, "\"sql-01\"", 2);
    assert!(shown.contains("state: `protected`"), "{shown}");
    assert!(shown.contains("active on: `primary`"), "{shown}");
    let shown = hover(&mut client, "\"web-tier\"", 2);
    assert!(shown.contains("1. `web-01`, `web-02`"), "{shown}");
    let shown = hover(&mut client, "active_location", 1);
    let spec = registry::find("verify")
        .unwrap()
        .option("active_location")
        .unwrap();
    assert!(shown.contains(spec.doc), "{shown}");
    assert!(
        shown.contains("one of \"primary\", \"recovery\""),
        "{shown}"
    );

    // Completion: VM names inside vm("..."), plans inside vms(#{ plan: "..." }), a
    // primitive's option keys and values, the stdlib module's functions after `failover::`.
    let labels = |client: &mut Client, needle: &str, after: usize| -> Vec<String> {
        let items = client.at(
            "textDocument/completion",
            &uri,
            position(PLAN, needle, after),
        );
        let list = items.get("items").unwrap_or(&items);
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        labels(&mut client, "\"sql-01\"", 1),
        ["fs-01", "sql-01", "web-01", "web-02"]
    );
    assert_eq!(labels(&mut client, "\"web-tier\"", 1), ["web-tier"]);
    assert_eq!(labels(&mut client, "plan:", 0), ["name", "plan"]);
    assert_eq!(
        labels(&mut client, "active_location", 0),
        ["active_location", "healthy", "replicating"]
    );
    assert_eq!(
        labels(&mut client, "\"recovery\"", 1),
        ["primary", "recovery"]
    );
    let functions = labels(&mut client, "failover::protect", 10);
    assert!(
        functions.contains(&"group".to_string()) && functions.contains(&"protect".to_string()),
        "{functions:?}"
    );
    let primitives = labels(&mut client, "verify", 3);
    assert_eq!(
        primitives.len(),
        registry::PRIMITIVES.len(),
        "every primitive: {primitives:?}"
    );

    // The quick fix replaces the typo.
    let actions = client.request(
        "textDocument/codeAction",
        json!({
            "textDocument": { "uri": uri },
            "range": typo["range"],
            "context": { "diagnostics": [typo] },
        }),
    );
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["kind"], json!("quickfix"));
    assert_eq!(
        actions[0]["edit"]["changes"][&uri],
        json!([{ "range": typo["range"], "newText": "group" }])
    );

    // The editor applies it: the check of that version finds nothing.
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri, "version": 2 },
            "contentChanges": [{ "range": typo["range"], "text": "group" }],
        }),
    );
    let fixed = client.diagnostics(&uri, 2);
    assert_eq!(fixed, Vec::<Value>::new());
    client.stop();
}

#[test]
fn unsaved_module_buffers_are_checked_and_definitions_cross_files() {
    let steps = "import \"runbook/failover\" as failover;\n\n/// Fails `vms` over, planned, and protects them again.\nfn go_over(vms) {\n    failover::group(vms, #{ kind: \"planned\" }, \"1h\");\n    failover::protect(vms, \"2h\");\n}\n";
    let plan = "import \"runbook/failover\" as failover;\nimport \"steps\" as steps;\n\nsteps::go_over([vm(\"sql-01\")]);\nfailover::protect([vm(\"sql-01\")], \"2h\");\n";
    let (_dir, root) = project(&[("plan.rhai", plan), ("steps.rhai", steps)]);
    let plan_uri = url(&root.join("plan.rhai"));
    let steps_uri = url(&root.join("steps.rhai"));
    let mut client = Client::start(&root);
    client.open(&plan_uri, plan);
    let first = client.diagnostics(&plan_uri, 1);
    assert!(!codes(&first).contains(&"RB002"), "{first:#?}");

    // Go to definition: into the module's file, and into the stdlib's cached copy.
    let found = client.at(
        "textDocument/definition",
        &plan_uri,
        position(plan, "go_over", 1),
    );
    assert_eq!(found["uri"], json!(steps_uri));
    assert_eq!(
        found["range"]["start"],
        json!({ "line": 3, "character": 3 })
    );
    let found = client.at(
        "textDocument/definition",
        &plan_uri,
        position(plan, "protect", 0),
    );
    let file = url::Url::parse(found["uri"].as_str().unwrap())
        .unwrap()
        .to_file_path()
        .unwrap();
    let stdlib = std::fs::read_to_string(&file).unwrap();
    let line = found["range"]["start"]["line"].as_u64().unwrap() as usize;
    assert!(
        stdlib.lines().nth(line).unwrap().starts_with("fn protect("),
        "{stdlib}"
    );
    let hover = client.at(
        "textDocument/hover",
        &plan_uri,
        position(plan, "go_over", 0),
    );
    let shown = hover["contents"]["value"].as_str().unwrap();
    assert!(shown.contains("Fails `vms` over, planned"), "{shown}");

    // The module is renamed in the editor, not saved: the runbook's check reads the buffer.
    let renamed = steps.replace("go_over", "go_on");
    client.open(&steps_uri, &renamed);
    let diagnostics = client.diagnostics_where(&plan_uri, |d| codes(d).contains(&"RB002"));
    assert_eq!(codes(&diagnostics), ["RB002"], "{diagnostics:#?}");
    let message = diagnostics[0]["message"].as_str().unwrap();
    assert!(
        message.contains("module `steps` has no function `go_over`"),
        "{message}"
    );
    assert!(
        message.contains("did you mean `steps::go_on`?"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("steps.rhai")).unwrap(),
        steps,
        "nothing is written to the user's files"
    );

    // Closing the buffer drops it: the file on disk is what imports read again.
    client.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": steps_uri } }),
    );
    client.diagnostics_where(&plan_uri, |d| !codes(d).contains(&"RB002"));
    client.stop();
}

#[test]
fn findings_inside_a_module_carry_the_chain_of_calls_and_a_burst_of_changes_publishes_in_order() {
    let steps = "fn fail_over_and_commit(vm) {\n    let job = failover(vm, #{ kind: \"planned\" });\n    wait_job(job, #{ timeout: \"1h\" });\n    wait_job(commit(vm), #{ timeout: \"10m\" });\n}\n";
    let plan = "import \"steps\" as steps;\n\nsteps::fail_over_and_commit(vm(\"sql-01\"));\n";
    let (_dir, root) = project(&[("plan.rhai", plan), ("steps.rhai", steps)]);
    let plan_uri = url(&root.join("plan.rhai"));
    let steps_uri = url(&root.join("steps.rhai"));
    let mut client = Client::start(&root);
    client.open(&plan_uri, plan);
    client.diagnostics(&plan_uri, 1);
    // The commit without a verification is found in the module, where it is written,
    // with the runbook's call as related information.
    let in_module = client.diagnostics_where(&steps_uri, |d| !d.is_empty());
    let commit = in_module
        .iter()
        .find(|d| d["code"] == "RB108")
        .expect("RB108");
    assert_eq!(commit["range"]["start"]["line"], json!(3));
    let related = commit["relatedInformation"].as_array().unwrap();
    assert_eq!(related[0]["location"]["uri"], json!(plan_uri));
    assert_eq!(related[0]["location"]["range"]["start"]["line"], json!(2));
    assert!(related[0]["message"]
        .as_str()
        .unwrap()
        .contains("fail_over_and_commit"));

    // Changes in a burst: whatever is published for the runbook afterwards is never of an
    // older version than one published before it.
    for version in 2..=6 {
        let text = format!("{plan}// edit {version}\n");
        client.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": plan_uri, "version": version },
                "contentChanges": [{ "text": text }],
            }),
        );
    }
    client.diagnostics(&plan_uri, 6);
    let versions: Vec<i64> = client
        .seen
        .iter()
        .filter(|m| m["params"]["uri"] == json!(plan_uri))
        .filter_map(|m| m["params"]["version"].as_i64())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    assert_eq!(versions.last(), Some(&6));
    client.stop();
}

#[test]
fn inventories_changed_on_disk_are_read_again() {
    let plan = "note(vm(\"sql-01\").name);\n";
    let (_dir, root) = project(&[("plan.rhai", plan)]);
    let good = std::fs::read_to_string(root.join("inventory.toml")).unwrap();
    std::fs::write(root.join("inventory.toml"), "[[items]]\nnom = \"x\"\n").unwrap();
    let uri = url(&root.join("plan.rhai"));
    let watching =
        json!({ "workspace": { "didChangeWatchedFiles": { "dynamicRegistration": true } } });
    let mut client = Client::start_with(&root, watching);
    let register = client.wait(|m| m["method"] == "client/registerCapability");
    let id = register["id"].clone();
    let watcher = &register["params"]["registrations"][0];
    assert_eq!(watcher["method"], json!("workspace/didChangeWatchedFiles"));
    client.send(&json!({ "jsonrpc": "2.0", "id": id, "result": null }));
    client.open(&uri, plan);

    // A broken inventory: one error that says where and why, as `check` exits 2 for it.
    let diagnostics = client.diagnostics(&uri, 1);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let message = diagnostics[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("this runbook cannot be checked: "),
        "{message}"
    );
    assert!(message.contains("inventory.toml"), "{message}");

    // Mended on disk: the runbook is clean; then the VM leaves the inventory.
    let changed = |client: &mut Client| {
        let file = url(&root.join("inventory.toml"));
        client.notify(
            "workspace/didChangeWatchedFiles",
            json!({ "changes": [{ "uri": file, "type": 2 }] }),
        );
    };
    std::fs::write(root.join("inventory.toml"), &good).unwrap();
    changed(&mut client);
    client.diagnostics_where(&uri, |d| d.is_empty());
    std::fs::write(
        root.join("inventory.toml"),
        good.replace("sql-01", "sql-02"),
    )
    .unwrap();
    changed(&mut client);
    let diagnostics = client.diagnostics_where(&uri, |d| !d.is_empty());
    assert_eq!(codes(&diagnostics), ["RB006"], "{diagnostics:#?}");
    client.stop();
}

#[test]
fn a_stream_that_is_not_the_protocol_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .arg("lsp")
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Content-Length: 5\r\n\r\nnope!").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("language server"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A message announced at terabytes is refused before anything is allocated for it: the
/// server exits with its error instead of aborting (the stream stays open meanwhile).
#[test]
fn a_huge_announced_message_is_refused_not_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .arg("lsp")
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"Content-Length: 9999999999999\r\n\r\n{")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("more than the 64 MiB"), "{stderr}");
}
