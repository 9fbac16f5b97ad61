//! The static checks: an AST walk over the runbook and every module it imports, checking
//! each call against the registry, the script's own functions and Rhai's standard library.
//! Rhai's AST types are volatile across versions (rhai is pinned); they stay in this file.

use crate::backend::inventory::Inventory;
use crate::diagnostics::{did_you_mean, string_literal, Code, Finding, Location};
use crate::script::errors::{forbidden, parse_error};
use crate::script::limits::FORBIDDEN;
use crate::script::options::{check_combination, check_key, check_value, Literal};
use crate::script::registry::{self, OptKind, ParamKind, Primitive};
use crate::script::resolver::Resolver;
use rhai::{ASTNode, Engine, Expr, FnCallExpr, Position, Stmt, AST};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Names Rhai handles itself rather than as registered functions.
const INTRINSICS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "call",
    "curry",
    "this",
    "Fn",
    "eval",
];

thread_local! {
    /// Functions of Rhai's standard package: name to accepted argument counts.
    static STD_FUNCTIONS: HashMap<String, BTreeSet<usize>> = std_functions();
}

fn std_functions() -> HashMap<String, BTreeSet<usize>> {
    let engine = Engine::new();
    let mut out: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for sig in engine.gen_fn_signatures(true) {
        let Some(open) = sig.find('(') else { continue };
        let name = &sig[..open];
        let close = sig.rfind(')').unwrap_or(sig.len());
        let params = sig[open + 1..close].trim();
        let count = if params.is_empty() {
            0
        } else {
            params.split(',').count()
        };
        out.entry(name.to_string()).or_default().insert(count);
    }
    out
}

type Arities = HashMap<String, BTreeSet<usize>>;

/// The functions an AST defines; `public_only` for a module seen from outside.
fn script_functions(ast: &AST, public_only: bool) -> Arities {
    let mut out: Arities = HashMap::new();
    for f in ast.iter_functions() {
        if public_only && f.access == rhai::FnAccess::Private {
            continue;
        }
        out.entry(f.name.to_string())
            .or_default()
            .insert(f.params.len());
    }
    out
}

/// Runs the static checks on `ast` (source `name`) and its imports.
pub struct Walker<'a> {
    engine: &'a Engine,
    resolver: &'a Resolver,
    inventory: Option<&'a Inventory>,
    visited: HashSet<String>,
    /// The sources being checked, the runbook first: importing one of them is a cycle.
    stack: Vec<String>,
    pub findings: Vec<Finding>,
}

struct Scope {
    source: Arc<str>,
    functions: Arities,
    modules: HashMap<String, (String, Arities)>,
}

