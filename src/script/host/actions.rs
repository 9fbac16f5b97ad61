//! `action(name, [args])`: runs an action of `runbook.toml` through the journal. Its intent
//! is recorded before it starts and its end after; a resume answers a recorded end from the
//! journal and does not run the action again, unless the run stopped on it: one that never
//! started (a variable missing) then simply runs; one cut off between the two (a crash) or
//! failed runs again when declared `idempotent = true`, otherwise only once the operator
//! approved it, as at a manual step (at the terminal or with `runbook approve`; the
//! approval is journaled as a step), and without an approval the run stops there. `check`
//! and `plan` never run an action: they count its `expected` time.

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
            started: true,
        }));
    }
    let line = Some(h.site(ctx).runbook_location().to_string());
    let Some(journal) = h.journal.clone() else {
        let done = execute(h, &config, &declared, &args, number, "unjournaled");
        return finish(h, call, &name, done);
    };
    let (first_intent, recorded_end) = recorded(h, call, &journal, &name)?;
    // Why it runs again, if it was recorded: cut off, failed or never started.
    let again = match (&first_intent, recorded_end) {
        (_, Some((seq, done))) if done.ok || !journal.stopped_on(seq) || journal.replaying() => {
            h.observer.note(&format!(
                "action `{name}`: ended before (recorded), not run again"
            ));
            return finish(h, call, &name, done);
        }
        (_, Some((_, done))) if !done.started => {
            h.observer.note(&format!(
                "action `{name}` never started before the run stopped ({}); it runs now",
                done.why.as_deref().unwrap_or("it failed")
            ));
            None
        }
        (_, Some((_, done))) => Some(format!(
            "the run stopped after action `{name}` failed ({}); it may have done part of its work. It is not declared idempotent. Check what it did; approve to run it again, or stop the run",
            done.why.as_deref().unwrap_or("it failed")
        )),
        (Some(_), None) => Some(format!(
            "the run stopped after action `{name}` started and before its end was recorded, so it may have run (wholly or in part); it is not declared idempotent. Check what it did; approve to run it again, or stop the run"
        )),
        (None, None) => None,
    };
    let (intent, key) = match first_intent {
        Some((seq, key)) => {
            if let Some(instructions) = again {
                if config.idempotent {
                    h.observer.note(&format!(
                        "action `{name}` may not have ended before the run stopped; it is idempotent, so it runs again"
                    ));
                } else {
                    confirm_rerun(h, call, &name, &instructions)?;
                }
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
    let done = execute(h, &config, &declared, &args, number, &key);
    let end = Entry::ActionDone {
        intent,
        ok: done.ok,
        exit: done.exit,
        status: done.status,
        output: done.output.clone(),
        seconds: done.seconds,
        why: done.why.clone(),
        not_started: !done.started,
    };
    if let Err(e) = journal.append(h.clock.now(), end) {
        return Err(h.refuse(ctx, Finding::new(Code::Refused, e)));
    }
    finish(h, call, &name, done)
}

/// The first intent (its record and key) of action `name`'s call, replayed from the
/// journal on a resume, and its last recorded end (with the end's record) or none (cut
/// off). An end the run stopped on is followed by the next attempt's run of it again
/// (its approval, then an intent with the same key), consumed here too.
type Recorded = (Option<(u64, String)>, Option<(u64, Done)>);

fn recorded(
    h: &Host,
    call: &Call,
    journal: &crate::journal::Journal,
    name: &str,
) -> Result<Recorded, Raise> {
    let ctx = call.ctx;
    if !journal.replaying() {
        return Ok((None, None));
    }
    let key = match journal.next_answer() {
        Some(Record {
            seq,
            entry: Entry::ActionIntent { name: n, key, .. },
            ..
        }) if n == name => (seq, key),
        Some(other) => return Err(h.diverged(ctx, &format!("action `{name}`"), other)),
        None => return Ok((None, None)),
    };
    let mut end: Option<(u64, Done)> = None;
    loop {
        let again = |r: &Record| match &r.entry {
            Entry::ActionIntent { key: k, .. } => *k == key.1,
            Entry::Step { title, .. } => *title == rerun_title(name),
            _ => false,
        };
        if let Some((seq, _)) = &end {
            // Another call follows an end the script went on from.
            if !journal.stopped_on(*seq) || !journal.peek_answer().is_some_and(|r| again(&r)) {
                break;
            }
        }
        match journal.next_answer() {
            // A run again after an earlier resume, or the operator's approval of it.
            Some(r) if again(&r) => {
                if matches!(r.entry, Entry::Step { .. }) {
                    h.steps.set(h.steps.get() + 1);
                } else {
                    end = None;
                }
            }
            Some(Record {
                seq,
                entry:
                    Entry::ActionDone {
                        ok,
                        exit,
                        status,
                        output,
                        seconds,
                        why,
                        not_started,
                        ..
                    },
                ..
            }) => {
                end = Some((
                    seq,
                    Done {
                        ok,
                        exit,
                        status,
                        output,
                        seconds,
                        why,
                        started: !not_started,
                    },
                ))
            }
            Some(other) => return Err(h.diverged(ctx, &format!("action `{name}`"), other)),
            None => break,
        }
    }
    Ok((Some(key), end))
}

/// The title of the step that asks to run action `name` again.
fn rerun_title(name: &str) -> String {
    format!("run action `{name}` again")
}

/// Asks the operator whether to run again an action cut off by a crash; the run stops
/// without an approval. The approval is journaled as a step, as a manual step's is, so
/// that every attempt numbers the run's steps alike.
fn confirm_rerun(h: &Host, call: &Call, name: &str, instructions: &str) -> Result<(), Raise> {
    let number = h.steps.get() + 1;
    h.steps.set(number);
    let title = rerun_title(name);
    let timeout = super::steps::DEFAULT_STEP;
    let asked = std::time::Instant::now();
    match h.ask(number, &title, Some(instructions), timeout) {
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
    declared: &actions::Actions,
    args: &str,
    number: u32,
    key: &str,
) -> Done {
    let run = h
        .journal
        .as_ref()
        .map_or_else(|| "unjournaled".to_string(), |j| j.run().to_string());
    let secrets = declared.secret_values();
    let context = Context {
        run: &run,
        step: number,
        key,
        secrets: &secrets,
    };
    let timeout = config.timeout();
    let mut done = match (&config.command, &config.webhook) {
        (Some(command), _) => {
            let hidden = declared.hidden_vars();
            actions::run_command(command, &declared.dir, args, &context, timeout, &hidden)
        }
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
            started: false,
        },
    };
    done.why = done.why.map(|why| actions::redact(&why, &secrets));
    done
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
