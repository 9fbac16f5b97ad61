//! The command line: clap types and dispatch. `main` calls [`main`] and exits with its code.

mod check;
mod explain;
mod params;
mod plan;
mod shell;

use crate::error::{exit, Error};
use crate::run::{self, RunOptions};
use crate::script::registry;
use crate::verbosity::inform;
use clap::{Parser, Subcommand, ValueEnum};

mod runs;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "runbook",
    version,
    about = "Check and run disaster-recovery runbooks written in Rhai"
)]
pub struct Cli {
    /// Say less on stderr: no progress of jobs while a run goes on, and no informational
    /// lines (`wrote FILE`, check's summary beside a json or sarif document). Errors,
    /// findings, manual steps, a run's summary and every result still print.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log more on stderr: -v every operation issued or skipped and every retry (debug),
    /// -vv also every request and job poll (trace), -vvv every library's trace too.
    /// RUNBOOK_LOG or RUST_LOG, when set, choose instead (e.g. RUNBOOK_LOG=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The output formats of `check`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Rendered diagnostics with the source lines.
    Human,
    /// One line per finding: path:line:col: severity[code]: message.
    Short,
    /// One JSON document: every file's findings (with their regions) and a summary.
    Json,
    /// A SARIF 2.1.0 log, for GitHub code scanning.
    Sarif,
    /// GitHub Actions workflow commands: an annotation per finding.
    Github,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write an inventory file from the target's live state (for `check`).
    Export {
        /// The target of runbook.toml (`[targets.NAME]`) whose vault to read.
        #[arg(long, value_name = "NAME")]
        target: String,
        /// Where to write it (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimulatorCommand {
    /// Serve the simulator over HTTP, speaking the ASR REST API.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// The estate to simulate (default: the demo inventory).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// How much faster than real time jobs run.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The bearer token clients may send as it is.
        #[arg(long, default_value = "runbook-simulator")]
        token: String,
        /// The client-credentials flow's application id (with RUNBOOK_SIMULATOR_CLIENT_SECRET
        /// in the environment, the token endpoint issues tokens).
        #[arg(long, value_name = "ID")]
        client_id: Option<String>,
        /// How long issued tokens last.
        #[arg(long, default_value = "1h")]
        token_lifetime: String,
        /// Turns ARM's request limits (reads 250 then 25/s, writes 200 then 10/s) off.
        #[arg(long)]
        no_throttle: bool,
        /// Multiplies ARM's request limits (bursts and refills), e.g. for benchmarks.
        #[arg(long, default_value_t = 1.0)]
        rate_scale: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks: syntax, API use, and a dry run on the simulator.
    Check {
        /// The runbooks to check: files or globs (quoted globs are expanded by runbook).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The inventory to check VM names and states against (overrides runbook.toml).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// How to print the findings. Every format ends with a summary of all files (json and
        /// sarif hold it in the document, and print it on stderr).
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Also dry-run once with each operation failing, and once with the primary site
        /// unreachable, and report failures the runbook does not handle.
        #[arg(long)]
        what_if: bool,
        /// How long checking one file may take, its dry runs and what-if scenarios together
        /// (e.g. 30s; default: `[check] time_limit` of runbook.toml, else 10s). A file that
        /// takes longer is reported as RB119.
        #[arg(long, value_name = "DURATION", value_parser = time_limit)]
        time_limit: Option<std::time::Duration>,
        /// A parameter's value, NAME=VALUE (repeatable); the choices of the others are
        /// dry-run in every combination (at most 16, else the defaults and each choice once).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = set_value)]
        set: Vec<(String, String)>,
    },
    /// Show the dry run as a plan: operations in time and in parallel lanes, each VM's
    /// state before and after, manual steps, and the estimated recovery time.
    Plan {
        /// The runbook to plan.
        #[arg(required_unless_present = "compare", conflicts_with = "compare")]
        file: Option<PathBuf>,
        /// Show how the plan changes from OLD to NEW: files, or REV:PATH for a file at a git
        /// revision (e.g. main:runbooks/failback.rhai).
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
        compare: Option<Vec<String>>,
        /// The inventory whose durations and states to plan with (overrides runbook.toml).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// How to print the plan.
        #[arg(long, value_enum, default_value = "text")]
        format: plan::PlanFormat,
        /// A parameter's value, NAME=VALUE (repeatable; `runbook params FILE` lists them).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = set_value)]
        set: Vec<(String, String)>,
    },
    /// Run a runbook (on the embedded simulator when no target is given).
    Run {
        /// The runbook to run (a `.rhai` file).
        file: PathBuf,
        /// The simulator's inventory (overrides runbook.toml; default: the demo inventory).
        #[arg(long, value_name = "FILE")]
        inventory: Option<PathBuf>,
        /// How much faster than real time the simulator runs (default: 150, or `[simulator]
        /// speed` in runbook.toml). The simulated times are the same at every speed.
        #[arg(long, value_name = "FACTOR")]
        speed: Option<f64>,
        /// Confirm manual steps automatically (the embedded simulator only; refused with
        /// --target).
        #[arg(long)]
        auto_approve: bool,
        /// With --target: start without asking once the plan against the live state is
        /// shown (for unattended runs; manual steps still wait for an operator).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Plain progress lines instead of spinners.
        #[arg(long)]
        no_progress: bool,
        /// Run against this target of runbook.toml (`[targets.NAME]`) instead of the simulator.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// Take over the target's lock from a run whose process is gone.
        #[arg(long)]
        take_over: bool,
        /// A parameter's value, NAME=VALUE (repeatable; `runbook params FILE` lists them).
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = set_value)]
        set: Vec<(String, String)>,
    },
    /// List a runbook's parameters (`param(...)`): name, type, choices, default, help.
    Params {
        /// The runbook.
        file: PathBuf,
        /// A table, or JSON for tools.
        #[arg(long, value_enum, default_value = "text")]
        format: runs::ListFormat,
    },
    /// The ASR-compatible simulator server.
    Simulator {
        #[command(subcommand)]
        command: SimulatorCommand,
    },
    /// A table of a target's protected items.
    Status {
        /// The target of runbook.toml (`[targets.NAME]`) whose vault to read.
        #[arg(long, value_name = "NAME")]
        target: String,
    },
    /// Inventories of a target's estate.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// Print the script API reference (markdown), or write editor definitions.
    Api {
        /// Write `.d.rhai` definition files of the API and the stdlib into this folder
        /// (created if missing) for Rhai editor tooling, instead of printing the reference.
        #[arg(long, value_name = "DIR")]
        definitions: Option<PathBuf>,
    },
    /// Explain a diagnostic code (e.g. RB101 or not-allowed), or list them all.
    Explain {
        /// The code or its name; without it, every code is listed.
        code: Option<String>,
    },
    /// Serve editors over the Language Server Protocol on standard input and output:
    /// check's findings as you type, hover, completion, definitions, quick fixes (see
    /// docs/editors.md).
    Lsp,
    #[command(flatten)]
    Runs(runs::RunCommand),
    /// Print a shell completion script, e.g. `runbook completions bash >
    /// ~/.local/share/bash-completion/completions/runbook`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page runbook(1) (roff), e.g. `runbook man | man -l -`; with --dir,
    /// write a page for every command.
    Man {
        /// Write runbook.1 and a page per command (runbook-check.1, ...) into this folder
        /// (created if missing) instead of printing runbook(1).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Parses the arguments, runs the command and returns the exit code.
pub fn main() -> i32 {
    crate::output::quiet_print_failures();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let color = shell::stderr_color();
    crate::verbosity::set_quiet(cli.quiet);
    // Logs for troubleshooting go to stderr, off unless -v, RUNBOOK_LOG or RUST_LOG say.
    let started = shell::init_logging(cli.verbose).and_then(|()| dispatch(cli.command, color));
    match started {
        Ok(code) => code,
        Err(e) => {
            err!("{}", e.render(color));
            e.exit_code()
        }
    }
}

fn dispatch(command: Command, color: bool) -> Result<i32, Error> {
    match command {
        Command::Check {
            files,
            inventory,
            deny_warnings,
            format,
            what_if,
            time_limit,
            set,
        } => check::check_files(
            &files,
            inventory.as_deref(),
            &check::Flags {
                deny_warnings,
                format,
                what_if,
                time_limit,
                sets: set,
            },
            color,
        ),
        Command::Plan {
            file,
            compare,
            inventory,
            format,
            set,
        } => match (compare.as_deref(), file) {
            (Some([old, new]), _) => {
                plan::compare_files(old, new, inventory.as_deref(), format, color)
            }
            (_, Some(file)) => plan::plan_file(&file, inventory.as_deref(), format, color, &set),
            _ => Err(Error::Usage(
                "plan needs a runbook, or --compare OLD NEW".into(),
            )),
        },
        Command::Run {
            file,
            inventory,
            speed,
            auto_approve,
            no_progress,
            target,
            take_over,
            yes,
            set,
        } => {
            if let Some(s) = speed {
                if !(0.01..=10_000_000.0).contains(&s) {
                    return Err(Error::Usage(format!(
                        "--speed must be between 0.01 and 10000000, not {s}"
                    )));
                }
            }
            crate::output::survive_hangup();
            run::run(&RunOptions {
                path: file,
                target,
                inventory,
                speed,
                auto_approve,
                progress: !no_progress,
                color,
                journal: true,
                take_over,
                yes,
                params: set,
            })
        }
        Command::Params { file, format } => params::list(&file, format),
        Command::Simulator {
            command:
                SimulatorCommand::Serve {
                    addr,
                    inventory,
                    speed,
                    token,
                    client_id,
                    token_lifetime,
                    no_throttle,
                    rate_scale,
                },
        } => {
            let lifetime = crate::clock::parse_duration(&token_lifetime)
                .map_err(|m| Error::Usage(format!("--token-lifetime: {m}")))?;
            let mut options = crate::simulator::ServerOptions {
                token,
                speed,
                client_secret: std::env::var("RUNBOOK_SIMULATOR_CLIENT_SECRET").ok(),
                client_id,
                token_lifetime: lifetime,
                ..Default::default()
            };
            if !(rate_scale > 0.0 && rate_scale.is_finite()) {
                return Err(Error::Usage(format!(
                    "--rate-scale must be positive, not {rate_scale}"
                )));
            }
            options.reads_per_second *= rate_scale;
            options.writes_per_second *= rate_scale;
            options.reads_burst = (options.reads_burst as f64 * rate_scale) as u32;
            options.writes_burst = (options.writes_burst as f64 * rate_scale) as u32;
            if no_throttle {
                options.reads_per_second = f64::INFINITY;
                options.writes_per_second = f64::INFINITY;
            }
            serve(&addr, inventory.as_deref(), options)
        }
        Command::Status { target } => {
            let (estate, plans) = estate_of(&target, true)?;
            outln!("{}", crate::estate::status_table(&estate.items));
            if !estate.plans.is_empty() {
                outln!("\n{}", crate::estate::plans_table(&estate.plans, &plans));
            }
            Ok(exit::OK)
        }
        Command::Inventory {
            command: InventoryCommand::Export { target, output },
        } => {
            let (estate, _) = estate_of(&target, false)?;
            let now = crate::clock::Timestamp::from_system(std::time::SystemTime::now());
            let text = estate.inventory_toml(&format!("target `{target}`"), now);
            match output {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| Error::io(&path, &e))?;
                    inform!(
                        "wrote {} ({} items)",
                        crate::paths::display(&path),
                        estate.items.len()
                    );
                }
                None => out!("{text}"),
            }
            Ok(exit::OK)
        }
        Command::Api { definitions } => api(definitions.as_deref()),
        Command::Explain { code } => explain::explain(code.as_deref()),
        Command::Lsp => crate::lsp::serve(),
        Command::Runs(command) => runs::dispatch(command, color),
        Command::Completions { shell } => shell::completions(shell),
        Command::Man { dir } => shell::man(dir.as_deref()),
    }
}