impl<'a> Walker<'a> {
    pub fn new(
        engine: &'a Engine,
        resolver: &'a Resolver,
        inventory: Option<&'a Inventory>,
    ) -> Self {
        Walker {
            engine,
            resolver,
            inventory,
            visited: HashSet::new(),
            stack: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Checks one compiled source.
    pub fn check(&mut self, ast: &AST, source: &Arc<str>) {
        self.stack.push(source.to_string());
        let mut scope = Scope {
            source: source.clone(),
            functions: script_functions(ast, false),
            modules: HashMap::new(),
        };
        // Imports first, so calls into modules can be checked.
        let mut imports = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Import(x, _))) = path.last() {
                imports.push((**x).clone());
            }
            true
        });
        for (expr, alias) in imports {
            self.import(&mut scope, &expr, alias.name.as_str());
        }
        let handles = handles(ast);
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::Dot(dot, _, _))) => {
                    self.property(&scope, &handles, &dot.lhs, &dot.rhs);
                }
                Some(
                    ASTNode::Expr(Expr::FnCall(call, pos)) | ASTNode::Stmt(Stmt::FnCall(call, pos)),
                ) => self.call(&scope, call, *pos, false),
                Some(ASTNode::Expr(Expr::MethodCall(call, pos))) => {
                    self.call(&scope, call, *pos, true)
                }
                _ => {}
            }
            true
        });
        self.stack.pop();
    }

    fn at(&self, scope: &Scope, pos: Position, len: usize) -> Option<Location> {
        pos.line()
            .map(|line| Location::new(scope.source.clone(), line, pos.position().unwrap_or(1), len))
    }

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    fn import(&mut self, scope: &mut Scope, expr: &Expr, alias: &str) {
        let Expr::StringConstant(path, path_pos) = expr else {
            let f = Finding::new(Code::BadImport, "an import path must be a string literal")
                .at(self.at(scope, expr.position(), 0))
                .help("write the module's path in quotes, e.g. import \"runbook/failover\" as failover;");
            self.push(f);
            return;
        };
        let (name, module_text, parsed) = match self.resolver.load_ast(self.engine, path) {
            Ok(found) => found,
            Err(message) => {
                let f = Finding::new(Code::BadImport, format!("cannot import `{path}`: {message}"))
                    .at(self.at(scope, *path_pos, 0))
                    .label("this import")
                    .help("import the stdlib as \"runbook/<module>\", or a module in the runbook's folder by its relative path");
                self.push(f);
                return;
            }
        };
        if self.stack.len() >= crate::script::limits::MODULES {
            let f = Finding::new(
                Code::BadImport,
                format!(
                    "imports nest deeper than {} modules",
                    crate::script::limits::MODULES
                ),
            )
            .at(self.at(scope, *path_pos, 0))
            .help("flatten the chain of modules");
            self.push(f);
            return;
        }
        if self.stack.contains(&name) {
            let mut chain = self.stack.clone();
            chain.push(name.clone());
            let f = Finding::new(
                Code::BadImport,
                format!("import cycle: {}", chain.join(" → ")),
            )
            .at(self.at(scope, *path_pos, 0))
            .label("imports a module that is still being imported")
            .help("move what both modules need into a third module that imports neither");
            self.push(f);
            return;
        }
        let module_source: Arc<str> = Arc::from(name.as_str());
        match parsed {
            Err(e) => {
                self.push(parse_error(&e, &module_source, &module_text));
            }
            Ok(module_ast) => {
                if !alias.is_empty() {
                    scope.modules.insert(
                        alias.to_string(),
                        (path.to_string(), script_functions(&module_ast, true)),
                    );
                }
                if self.visited.insert(name.clone()) {
                    self.check(&module_ast, &module_source);
                }
            }
        }
    }

    fn call(&mut self, scope: &Scope, call: &FnCallExpr, pos: Position, method: bool) {
        if call.is_operator_call() {
            return;
        }
        let name = call.name.as_str();
        let argc = call.args.len() + usize::from(method);
        let name_len = name.chars().count();
        if !call.namespace.is_empty() {
            let alias = call
                .namespace
                .path
                .first()
                .map(|i| i.name.as_str())
                .unwrap_or_default();
            let Some((path, functions)) = scope.modules.get(alias) else {
                return;
            };
            match functions.get(name) {
                None => {
                    let mut f = Finding::new(
                        Code::UnknownFunction,
                        format!("module `{path}` has no function `{name}`"),
                    )
                    .at(self.at(scope, pos, 0))
                    .label("unknown function");
                    if let Some(s) = did_you_mean(name, functions.keys().map(String::as_str)) {
                        f = f
                            .help(format!("did you mean `{alias}::{s}`?"))
                            .replace_with(s);
                    } else {
                        let mut known: Vec<&str> = functions.keys().map(String::as_str).collect();
                        known.sort_unstable();
                        f = f.help(format!("`{path}` has {}", known.join(", ")));
                    }
                    self.push(f);
                }
                Some(arities) if !arities.contains(&argc) => {
                    self.push(arity(
                        name,
                        argc,
                        arities.iter().copied(),
                        self.at(scope, pos, 0),
                    ));
                }
                Some(_) => {}
            }
            return;
        }
        // A function of the runbook's own with this many parameters wins over a primitive.
        let own = scope.functions.get(name);
        if own.is_some_and(|a| a.contains(&argc) || method) {
            return;
        }
        if let Some(prim) = registry::find(name) {
            if !prim.arities().contains(&argc) && own.is_none() {
                let f = arity(name, argc, prim.arities(), self.at(scope, pos, name_len))
                    .help(format!("`{}`: {}", prim.signature(), prim.doc));
                self.push(f);
                return;
            }
            if prim.arities().contains(&argc) {
                self.primitive_args(scope, prim, call, method);
                return;
            }
        }
        if FORBIDDEN.contains(&name) {
            self.push(forbidden(name).at(self.at(scope, pos, name_len)));
            return;
        }
        if INTRINSICS.contains(&name) {
            return;
        }
        if let Some(arities) = scope.functions.get(name) {
            if !method && !arities.contains(&argc) {
                self.push(arity(
                    name,
                    argc,
                    arities.iter().copied(),
                    self.at(scope, pos, name_len),
                ));
            }
            return;
        }
        let known_std = STD_FUNCTIONS.with(|std| std.get(name).cloned());
        if let Some(arities) = known_std {
            if !method && !arities.contains(&argc) {
                self.push(arity(
                    name,
                    argc,
                    arities.iter().copied(),
                    self.at(scope, pos, name_len),
                ));
            }
            return;
        }
        let suggestion = STD_FUNCTIONS.with(|std| {
            let candidates = registry::PRIMITIVES
                .iter()
                .map(|p| p.name)
                .chain(scope.functions.keys().map(String::as_str))
                .chain(std.keys().map(String::as_str).filter(|n| !n.contains('$')));
            did_you_mean(name, candidates).map(str::to_string)
        });
        let mut f = Finding::new(Code::UnknownFunction, format!("unknown function `{name}`"))
            .at(self.at(scope, pos, name_len))
            .label("no such function");
        f = match suggestion {
            Some(s) => f.help(format!("did you mean `{s}`?")).replace_with(s),
            None => f.help("runbook primitives are listed by `runbook api`; functions of your own must be defined with `fn`"),
        };
        self.push(f);
    }

    fn primitive_args(
        &mut self,
        scope: &Scope,
        prim: &'static Primitive,
        call: &FnCallExpr,
        method: bool,
    ) {
        let offset = usize::from(method);
        for (i, param) in prim.params.iter().enumerate() {
            if i < offset {
                continue;
            }
            let Some(arg) = call.args.get(i - offset) else {
                continue;
            };
            let literal = literal(arg);
            match param.kind {
                ParamKind::Options => match arg {
                    Expr::Map(entries, map_pos) => self.options(scope, prim, &entries.0, *map_pos),
                    _ if literal.is_some() => self.bad_arg(scope, prim, param.kind, arg),
                    _ => {}
                },
                ParamKind::Args => {
                    if literal.is_some() && !matches!(arg, Expr::Map(..)) {
                        self.bad_arg(scope, prim, param.kind, arg);
                    }
                }
                ParamKind::Vm | ParamKind::Text => match &literal {
                    Some(Literal::Str(name))
                        if param.kind == ParamKind::Vm || prim.name == "vm" =>
                    {
                        self.vm_name(scope, name, arg.position());
                    }
                    Some(Literal::Str(_)) | None => {}
                    Some(_) => self.bad_arg(scope, prim, param.kind, arg),
                },
                ParamKind::Job | ParamKind::Jobs => {
                    let ok = matches!(
                        (&literal, param.kind),
                        (None, _) | (Some(Literal::Array(_)), ParamKind::Jobs)
                    );
                    if !ok || matches!(arg, Expr::Map(..)) {
                        self.bad_arg(scope, prim, param.kind, arg);
                    }
                }
            }
        }
    }

    fn bad_arg(&mut self, scope: &Scope, prim: &Primitive, kind: ParamKind, arg: &Expr) {
        let f = Finding::new(
            Code::InvalidArgument,
            format!("`{}` needs {} here", prim.name, kind.describe()),
        )
        .at(self.at(scope, arg.position(), 0))
        .label("wrong type")
        .help(format!("`{}`: {}", prim.signature(), prim.doc));
        self.push(f);
    }

    fn vm_name(&mut self, scope: &Scope, name: &str, pos: Position) {
        let Some(inv) = self.inventory else { return };
        if inv.has(name) {
            return;
        }
        let mut f = Finding::new(
            Code::UnknownVm,
            format!("no VM is named `{name}` in {}", inv.origin),
        )
        .at(self.at(scope, pos, 0))
        .label("unknown VM");
        if let Some(s) = did_you_mean(name, inv.items.iter().map(|i| i.name.as_str())) {
            f = f
                .help(format!("did you mean `{s}`?"))
                .replace_with(string_literal(s));
        }
        self.push(f);
    }

    fn options(
        &mut self,
        scope: &Scope,
        prim: &'static Primitive,
        entries: &[(rhai::Ident, Expr)],
        map_pos: Position,
    ) {
        let mut present = Vec::new();
        let mut known = BTreeMap::new();
        for (key, value) in entries {
            let spec = match check_key(prim, key.name.as_str()) {
                Ok(spec) => spec,
                Err(problem) => {
                    let mut f = Finding::new(problem.code(), problem.message(prim))
                        .at(self.at(scope, key.pos, key.name.chars().count()))
                        .label(match problem {
                            crate::script::options::Problem::Refused(_) => "not supported here",
                            _ => "unknown option",
                        })
                        .help(problem.help(prim));
                    if let Some(r) = problem.replacement() {
                        f = f.replace_with(r);
                    }
                    self.push(f);
                    continue;
                }
            };
            present.push(spec.key);
            let Some(lit) = literal(value) else { continue };
            if let Err(problem) = check_value(spec, &lit) {
                let mut f = Finding::new(problem.code(), problem.message(prim))
                    .at(self.at(scope, value.position(), 0))
                    .label(format!("expected {}", spec.kind.describe()))
                    .help(problem.help(prim));
                if let Some(r) = problem.replacement() {
                    f = f.replace_with(r);
                }
                self.push(f);
                continue;
            }
            match (spec.kind, value) {
                (OptKind::VmList, Expr::Array(items, _)) => {
                    for item in items.iter() {
                        if let Expr::StringConstant(name, pos) = item {
                            self.vm_name(scope, name, *pos);
                        }
                    }
                }
                (OptKind::Text, Expr::StringConstant(plan, pos))
                    if prim.name == "vms" && spec.key == "plan" =>
                {
                    self.plan_name(scope, plan, *pos);
                }
                _ => {}
            }
            known.insert(spec.key, lit);
        }
        for problem in check_combination(prim, &present, &known) {
            let at = entries
                .iter()
                .find(|(k, _)| k.name.as_str() == problem.key())
                .map_or_else(
                    || self.at(scope, map_pos, 1),
                    |(k, _)| self.at(scope, k.pos, k.name.chars().count()),
                );
            let f = Finding::new(problem.code(), problem.message(prim))
                .at(at)
                .label(match problem {
                    crate::script::options::Problem::Missing { key } => format!("`{key}` missing"),
                    _ => "does not apply".to_string(),
                })
                .help(problem.help(prim));
            self.push(f);
        }
    }

    /// RB120 for `lhs.rhs` when `lhs` is a `status()` map, a `Job` or a `Vm` (a call that
    /// returns one, or a variable only ever bound to one) without the property `rhs`.
    fn property(
        &mut self,
        scope: &Scope,
        handles: &HashMap<String, Option<Handle>>,
        lhs: &Expr,
        rhs: &Expr,
    ) {
        let handle = match lhs {
            Expr::Variable(v, _, _) if v.2.is_empty() => {
                handles.get(v.1.as_str()).copied().flatten()
            }
            Expr::FnCall(call, _) => handle_of(call),
            _ => None,
        };
        let Some(handle) = handle else { return };
        let (name, pos) = match rhs {
            Expr::Property(p, pos) => (p.2.as_str(), *pos),
            Expr::Dot(inner, _, _) | Expr::Index(inner, _, _) => match &inner.lhs {
                Expr::Property(p, pos) => (p.2.as_str(), *pos),
                _ => return,
            },
            _ => return,
        };
        let known = handle.properties();
        if known.contains(&name) {
            return;
        }
        let f = crate::script::errors::unknown_property_finding(handle.describe(), name, &known)
            .at(self.at(scope, pos, name.chars().count()));
        self.push(f);
    }

    fn plan_name(&mut self, scope: &Scope, plan: &str, pos: Position) {
        let Some(inv) = self.inventory else { return };
        if inv.plans.contains_key(plan) {
            return;
        }
        let mut f = Finding::new(
            Code::UnknownVm,
            format!("no recovery plan is named `{plan}` in {}", inv.origin),
        )
        .at(self.at(scope, pos, 0))
        .label("unknown recovery plan");
        if let Some(s) = did_you_mean(plan, inv.plans.keys().map(String::as_str)) {
            f = f
                .help(format!("did you mean `{s}`?"))
                .replace_with(string_literal(s));
        }
        self.push(f);
    }
}

