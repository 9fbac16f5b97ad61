//! Turns Rhai's errors into findings: parse errors, and runtime errors with the chain of
//! calls that led to them (through script functions and imported modules).

use super::limits::{self, FORBIDDEN};
use super::resolver::Resolver;
use crate::diagnostics::{Code, Finding, Frame, Location};
use rhai::{Dynamic, EvalAltResult, Map, ParseError, ParseErrorType, Position};
use std::collections::HashMap;
use std::sync::Arc;

/// The key under which a raised error carries its finding's token.
const TOKEN: &str = "finding";

/// The findings a run raised as Rhai errors, each behind a token in the error's value (a
/// map with `code` and `message` a script may read), so that the finding comes back whole,
/// with its place and chain, when the error reaches the top.
#[derive(Debug, Default)]
pub struct Raised {
    next: i64,
    findings: HashMap<i64, Finding>,
}

impl Raised {
    /// Keeps `finding` and returns the value of the error that carries it.
    pub fn keep(&mut self, finding: Finding) -> Dynamic {
        self.next += 1;
        let mut map = Map::new();
        map.insert("code".into(), finding.code.as_str().into());
        map.insert("message".into(), finding.message.clone().into());
        map.insert(TOKEN.into(), Dynamic::from_int(self.next));
        self.findings.insert(self.next, finding);
        Dynamic::from_map(map)
    }

    /// The finding behind an error value [`Raised::keep`] made.
    pub fn finding_of(&self, value: &Dynamic) -> Option<Finding> {
        let map = value.read_lock::<Map>()?;
        let token = map.get(TOKEN)?.as_int().ok()?;
        self.findings.get(&token).cloned()
    }
}

/// The place of a Rhai position in `source`; a length of 0 labels the token found there.
pub fn place(source: &Arc<str>, pos: Position, len: usize) -> Option<Location> {
    pos.line()
        .map(|line| Location::new(source.clone(), line, pos.position().unwrap_or(1), len))
}

fn location(source: &Arc<str>, pos: Position) -> Option<Location> {
    place(source, pos, 0)
}

/// A script function's name as people read it: closures are `anon$...` inside Rhai.
pub fn function_name(name: &str) -> String {
    if name.starts_with("anon$") {
        "closure".into()
    } else {
        name.to_string()
    }
}

/// A parse error in `source`.
pub fn parse_finding(err: &ParseError, source: &Arc<str>) -> Finding {
    let ParseError(kind, pos) = err;
    let at = location(source, *pos);
    match &**kind {
        ParseErrorType::Reserved(word) | ParseErrorType::VariableUndefined(word)
            if FORBIDDEN.contains(&word.as_str()) =>
        {
            forbidden(word).at(at)
        }
        ParseErrorType::VariableUndefined(name) => Finding::new(Code::Syntax, format!("variable `{name}` is not defined"))
            .at(at)
            .label("undefined variable")
            .help("declare it with `let` before use; a function sees only its parameters and `global::NAME` constants, not the runbook's variables"),
        ParseErrorType::ModuleUndefined(name) => Finding::new(Code::BadImport, format!("module `{name}` is not imported"))
            .at(at)
            .help(format!("add `import \"runbook/...\" as {name};` at the top of the runbook")),
        other if disabled_word(&other.to_string()).is_some() => {
            forbidden(&disabled_word(&other.to_string()).unwrap_or_default()).at(at)
        }
        other => Finding::new(Code::Syntax, format!("syntax error: {other}"))
            .at(at)
            .label("here")
            .help("fix the syntax; Rhai reports only the first syntax error, so check again afterwards"),
    }
}

/// A parse error in `source`, whose text is `text`: Rhai gives some errors at the end of
/// the text no position (a template string left open, `` `${1} ``), so those are placed at
/// the end, where the parser ran out of text.
pub fn parse_error(err: &ParseError, source: &Arc<str>, text: &str) -> Finding {
    let finding = parse_finding(err, source);
    if finding.location.is_some() {
        return finding;
    }
    let (line, column) = crate::diagnostics::line_col_of(text, text.len());
    finding.at(Some(Location::new(source.clone(), line, column, 0)))
}

/// The word in Rhai's "reserved keyword 'eval' is disabled" message.
fn disabled_word(message: &str) -> Option<String> {
    let rest = message.strip_prefix("reserved keyword '")?;
    let (word, tail) = rest.split_once('\'')?;
    (tail.trim() == "is disabled").then(|| word.to_string())
}

/// The finding for a forbidden symbol.
pub fn forbidden(word: &str) -> Finding {
    let why = match word {
        "sleep" => "time is controlled by the run: wait for jobs with wait_job, or use manual_step",
        "exit" => {
            "a runbook ends by returning or by throwing an error, so the run records its outcome"
        }
        _ => "dynamic calls hide what the runbook does from `check`: call functions by name",
    };
    Finding::new(
        Code::Forbidden,
        format!("`{word}` is not available in runbooks"),
    )
    .label("not allowed")
    .help(why)
}

