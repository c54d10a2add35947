//! Lowering regorus' syntax tree to a plan: every name resolved to a slot, a rule, a function,
//! a builtin or a value of `data`; only what the entrypoint reaches is lowered.
//!
//! Anything this does not cover is refused with the construct and its file:line, and the
//! policy then stays with regorus' interpreter. Nothing is dropped: a plan is whole or absent.

use std::collections::{BTreeMap, HashMap, HashSet};

use regorus::unstable::{
    numbers, ArithOp, AssignOp, Expr as Ast, Literal, LiteralStmt, Module, Parser,
    Query as AstQuery, Ref, Rule as AstRule, RuleHead, Span,
};
use regorus::{Source, Value};

use super::builtins::{resolve, Regexes, Unplanned};
use super::ir::{
    AstRef, Body, Definition, Document, Expr, Function, FunctionDefinition, Pattern, Plan, Query,
    Rule, RuleKind, Statement,
};

/// The most statements one query of a plan may have (its evaluation nests a call per
/// statement); a longer one keeps the interpreter.
const MAX_STATEMENTS: usize = 256;

/// Why a policy is not planned: the construct, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The module's name as the config gives it.
    pub file: String,
    /// 1-based; 0 when the reason is not one line's.
    pub line: u32,
    /// What was found, in a few words.
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.what)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.what)
        }
    }
}

fn unsupported(span: &Span, what: impl Into<String>) -> Unsupported {
    Unsupported {
        file: span.source.get_path().clone(),
        line: span.line,
        what: what.into(),
    }
}

/// One parsed module with what its names resolve through.
struct Parsed {
    module: Ref<Module>,
    /// `data.attestgate`.
    package: String,
    /// Import alias → the path it stands for, from its root (`data` or `input`).
    imports: HashMap<String, Vec<String>>,
}

/// What a rule path is defined by.
#[derive(Default)]
struct Definitions {
    rules: Vec<(usize, Ref<AstRule>)>,
    default: Option<(usize, Ref<AstRule>)>,
    /// A second `default` for the path: OPA refuses the module, regorus keeps the first (or
    /// fails on it), so no plan is made for it.
    second_default: Option<Ref<AstRule>>,
    functions: Vec<(usize, Ref<AstRule>)>,
}

/// The locals visible at a point of a rule or function: scopes of names, each a slot or
/// declared by `some x` and not bound yet.
#[derive(Default)]
struct Locals {
    scopes: Vec<Vec<(String, Option<u32>)>>,
    next: u32,
}

impl Locals {
    fn lookup(&self, name: &str) -> Option<Option<u32>> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|scope| scope.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, slot)| *slot)
    }

    fn push(&mut self) {
        self.scopes.push(Vec::new());
    }

    fn pop(&mut self) {
        self.scopes.pop();
    }

    /// A new slot for `name` in the innermost scope.
    fn declare(&mut self, name: &str) -> u32 {
        let slot = self.next;
        self.next += 1;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_owned(), Some(slot)));
        }
        slot
    }

    fn declare_unbound(&mut self, name: &str) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name.to_owned(), None));
        }
    }

    /// Binds a name declared by `some` (the innermost such), or declares it.
    fn bind(&mut self, name: &str) -> u32 {
        let slot = self.next;
        for scope in self.scopes.iter_mut().rev() {
            if let Some(entry) = scope.iter_mut().rev().find(|(n, _)| n == name) {
                if entry.1.is_none() {
                    self.next += 1;
                    entry.1 = Some(slot);
                    return slot;
                }
                break;
            }
        }
        self.declare(name)
    }
}

/// The rule or function being lowered.
struct Context {
    module: usize,
    locals: Locals,
}

/// How a pattern treats a variable it names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `:=`, `some … in`, a parameter: every variable is a new binding.
    Declare,
    /// `=`: an unbound variable binds, a bound one must be equal.
    Unify,
}

/// A reference's parts after its root: a name, or a computed index.
enum Part<'a> {
    Field(Value),
    Computed(&'a AstRef),
}

/// What the plan is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A gate's entrypoint: `data` is constant, `with` is not taken.
    Gate,
    /// A `test_` rule: `with input` and `with data.…` are taken, `data` is read as it runs.
    Test,
}

struct Lowering<'a> {
    purpose: Purpose,
    sources: Vec<Parsed>,
    data: &'a Value,
    paths: BTreeMap<String, Definitions>,
    /// Every strict prefix of a defined path (`data`, `data.attestgate`, …).
    prefixes: HashSet<String>,
    /// First components of rule heads this does not plan (`a.b := 1` defines under `a`).
    opaque: HashSet<String>,
    rules: Vec<Option<Rule>>,
    rule_ids: HashMap<String, usize>,
    functions: Vec<Option<Function>>,
    function_ids: HashMap<String, usize>,
    regexes: Regexes,
}

