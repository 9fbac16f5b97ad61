//! The primitives that speak with the operator: `manual_step` (asked at the terminal and,
//! at the same time, through `runbook approve` from another one; recorded with who and
//! when, and not asked again on resume) and `note`.

use super::{Approval, Call, Host, Raise};
use crate::clock::human;
use crate::diagnostics::{Code, Finding};
use crate::journal::{Entry, Record, StepOutcome};
use crate::script::observer::{StepAnswer, StepRequest};
use rhai::Dynamic;
use rhai::NativeCallContext;
use std::time::Duration;

/// How long a manual step waits without a timeout option.
pub const DEFAULT_STEP: Duration = Duration::from_secs(3600);

/// `note(text)`.
pub(in crate::script) fn note(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let text = h.text_arg(call)?;
    h.observer.note(&text);
    h.describe(Entry::Note { text });
    Ok(Dynamic::UNIT)
}

/// `notify(channel, text)`.
pub(in crate::script) fn notify(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let channel = h.text_arg(call)?;
    let text = match call.opt_arg(1).and_then(|a| {
        a.read_lock::<rhai::ImmutableString>()
            .map(|s| s.to_string())
    }) {
        Some(text) => text,
        None => {
            return Err(h.fail(
                call.ctx,
                Finding::new(Code::InvalidArgument, "`notify` needs the text as a string"),
            ))
        }
    };
    let notifier = h.notifier.borrow().clone();
    let known: Vec<String> = notifier
        .as_ref()
        .map(|n| n.channels.keys().cloned().collect())
        .unwrap_or_default();
    if !known.contains(&channel) {
        let mut f = Finding::new(
            Code::UnknownChannel,
            format!("no notification channel `{channel}` is declared in runbook.toml"),
        )
        .label("unknown channel");
        f = match crate::diagnostics::did_you_mean(&channel, known.iter().map(String::as_str)) {
            Some(s) => f
                .help(format!("did you mean `{s}`?"))
                .replace_with(crate::diagnostics::string_literal(s)),
            None => f.help(format!(
                "declare it in runbook.toml: [notify.{channel}] with webhook = \"https://...\" (or webhook_env = \"VARIABLE\") and kind = \"json\", \"teams\" or \"slack\""
            )),
        };
        return Err(h.fail(call.ctx, f));
    }
    h.observer.note(&format!("notify {channel}: {text}"));
    // Before the point an earlier attempt reached, the channel heard it already.
    if h.mode == super::Mode::Run && !h.replaying() {
        if let Some(n) = notifier {
            let fields = serde_json::json!({ "recovery_seconds": h.elapsed().as_secs() });
            n.send(&channel, "message", &text, fields);
        }
        h.record_deliveries(None);
    }
    Ok(Dynamic::UNIT)
}

/// `manual_step(title, [opts])`.
pub(in crate::script) fn manual_step(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let title = h.text_arg(call)?;
    let opts = h.opts(call)?;
    let timeout = opts.duration("timeout").unwrap_or(DEFAULT_STEP);
    let instructions = opts.text("instructions");
    h.confirm(call.ctx, &title, instructions.as_deref(), timeout)?;
    Ok(Dynamic::UNIT)
}

impl Host {
    /// A manual step (the script's own, or a recovery plan's manual action): numbered in
    /// the run, asked here and through `runbook approve`, journaled with who and when, and
    /// answered from the journal on resume.
    pub(super) fn confirm(
        &self,
        ctx: &NativeCallContext,
        title: &str,
        instructions: Option<&str>,
        timeout: Duration,
    ) -> Result<(), Raise> {
        confirm(self, ctx, title, instructions, timeout)
    }
}