/// The finding for an error a run ended with. `main_source` is the runbook's name; `raised`
/// gives back the findings the primitives raised.
pub fn runtime_finding(
    err: &EvalAltResult,
    main_source: &Arc<str>,
    raised: &dyn Fn(&Dynamic) -> Option<Finding>,
    resolver: &Resolver,
) -> Finding {
    let mut frames = Vec::new();
    let mut source = main_source.clone();
    let mut err = err;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, fn_source, inner, pos) => {
                if let Some(location) = location(&source, *pos) {
                    frames.push(Frame {
                        function: function_name(name),
                        location: Location {
                            len: name.chars().count(),
                            ..location
                        },
                    });
                }
                if !fn_source.is_empty() {
                    source = Arc::from(fn_source.as_str());
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if let Some(location) = location(&source, *pos) {
                    frames.push(Frame {
                        function: format!("import \"{path}\""),
                        location,
                    });
                }
                if let Some(name) = resolver.source_name(path) {
                    source = Arc::from(name.as_str());
                } else {
                    // The module itself could not be found or read.
                    let message = match &**inner {
                        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
                        other => other.to_string(),
                    };
                    return Finding::new(
                        Code::BadImport,
                        format!("cannot import `{path}`: {message}"),
                    )
                    .at(location(&source, *pos))
                    .label("import here");
                }
                err = inner;
            }
            _ => break,
        }
    }
    frames.reverse();
    let at = location(&source, err.position());
    let finding = match err {
        EvalAltResult::ErrorRuntime(value, _) | EvalAltResult::ErrorTerminated(value, _) => {
            if let Some(found) = raised(value) {
                // Ours: it has its own place and chain.
                return found;
            }
            if let Some(limit) = value.read_lock::<limits::TimeLimit>() {
                Finding::new(
                    Code::TimeLimit,
                    format!(
                        "checking the runbook took longer than its time limit of {}",
                        crate::clock::human(limit.allowed)
                    ),
                )
                .label("still running here")
                .help("a loop that never ends, or one that grows a string or a list? bound it; a large runbook that is just slow to check can have more time with `check --time-limit 30s` or `[check] time_limit = \"30s\"` in runbook.toml")
            } else if matches!(err, EvalAltResult::ErrorTerminated(..)) {
                Finding::new(Code::Interrupted, "the run was interrupted").help("no new operation was issued after the interrupt")
            } else {
                Finding::new(Code::ScriptError, format!("the runbook threw: {value}"))
                    .label("thrown here")
                    .help("catch it with try/catch to handle it, or fix its cause")
            }
        }
        EvalAltResult::ErrorTooManyOperations(_) => Finding::new(
            Code::OperationLimit,
            format!("the runbook exceeded {} operations", limits::OPERATIONS),
        )
        .label("still running here")
        .help("a loop that never ends? iterate over a list of VMs; to wait for a job, use wait_job instead of polling status"),
        EvalAltResult::ErrorStackOverflow(_) => Finding::new(
            Code::ResourceLimit,
            format!("calls nest deeper than {} levels", limits::CALL_LEVELS),
        )
        .label("too deep here")
        .help("a recursion that never ends? use a loop over the VMs instead"),
        EvalAltResult::ErrorDataTooLarge(what, _) => Finding::new(Code::ResourceLimit, format!("{what} exceeds the runbook's limit"))
            .label("too large")
            .help(format!(
                "runbooks hold at most {} array items, {} map entries and strings of {} bytes",
                limits::ARRAY_SIZE,
                limits::MAP_SIZE,
                limits::STRING_SIZE
            )),
        EvalAltResult::ErrorTooManyModules(_) => Finding::new(Code::ResourceLimit, "too many modules imported")
            .help(format!("runbooks import at most {} modules", limits::MODULES)),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => Finding::new(Code::UnknownFunction, format!("no function matches `{sig}`"))
            .label("unknown function or argument types")
            .help("check the function's name and its arguments' types"),
        EvalAltResult::ErrorDotExpr(message, _) if unknown_property(message).is_some() => {
            let (property, owner) = unknown_property(message).unwrap_or_default();
            unknown_property_finding(&format!("a `{owner}`"), property, &properties_of(owner))
        }
        EvalAltResult::ErrorDataRace(what, _) => Finding::new(
            Code::ScriptError,
            if what.is_empty() {
                "a value was changed while it was in use".to_string()
            } else {
                format!("{} was changed while it was in use", what.replace('\'', "`"))
            },
        )
        .label("changed while in use")
        .help("a closure or function changes the list or map it is running over (e.g. `a.for_each(|| a.push(1))`): build a new list instead, or loop with `for x in a` and change a copy"),
        EvalAltResult::ErrorModuleNotFound(path, _) => Finding::new(Code::BadImport, format!("module `{path}` not found")),
        EvalAltResult::ErrorParsing(kind, pos) => return parse_finding(&ParseError(Box::new(kind.clone()), *pos), &source).chain(frames),
        other => Finding::new(Code::ScriptError, strip_position(other))
            .label("error here"),
    };
    finding.at(at).chain(frames)
}

/// The property and type of Rhai's "Unknown property 'stat' - a getter is not registered
/// for type 'Job'".
fn unknown_property(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("Unknown property '")?;
    let (property, rest) = rest.split_once('\'')?;
    let owner = rest.split("type '").nth(1)?.split('\'').next()?;
    Some((property, owner))
}

/// The properties of a handle type (`Job`, `Vm`) scripts hold.
pub fn properties_of(owner: &str) -> Vec<&'static str> {
    super::registry::PROPERTIES
        .iter()
        .filter(|p| p.owner == owner)
        .map(|p| p.name)
        .collect()
}

/// RB120: `what` (`Job`, `Vm`, a `status()` map) has no property `property`, only `known`.
pub fn unknown_property_finding(what: &str, property: &str, known: &[&str]) -> Finding {
    let help = match crate::diagnostics::did_you_mean(property, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? {what} has {}", known.join(", ")),
        None => format!("{what} has {}", known.join(", ")),
    };
    Finding::new(
        Code::UnknownProperty,
        format!("{what} has no property `{property}`"),
    )
    .label("unknown property")
    .help(help)
}

fn strip_position(err: &EvalAltResult) -> String {
    let mut text = err.to_string();
    if let Some(i) = text.rfind(" (line ") {
        text.truncate(i);
    }
    text
}