fn arity(
    name: &str,
    argc: usize,
    accepted: impl IntoIterator<Item = usize>,
    at: Option<Location>,
) -> Finding {
    let accepted: Vec<String> = accepted.into_iter().map(|n| n.to_string()).collect();
    let expected = match accepted.len() {
        0 => "none".to_string(),
        1 => accepted[0].clone(),
        _ => {
            let (last, rest) = accepted
                .split_last()
                .map(|(l, r)| (l.clone(), r.join(", ")))
                .unwrap_or_default();
            format!("{rest} or {last}")
        }
    };
    Finding::new(
        Code::WrongArgCount,
        format!(
            "`{name}` takes {expected} argument{}, but {argc} {} given",
            if expected == "1" { "" } else { "s" },
            if argc == 1 { "was" } else { "were" }
        ),
    )
    .at(at)
    .label(format!(
        "{argc} argument{}",
        if argc == 1 { "" } else { "s" }
    ))
}

/// The value of a literal expression, if it is one.
pub(super) fn literal(expr: &Expr) -> Option<Literal> {
    Some(match expr {
        Expr::StringConstant(s, _) => Literal::Str(s.to_string()),
        Expr::BoolConstant(b, _) => Literal::Bool(*b),
        Expr::IntegerConstant(i, _) => Literal::Int(*i),
        Expr::FloatConstant(f, _) => Literal::Float(**f),
        Expr::Array(items, _) => Literal::Array(
            items
                .iter()
                .map(|i| literal(i).unwrap_or_else(|| Literal::Other("an expression".into())))
                .collect(),
        ),
        Expr::Map(..) => Literal::Other("a map".into()),
        Expr::Unit(_) => Literal::Other("()".into()),
        _ => return None,
    })
}