/// Lowers `modules` (name, Rego source) for `entrypoint` over `data`.
pub(crate) fn lower(
    modules: &[(String, String)],
    data: &Value,
    entrypoint: &str,
    regexes: &Regexes,
    purpose: Purpose,
) -> Result<Plan, Unsupported> {
    let mut lowering = Lowering {
        purpose,
        sources: Vec::new(),
        data,
        paths: BTreeMap::new(),
        prefixes: HashSet::new(),
        opaque: HashSet::new(),
        rules: Vec::new(),
        rule_ids: HashMap::new(),
        functions: Vec::new(),
        function_ids: HashMap::new(),
        regexes: regexes.clone(),
    };
    for (file, content) in modules {
        lowering.add_module(file, content)?;
    }
    lowering.check_data_apart()?;
    let entry = match lowering.paths.get(entrypoint) {
        Some(definitions) if !definitions.rules.is_empty() || definitions.default.is_some() => {
            lowering.rule(entrypoint)?
        }
        _ => {
            return Err(Unsupported {
                file: "config".into(),
                line: 0,
                what: format!("entrypoint `{entrypoint}` is not one rule"),
            })
        }
    };
    let rules = lowering.rules.into_iter().flatten().collect::<Vec<_>>();
    let functions = lowering.functions.into_iter().flatten().collect::<Vec<_>>();
    if rules.len() != lowering.rule_ids.len() || functions.len() != lowering.function_ids.len() {
        return Err(Unsupported {
            file: "plan".into(),
            line: 0,
            what: "a rule or function was left unlowered".into(),
        });
    }
    Ok(Plan {
        rules,
        functions,
        entry,
    })
}

fn names(refr: &AstRef) -> Option<Vec<String>> {
    let spans = Parser::get_path_ref_components(refr).ok()?;
    Some(spans.iter().map(|s| s.text().to_owned()).collect())
}

/// A literal tree's value: scalars, and arrays, sets and objects of literals.
fn literal(expr: &Ast) -> Option<Value> {
    Some(match expr {
        Ast::String { value, .. }
        | Ast::RawString { value, .. }
        | Ast::Number { value, .. }
        | Ast::Bool { value, .. }
        | Ast::Null { value, .. } => value.clone(),
        Ast::Array { items, .. } => Value::from(
            items
                .iter()
                .map(|item| literal(item))
                .collect::<Option<Vec<_>>>()?,
        ),
        Ast::Set { items, .. } => Value::from(
            items
                .iter()
                .map(|item| literal(item))
                .collect::<Option<std::collections::BTreeSet<_>>>()?,
        ),
        Ast::Object { fields, .. } => Value::from(
            fields
                .iter()
                .map(|(_, k, v)| Some((literal(k)?, literal(v)?)))
                .collect::<Option<BTreeMap<_, _>>>()?,
        ),
        _ => return None,
    })
}

/// A rule's or function's bodies, first and `else`s, in order; `None` for a head without
/// one (`r := 1`), which is one body with an empty query.
fn chain(bodies: &[regorus::unstable::RuleBody]) -> Vec<Option<&regorus::unstable::RuleBody>> {
    if bodies.is_empty() {
        vec![None]
    } else {
        bodies.iter().map(Some).collect()
    }
}

/// regorus' "simple literal" (`is_simple_literal`): a rule whose key and value are such stops
/// at its first solution.
fn is_simple_literal(expr: &Ast) -> bool {
    matches!(
        expr,
        Ast::String { .. }
            | Ast::RawString { .. }
            | Ast::Bool { .. }
            | Ast::Null { .. }
            | Ast::Number { .. }
    )
}

