//! Actions: the steps around the VMs (switching DNS, a load balancer), declared in
//! `runbook.toml` as `[actions.NAME]` with a `command` or a `webhook`, never written in the
//! script. Here: their configuration, checked when the file is loaded, and running one: a
//! command with its arguments as JSON on stdin, or a POST of them to a webhook (no redirect
//! followed, secret headers from environment variables, never printed), each within its
//! timeout, with a bounded tail of its output.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long an action may take without a `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The most output kept of an action (its last bytes).
pub const TAIL: usize = 2048;

/// The most output held while it is read: the tail and room for a secret (a token) cut
/// at the tail's start, so that it is found whole and redacted.
const KEEP: usize = TAIL + 8192;

/// `[actions.NAME]` of `runbook.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// The program and its arguments; a relative program is found in the project folder.
    pub command: Option<Vec<String>>,
    /// The URL the arguments are POSTed to (https, or http on loopback).
    pub webhook: Option<String>,
    /// How long it may take (default 5m).
    pub timeout: Option<String>,
    /// Whether running it twice does no harm: a resume runs it again when its completion
    /// was not recorded, without asking.
    #[serde(default)]
    pub idempotent: bool,
    /// How long it usually takes, for `check` and `plan` (default 0s).
    pub expected: Option<String>,
    /// Webhook headers whose values are secrets: header name to the environment variable
    /// that holds the value.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
}

impl ActionConfig {
    /// Why the declaration cannot be used, if it cannot.
    pub fn problem(&self, name: &str) -> Option<String> {
        match (&self.command, &self.webhook) {
            (Some(_), Some(_)) => {
                return Some(format!(
                    "action `{name}` has both a command and a webhook: give one"
                ))
            }
            (None, None) => {
                return Some(format!(
                    "action `{name}` needs `command = [...]` or `webhook = \"https://...\"`"
                ))
            }
            (Some(c), None) if c.is_empty() || c[0].is_empty() => {
                return Some(format!("the command of action `{name}` is empty"))
            }
            (None, Some(url)) => {
                if let Err(e) = webhook_url(url) {
                    return Some(format!("the webhook of action `{name}`: {e}"));
                }
            }
            _ => {}
        }
        for (what, value) in [("timeout", &self.timeout), ("expected", &self.expected)] {
            if let Some(Err(e)) = value.as_deref().map(crate::clock::parse_duration) {
                return Some(format!("the {what} of action `{name}`: {e}"));
            }
        }
        None
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .as_deref()
            .and_then(|t| crate::clock::parse_duration(t).ok())
            .unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn expected(&self) -> Duration {
        self.expected
            .as_deref()
            .and_then(|t| crate::clock::parse_duration(t).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// A webhook URL the client will POST to: https, or plain http on loopback only. Its
/// errors never hold the text (a URL may carry a token): one from an environment variable
/// (a channel's `webhook_env`) is named by the variable.
pub fn webhook_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        match std::env::vars_os().find(|(_, value)| value.to_str() == Some(text)) {
            Some((var, _)) => format!("the URL in ${} is not a URL ({e})", var.to_string_lossy()),
            None => format!("it is not a URL ({e})"),
        }
    })?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("a webhook must be https (plain http only on loopback)".into()),
    }
}

/// The runbook's own credentials in its environment, which an action's command is not given.
pub const CREDENTIALS: &[&str] = &[
    "AZURE_ACCESS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "IDENTITY_HEADER",
    "IDENTITY_ENDPOINT",
    "RUNBOOK_SIMULATOR_CLIENT_SECRET",
];

/// The actions a project declares, and the folder their commands run in.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    pub dir: PathBuf,
    pub declared: BTreeMap<String, ActionConfig>,
    /// The notification channels (`[notify.NAME]`), which `check` validates alike.
    pub channels: BTreeMap<String, crate::notify::NotifyConfig>,
}

impl Actions {
    /// The environment variables a command is not given: the runbook's credentials and
    /// every variable `runbook.toml` names as holding a secret (the secret headers of
    /// actions and channels, a channel's `webhook_env`).
    pub fn hidden_vars(&self) -> std::collections::BTreeSet<String> {
        let mut vars: std::collections::BTreeSet<String> =
            CREDENTIALS.iter().map(|v| v.to_string()).collect();
        for action in self.declared.values() {
            vars.extend(action.secret_headers.values().cloned());
        }
        for channel in self.channels.values() {
            vars.extend(channel.secret_headers.values().cloned());
            vars.extend(channel.webhook_env.iter().cloned());
        }
        vars
    }