/// What a value with known properties is: a `status()` map or a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handle {
    Status,
    Job,
    Vm,
}

impl Handle {
    fn properties(self) -> Vec<&'static str> {
        match self {
            Handle::Status => crate::script::types::STATUS_KEYS.to_vec(),
            Handle::Job => crate::script::errors::properties_of("Job"),
            Handle::Vm => crate::script::errors::properties_of("Vm"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Handle::Status => "the map `status()` returns",
            Handle::Job => "a `Job`",
            Handle::Vm => "a `Vm`",
        }
    }
}

/// What a call of a primitive returns, when it has known properties.
fn handle_of(call: &FnCallExpr) -> Option<Handle> {
    if !call.namespace.is_empty() {
        return None;
    }
    let prim = registry::find(call.name.as_str())?;
    match (prim.name, prim.returns) {
        ("status", _) => Some(Handle::Status),
        (_, "Job") => Some(Handle::Job),
        (_, "Vm") => Some(Handle::Vm),
        _ => None,
    }
}

/// The variables of `ast` bound only to values with known properties: `Some` when every
/// `let`/`const` of that name binds one (and nothing assigns it), `None` when any does not.
fn handles(ast: &AST) -> HashMap<String, Option<Handle>> {
    let mut out: HashMap<String, Option<Handle>> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, _, _))) => {
                let bound = match &var.1 {
                    Expr::FnCall(call, _) => handle_of(call),
                    _ => None,
                };
                let entry = out.entry(var.0.name.to_string()).or_insert(bound);
                if *entry != bound {
                    *entry = None;
                }
            }
            Some(ASTNode::Stmt(Stmt::Assignment(a))) => {
                if let Expr::Variable(v, _, _) = &a.1.lhs {
                    out.insert(v.1.to_string(), None);
                }
            }
            _ => {}
        }
        true
    });
    out
}