impl Lowering<'_> {
    fn add_module(&mut self, file: &str, content: &str) -> Result<(), Unsupported> {
        let refused = |what: String| Unsupported {
            file: file.to_owned(),
            line: 0,
            what,
        };
        let source = Source::from_contents(file.to_owned(), content.to_owned())
            .map_err(|err| refused(format!("{err}")))?;
        let mut parser = Parser::new(&source).map_err(|err| refused(format!("{err}")))?;
        parser
            .enable_rego_v1()
            .map_err(|err| refused(format!("{err}")))?;
        let module = Ref::new(parser.parse().map_err(|err| refused(format!("{err}")))?);
        let package = names(&module.package.refr)
            .map(|names| format!("data.{}", names.join(".")))
            .ok_or_else(|| unsupported(&module.package.span, "a package path with brackets"))?;
        let mut imports = HashMap::new();
        for import in &module.imports {
            let Some(path) = names(&import.refr) else {
                return Err(unsupported(&import.span, "an import path with brackets"));
            };
            match path.first().map(String::as_str) {
                Some("data" | "input") => {}
                _ => continue, // rego.v1, future.keywords
            }
            let alias = match &import.r#as {
                Some(alias) => alias.text().to_owned(),
                None => match path.last() {
                    Some(last) => last.clone(),
                    None => continue,
                },
            };
            imports.insert(alias, path);
        }
        let index = self.sources.len();
        for rule in &module.policy {
            self.add_rule(index, &package, rule);
        }
        self.sources.push(Parsed {
            module,
            package,
            imports,
        });
        Ok(())
    }

    fn add_rule(&mut self, module: usize, package: &str, rule: &Ref<AstRule>) {
        let head_name = |refr: &AstRef| match refr.as_ref() {
            Ast::Var { span, .. } => Some(span.text().to_owned()),
            _ => None,
        };
        let (name, is_default, is_function) = match rule.as_ref() {
            AstRule::Spec {
                head: RuleHead::Compr { refr, .. },
                ..
            } => match refr.as_ref() {
                Ast::RefBrack { refr, .. } => (head_name(refr), false, false),
                _ => (head_name(refr), false, false),
            },
            AstRule::Spec {
                head: RuleHead::Set { refr, key, .. },
                ..
            } => (key.as_ref().and(head_name(refr)), false, false),
            AstRule::Spec {
                head: RuleHead::Func { refr, args, .. },
                ..
            } => (
                (!args.is_empty()).then(|| head_name(refr)).flatten(),
                false,
                true,
            ),
            AstRule::Default { refr, args, .. } => (
                args.is_empty().then(|| head_name(refr)).flatten(),
                true,
                false,
            ),
        };
        let Some(name) = name else {
            // A head this does not plan: its first name is opaque.
            let refr = match rule.as_ref() {
                AstRule::Spec {
                    head:
                        RuleHead::Compr { refr, .. }
                        | RuleHead::Set { refr, .. }
                        | RuleHead::Func { refr, .. },
                    ..
                } => refr,
                AstRule::Default { refr, .. } => refr,
            };
            if let Some(first) = names(refr).and_then(|n| n.into_iter().next()) {
                self.opaque.insert(format!("{package}.{first}"));
            } else {
                self.opaque.insert(package.to_owned());
            }
            return;
        };
        let path = format!("{package}.{name}");
        let mut prefix = String::new();
        for part in path.split('.') {
            if !prefix.is_empty() {
                self.prefixes.insert(prefix.clone());
                prefix.push('.');
            }
            prefix.push_str(part);
        }
        let definitions = self.paths.entry(path).or_default();
        if is_default {
            if definitions.default.is_some() {
                definitions
                    .second_default
                    .get_or_insert_with(|| rule.clone());
                return;
            }
            definitions.default = Some((module, rule.clone()));
        } else if is_function {
            definitions.functions.push((module, rule.clone()));
        } else {
            definitions.rules.push((module, rule.clone()));
        }
    }

    /// Refuses `data` that reaches into a package's path: regorus would prefer it to the
    /// rules there, a case this does not plan.
    fn check_data_apart(&self) -> Result<(), Unsupported> {
        for source in &self.sources {
            let mut value = self.data;
            for part in source.package.split('.').skip(1) {
                value = &value[&Value::from(part)];
                if *value != Value::Undefined {
                    return Err(unsupported(
                        &source.module.package.span,
                        format!("policy.data has `{}`, where this package's rules are", part),
                    ));
                }
            }
        }
        Ok(())
    }

    fn source(&self, module: usize) -> Result<&Parsed, Unsupported> {
        self.sources.get(module).ok_or_else(|| Unsupported {
            file: "plan".into(),
            line: 0,
            what: format!("no module {module}"),
        })
    }

    /// The rule document at `path`, lowered once.
    fn rule(&mut self, path: &str) -> Result<usize, Unsupported> {
        if let Some(&id) = self.rule_ids.get(path) {
            return match self.rules.get(id) {
                Some(Some(_)) => Ok(id),
                // Still being lowered: the rule reaches itself.
                _ => Err(Unsupported {
                    file: "plan".into(),
                    line: 0,
                    what: format!("`{path}` depends on itself"),
                }),
            };
        }
        let id = self.rules.len();
        self.rules.push(None);
        self.rule_ids.insert(path.to_owned(), id);
        let (definitions, default) = match self.paths.get(path) {
            Some(d) => {
                if let Some(AstRule::Default { span, .. }) =
                    d.second_default.as_ref().map(|rule| rule.as_ref())
                {
                    return Err(unsupported(
                        span,
                        format!("a second `default` for `{path}`"),
                    ));
                }
                (d.rules.clone(), d.default.clone())
            }
            None => (Vec::new(), None),
        };
        let mut locals = Locals::default();
        let mut kind = None;
        let mut lowered = Vec::new();
        for (module, rule) in &definitions {
            let AstRule::Spec { span, head, bodies } = rule.as_ref() else {
                continue;
            };
            let mut cx = Context {
                module: *module,
                locals: std::mem::take(&mut locals),
            };
            let (this_kind, definition) = self.definition(&mut cx, span, head, bodies)?;
            locals = cx.locals;
            if kind.is_some_and(|k| k != this_kind) {
                return Err(unsupported(
                    span,
                    "definitions of one rule of different kinds",
                ));
            }
            kind = Some(this_kind);
            lowered.push(definition);
        }
        let default = match default {
            Some((_, rule)) => match rule.as_ref() {
                AstRule::Default { value, span, .. } => {
                    Some(literal(value).ok_or_else(|| {
                        unsupported(span, "a default value that is not a literal")
                    })?)
                }
                _ => None,
            },
            None => None,
        };
        let kind = kind.unwrap_or(RuleKind::Complete);
        if default.is_some() && kind != RuleKind::Complete {
            return Err(Unsupported {
                file: "plan".into(),
                line: 0,
                what: format!("a default for the partial rule `{path}`"),
            });
        }
        let rule = Rule {
            path: path.to_owned(),
            kind,
            definitions: lowered,
            default,
            frame: locals.next,
            folded: None,
        };
        if let Some(place) = self.rules.get_mut(id) {
            *place = Some(rule);
        }
        Ok(id)
    }

    /// One definition of a rule document: its kind and its `else` chain.
    fn definition(
        &mut self,
        cx: &mut Context,
        span: &Span,
        head: &RuleHead,
        bodies: &[regorus::unstable::RuleBody],
    ) -> Result<(RuleKind, Definition), Unsupported> {
        // (kind, key expression, head value expression)
        let (kind, key, head_value) = match head {
            RuleHead::Compr { refr, assign, .. } => match refr.as_ref() {
                Ast::RefBrack { index, .. } => {
                    let Some(assign) = assign else {
                        return Err(unsupported(span, "a `p[k]` rule without `:=`"));
                    };
                    (
                        RuleKind::Object,
                        Some(index.clone()),
                        Some(assign.value.clone()),
                    )
                }
                _ => (
                    RuleKind::Complete,
                    None,
                    assign.as_ref().map(|a| a.value.clone()),
                ),
            },
            RuleHead::Set { key, .. } => (RuleKind::Set, None, key.clone()),
            RuleHead::Func { .. } => return Err(unsupported(span, "a function as a rule")),
        };
        if let Some(assign) = match head {
            RuleHead::Compr { assign, .. } => assign.as_ref(),
            _ => None,
        } {
            if assign.op != AssignOp::ColEq {
                return Err(unsupported(span, "a rule head with `=`"));
            }
        }
        let mut lowered = Vec::new();
        for (index, body) in chain(bodies).into_iter().enumerate() {
            let is_else = body.is_some_and(|b| b.is_else);
            if is_else && kind != RuleKind::Complete {
                return Err(unsupported(span, "`else` on a partial rule"));
            }
            if index > 0 && !is_else && kind == RuleKind::Complete {
                return Err(unsupported(span, "a complete rule with several bodies"));
            }
            let value_ast = if index == 0 {
                head_value.clone()
            } else {
                body.and_then(|b| b.assign.as_ref().map(|a| a.value.clone()))
            };
            cx.locals.push();
            let query = match body {
                Some(body) => self.query(cx, &body.query)?,
                None => Query::default(),
            };
            let key_expr = match &key {
                Some(key) => Some(self.expr(cx, key)?),
                None => None,
            };
            let value = match &value_ast {
                Some(value) => Some(self.expr(cx, value)?),
                None => None,
            };
            cx.locals.pop();
            let stops_at_first = key.as_ref().is_none_or(|k| is_simple_literal(k))
                && value_ast.as_ref().is_none_or(|v| is_simple_literal(v));
            lowered.push(Body {
                query,
                key: key_expr,
                value,
                stops_at_first,
            });
        }
        Ok((kind, Definition { bodies: lowered }))
    }

    /// The function at `path`, lowered once.
    fn function(&mut self, path: &str, span: &Span) -> Result<usize, Unsupported> {
        if let Some(&id) = self.function_ids.get(path) {
            return match self.functions.get(id) {
                Some(Some(_)) => Ok(id),
                _ => Err(unsupported(span, format!("`{path}` calls itself"))),
            };
        }
        let id = self.functions.len();
        self.functions.push(None);
        self.function_ids.insert(path.to_owned(), id);
        let definitions = self
            .paths
            .get(path)
            .map(|d| d.functions.clone())
            .unwrap_or_default();
        if self.paths.get(path).is_some_and(|d| d.default.is_some()) {
            return Err(unsupported(
                span,
                format!("a default for the function `{path}`"),
            ));
        }
        let mut arity = None;
        let mut lowered = Vec::new();
        for (module, rule) in &definitions {
            let AstRule::Spec {
                span,
                head: RuleHead::Func { args, assign, .. },
                bodies,
            } = rule.as_ref()
            else {
                continue;
            };
            if arity.is_some_and(|a| a != args.len()) {
                return Err(unsupported(
                    span,
                    "definitions of one function with different arities",
                ));
            }
            arity = Some(args.len());
            if assign.as_ref().is_some_and(|a| a.op != AssignOp::ColEq) {
                return Err(unsupported(span, "a function head with `=`"));
            }
            let mut cx = Context {
                module: *module,
                locals: Locals::default(),
            };
            cx.locals.push();
            let mut params = Vec::new();
            let mut seen = HashSet::new();
            for arg in args {
                if let Ast::Var { span, .. } = arg.as_ref() {
                    if span.text() != "_" && !seen.insert(span.text().to_owned()) {
                        return Err(unsupported(span, "a parameter named twice"));
                    }
                }
                params.push(self.pattern(&mut cx, arg, Mode::Declare)?);
            }
            let mut lowered_bodies = Vec::new();
            for (index, body) in chain(bodies).into_iter().enumerate() {
                if index > 0 && !body.is_some_and(|b| b.is_else) {
                    return Err(unsupported(span, "a function with several bodies"));
                }
                let value_ast = if index == 0 {
                    assign.as_ref().map(|a| a.value.clone())
                } else {
                    body.and_then(|b| b.assign.as_ref().map(|a| a.value.clone()))
                };
                cx.locals.push();
                let query = match body {
                    Some(body) => self.query(&mut cx, &body.query)?,
                    None => Query::default(),
                };
                let value = match &value_ast {
                    Some(value) => Some(self.expr(&mut cx, value)?),
                    None => None,
                };
                cx.locals.pop();
                lowered_bodies.push(Body {
                    query,
                    key: None,
                    value,
                    stops_at_first: false,
                });
            }
            lowered.push(FunctionDefinition {
                params,
                bodies: lowered_bodies,
                frame: cx.locals.next,
                head_value: assign.is_some(),
            });
        }
        let function = Function {
            path: path.to_owned(),
            arity: arity.unwrap_or(0),
            definitions: lowered,
        };
        if let Some(place) = self.functions.get_mut(id) {
            *place = Some(function);
        }
        Ok(id)
    }

    fn query(&mut self, cx: &mut Context, query: &Ref<AstQuery>) -> Result<Query, Unsupported> {
        // A query runs as nested calls, one per statement: bound so the stack is.
        if query.stmts.len() > MAX_STATEMENTS {
            return Err(unsupported(
                &query.span,
                format!("a query of more than {MAX_STATEMENTS} statements"),
            ));
        }
        let mut statements = Vec::new();
        for stmt in &query.stmts {
            if let Some(statement) = self.statement(cx, stmt)? {
                statements.push(statement);
            }
        }
        Ok(Query { statements })
    }

    fn statement(
        &mut self,
        cx: &mut Context,
        stmt: &LiteralStmt,
    ) -> Result<Option<Statement>, Unsupported> {
        let Some(first) = stmt.with_mods.first() else {
            return self.literal(cx, &stmt.literal);
        };
        if self.purpose != Purpose::Test {
            return Err(unsupported(&first.span, "`with`"));
        }
        let mut replace = Vec::new();
        for with in &stmt.with_mods {
            let document = self.with_target(with)?;
            replace.push((document, self.expr(cx, &with.r#as)?));
        }
        match self.literal(cx, &stmt.literal)? {
            Some(Statement::SomeIn { .. }) | None => {
                Err(unsupported(&first.span, "`with` on `some`"))
            }
            Some(statement) => Ok(Some(Statement::With {
                replace,
                statement: Box::new(statement),
            })),
        }
    }

    /// What a `with` replaces: `input` whole, or config data away from every rule.
    fn with_target(&self, with: &regorus::unstable::WithModifier) -> Result<Document, Unsupported> {
        let refused = || unsupported(&with.span, "`with` on anything but `input` or config data");
        let path = names(&with.refr).ok_or_else(refused)?;
        match path.split_first() {
            Some((root, rest)) if root == "input" && rest.is_empty() => Ok(Document::Input),
            Some((root, rest)) if root == "data" && !rest.is_empty() => {
                let mut joined = String::from("data");
                for part in rest {
                    joined.push('.');
                    joined.push_str(part);
                    if self.paths.contains_key(&joined) || self.opaque.contains(&joined) {
                        return Err(refused());
                    }
                }
                if self.prefixes.contains(&joined) {
                    return Err(refused());
                }
                Ok(Document::Data(
                    rest.iter().map(|p| Value::from(p.as_str())).collect(),
                ))
            }
            _ => Err(refused()),
        }
    }

    fn literal(
        &mut self,
        cx: &mut Context,
        literal: &Literal,
    ) -> Result<Option<Statement>, Unsupported> {
        Ok(Some(match literal {
            Literal::SomeVars { vars, .. } => {
                for var in vars {
                    cx.locals.declare_unbound(var.text());
                }
                return Ok(None);
            }
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                let collection = self.expr(cx, collection)?;
                let key = match key {
                    Some(key) => Some(self.pattern(cx, key, Mode::Declare)?),
                    None => None,
                };
                let value = self.pattern(cx, value, Mode::Declare)?;
                Statement::SomeIn {
                    key,
                    value,
                    collection,
                }
            }
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                let domain = self.expr(cx, domain)?;
                cx.locals.push();
                let value = cx.locals.declare(value.text());
                let key = key.as_ref().map(|key| cx.locals.declare(key.text()));
                let body = self.query(cx, query)?;
                cx.locals.pop();
                Statement::Every {
                    key,
                    value,
                    domain,
                    body,
                }
            }
            Literal::NotExpr { expr, .. } => Statement::Not(self.expr(cx, expr)?),
            Literal::Expr { expr, .. } => match expr.as_ref() {
                Ast::AssignExpr {
                    op: AssignOp::ColEq,
                    lhs,
                    rhs,
                    ..
                } => {
                    let value = self.expr(cx, rhs)?;
                    let pattern = self.pattern(cx, lhs, Mode::Declare)?;
                    Statement::Match { pattern, value }
                }
                Ast::AssignExpr {
                    op: AssignOp::Eq,
                    lhs,
                    rhs,
                    span,
                    ..
                } => match (self.has_unbound(cx, lhs), self.has_unbound(cx, rhs)) {
                    (false, false) => Statement::Equal(self.expr(cx, lhs)?, self.expr(cx, rhs)?),
                    (true, false) => {
                        let value = self.expr(cx, rhs)?;
                        let pattern = self.pattern(cx, lhs, Mode::Unify)?;
                        Statement::Match { pattern, value }
                    }
                    (false, true) => {
                        let value = self.expr(cx, lhs)?;
                        let pattern = self.pattern(cx, rhs, Mode::Unify)?;
                        Statement::Match { pattern, value }
                    }
                    (true, true) => {
                        return Err(unsupported(
                            span,
                            "`=` with unbound variables on both sides",
                        ))
                    }
                },
                _ => Statement::Test(self.expr(cx, expr)?),
            },
        }))
    }

    /// Whether a `=` side names a variable that is not bound yet (or is `_`).
    fn has_unbound(&self, cx: &Context, expr: &AstRef) -> bool {
        match expr.as_ref() {
            Ast::Var { span, .. } => {
                let name = span.text();
                name == "_"
                    || match cx.locals.lookup(name) {
                        Some(slot) => slot.is_none(),
                        None => !self.is_global(cx, name),
                    }
            }
            Ast::Array { items, .. } => items.iter().any(|i| self.has_unbound(cx, i)),
            Ast::Object { fields, .. } => fields.iter().any(|(_, _, v)| self.has_unbound(cx, v)),
            _ => false,
        }
    }

    /// A name that is not a local: `input`, `data`, an import or a rule of the package.
    fn is_global(&self, cx: &Context, name: &str) -> bool {
        let Ok(source) = self.source(cx.module) else {
            return false;
        };
        let path = format!("{}.{name}", source.package);
        matches!(name, "input" | "data")
            || source.imports.contains_key(name)
            || self.paths.contains_key(&path)
            || self.prefixes.contains(&path)
            || self.opaque.contains(&path)
    }

    fn pattern(
        &mut self,
        cx: &mut Context,
        expr: &AstRef,
        mode: Mode,
    ) -> Result<Pattern, Unsupported> {
        if let Some(value) = literal(expr) {
            return Ok(Pattern::Equal(Expr::Const(value)));
        }
        Ok(match expr.as_ref() {
            Ast::Var { span, .. } if span.text() == "_" => Pattern::Ignore,
            Ast::Var { span, .. } => {
                let name = span.text();
                match mode {
                    Mode::Declare => Pattern::Bind(cx.locals.declare(name)),
                    Mode::Unify => match cx.locals.lookup(name) {
                        Some(Some(slot)) => Pattern::Equal(Expr::Local(slot)),
                        Some(None) => Pattern::Bind(cx.locals.bind(name)),
                        None if self.is_global(cx, name) => Pattern::Equal(self.expr(cx, expr)?),
                        None => Pattern::Bind(cx.locals.declare(name)),
                    },
                }
            }
            Ast::Array { items, .. } => Pattern::Array(
                items
                    .iter()
                    .map(|item| self.pattern(cx, item, mode))
                    .collect::<Result<_, _>>()?,
            ),
            Ast::Object { fields, span, .. } => {
                let mut lowered = Vec::new();
                for (_, key, value) in fields {
                    let Some(key) = literal(key) else {
                        return Err(unsupported(span, "an object pattern with a computed key"));
                    };
                    lowered.push((key, self.pattern(cx, value, mode)?));
                }
                Pattern::Object(lowered)
            }
            _ if mode == Mode::Unify => Pattern::Equal(self.expr(cx, expr)?),
            other => return Err(unsupported(other.span(), "this on the left of `:=`")),
        })
    }

    fn expr(&mut self, cx: &mut Context, expr: &AstRef) -> Result<Expr, Unsupported> {
        Ok(match expr.as_ref() {
            Ast::String { value, .. }
            | Ast::RawString { value, .. }
            | Ast::Number { value, .. }
            | Ast::Bool { value, .. }
            | Ast::Null { value, .. } => Expr::Const(value.clone()),
            Ast::Var { .. } | Ast::RefDot { .. } | Ast::RefBrack { .. } => {
                self.reference(cx, expr)?
            }
            Ast::Array { items, .. } => Expr::Array(self.exprs(cx, items)?),
            Ast::Set { items, .. } => Expr::Set(self.exprs(cx, items)?),
            Ast::Object { fields, .. } => {
                let mut lowered = Vec::new();
                for (_, key, value) in fields {
                    lowered.push((self.expr(cx, key)?, self.expr(cx, value)?));
                }
                Expr::Object(lowered)
            }
            Ast::ArrayCompr { term, query, .. } => {
                cx.locals.push();
                let body = self.query(cx, query)?;
                let term = self.expr(cx, term)?;
                cx.locals.pop();
                Expr::ArrayComprehension(Box::new(term), Box::new(body))
            }
            Ast::SetCompr { term, query, .. } => {
                cx.locals.push();
                let body = self.query(cx, query)?;
                let term = self.expr(cx, term)?;
                cx.locals.pop();
                Expr::SetComprehension(Box::new(term), Box::new(body))
            }
            Ast::ObjectCompr {
                key, value, query, ..
            } => {
                cx.locals.push();
                let body = self.query(cx, query)?;
                let key = self.expr(cx, key)?;
                let value = self.expr(cx, value)?;
                cx.locals.pop();
                Expr::ObjectComprehension(Box::new(key), Box::new(value), Box::new(body))
            }
            Ast::Call {
                span, fcn, params, ..
            } => self.call(cx, span, fcn, params)?,
            Ast::UnaryExpr {
                span, expr: inner, ..
            } => match inner.as_ref() {
                Ast::Number { value, .. } if !inner.span().text().starts_with('-') => {
                    let negated = numbers::arithmetic_operation(
                        span,
                        &ArithOp::Sub,
                        expr,
                        inner,
                        Value::from(0),
                        value.clone(),
                        true,
                    )
                    .map_err(|_| unsupported(span, "this negation"))?;
                    Expr::Const(negated)
                }
                _ => return Err(unsupported(span, "unary minus on something but a number")),
            },
            Ast::BinExpr { op, lhs, rhs, .. } => Expr::SetOp {
                op: op.clone(),
                lhs: Box::new(self.expr(cx, lhs)?),
                rhs: Box::new(self.expr(cx, rhs)?),
                ast: expr.clone(),
            },
            Ast::BoolExpr { op, lhs, rhs, .. } => Expr::Compare(
                op.clone(),
                Box::new(self.expr(cx, lhs)?),
                Box::new(self.expr(cx, rhs)?),
            ),
            Ast::ArithExpr { op, lhs, rhs, .. } => Expr::Arith {
                op: op.clone(),
                lhs: Box::new(self.expr(cx, lhs)?),
                rhs: Box::new(self.expr(cx, rhs)?),
                ast: expr.clone(),
            },
            Ast::Membership {
                key,
                value,
                collection,
                ..
            } => Expr::Member {
                key: match key {
                    Some(key) => Some(Box::new(self.expr(cx, key)?)),
                    None => None,
                },
                value: Box::new(self.expr(cx, value)?),
                collection: Box::new(self.expr(cx, collection)?),
            },
            #[allow(unreachable_patterns)]
            other => return Err(unsupported(other.span(), "this expression")),
        })
    }

    fn exprs(&mut self, cx: &mut Context, items: &[AstRef]) -> Result<Vec<Expr>, Unsupported> {
        items.iter().map(|item| self.expr(cx, item)).collect()
    }

    /// A variable or a reference: its root resolved, then each part applied.
    fn reference(&mut self, cx: &mut Context, expr: &AstRef) -> Result<Expr, Unsupported> {
        let mut parts: Vec<Part<'_>> = Vec::new();
        let mut root = expr;
        loop {
            match root.as_ref() {
                Ast::RefDot { refr, field, .. } => {
                    parts.push(Part::Field(field.1.clone()));
                    root = refr;
                }
                Ast::RefBrack { refr, index, .. } => {
                    match index.as_ref() {
                        Ast::String { value, .. } => parts.push(Part::Field(value.clone())),
                        _ => parts.push(Part::Computed(index)),
                    }
                    root = refr;
                }
                _ => break,
            }
        }
        parts.reverse();
        let Ast::Var { span, .. } = root.as_ref() else {
            let base = self.expr(cx, root)?;
            return self.apply(cx, base, &parts);
        };
        let name = span.text();
        if name == "_" {
            return Err(unsupported(span, "`_` (iteration) in a reference"));
        }
        match cx.locals.lookup(name) {
            Some(Some(slot)) => return self.apply(cx, Expr::Local(slot), &parts),
            Some(None) => {
                return Err(unsupported(
                    span,
                    format!("`{name}` used before it is bound"),
                ))
            }
            None => {}
        }
        if name == "input" {
            return self.apply(cx, Expr::Input, &parts);
        }
        if name == "data" {
            return self.data_reference(cx, span, Vec::new(), &parts);
        }
        let source = self.source(cx.module)?;
        if let Some(path) = source.imports.get(name).cloned() {
            let (root, rest) = path
                .split_first()
                .ok_or_else(|| unsupported(span, "an empty import"))?;
            let mut prefix: Vec<Part<'_>> = rest
                .iter()
                .map(|p| Part::Field(Value::from(p.as_str())))
                .collect();
            if root == "input" {
                prefix.extend(parts);
                return self.apply(cx, Expr::Input, &prefix);
            }
            return self.data_reference(cx, span, Vec::new(), &{
                prefix.extend(parts);
                prefix
            });
        }
        let package: Vec<String> = source
            .package
            .split('.')
            .skip(1)
            .map(str::to_owned)
            .collect();
        if self.is_global(cx, name) {
            let mut static_path = package;
            static_path.push(name.to_owned());
            return self.data_reference(cx, span, static_path, &parts);
        }
        Err(unsupported(
            span,
            format!("`{name}` is not bound here (regorus may reorder the query)"),
        ))
    }

    /// `data` followed by `path` and then `parts`: a rule's value with the rest applied, or a
    /// value of the config's `data`.
    fn data_reference(
        &mut self,
        cx: &mut Context,
        span: &Span,
        mut path: Vec<String>,
        parts: &[Part<'_>],
    ) -> Result<Expr, Unsupported> {
        let mut rest = parts;
        loop {
            let joined = format!(
                "data{}",
                path.iter().map(|p| format!(".{p}")).collect::<String>()
            );
            if let Some(definitions) = self.paths.get(&joined) {
                if !definitions.functions.is_empty() {
                    return Err(unsupported(
                        span,
                        format!("`{joined}`, a function, used as a value"),
                    ));
                }
                let id = self.rule(&joined)?;
                return self.apply(cx, Expr::Rule(id), rest);
            }
            if self.opaque.contains(&joined) {
                return Err(unsupported(
                    span,
                    format!("`{joined}`, a rule this does not plan"),
                ));
            }
            if !self.prefixes.contains(&joined) && self.purpose == Purpose::Test {
                // Read as the plan runs: a test's `with` may replace it.
                let mut names: Vec<Value> = path.iter().map(|p| Value::from(p.as_str())).collect();
                for part in rest {
                    match part {
                        Part::Field(field) => names.push(field.clone()),
                        Part::Computed(_) => {
                            return Err(unsupported(span, "a computed index into `data`"))
                        }
                    }
                }
                return Ok(Expr::Data(names));
            }
            if !self.prefixes.contains(&joined) {
                // No rule at or below this path: a value of the config's data, fixed per gate.
                let mut value = self.data.clone();
                for part in &path {
                    value = value[&Value::from(part.as_str())].clone();
                }
                for part in rest {
                    match part {
                        Part::Field(field) => value = value[field].clone(),
                        Part::Computed(_) => {
                            return Err(unsupported(span, "a computed index into `data`"))
                        }
                    }
                }
                return Ok(Expr::Const(value));
            }
            // Rules lie below this path: the next name says which.
            match rest.split_first() {
                Some((Part::Field(Value::String(field)), tail)) => {
                    path.push(field.to_string());
                    rest = tail;
                }
                Some(_) => return Err(unsupported(span, "a computed name among rules")),
                None => return Err(unsupported(span, format!("`{joined}` read whole"))),
            }
        }
    }

    /// `base` indexed by each part in turn; runs of names become one [`Expr::Path`].
    fn apply(
        &mut self,
        cx: &mut Context,
        base: Expr,
        parts: &[Part<'_>],
    ) -> Result<Expr, Unsupported> {
        let mut expr = base;
        let mut names: Vec<Value> = Vec::new();
        for part in parts {
            let index = match part {
                Part::Field(field) => {
                    names.push(field.clone());
                    continue;
                }
                Part::Computed(index) => {
                    if let Ast::Var { span, .. } = index.as_ref() {
                        let name = span.text();
                        if name == "_"
                            || matches!(cx.locals.lookup(name), Some(None))
                            || (cx.locals.lookup(name).is_none() && !self.is_global(cx, name))
                        {
                            return Err(unsupported(
                                span,
                                format!("iteration by the unbound `{name}` in a reference"),
                            ));
                        }
                    }
                    self.expr(cx, index)?
                }
            };
            if !names.is_empty() {
                expr = Expr::Path(Box::new(expr), std::mem::take(&mut names));
            }
            expr = Expr::Index(Box::new(expr), Box::new(index));
        }
        if !names.is_empty() {
            expr = Expr::Path(Box::new(expr), names);
        }
        Ok(expr)
    }

    /// A call: a function of the policy, else a builtin.
    fn call(
        &mut self,
        cx: &mut Context,
        span: &Span,
        fcn: &AstRef,
        params: &[AstRef],
    ) -> Result<Expr, Unsupported> {
        let Some(mut name) = names(fcn) else {
            return Err(unsupported(span, "a computed function"));
        };
        let source = self.source(cx.module)?;
        if let Some(imported) = name.first().and_then(|first| source.imports.get(first)) {
            let mut expanded = imported.clone();
            expanded.extend(name.into_iter().skip(1));
            name = expanded;
        }
        let joined = name.join(".");
        let path = if joined.starts_with("data.") {
            joined.clone()
        } else {
            format!("{}.{joined}", source.package)
        };
        if let Some(definitions) = self.paths.get(&path) {
            if definitions.functions.is_empty() {
                return Err(unsupported(span, format!("`{joined}` calls a rule")));
            }
            let id = self.function(&path, span)?;
            let arity = self
                .functions
                .get(id)
                .and_then(|f| f.as_ref())
                .map(|f| f.arity);
            if arity != Some(params.len()) {
                return Err(unsupported(
                    span,
                    format!("`{joined}` with an output argument"),
                ));
            }
            let args = self.exprs(cx, params)?;
            return Ok(Expr::Function(id, args));
        }
        if self.opaque.contains(&path) || self.prefixes.contains(&path) {
            return Err(unsupported(
                span,
                format!("`{joined}`, a function this does not plan"),
            ));
        }
        let literal = params.first().and_then(|p| match p.as_ref() {
            Ast::String { value, .. } | Ast::RawString { value, .. } => {
                value.as_string().ok().map(|s| s.to_string())
            }
            _ => None,
        });
        let call = match resolve(&joined, span, params, literal.as_deref(), &self.regexes) {
            Ok(call) => call,
            Err(Unplanned::NotPlanned) => {
                return Err(unsupported(
                    span,
                    format!("`{joined}`, which a plan never calls"),
                ))
            }
            Err(Unplanned::Unknown) => {
                return Err(unsupported(
                    span,
                    format!("`{joined}`, an unknown function"),
                ))
            }
            Err(Unplanned::Arity(n)) => {
                return Err(unsupported(
                    span,
                    format!("`{joined}` with {} arguments (it takes {n})", params.len()),
                ))
            }
        };
        let args = self.exprs(cx, params)?;
        Ok(Expr::Call(call, args))
    }
}
