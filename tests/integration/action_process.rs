//! A command action's processes, through the binary: its own process group (the
//! terminal's Ctrl-C does not cut it off; at its timeout the whole group is killed, so what
//! it started stops too), a process it left in the background holding its output open does
//! not hold the run past the timeout, and a huge output (of a command or a webhook) is kept
//! as its tail, never whole in memory. Its secrets: a command is not given the runbook's
//! credentials nor the project's secrets, and a secret a webhook echoes is redacted.

use crate::actions::project;
use crate::durable::{runbook, text};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn a_process_left_in_the_background_does_not_hold_the_run_past_the_timeout() {
    let dir = project(
        "[actions.bg]\ncommand = [\"sh\", \"-c\", \"sleep 15 & echo started; exit 0\"]\ntimeout = \"2s\"\n",
        "let r = action(\"bg\");\nnote(`output=${r.output}`);\n",
    );
    let started = Instant::now();
    let out = runbook(dir.path(), &["run", "a.rhai", "--no-progress"], None);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held {:?}: {}",
        started.elapsed(),
        text(&out)
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("output=started"), "{}", text(&out));
}

#[test]
fn at_its_timeout_the_whole_group_of_a_command_is_killed() {
    let dir = project(
        "[actions.slow]\ncommand = [\"sh\", \"-c\", \"( sleep 4; echo x >> done.txt )\"]\ntimeout = \"2s\"\n",
        "try { action(\"slow\"); } catch (e) { note(`caught: ${e}`); }\n",
    );
    let started = Instant::now();
    let out = runbook(dir.path(), &["run", "a.rhai", "--no-progress"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("timeout of 2s"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    assert!(
        !dir.path().join("done.txt").exists(),
        "a process of the action went on after its timeout"
    );
}

#[test]
fn ctrl_c_at_the_terminal_does_not_cut_an_action_off() {
    use std::os::unix::process::CommandExt;
    let dir = project(
        "[actions.switch]\ncommand = [\"sh\", \"-c\", \"echo > started.txt; sleep 1; echo x >> done.txt\"]\ntimeout = \"20s\"\n",
        "action(\"switch\");\nnote(\"after\");\n",
    );
    // The run in a group of its own, as a terminal's foreground job.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("started.txt").exists() {
        assert!(Instant::now() < deadline, "the action never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let group = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a signal to the group of the process this test started.
    assert_eq!(unsafe { libc::killpg(group, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir.path().join("done.txt").exists() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-C cut the action off: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The largest resident size process `pid` had (VmHWM, in KiB), if it still runs.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A webhook on loopback that answers with `size` bytes of `z`.
fn big_webhook(size: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let chunk = vec![b'z'; 1 << 20];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                if stream.write_all(&chunk[..n]).is_err() {
                    break;
                }
                left -= n;
            }
        }
    });
    base
}

#[test]
fn a_huge_output_is_kept_as_its_tail_never_whole_in_memory() {
    let base = big_webhook(300_000_000);
    let dir = project(
        &format!("[actions.big]\ncommand = [\"sh\", \"-c\", \"yes | head -c 400000000; echo end\"]\ntimeout = \"60s\"\n\n[actions.hook]\nwebhook = \"{base}/hook\"\ntimeout = \"60s\"\n\n[actions.hold]\ncommand = [\"sleep\", \"1\"]\n"),
        "let r = action(\"big\");\nnote(`big ${r.output.len()}`);\nlet w = action(\"hook\");\nnote(`hook ${w.output.len()}`);\naction(\"hold\");\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("big 2047"), "{}", text(&out));
    assert!(text(&out).contains("hook 2048"), "{}", text(&out));
    assert!(peak > 0, "never measured");
    assert!(peak < 150 * 1024, "the run took {peak} KiB at its peak");
}

#[test]
fn a_command_is_not_given_the_runbooks_credentials_nor_the_projects_secrets() {
    let (base, _got) = crate::actions::receiver();
    let dir = project(
        "[actions.dump]\ncommand = [\"sh\", \"-c\", \"env > env.txt\"]\n\n[actions.hook]\nwebhook = \"http://127.0.0.1:9/hook\"\nsecret_headers = { Authorization = \"HOOK_HEADER_VAR\" }\n\n[notify.ops]\nwebhook_env = \"OPS_URL_VAR\"\nkind = \"json\"\nsecret_headers = { X-Key = \"OPS_HEADER_VAR\" }\n",
        "action(\"dump\");\n",
    );
    let hidden = [
        "AZURE_ACCESS_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "IDENTITY_HEADER",
        "IDENTITY_ENDPOINT",
        "HOOK_HEADER_VAR",
        "OPS_HEADER_VAR",
        "OPS_URL_VAR",
    ];
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"));
    cmd.args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .env("KEPT_FOR_THE_ACTION", "visible");
    for var in hidden {
        cmd.env(var, format!("value-of-{var}"));
    }
    cmd.env("OPS_URL_VAR", format!("{base}/ops"));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.contains("KEPT_FOR_THE_ACTION=visible"), "{env}");
    for var in hidden {
        assert!(
            !env.contains(&format!("{var}=")),
            "the command was given {var}"
        );
    }
}

/// A webhook on loopback that answers with the request's head (its headers) as the body.
fn echoing_webhook() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let status = if head.starts_with("POST /fail") {
                "500 Oops"
            } else {
                "200 OK"
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                head.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    base
}

#[test]
fn a_webhook_that_echoes_its_secret_header_has_it_redacted_from_its_output() {
    let base = echoing_webhook();
    let dir = project(
        &format!("[actions.echo]\nwebhook = \"{base}/ok\"\nsecret_headers = {{ Authorization = \"ECHO_TOKEN_VAR\" }}\n\n[actions.fail]\nwebhook = \"{base}/fail\"\nsecret_headers = {{ X-Key = \"ECHO_KEY_VAR\" }}\n"),
        "let r = action(\"echo\");\nnote(`echoed ${r.output}`);\naction(\"fail\");\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .env("ECHO_TOKEN_VAR", "Bearer tok-SECRET-1")
        .env("ECHO_KEY_VAR", "key-SECRET-2")
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("authorization: ***"), "{all}");
    assert!(all.contains("x-key: ***"), "the failure's output: {all}");
    assert!(!all.contains("SECRET"), "a secret was printed: {all}");
    let id = crate::durable::run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(crate::durable::journal_of(dir.path(), &id)).unwrap();
    assert!(journal.contains("***"), "{journal}");
    assert!(
        !journal.contains("SECRET"),
        "a secret was journaled: {journal}"
    );
}

#[test]
fn a_webhook_url_from_the_environment_that_does_not_parse_is_never_printed() {
    let dir = project(
        "[notify.ops]\nwebhook_env = \"OPS_HOOK_URL_VAR\"\nkind = \"json\"\n",
        "notify(\"ops\", \"hello\");\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "a.rhai", "--no-progress"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .env("OPS_HOOK_URL_VAR", "hooks.example/token=SECRET-IN-URL")
        .output()
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("the URL in $OPS_HOOK_URL_VAR is not a URL"),
        "{all}"
    );
    assert!(!all.contains("SECRET-IN-URL"), "the URL was printed: {all}");
    let id = crate::durable::run_ids(dir.path()).pop().unwrap();
    let journal = std::fs::read_to_string(crate::durable::journal_of(dir.path(), &id)).unwrap();
    assert!(
        !journal.contains("SECRET-IN-URL"),
        "the URL was journaled: {journal}"
    );
}
