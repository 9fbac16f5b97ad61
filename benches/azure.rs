//! 1,000 VMs failed over, verified and committed through the `azure` backend against
//! `runbook simulator serve` (a separate process, so the memory figure is the client's).
//!
//! Run with `cargo bench --bench azure`. Prints HTTP requests per job, 429 answers, how long
//! after the last job's end the run noticed it, and the client's memory per outstanding job
//! (the slope of peak memory between a 200-VM and a 1,000-VM run, each in its own process,
//! so fixed costs such as threads and TLS set-up do not count). ARM's request limits are scaled by `RATE_SCALE` (default 10) on both
//! the server and the client, so the run takes about a minute instead of several.

use runbook::backend::azure::auth::Credential;
use runbook::backend::azure::{Azure, TargetConfig};
use runbook::run::{run_on, RunOptions, Venue};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

/// The runs: the figures come from the largest; memory per outstanding job is the slope of
/// peak memory between the two, each measured in a process of its own.
const SIZES: [usize; 2] = [200, 1000];
const SPEED: f64 = 600.0;
const TOKEN: &str = "bench-token";

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn get_json(url: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn main() {
    if let Ok(n) = std::env::var("AZURE_BENCH_VMS") {
        measure(n.parse().expect("a number of VMs"));
        return;
    }
    let mut peaks = Vec::new();
    for vms in SIZES {
        let out = Command::new(std::env::current_exe().unwrap())
            .env("AZURE_BENCH_VMS", vms.to_string())
            .stderr(Stdio::null())
            .output()
            .expect("the benchmark runs itself");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if vms == SIZES[1] {
            print!("{text}");
        }
        let peak: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("PEAK_KIB="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("the run with {vms} VMs failed:\n{text}"));
        peaks.push(peak);
    }
    let slope = (peaks[1] - peaks[0]) / (SIZES[1] - SIZES[0]) as f64;
    println!(
        "client memory per outstanding job (slope)  {slope:>6.1}KiB     <= 16 KiB  (peak {:.0} KiB with {} VMs, {:.0} KiB with {})",
        peaks[1], SIZES[1], peaks[0], SIZES[0]
    );
}

fn measure(vms: usize) {
    let scale: f64 = std::env::var("RATE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let dir = tempfile::tempdir().unwrap();
    let mut inv = String::from("start = \"2026-11-26T02:00:00Z\"\n");
    for i in 0..vms {
        let _ = writeln!(
            inv,
            "[[items]]\nname = \"dr-{i:04}\"\nlast_test_failover = \"2026-11-20T00:00:00Z\""
        );
    }
    std::fs::write(dir.path().join("inventory.toml"), inv).unwrap();
    let plan = r#"
let all = vms(#{ name: "dr-*" });
let failovers = [];
for vm in all { failovers.push(failover(vm, #{ kind: "planned" })); }
wait_all(failovers, #{ timeout: "4h" });
for vm in all { verify(vm, #{ active_location: "recovery", healthy: true }); }
let commits = [];
for vm in all { commits.push(commit(vm)); }
wait_all(commits, #{ timeout: "4h" });
"#;
    std::fs::write(dir.path().join("plan.rhai"), plan).unwrap();

    let mut server = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args([
            "simulator",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--token",
            TOKEN,
        ])
        .args([
            "--speed",
            &SPEED.to_string(),
            "--rate-scale",
            &scale.to_string(),
        ])
        .arg("--inventory")
        .arg(dir.path().join("inventory.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runbook binary starts");
    let mut line = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| {
            r.split(':')
                .take(2)
                .collect::<Vec<_>>()
                .join(":")
                .split_whitespace()
                .next()
                .map(str::to_string)
        })
        .expect("the server says where it listens");
    let addr = addr.trim_end_matches(':').to_string();

    let target = TargetConfig {
        poll_min: "1s".into(),
        reads_per_second: 25.0 * scale,
        writes_per_second: 10.0 * scale,
        ..TargetConfig::new("s", "g", "v", &format!("http://{addr}"))
    };
    let azure = Azure::new(&target, Credential::Static(TOKEN.into())).unwrap();
    let opts = RunOptions::unattended(dir.path().join("plan.rhai"));
    let rss_before = status_kib("VmRSS:");
    let started = Instant::now();
    let (outcome, _) = run_on(
        &opts,
        Venue::service(Arc::new(azure), "the bench server".into()),
        false,
    )
    .unwrap();
    let wall = started.elapsed();
    let clock = get_json(&format!("http://{addr}/_simulator/clock"));
    let stats = get_json(&format!("http://{addr}/_simulator/stats"));
    let _ = server.kill();
    let _ = server.wait();
    let peak = status_kib("VmHWM:");

    if let Some(f) = &outcome.failure {
        // The server was stopped above.
        eprintln!("the run failed: {}", runbook::diagnostics::summary_line(f));
        std::process::exit(1);
    }
    let jobs = outcome.jobs.len() as f64;
    let requests: u64 = stats
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with("fault"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum();
    let throttled = stats["429"].as_u64().unwrap_or(0);
    let last_end = outcome
        .jobs
        .iter()
        .filter_map(|j| j.info.ended)
        .max()
        .unwrap();
    let now_ms = clock["now_ms"].as_u64().unwrap();
    // Simulated time between the last job's end and the moment the run had finished,
    // in real time.
    let overhead_s = now_ms.saturating_sub(last_end.0) as f64 / 1000.0 / SPEED;
    println!("{vms} VMs: {} jobs (failover + commit), ARM limits x{scale}, jobs {SPEED}x faster, poll interval 1s", jobs);
    println!("{stats}");
    println!();
    println!("figure                                      measured     target");
    println!(
        "HTTP requests per job                       {:>8.2}     <= 3",
        requests as f64 / jobs
    );
    println!(
        "429 answers                                 {:>8}     0",
        throttled
    );
    println!(
        "run noticed the last job's end after        {:>7.2}s     <= 1 poll (1s) + 1s",
        overhead_s
    );
    println!(
        "client peak memory growth / jobs outstanding {:>5.1}KiB     (VmHWM {peak} KiB, RSS before {rss_before} KiB; includes fixed costs)",
        peak.saturating_sub(rss_before) as f64 / vms as f64
    );
    println!(
        "wall time                                   {:>7.1}s",
        wall.as_secs_f64()
    );
    println!("PEAK_KIB={peak}");
}
