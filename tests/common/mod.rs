//! Helpers shared by the integration tests.

use runbook::diagnostics::Code;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The package root (tests run with it as the working folder).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `runbook` binary with `args` in the package root, with no standard input.
pub fn cli(args: &[&str]) -> Output {
    cli_in(&root(), args)
}

pub fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("the runbook binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One expectation of a fixture: a code, and where (`file:line` or `line` in the fixture).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expected {
    pub code: String,
    pub file: Option<String>,
    pub line: Option<usize>,
}

/// Reads `// expect: RB101 4, RB108 lib/steps.rhai:7, RB009` from a fixture's first lines.
pub fn expectations(text: &str) -> Vec<Expected> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let Some(list) = line.trim_start_matches("//").trim().strip_prefix("expect:") else {
            continue;
        };
        for item in list.split(',') {
            let mut parts = item.split_whitespace();
            let code = parts.next().expect("a code").to_string();
            assert!(
                Code::parse(&code).is_some(),
                "unknown code {code} in an expectation"
            );
            let (file, line) = match parts.next() {
                None => (None, None),
                Some(place) => match place.rsplit_once(':') {
                    Some((file, line)) => (
                        Some(file.to_string()),
                        Some(line.parse().expect("a line number")),
                    ),
                    None => (None, Some(place.parse().expect("a line number"))),
                },
            };
            out.push(Expected { code, file, line });
        }
    }
    out.sort();
    out
}

/// The fixture's `// inventory: NAME` (default `inventory.toml`; `none` for no inventory).
pub fn inventory_of(text: &str) -> Option<String> {
    let named = text
        .lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| {
            l.trim_start_matches("//")
                .trim()
                .strip_prefix("inventory:")
                .map(|s| s.trim().to_string())
        });
    match named.as_deref() {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None => Some("inventory.toml".to_string()),
    }
}
