//! Bad input gets a clear message, the right exit code and never a panic.

use crate::common::{cli, cli_in, examples, text};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `runbook check` on a runbook written to a fresh folder (with `files` beside it).
fn check_in_temp(runbook: &[u8], files: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), runbook).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let out = cli_in(dir.path(), &["check", "--format", "short", "plan.rhai"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{stderr}"
    );
    (out.status.code(), stdout, stderr)
}

const INVENTORY: (&str, &str) = ("runbook.toml", "inventory = \"inventory.toml\"\n");
const ITEMS: (&str, &str) = ("inventory.toml", "[[items]]\nname = \"web-01\"\n");

fn expect_finding(runbook: &str, code: &str, line: usize) {
    let (status, stdout, _) = check_in_temp(runbook.as_bytes(), &[INVENTORY, ITEMS]);
    assert_eq!(status, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("plan.rhai:{line}:")) && stdout.contains(&format!("[{code}]")),
        "{code} at line {line}: {stdout}"
    );
}

#[test]
fn empty_file_is_a_warning() {
    let (status, stdout, _) = check_in_temp(b"", &[]);
    assert_eq!(status, Some(0));
    assert!(stdout.contains("warning[RB009]"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), "").unwrap();
    let out = cli_in(dir.path(), &["check", "--deny-warnings", "plan.rhai"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--deny-warnings makes warnings fail"
    );
}

#[test]
fn unreadable_inputs_exit_2() {
    let (status, _, stderr) = check_in_temp(b"let x = \"\xff\xfe\";\n", &[]);
    assert_eq!(status, Some(2));
    assert!(
        stderr.contains("not UTF-8") && stderr.contains("line 1"),
        "{stderr}"
    );

    let out = cli(&["check", "no/such/plan.rhai"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no such file"),
        "{}",
        text(&out.stderr)
    );

    let out = cli(&["check", "runbooks"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("directory"),
        "{}",
        text(&out.stderr)
    );

    let out = cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = cli(&["launch", "x.rhai"]);
    assert_eq!(out.status.code(), Some(2), "an unknown command");
}

#[test]
fn runbook_errors_exit_1_at_their_line() {
    expect_finding("let vm = vm(\"web-01\");\nlet x = ;\n", "RB001", 2);
    expect_finding("let a = 1;\nwhile true { a += 1; }\n", "RB109", 2);
    expect_finding("fn down(n) { down(n + 1) }\n\ndown(1);\n", "RB110", 3);
    expect_finding(
        "let a = [];\nfor i in 0..100000 { a.push(i); }\n",
        "RB110",
        2,
    );
    expect_finding("let s = \"abcdefgh\";\nloop { s += s; }\n", "RB110", 2);
    expect_finding("import \"../outside\" as o;\n", "RB007", 1);
    expect_finding("let v = vm(\"web-02\");\n", "RB006", 1);
    expect_finding("let v = vm(\"web-01\");\nfailover(v, #{ kind: \"planned\", drection: \"primary_to_recovery\" });\n", "RB004", 2);
    expect_finding(
        "let v = vm(\"web-01\");\nfailover(v, #{ kind: true });\n",
        "RB005",
        2,
    );
    expect_finding(
        "note(\"x\");\nmanual_step(\"x\", #{ timeout: \"580000000000y\" });\n",
        "RB005",
        2,
    );
}

#[test]
fn an_import_escaping_through_a_link_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.rhai"), "fn f() { 1 }\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("evil.rhai"),
        dir.path().join("evil.rhai"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "import \"evil\" as e;\ne::f();\n",
    )
    .unwrap();
    let out = cli_in(dir.path(), &["check", "--format", "short", "plan.rhai"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("RB007") && stdout.contains("outside the runbook's folder"),
        "{stdout}"
    );
}

#[test]
fn malformed_configuration_exits_2_with_the_line() {
    let (status, _, stderr) = check_in_temp(
        b"note(\"x\");\n",
        &[
            INVENTORY,
            (
                "inventory.toml",
                "[[items]]\nname = \"web-01\"\nfail = [\"planed_failover\"]\n",
            ),
        ],
    );
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("inventory.toml:3:"), "{stderr}");
    assert!(stderr.contains("planed_failover"), "{stderr}");

    let (status, _, stderr) = check_in_temp(
        b"note(\"x\");\n",
        &[(
            "runbook.toml",
            "inventory = \"inventory.toml\"\nspeeed = 3\n",
        )],
    );
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("runbook.toml:2:"), "{stderr}");

    let (status, _, stderr) = check_in_temp(
        b"note(\"x\");\n",
        &[("runbook.toml", "inventory = \"missing.toml\"\n")],
    );
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("missing.toml") && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn a_manual_step_nobody_approves_times_out_as_the_runbook_says_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "manual_step(\"Stop the batch jobs\", #{ timeout: \"1s\" });\nlet j = failover(\"web-01\", #{ kind: \"planned\" });\nwait_job(j);\n",
    )
    .unwrap();
    let out = cli_in(dir.path(), &["run", "plan.rhai", "--no-progress"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("runbook approve") && stderr.contains("waiting up to 1s"),
        "it says how to approve from another terminal: {stderr}"
    );
    assert!(stderr.contains("was not confirmed within 1s"), "{stderr}");
    assert!(
        !stderr.contains("started planned_failover"),
        "nothing was issued: {stderr}"
    );
}

#[test]
fn a_runbook_with_errors_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plan.rhai"), "let v = vm(\"web-01\");\nlet j = failover(v, #{ kind: \"planned\" });\nwait_job(j, #{ timout: \"1h\" });\n").unwrap();
    let out = cli_in(dir.path(), &["run", "plan.rhai", "--no-progress"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RB004") && stderr.contains("nothing was run"),
        "{stderr}"
    );
    assert!(!stderr.contains("started planned_failover"), "{stderr}");
}

#[test]
fn ctrl_c_stops_new_operations_and_never_cancels_the_failover() {
    let examples = examples();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "run",
            "runbooks/planned-failover.rhai",
            "--speed",
            "20",
            "--no-progress",
        ])
        .current_dir(examples.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("started planned_failover") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("started planned_failover"), "{seen}");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{seen}{rest}");
    assert!(rest.contains("RB114"), "{rest}");
    assert!(
        stdout.contains("still in flight") && stdout.contains("planned_failover of app-01"),
        "{stdout}"
    );
    assert!(
        !rest.contains("started commit"),
        "no operation after the interrupt: {rest}"
    );
    assert!(
        !stdout.contains("Cancelled") && !rest.contains("Cancelled"),
        "nothing was cancelled"
    );
    let _ = Path::new("");
}