    /// The values of the variables a command is not given, as set now, longest first:
    /// never kept in an action's output (a webhook may echo its headers).
    pub fn secret_values(&self) -> Vec<String> {
        let mut values: Vec<String> = self
            .hidden_vars()
            .iter()
            .filter_map(|var| std::env::var(var).ok())
            .filter(|value| !value.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        values
    }

    /// The actions of the `runbook.toml` found from `folder` up (none when there is none
    /// or it cannot be read: the command that loads it reports that).
    pub fn of_folder(folder: Option<&Path>) -> Actions {
        let Some(folder) = folder else {
            return Actions::default();
        };
        match crate::config::Config::discover(folder) {
            Ok(config) => config.actions(),
            Err(_) => Actions::default(),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub ok: bool,
    /// A command's exit code.
    pub exit: Option<i32>,
    /// A webhook's HTTP status.
    pub status: Option<u16>,
    /// The last [`TAIL`] bytes of its output (a command's stdout then stderr, a webhook's body).
    pub output: String,
    pub seconds: f64,
    /// Why it failed, in words.
    pub why: Option<String>,
    /// Whether it started: false when it failed before (nothing ran, nothing was sent).
    pub started: bool,
}

impl Done {
    /// A failure before the action started.
    pub fn not_started(why: String, started: Instant) -> Done {
        Done {
            ok: false,
            exit: None,
            status: None,
            output: String::new(),
            seconds: started.elapsed().as_secs_f64(),
            why: Some(why),
            started: false,
        }
    }
}

/// What an action is told besides its arguments.
pub struct Context<'a> {
    pub run: &'a str,
    pub step: u32,
    pub key: &'a str,
    /// Values never kept in its output (the secret headers' values, which a webhook may
    /// echo).
    pub secrets: &'a [String],
}

/// `text` with each of `secrets` replaced by `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// The last [`TAIL`] bytes of `bytes` as text, the `secrets` in them redacted.
fn tail(bytes: &[u8], secrets: &[String]) -> String {
    let text = redact(&String::from_utf8_lossy(bytes), secrets);
    let mut start = text.len().saturating_sub(TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim_end().to_string()
}

/// The last [`KEEP`] bytes of a stream, kept while it is read (never more in memory).
#[derive(Debug, Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= KEEP {
            self.0.clear();
            self.0.extend_from_slice(&chunk[chunk.len() - KEEP..]);
            return;
        }
        let over = (self.0.len() + chunk.len()).saturating_sub(KEEP);
        self.0.drain(..over);
        self.0.extend_from_slice(chunk);
    }
}

/// Reads `pipe` to its end in a thread, keeping its tail in `into`; says so on the channel.
fn drain(
    pipe: Option<impl Read + Send + 'static>,
    into: std::sync::Arc<std::sync::Mutex<Tail>>,
) -> std::sync::mpsc::Receiver<()> {
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => into
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = done.send(());
    });
    ended
}

/// The program an action's command names: a relative path is in the project folder `dir`;
/// a bare name is looked up on `PATH` when it runs.
pub fn program_path(program: &str, dir: &Path) -> PathBuf {
    if program.contains('/') && Path::new(program).is_relative() {
        dir.join(program)
    } else {
        PathBuf::from(program)
    }
}