/// [`Host::confirm`]'s body.
fn confirm(
    h: &Host,
    ctx: &NativeCallContext,
    title: &str,
    instructions: Option<&str>,
    timeout: Duration,
) -> Result<(), Raise> {
    if h.is_interrupted() {
        return Err(h.refuse(
            ctx,
            Finding::new(
                Code::Interrupted,
                "the run was interrupted before a manual step",
            ),
        ));
    }
    let number = h.steps.get() + 1;
    h.steps.set(number);
    let asked = std::time::Instant::now();
    let given = match h.journal.as_ref().and_then(|j| j.next_answer()) {
        Some(Record {
            entry:
                Entry::Step {
                    title: t,
                    outcome,
                    answered_wall,
                    waited_real_seconds,
                    ..
                },
            at,
            ..
        }) if t == title => match outcome {
            StepOutcome::Approved { by } => {
                h.observer.note(&format!(
                    "manual step {number} `{title}`: approved by {by} (recorded)"
                ));
                h.state.borrow_mut().approvals.push(Approval {
                    title: title.to_string(),
                    by,
                    at,
                    wall: answered_wall,
                    waited: waited_real_seconds.map(Duration::from_secs),
                });
                h.backend.operator_confirmed(title);
                return Ok(());
            }
            StepOutcome::TimedOut => {
                return Err(h.fail(
                    ctx,
                    Finding::new(
                        Code::ScriptError,
                        format!(
                            "manual step `{title}` was not confirmed within {} (recorded)",
                            human(timeout)
                        ),
                    ),
                ))
            }
        },
        Some(other) => return Err(h.diverged(ctx, &format!("manual step `{title}`"), other)),
        None => h.ask(number, title, instructions, timeout),
    };
    // The operator answers in real time, whatever the run's clock says.
    let waited = asked.elapsed();
    let answer = Answered {
        number,
        title,
        waited,
        timeout,
    };
    match given {
        _ if h.is_interrupted() => Err(h.refuse(
            ctx,
            Finding::new(
                Code::Interrupted,
                format!("the run was interrupted at manual step `{title}`"),
            )
            .help("jobs already started go on in the service; nothing was cancelled"),
        )),
        StepAnswer::Approved { by } => {
            let at = h.clock.now();
            let wall = h.record_step(&answer, StepOutcome::Approved { by: by.clone() });
            h.backend.operator_confirmed(title);
            h.state.borrow_mut().approvals.push(Approval {
                title: title.to_string(),
                by,
                at,
                wall: Some(wall),
                waited: Some(waited),
            });
            Ok(())
        }
        StepAnswer::Aborted => Err(h.refuse(
            ctx,
            Finding::new(
                Code::Interrupted,
                format!("the operator stopped the run at manual step `{title}`"),
            )
            .help("jobs already started go on in the service; nothing was cancelled"),
        )),
        StepAnswer::TimedOut => {
            h.record_step(&answer, StepOutcome::TimedOut);
            Err(h.fail(
                ctx,
                Finding::new(
                    Code::ScriptError,
                    format!(
                        "manual step `{title}` was not confirmed within {}",
                        human(timeout)
                    ),
                ),
            ))
        }
        StepAnswer::Unavailable(why) => Err(h.refuse(ctx, Finding::new(Code::Refused, why))),
    }
}

/// A manual step as it was answered: which, and how long it waited in real time.
struct Answered<'a> {
    number: u32,
    title: &'a str,
    waited: Duration,
    timeout: Duration,
}

impl Host {
    /// Asks the operator (or another terminal, through the run's folder) to confirm step
    /// `number`.
    pub(super) fn ask(
        &self,
        number: u32,
        title: &str,
        instructions: Option<&str>,
        timeout: Duration,
    ) -> StepAnswer {
        let store = self.journal.as_ref().and_then(|j| j.store().cloned());
        let run = self.journal.as_ref().map(|j| j.run().to_string());
        let polled = std::cell::Cell::new(None::<std::time::Instant>);
        let poll;
        let mut request = StepRequest {
            number,
            title,
            instructions,
            timeout,
            external: None,
            approve_command: None,
        };
        let waiting = crate::journal::approvals::Waiting::here(number, title);
        if let (Some(store), Some(run)) = (&store, &run) {
            if let Err(e) = store.set_waiting(run, &waiting) {
                tracing::warn!("cannot say which step the run waits at: {e}");
            }
            // A store across the network is asked at most once per its poll interval.
            poll = move || {
                let due = polled
                    .get()
                    .is_none_or(|at| at.elapsed() >= store.approval_poll());
                if !due {
                    return None;
                }
                polled.set(Some(std::time::Instant::now()));
                // An approval of another step that had this number (in an earlier
                // attempt) does not answer this one.
                store
                    .approval(run, number, title)
                    .filter(|g| g.answers(title))
                    .map(|g| g.by)
            };
            request.external = Some(&poll);
            request.approve_command = Some(format!(
                "runbook approve {run} {number}{}",
                crate::journal::runs::project_arg(store.project())
            ));
        }
        let approve = request
            .approve_command
            .clone()
            .unwrap_or_else(|| format!("runbook approve RUN {number}"));
        self.notify_event(
            "step_waiting",
            &format!("manual step {number} `{title}` waits for an operator: {approve}"),
            serde_json::json!({ "step": number, "title": title, "approve": approve }),
        );
        let answer = self.observer.step(&request);
        if let (Some(store), Some(run)) = (&store, &run) {
            store.clear_waiting(run, &waiting);
        }
        answer
    }

    /// Journals the answer to a step, at the run's clock and the wall clock; returns the
    /// wall clock's time (RFC 3339).
    fn record_step(&self, answer: &Answered, outcome: StepOutcome) -> String {
        let wall = crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339();
        if let Some(j) = &self.journal {
            let entry = Entry::Step {
                number: answer.number,
                title: answer.title.to_string(),
                outcome,
                answered_wall: Some(wall.clone()),
                waited_real_seconds: Some(answer.waited.as_secs()),
                timeout_real_seconds: Some(answer.timeout.as_secs()),
            };
            if let Err(e) = j.append(self.clock.now(), entry) {
                tracing::warn!("{e}");
            }
        }
        wall
    }
}
