//! `action(name, [args])`: runs an action of `runbook.toml` through the journal. Its intent
//! is recorded before it starts and its end after; a resume answers a recorded end from the
//! journal and never runs the action again. One cut off between the two (a crash) runs
//! again only when declared `idempotent = true`; otherwise the operator is asked, as at a
//! manual step (at the terminal or with `runbook approve`), and without an approval the
//! run stops there. `check` and `plan` never run an action: they count its `expected` time.

use super::{Call, Host, Mode, Raise};
use crate::actions::{self, ActionConfig, Context, Done};
use crate::diagnostics::{did_you_mean, Code, Finding};
use crate::journal::{Entry, Record, StepOutcome};
use crate::script::observer::StepAnswer;
use crate::script::types::VmHandle;
use rhai::{Dynamic, Map};

/// `args` as JSON: maps, arrays, strings, numbers, booleans, `()` as null, a Vm as its name.
fn json(value: &Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if value.is_unit() {
        return Value::Null;
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Value::String(s.to_string());
    }
    if let Ok(b) = value.as_bool() {
        return Value::Bool(b);
    }
    if let Ok(i) = value.as_int() {
        return Value::from(i);
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
    }
    if let Some(a) = value.read_lock::<rhai::Array>() {
        return Value::Array(a.iter().map(json).collect());
    }
    if let Some(m) = value.read_lock::<Map>() {
        return Value::Object(m.iter().map(|(k, v)| (k.to_string(), json(v))).collect());
    }
    if let Some(vm) = value.read_lock::<VmHandle>() {
        return Value::String(vm.name.to_string());
    }
    Value::String(value.to_string())
}

/// What the script gets back.
fn result(done: &Done) -> Dynamic {
    let mut m = Map::new();
    m.insert("ok".into(), done.ok.into());
    m.insert(
        "exit".into(),
        done.exit
            .map_or(Dynamic::UNIT, |e| Dynamic::from(i64::from(e))),
    );
    m.insert(
        "status".into(),
        done.status
            .map_or(Dynamic::UNIT, |s| Dynamic::from(i64::from(s))),
    );
    m.insert("output".into(), done.output.clone().into());
    m.insert("seconds".into(), Dynamic::from(done.seconds));
    Dynamic::from_map(m)
}

/// `action(name, [args])`.
pub(in crate::script) fn action(h: &Host, call: &Call) -> Result<Dynamic, Raise> {
    let ctx = call.ctx;
    let name = h.text_arg(call)?;
    let args = match call.opt_arg(1) {
        None => serde_json::Value::Object(Default::default()),
        Some(a) if a.is_map() => json(a),
        Some(a) => {
            return Err(h.fail(
                ctx,
                Finding::new(
                    Code::InvalidArgument,
                    format!(
                        "the arguments of action `{name}` must be a map `#{{ ... }}`, not {}",
                        crate::script::options::type_name(a)
                    ),
                ),
            ))
        }
    };
    let declared = h.actions.borrow().clone();
    let Some(config) = declared.declared.get(&name).cloned() else {
        let mut f = Finding::new(
            Code::UnknownAction,
            format!("no action `{name}` is declared in runbook.toml"),
        )
        .label("unknown action");
        f = match did_you_mean(&name, declared.declared.keys().map(String::as_str)) {
            Some(s) => f
                .help(format!("did you mean `{s}`?"))
                .replace_with(crate::diagnostics::string_literal(s)),
            None => f.help(format!(
                "declare it in runbook.toml: [actions.{name}] with command = [\"program\", \"arg\"] or webhook = \"https://...\""
            )),
        };
        return Err(h.fail(ctx, f));
    };
    let number = h.actions_run.get() + 1;
    h.actions_run.set(number);
    let args = args.to_string();
    if h.mode == Mode::Check {
        let expected = config.expected();
        h.observer.note(&format!(
            "action `{name}` (not run by check or plan; expected {})",
            crate::clock::human(expected)
        ));
        h.exec.block_on(h.clock.sleep(expected));
        return Ok(result(&Done {
            ok: true,
            exit: Some(0),
            status: None,
            output: String::new(),
            seconds: expected.as_secs_f64(),
            why: None,
        }));
    }
    let line = Some(h.site(ctx).runbook_location().to_string());
    let Some(journal) = h.journal.clone() else {
        let done = execute(h, &config, &declared.dir, &args, number, "unjournaled");
        return finish(h, call, &name, done);
    };
    // The journal's record of this action on a resume: its intent, then its end or nothing.
    let mut first_intent = None;
    let mut recorded_end = None;
    if journal.replaying() {
        match journal.next_answer() {
            Some(Record {
                seq,
                entry: Entry::ActionIntent { name: n, key, .. },
                ..
            }) if n == name => {
                first_intent = Some((seq, key));
                loop {
                    match journal.next_answer() {
                        // A re-run after an earlier resume: the same action again.
                        Some(Record {
                            entry: Entry::ActionIntent { name: n, .. },
                            ..
                        }) if n == name => continue,
                        // The operator's approval to run it again, a step of the run.
                        Some(Record {
                            entry: Entry::Step { title, .. },
                            ..
                        }) if title == rerun_title(&name) => {
                            h.steps.set(h.steps.get() + 1);
                            continue;
                        }
                        Some(Record {
                            entry:
                                Entry::ActionDone {
                                    ok,
                                    exit,
                                    status,
                                    output,
                                    seconds,
                                    why,
                                    ..
                                },
                            ..
                        }) => {
                            recorded_end = Some(Done {
                                ok,
                                exit,
                                status,
                                output,
                                seconds,
                                why,
                            });
                            break;
                        }
                        Some(other) => {
                            return Err(h.diverged(ctx, &format!("action `{name}`"), other))
                        }
                        None => break,
                    }
                }
            }
            Some(other) => return Err(h.diverged(ctx, &format!("action `{name}`"), other)),
            None => {}
        }
    }
    if let Some(done) = recorded_end {
        h.observer.note(&format!(
            "action `{name}`: ended before (recorded), not run again"
        ));
        return finish(h, call, &name, done);
    }
    let (intent, key) = match first_intent {
        Some((seq, key)) => {
            // Cut off by a crash: it may have run, wholly or in part.
            if !config.idempotent {
                confirm_rerun(h, call, &name)?;
            } else {
                h.observer.note(&format!(
                    "action `{name}` was cut off before its end was recorded; it is idempotent, so it runs again"
                ));
            }
            let again = Entry::ActionIntent {
                name: name.clone(),
                key: key.clone(),
                line: line.clone(),
            };
            journal
                .append(h.clock.now(), again)
                .map_err(|e| h.refuse(ctx, Finding::new(Code::Refused, e)))?;
            (seq, key)
        }
        None => {
            let seq = journal.next_seq();
            let key = journal.key(seq);
            let entry = Entry::ActionIntent {
                name: name.clone(),
                key: key.clone(),
                line,
            };
            let seq = journal
                .append(h.clock.now(), entry)
                .map_err(|e| h.refuse(ctx, Finding::new(Code::Refused, e)))?;
            (seq, key)
        }
    };
    let done = execute(h, &config, &declared.dir, &args, number, &key);
    let end = Entry::ActionDone {
        intent,
        ok: done.ok,
        exit: done.exit,
        status: done.status,
        output: done.output.clone(),
        seconds: done.seconds,
        why: done.why.clone(),
    };
    if let Err(e) = journal.append(h.clock.now(), end) {
        return Err(h.refuse(ctx, Finding::new(Code::Refused, e)));
    }
    finish(h, call, &name, done)
}

