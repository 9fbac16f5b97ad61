//! A runbook's parameters found without running it: every `param("name", #{ ... })` call of
//! the runbook itself, whose name and option map are literals (RB130 otherwise). They are
//! what `runbook params` lists, what `--set` is checked against before anything runs, and
//! what `check` dry-runs in combinations. Reads Rhai's AST, like `walk.rs`.

use super::walk::literal;
use crate::diagnostics::{Code, Finding, Location};
use crate::error::Error;
use crate::script::options::Literal;
use crate::script::params::{resolve, Declared, Values};
use rhai::{ASTNode, Expr, Stmt, AST};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The parameters `ast` (named `source`) declares, in order, and RB130 for declarations
/// that cannot be read.
pub fn discover(ast: &AST, source: &Arc<str>) -> (Vec<Declared>, Vec<Finding>) {
    let mut declared: Vec<Declared> = Vec::new();
    let mut findings = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let (call, pos) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos))) => {
                (call, *pos)
            }
            _ => return true,
        };
        if call.name.as_str() != "param" || !call.namespace.is_empty() || call.args.is_empty() {
            return true;
        }
        let at = |p: rhai::Position, len: usize| {
            p.line().map(|line| {
                Location::new(source.clone(), line, p.position().unwrap_or(1), len)
            })
        };
        let bad = |message: String, p: rhai::Position| {
            Finding::new(Code::BadParam, message)
                .at(at(p, 0))
                .label("not readable before the run")
                .help("write `param(\"name\", #{ type: ..., choices: [...], \"default\": ..., help: \"...\" })` with literal values, at the top of the runbook")
        };
        let Expr::StringConstant(name, _) = &call.args[0] else {
            findings.push(bad(
                "a parameter's name must be a string literal".into(),
                call.args[0].position(),
            ));
            return true;
        };
        let mut opts: BTreeMap<String, Literal> = BTreeMap::new();
        match call.args.get(1) {
            None => {}
            Some(Expr::Map(entries, _)) => {
                for (key, value) in entries.0.iter() {
                    match literal(value) {
                        Some(Literal::Other(_)) | None => {
                            findings.push(bad(
                                format!(
                                    "option `{}` of parameter `{name}` must be a literal",
                                    key.name
                                ),
                                value.position(),
                            ));
                            return true;
                        }
                        Some(lit) => {
                            opts.insert(key.name.to_string(), lit);
                        }
                    }
                }
            }
            Some(other) => {
                findings.push(bad(
                    format!("the options of parameter `{name}` must be a literal map `#{{ ... }}`"),
                    other.position(),
                ));
                return true;
            }
        }
        let line = pos.line().unwrap_or(0);
        match Declared::from_options(name, &opts, line) {
            Err(message) => findings.push(
                Finding::new(Code::BadParam, message)
                    .at(at(pos, "param".len()))
                    .label("this parameter"),
            ),
            Ok(decl) => match declared.iter().find(|d| d.name == decl.name) {
                Some(first) if Declared { line: first.line, ..decl.clone() } != *first => {
                    findings.push(
                        Finding::new(
                            Code::BadParam,
                            format!(
                                "parameter `{}` is declared again (first on line {}) with other options",
                                decl.name, first.line
                            ),
                        )
                        .at(at(pos, "param".len()))
                        .label("declared again")
                        .help("declare each parameter once, at the top of the runbook"),
                    );
                }
                Some(_) => {}
                None => declared.push(decl),
            },
        }
        true
    });
    (declared, findings)
}

/// The parameters runbook `text` (named `name`) declares, found without running it; an
/// error (exit 2) when a declaration cannot be read, or when the runbook does not parse
/// (its parameters cannot be known then).
pub fn declared_in(name: &str, text: &str) -> Result<Vec<Declared>, Error> {
    let mut engine = rhai::Engine::new_raw();
    // Unoptimised, as the checks compile it: literal maps stay maps.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    let ast = engine.compile(text).map_err(|e| {
        let at = e.position();
        let place = match (at.line(), at.position()) {
            (Some(line), Some(column)) => format!("{name}:{line}:{column}"),
            (Some(line), None) => format!("{name}:{line}"),
            _ => name.to_string(),
        };
        Error::Usage(format!(
            "{place}: error[RB001]: {}; its parameters cannot be read (`runbook check {name}` shows the error)",
            e.err_type()
        ))
    })?;
    let source: Arc<str> = Arc::from(name);
    let (declared, findings) = discover(&ast, &source);
    match findings.first() {
        None => Ok(declared),
        Some(f) => Err(Error::Usage(format!(
            "{}: error[{}]: {}",
            f.place(),
            f.code.as_str(),
            f.message
        ))),
    }
}

/// The values `sets` (`--set`) give runbook `text`'s parameters, checked before anything
/// runs: an unknown name, a bad value or a missing required one is a usage error (exit 2).
pub fn values_for(name: &str, text: &str, sets: &[(String, String)]) -> Result<Values, Error> {
    let declared = match declared_in(name, text) {
        Ok(declared) => declared,
        // Nothing to set: the run or check reports the syntax error in full.
        Err(_) if sets.is_empty() => Vec::new(),
        Err(e) => return Err(e),
    };
    resolve(&declared, sets, true)
        .map_err(|e| Error::Usage(format!("{name}: {e}; nothing was run")))
}