/// `--set NAME=VALUE`.
fn set_value(text: &str) -> Result<(String, String), String> {
    crate::script::params::parse_set(text)
}

/// `--time-limit`: a duration such as `10s` or `500ms`.
fn time_limit(text: &str) -> Result<std::time::Duration, String> {
    crate::clock::parse_duration(text)
}

/// `runbook api`: the markdown reference on stdout, or the definition files in `dir`.
fn api(definitions: Option<&std::path::Path>) -> Result<i32, Error> {
    let Some(dir) = definitions else {
        out!("{}", registry::markdown_table());
        return Ok(exit::OK);
    };
    let written = crate::script::definitions::write(dir)?;
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    inform!(
        "wrote {} definition files to {}: {}",
        written.len(),
        crate::paths::display(dir),
        names.join(", ")
    );
    Ok(exit::OK)
}

fn serve(
    addr: &str,
    inventory: Option<&std::path::Path>,
    options: crate::simulator::ServerOptions,
) -> Result<i32, Error> {
    let speed = options.speed;
    use crate::backend::sim::Simulator;
    use crate::clock::{Clock, RealClock};
    use std::sync::Arc;
    if !(0.01..=10_000_000.0).contains(&speed) {
        return Err(Error::Usage(format!(
            "--speed must be between 0.01 and 10000000, not {speed}"
        )));
    }
    let inventory = match inventory {
        Some(path) => crate::backend::inventory::Inventory::load(path)?,
        None => crate::backend::inventory::Inventory::demo(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Usage(e.to_string()))?;
        // A served simulator keeps the time of day, as the service does: clients compare
        // its timestamps with their own clock.
        let clock: Arc<dyn Clock> = Arc::new(RealClock::new(speed));
        let sim = Arc::new(Simulator::new(&inventory, clock, false));
        let server = crate::simulator::Server::with_options(sim, options);
        errln!(
            "ASR simulator ({}) at {speed}x on http://{local}: {}",
            inventory.origin,
            endpoint_advice(local)
        );
        crate::simulator::serve(listener, server, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::Usage(format!("the server stopped: {e}")))?;
        inform!("simulator stopped");
        Ok(exit::OK)
    })
}

