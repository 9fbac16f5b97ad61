//! Hostile inputs: files outside the project, special files, huge files and lines. Nothing
//! outside the project is ever shown, nothing blocks, nothing grows without bound.

use crate::common::{cli_in, text};
use std::path::Path;
use std::process::Output;

/// A secret that must never appear in any output.
const SECRET: &str = "SECRET_TOKEN=hunter2-do-not-print";

/// A folder outside the project with a secret in a TOML-ish and a Rhai-ish file.
fn outside() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.toml"), format!("{SECRET}\n")).unwrap();
    std::fs::write(dir.path().join("secret.rhai"), format!("{SECRET}\n")).unwrap();
    dir
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

/// Asserts `out` exited 2, names the refusal and shows no secret, in any format.
fn refused(out: &Output, what: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{what}: {stdout}{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{what} shows what is outside the project: {stdout}{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn check(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    cli_in(dir, &all)
}

#[test]
fn an_inventory_outside_the_project_is_refused_unread_by_every_command() {
    let out_dir = outside();
    let secret = out_dir.path().join("secret.toml");
    let escape = format!(
        "../{}/secret.toml",
        out_dir.path().file_name().unwrap().to_string_lossy()
    );
    let linked = project(&[("plan.rhai", "note(\"x\");\n")]);
    std::os::unix::fs::symlink(&secret, linked.path().join("inventory.toml")).unwrap();
    std::fs::write(
        linked.path().join("runbook.toml"),
        "inventory = \"inventory.toml\"\n",
    )
    .unwrap();
    let named = [
        secret.display().to_string(),
        "/proc/self/environ".to_string(),
        escape,
    ];
    let mut projects = vec![linked];
    for path in &named {
        projects.push(project(&[
            ("plan.rhai", "note(\"x\");\n"),
            ("runbook.toml", &format!("inventory = \"{path}\"\n")),
        ]));
    }
    for dir in &projects {
        for format in ["human", "short", "json", "sarif", "github"] {
            let out = check(dir.path(), &["--format", format, "plan.rhai"]);
            refused(&out, &format!("check --format {format}"));
            assert!(
                text(&out.stderr).contains("outside"),
                "{}",
                text(&out.stderr)
            );
        }
        refused(&cli_in(dir.path(), &["plan", "plan.rhai"]), "plan");
        refused(
            &cli_in(dir.path(), &["run", "plan.rhai", "--no-progress"]),
            "run",
        );
    }
}

#[test]
fn a_runbook_or_runbook_toml_linked_out_of_the_project_is_refused_unread() {
    let out_dir = outside();
    let dir = project(&[("plan.rhai", "note(\"x\");\n")]);
    std::os::unix::fs::symlink(
        out_dir.path().join("secret.rhai"),
        dir.path().join("evil.rhai"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env.rhai")).unwrap();
    for args in [
        vec!["evil.rhai"],
        vec!["env.rhai"],
        vec!["--format", "json", "*.rhai"],
        vec!["--format", "github", "*.rhai"],
    ] {
        let out = check(dir.path(), &args);
        refused(&out, &format!("check {args:?}"));
    }
    let out = check(dir.path(), &["--format", "short", "*.rhai"]);
    assert!(
        text(&out.stdout).contains("plan.rhai: ok"),
        "the other files are still checked: {}",
        text(&out.stdout)
    );
    refused(&cli_in(dir.path(), &["plan", "evil.rhai"]), "plan");
    refused(
        &cli_in(dir.path(), &["run", "evil.rhai", "--no-progress"]),
        "run",
    );

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("plan.rhai"), "note(\"x\");\n").unwrap();
    std::os::unix::fs::symlink(out_dir.path().join("secret.toml"), sub.join("runbook.toml"))
        .unwrap();
    refused(&check(&sub, &["plan.rhai"]), "a linked runbook.toml");
}

#[test]
fn special_and_huge_files_are_refused_without_blocking_or_growing() {
    let dir = project(&[("plan.rhai", "note(\"x\");\n")]);
    let fifo = dir.path().join("pipe.rhai");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // Nobody ever writes to the FIFO: opening it for reading the usual way would block.
    let out = check(dir.path(), &["pipe.rhai"]);
    refused(&out, "a FIFO");
    assert!(text(&out.stderr).contains("FIFO"), "{}", text(&out.stderr));

    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.rhai")).unwrap();
    refused(&check(dir.path(), &["zero.rhai"]), "a link to /dev/zero");
    let out = check(Path::new("/dev"), &["zero"]);
    refused(&out, "/dev/zero itself");
    assert!(
        text(&out.stderr).contains("device"),
        "{}",
        text(&out.stderr)
    );
    let out = check(dir.path(), &["--inventory", "/dev/zero", "plan.rhai"]);
    refused(&out, "--inventory /dev/zero");

    let big = format!("// {}\n", "x".repeat(9 << 20));
    std::fs::write(dir.path().join("big.rhai"), &big).unwrap();
    std::fs::write(dir.path().join("big.toml"), &big).unwrap();
    let out = check(dir.path(), &["big.rhai"]);
    refused(&out, "a 9 MiB runbook");
    assert!(text(&out.stderr).contains("8 MiB"), "{}", text(&out.stderr));
    let out = check(dir.path(), &["--inventory", "big.toml", "plan.rhai"]);
    refused(&out, "a 9 MiB inventory");
    assert!(text(&out.stderr).contains("8 MiB"), "{}", text(&out.stderr));
}

#[test]
fn a_finding_on_a_very_long_line_shows_a_window_with_the_right_column() {
    // 60,000 characters before the mistake, 5 MB of inventory before its error.
    let padding = "é".repeat(60_000);
    let runbook = format!("let a = \"{padding}\"; let b = nosuch;\n");
    let col = runbook
        .find("nosuch")
        .map(|b| runbook[..b].chars().count() + 1)
        .unwrap();
    let long_value = "v".repeat(5_000_000);
    let dir = project(&[
        ("plan.rhai", &runbook),
        ("runbook.toml", "inventory = \"inventory.toml\"\n"),
        (
            "inventory.toml",
            &format!("[[items]]\nname = \"web-01\"\nstate = \"{long_value}\"\n"),
        ),
    ]);
    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    let out = check(dir.path(), &["--inventory", "empty.toml", "plan.rhai"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("plan.rhai:1:{col}:")),
        "{}",
        &stdout[..stdout.len().min(2000)]
    );
    assert!(stdout.len() < 4_000, "{} bytes printed", stdout.len());
    assert!(stdout.contains("nosuch"));

    let out = check(dir.path(), &["plan.rhai"]);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(
        stderr.contains("inventory.toml:3:9"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(stderr.len() < 4_000, "{} bytes printed", stderr.len());
}

#[test]
fn runbooks_past_rhais_positions_and_bad_utf8_are_refused_at_their_place() {
    let many = "note(\"x\");\n".repeat(65_536);
    let wide = format!("let a = \"{}\";\n", "x".repeat(70_000));
    let dir = project(&[("many.rhai", &many), ("wide.rhai", &wide)]);
    std::fs::write(
        dir.path().join("bad.rhai"),
        b"let a = 1;\nlet b = \"\xff\";\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bom.rhai"), "\u{feff}note(\"x\");\n").unwrap();
    for (file, place) in [
        ("many.rhai", "many.rhai:65536:1"),
        ("wide.rhai", "wide.rhai:1:65536"),
        ("bad.rhai", "bad.rhai:2:10"),
    ] {
        let out = check(dir.path(), &[file]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(place), "{file}: {stderr}");
        for (format, wanted) in [
            ("json", "\"line\": "),
            ("sarif", "\"startLine\": "),
            ("github", ",line="),
        ] {
            let out = check(dir.path(), &["--format", format, file]);
            let stdout = text(&out.stdout);
            assert!(stdout.contains(wanted), "{file} in {format}: {stdout}");
        }
    }
    let out = check(dir.path(), &["--format", "short", "bom.rhai"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}