/// The title of the step that asks to run action `name` again.
fn rerun_title(name: &str) -> String {
    format!("run action `{name}` again")
}

/// Asks the operator whether to run again an action cut off by a crash; the run stops
/// without an approval. The approval is journaled as a step, as a manual step's is, so
/// that every attempt numbers the run's steps alike.
fn confirm_rerun(h: &Host, call: &Call, name: &str) -> Result<(), Raise> {
    let number = h.steps.get() + 1;
    h.steps.set(number);
    let title = rerun_title(name);
    let instructions = format!(
        "the run stopped after action `{name}` started and before its end was recorded, so it may have run (wholly or in part); it is not declared idempotent. Check what it did; approve to run it again, or stop the run"
    );
    let timeout = super::steps::DEFAULT_STEP;
    let asked = std::time::Instant::now();
    match h.ask(number, &title, Some(&instructions), timeout) {
        StepAnswer::Approved { by } => {
            let wall = crate::clock::Timestamp::from_system(std::time::SystemTime::now()).rfc3339();
            let step = Entry::Step {
                number,
                title: title.clone(),
                outcome: StepOutcome::Approved { by: by.clone() },
                answered_wall: Some(wall),
                waited_real_seconds: Some(asked.elapsed().as_secs()),
                timeout_real_seconds: Some(timeout.as_secs()),
            };
            if let Some(journal) = &h.journal {
                journal
                    .append(h.clock.now(), step)
                    .map_err(|e| h.refuse(call.ctx, Finding::new(Code::Refused, e)))?;
            }
            h.observer
                .note(&format!("{by} approved running action `{name}` again"));
            Ok(())
        }
        other => Err(h.refuse(
            call.ctx,
            Finding::new(
                Code::Refused,
                format!("action `{name}` was not run again: it may have run before the run stopped, and no operator approved running it again"),
            )
            .note(match other {
                StepAnswer::Unavailable(why) => why,
                StepAnswer::TimedOut => "the approval timed out".into(),
                _ => "the operator stopped the run".into(),
            })
            .help("resume again where an operator can answer, or approve with `runbook approve RUN STEP`"),
        )),
    }
}

fn execute(
    h: &Host,
    config: &ActionConfig,
    dir: &std::path::Path,
    args: &str,
    number: u32,
    key: &str,
) -> Done {
    let run = h
        .journal
        .as_ref()
        .map_or_else(|| "unjournaled".to_string(), |j| j.run().to_string());
    let context = Context {
        run: &run,
        step: number,
        key,
    };
    let timeout = config.timeout();
    match (&config.command, &config.webhook) {
        (Some(command), _) => actions::run_command(command, dir, args, &context, timeout),
        (None, Some(url)) => h.exec.block_on(actions::post_webhook(
            url,
            &config.secret_headers,
            args,
            &context,
            timeout,
        )),
        (None, None) => Done {
            ok: false,
            exit: None,
            status: None,
            output: String::new(),
            seconds: 0.0,
            why: Some("it has neither a command nor a webhook".into()),
        },
    }
}

/// The script's value for `done`, or a catchable error at the runbook line.
fn finish(h: &Host, call: &Call, name: &str, done: Done) -> Result<Dynamic, Raise> {
    if done.ok {
        h.observer.note(&format!(
            "action `{name}` succeeded in {:.1}s",
            done.seconds
        ));
        return Ok(result(&done));
    }
    let mut f = Finding::new(
        Code::ActionFailed,
        format!(
            "action `{name}` failed: {}",
            done.why.as_deref().unwrap_or("it failed")
        ),
    )
    .label("this action");
    if !done.output.is_empty() {
        f = f.note(format!("its output ended with: {}", done.output));
    }
    Err(h.fail(call.ctx, f))
}