/// What a client of a simulator listening on `local` puts in its target. The client takes
/// plain http on loopback only, so an address of every interface (0.0.0.0, ::) is reached
/// as 127.0.0.1 (or ::1) on this machine.
fn endpoint_advice(local: std::net::SocketAddr) -> String {
    let tail = "with any subscription, resource_group and vault; clients send the bearer token given with --token. Ctrl-C stops it.";
    if !local.ip().is_unspecified() {
        return format!("use a [targets.NAME] with endpoint = \"http://{local}\" {tail}");
    }
    let loopback = match local {
        std::net::SocketAddr::V4(a) => format!("127.0.0.1:{}", a.port()),
        std::net::SocketAddr::V6(a) => format!("[::1]:{}", a.port()),
    };
    format!(
        "it listens on every interface, but runbook's client takes plain http only on loopback: on this machine use a [targets.NAME] with endpoint = \"http://{loopback}\" (not {local}) {tail} From another machine the client needs https in front of it (a TLS proxy)."
    )
}

/// The estate of target `name` (from runbook.toml in this folder or above).
/// The estate of target `name`, with its recovery plans' states if `plans`.
fn estate_of(
    name: &str,
    plans: bool,
) -> Result<(crate::estate::Estate, Vec<crate::backend::PlanState>), Error> {
    let config = crate::config::Config::discover(std::path::Path::new("."))?;
    let backend = config.backend(name)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let estate = crate::estate::read(&backend).await?;
        let states = match plans {
            true => crate::estate::plan_states(&backend, &estate).await?,
            false => Vec::new(),
        };
        Ok((estate, states))
    })
    .map_err(|e: crate::backend::BackendError| {
        let message = format!(
            "cannot read target `{name}` at {}: {e}",
            crate::backend::Backend::describe(&backend)
        );
        crate::estate::unreadable(&e, message)
    })
}