#[test]
fn an_import_cycle_is_a_finding_not_a_crash() {
    let (status, stdout, stderr) = check_in_temp(
        b"import \"a\" as a;\na::f();\n",
        &[
            ("a.rhai", "import \"b\" as b;\nfn f() { 1 }\n"),
            ("b.rhai", "import \"a\" as a;\nfn g() { 2 }\n"),
        ],
    );
    assert_eq!(status, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("RB007") && stdout.contains("import cycle"),
        "{stdout}"
    );

    // The run refuses the same runbook before issuing anything, and does not crash either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "import \"a\" as a;\na::f();\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.rhai"),
        "import \"a\" as again;\nfn f() { 1 }\n",
    )
    .unwrap();
    let out = cli_in(dir.path(), &["run", "plan.rhai", "--no-progress"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("import cycle"), "{stderr}");
}

#[test]
fn check_goes_on_after_a_file_it_cannot_read() {
    let out = cli(&[
        "check",
        "--format",
        "short",
        "no/such.rhai",
        "runbooks/planned-failover.rhai",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the unreadable file decides the exit code"
    );
    assert!(text(&out.stderr).contains("no such file"));
    assert!(
        text(&out.stdout).contains("runbooks/planned-failover.rhai: ok"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn out_of_range_numbers_are_refused_not_panicked_on() {
    let examples = examples();
    let out = cli_in(
        examples.path(),
        &[
            "run",
            "runbooks/planned-failover.rhai",
            "--speed",
            "1e300",
            "--no-progress",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--speed must be between"),
        "{}",
        text(&out.stderr)
    );

    let (status, _, stderr) = check_in_temp(
        b"note(\"x\");\n",
        &[
            INVENTORY,
            (
                "inventory.toml",
                "start = \"9999-12-31T23:55:00Z\"\n[[items]]\nname = \"web-01\"\n",
            ),
        ],
    );
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("inventory.toml:1:") && stderr.contains("2099"),
        "{stderr}"
    );
}

#[test]
fn a_deep_but_allowed_recursion_runs_as_it_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.rhai"),
        "fn f(n) { if n == 0 { 0 } else { let x = [1, 2, 3]; f(n - 1) + x[0] } }\nnote(`depth ${f(40)}`);\n",
    )
    .unwrap();
    let out = cli_in(dir.path(), &["check", "plan.rhai"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = cli_in(dir.path(), &["run", "plan.rhai", "--no-progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("depth 40"),
        "{}",
        text(&out.stderr)
    );
}