/// Runs `command` in `dir` with `args` (JSON) on stdin, within `timeout`. It runs in a
/// process group of its own, so that the terminal's Ctrl-C (sent to the run's group) does
/// not cut it off halfway; at its timeout the whole group is killed. Its output is read
/// until it ends or the timeout, whichever comes first (a process it left in the
/// background may hold it open). The variables of `hidden` are removed from its
/// environment.
pub fn run_command(
    command: &[String],
    dir: &Path,
    args: &str,
    ctx: &Context,
    timeout: Duration,
    hidden: &std::collections::BTreeSet<String>,
) -> Done {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let deadline = started + timeout;
    let program = program_path(&command[0], dir);
    let mut cmd = Command::new(&program);
    for var in hidden {
        cmd.env_remove(var);
    }
    let spawned = cmd
        .args(&command[1..])
        .current_dir(dir)
        .env("RUNBOOK_RUN", ctx.run)
        .env("RUNBOOK_STEP", ctx.step.to_string())
        .env("RUNBOOK_IDEMPOTENCY_KEY", ctx.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return Done::not_started(
                format!("cannot start `{}`: {e}", program.display()),
                started,
            )
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let args = args.to_string();
        // A command that does not read its input must not block the run.
        std::thread::spawn(move || {
            let _ = stdin.write_all(args.as_bytes());
        });
    }
    let out = std::sync::Arc::new(std::sync::Mutex::new(Tail::default()));
    let err = std::sync::Arc::new(std::sync::Mutex::new(Tail::default()));
    let out_ended = drain(child.stdout.take(), out.clone());
    let err_ended = drain(child.stderr.take(), err.clone());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // Its group: the processes it started too, which would go on otherwise.
                if let Ok(group) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: killpg only sends a signal; the group is the child's own.
                    unsafe {
                        libc::killpg(group, libc::SIGKILL);
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    // After a kill the pipes close at once; otherwise wait for them no later than the deadline.
    let bound = deadline.max(Instant::now() + Duration::from_millis(100));
    for ended in [out_ended, err_ended] {
        let _ = ended.recv_timeout(bound.saturating_duration_since(Instant::now()));
    }
    let mut bytes = std::mem::take(&mut out.lock().unwrap_or_else(|e| e.into_inner()).0);
    bytes.extend(std::mem::take(
        &mut err.lock().unwrap_or_else(|e| e.into_inner()).0,
    ));
    let seconds = started.elapsed().as_secs_f64();
    let output = tail(&bytes, ctx.secrets);
    match status {
        Some(s) if s.success() => Done {
            ok: true,
            exit: s.code(),
            status: None,
            output,
            seconds,
            why: None,
            started: true,
        },
        Some(s) => Done {
            ok: false,
            exit: s.code(),
            status: None,
            output,
            seconds,
            why: Some(match s.code() {
                Some(code) => format!("it exited with {code}"),
                None => "it was killed by a signal".into(),
            }),
            started: true,
        },
        None => Done {
            ok: false,
            exit: None,
            status: None,
            output,
            seconds,
            why: Some(format!(
                "it did not end within its timeout of {} and was killed",
                crate::clock::human(timeout)
            )),
            started: true,
        },
    }
}

/// POSTs `args` (JSON) to `url` within `timeout`, with the run, step and idempotency key as
/// headers and the secret headers from the environment. Redirects are not followed.
pub async fn post_webhook(
    url: &str,
    secret_headers: &BTreeMap<String, String>,
    args: &str,
    ctx: &Context<'_>,
    timeout: Duration,
) -> Done {
    let started = Instant::now();
    let failed = |why: String| Done::not_started(why, started);
    let url = match webhook_url(url) {
        Ok(url) => url,
        Err(e) => return failed(e),
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("no HTTP client: {e}")),
    };
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("idempotency-key", ctx.key)
        .header("x-runbook-run", ctx.run)
        .header("x-runbook-step", ctx.step.to_string())
        .body(args.to_string());
    for (header, var) in secret_headers {
        match std::env::var(var) {
            Ok(value) => request = request.header(header.as_str(), value),
            Err(_) => {
                return failed(format!(
                    "the environment variable {var} (header {header}) is not set"
                ))
            }
        }
    }
    let response = match request.send().await {
        // Never the URL or the headers: they may hold secrets.
        Err(e) if e.is_timeout() => {
            return Done {
                started: true,
                ..failed(format!(
                    "no answer within its timeout of {}",
                    crate::clock::human(timeout)
                ))
            }
        }
        // No connection, so nothing was sent.
        Err(e) if e.is_connect() => return failed("the webhook could not be reached".into()),
        Err(_) => {
            return Done {
                started: true,
                ..failed("the webhook could not be reached".into())
            }
        }
        Ok(r) => r,
    };
    let status = response.status();
    let mut response = response;
    let mut body = Tail::default();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.push(&chunk);
    }
    let output = tail(&body.0, ctx.secrets);
    let seconds = started.elapsed().as_secs_f64();
    let ok = status.is_success();
    Done {
        ok,
        exit: None,
        status: Some(status.as_u16()),
        output,
        seconds,
        why: (!ok).then(|| {
            if status.is_redirection() {
                format!("it answered {status}, a redirect, which is not followed")
            } else {
                format!("it answered {status}")
            }
        }),
        started: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_does_not_parse_is_not_in_its_error() {
        let e = webhook_url("htps//hooks.example/token-abc123").unwrap_err();
        assert!(!e.contains("token-abc123"), "{e}");
        assert!(e.contains("is not a URL"), "{e}");
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_only() {
        let mut t = Tail::default();
        for i in 0..10_000u32 {
            t.push(format!("{i:05}\n").as_bytes());
            assert!(t.0.len() <= KEEP);
        }
        assert!(t.0.ends_with(b"09999\n"));
        assert_eq!(t.0.len(), KEEP);
        t.push(&vec![b'x'; 3 * KEEP]);
        assert_eq!(t.0, vec![b'x'; KEEP]);
        assert_eq!(tail(&t.0, &[]).len(), TAIL);
    }

    #[test]
    fn a_secret_is_redacted_wherever_the_tail_cuts_it() {
        let secret = "s3cret-".repeat(200);
        for at in (0..TAIL + secret.len() + 10).step_by(37) {
            let mut bytes = b"abc ".repeat(1000);
            bytes.extend_from_slice(secret.as_bytes());
            bytes.extend(b"x".repeat(at));
            let mut t = Tail::default();
            for chunk in bytes.chunks(100) {
                t.push(chunk);
            }
            let kept = tail(&t.0, std::slice::from_ref(&secret));
            assert!(!kept.contains("s3cret"), "at {at}: {kept}");
            assert!(kept.len() <= TAIL);
        }
    }
}
