//! Evaluating a plan: one decision's rule values, each computed at most once; queries as
//! statements run in order, a generator running the rest of its query once per item.
//!
//! Each construct computes what regorus' interpreter computes for it, errors included (the
//! differential tests and the `policy_plan` fuzz target hold it to that): an expression with an
//! undefined operand is undefined, a builtin or function with an undefined argument is
//! undefined, a rule whose value is a literal stops at its first solution.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Result};
use regorus::unstable::{comparison, numbers, sets, ArithOp, BinOp, Expr as Ast};
use regorus::Value;

use super::ir::{
    Body, Definition, Document, Expr, Folded, FunctionDefinition, Pattern, Plan, Query, RuleKind,
    Statement,
};

/// Deepest nesting of function calls; Rego has no recursion, so only a plan bug reaches it.
const MAX_CALL_DEPTH: u32 = 128;

/// Whether a generator goes on to its next item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// A rule's value in this decision.
#[derive(Clone)]
enum Memo {
    Pending,
    Running,
    Done(Option<Value>),
    Failed(String),
}

/// The locals of one rule or function evaluation; `Undefined` marks a slot not bound yet.
/// Most rules and functions have a few: those stay off the heap.
pub(crate) type Frame = smallvec::SmallVec<[Value; 8]>;

/// One decision's evaluation of a plan.
pub(crate) struct Evaluation<'p> {
    plan: &'p Plan,
    input: &'p Value,
    /// The config data, for a test plan's [`Expr::Data`] (a gate's plan has none).
    data: &'p Value,
    memo: Vec<Memo>,
    depth: u32,
}

impl<'p> Evaluation<'p> {
    pub(crate) fn new(plan: &'p Plan, input: &'p Value, data: &'p Value) -> Evaluation<'p> {
        Evaluation {
            plan,
            input,
            data,
            memo: vec![Memo::Pending; plan.rules.len()],
            depth: 0,
        }
    }

    /// The value of rule `index`, computed once per evaluation.
    pub(crate) fn rule(&mut self, index: usize) -> Result<Option<Value>> {
        let rule = self
            .plan
            .rules
            .get(index)
            .ok_or_else(|| anyhow!("plan: no rule {index}"))?;
        if let Some(folded) = &rule.folded {
            return match folded {
                Folded::Value(value) => Ok(value.clone()),
                Folded::Error(message) => Err(anyhow!("{message}")),
            };
        }
        let memo = self
            .memo
            .get_mut(index)
            .ok_or_else(|| anyhow!("plan: no rule {index}"))?;
        match memo {
            Memo::Done(value) => return Ok(value.clone()),
            Memo::Failed(message) => return Err(anyhow!("{message}")),
            Memo::Running => bail!("rule {} depends on itself", rule.path),
            Memo::Pending => *memo = Memo::Running,
        }
        let result = self.compute_rule(index);
        if let Some(memo) = self.memo.get_mut(index) {
            *memo = match &result {
                Ok(value) => Memo::Done(value.clone()),
                Err(err) => Memo::Failed(format!("{err:#}")),
            };
        }
        result
    }

    /// A rule's value from all its definitions: one value (complete), or every element or
    /// member they make (partial set and object, defined even when empty).
    fn compute_rule(&mut self, index: usize) -> Result<Option<Value>> {
        let plan = self.plan;
        let rule = plan
            .rules
            .get(index)
            .ok_or_else(|| anyhow!("plan: no rule {index}"))?;
        let mut frame: Frame = smallvec::smallvec![Value::Undefined; rule.frame as usize];
        match rule.kind {
            RuleKind::Complete => {
                let mut value: Option<Value> = None;
                for definition in &rule.definitions {
                    if let Some(new) = self.complete_value(definition, &mut frame)? {
                        match &value {
                            Some(old) if *old != new => {
                                bail!("complete rules should not produce multiple outputs")
                            }
                            _ => value = Some(new),
                        }
                    }
                }
                Ok(value.or_else(|| rule.default.clone()))
            }
            RuleKind::Set => {
                let mut set = BTreeSet::new();
                for definition in &rule.definitions {
                    for item in self.partial_items(definition, &mut frame)? {
                        set.insert(item.1);
                    }
                }
                Ok(Some(Value::from(set)))
            }
            RuleKind::Object => {
                let mut object = BTreeMap::new();
                for definition in &rule.definitions {
                    for (key, value) in self.partial_items(definition, &mut frame)? {
                        match object.get(&key) {
                            Some(old) if *old != value => {
                                bail!("rules must not produce multiple outputs")
                            }
                            _ => {
                                object.insert(key, value);
                            }
                        }
                    }
                }
                Ok(Some(Value::from(object)))
            }
        }
    }

    /// A complete rule definition's value: the first body of its `else` chain with a solution
    /// decides. Solutions must agree; one whose value is undefined leaves the rule undefined
    /// (and a solution after it is an error, as in regorus).
    fn complete_value(
        &mut self,
        definition: &Definition,
        frame: &mut Frame,
    ) -> Result<Option<Value>> {
        for body in &definition.bodies {
            let mut value: Option<Value> = None;
            let mut wiped = false;
            let mut solved = false;
            self.query(frame, &body.query, &mut |ev, frame| {
                let Some(new) = ev.body_value(body, frame)? else {
                    value = None;
                    wiped = true;
                    return Ok(Flow::Continue);
                };
                if wiped {
                    bail!("not an object");
                }
                match &value {
                    Some(old) if *old != new => {
                        bail!("rules must not produce multiple outputs")
                    }
                    _ => value = Some(new),
                }
                solved = true;
                Ok(if body.stops_at_first {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })?;
            if solved {
                return Ok(value);
            }
        }
        Ok(None)
    }

    /// A partial rule definition's `(key, value)` pairs (for a set: `(element, element)`).
    fn partial_items(
        &mut self,
        definition: &Definition,
        frame: &mut Frame,
    ) -> Result<Vec<(Value, Value)>> {
        let mut all = Vec::new();
        for body in &definition.bodies {
            let mut items: BTreeMap<Value, Value> = BTreeMap::new();
            let mut wiped = false;
            self.query(frame, &body.query, &mut |ev, frame| {
                // A set's element is its own key.
                let key = match &body.key {
                    Some(key) => ev.expr(frame, key)?,
                    None => None,
                };
                let value = ev.body_value(body, frame)?;
                let key = if body.key.is_none() {
                    value.clone()
                } else {
                    key
                };
                let (Some(key), Some(value)) = (key, value) else {
                    items.clear();
                    wiped = true;
                    return Ok(Flow::Continue);
                };
                if wiped {
                    bail!("not an object");
                }
                match items.get(&key) {
                    Some(old) if *old != value => {
                        bail!("rules must not produce multiple outputs")
                    }
                    _ => {
                        items.insert(key, value);
                    }
                }
                Ok(if body.stops_at_first {
                    Flow::Stop
                } else {
                    Flow::Continue
                })
            })?;
            all.extend(items);
        }
        Ok(all)
    }

    /// The value a body's solution gives: its expression, or `true`.
    fn body_value(&mut self, body: &Body, frame: &mut Frame) -> Result<Option<Value>> {
        match &body.value {
            Some(value) => self.expr(frame, value),
            None => Ok(Some(Value::Bool(true))),
        }
    }

    /// A call of function `index` on defined arguments: every definition whose parameters
    /// match runs; they must agree, and an error in any is the call's error.
    fn call(&mut self, index: usize, args: &[Value]) -> Result<Option<Value>> {
        let plan = self.plan;
        let function = plan
            .functions
            .get(index)
            .ok_or_else(|| anyhow!("plan: no function {index}"))?;
        if self.depth >= MAX_CALL_DEPTH {
            bail!("{}: calls nest deeper than {MAX_CALL_DEPTH}", function.path);
        }
        self.depth += 1;
        let mut results: Vec<Value> = Vec::new();
        let mut error = None;
        for definition in &function.definitions {
            let mut frame: Frame = smallvec::smallvec![Value::Undefined; definition.frame as usize];
            let mut bound = true;
            for (param, arg) in definition.params.iter().zip(args) {
                if !self.bind(&mut frame, param, arg)? {
                    bound = false;
                    break;
                }
            }
            if !bound {
                continue;
            }
            match self.function_value(definition, &mut frame) {
                Ok(Some(value)) => results.push(value),
                Ok(None) => {}
                Err(err) => {
                    error.get_or_insert(err);
                }
            }
        }
        self.depth -= 1;
        if let Some(error) = error {
            return Err(error);
        }
        let mut results = results.into_iter();
        let first = results.next();
        if let Some(first) = &first {
            if results.any(|other| other != *first) {
                bail!("functions must not produce multiple outputs for same inputs");
            }
        }
        Ok(first)
    }

    /// One function definition's value: the first body of its chain with a solution decides;
    /// its solutions' defined values must agree. A body with solutions but no value gives
    /// `true` when the head names no value, else nothing.
    fn function_value(
        &mut self,
        definition: &FunctionDefinition,
        frame: &mut Frame,
    ) -> Result<Option<Value>> {
        for body in &definition.bodies {
            let mut values: BTreeSet<Value> = BTreeSet::new();
            let mut solved = false;
            self.query(frame, &body.query, &mut |ev, frame| {
                solved = true;
                if let Some(value) = &body.value {
                    if let Some(value) = ev.expr(frame, value)? {
                        values.insert(value);
                    }
                }
                Ok(Flow::Continue)
            })?;
            if solved {
                let mut values = values.into_iter();
                return match (values.next(), values.next()) {
                    (Some(_), Some(_)) => bail!("function produced multiple outputs"),
                    (Some(value), None) => Ok(Some(value)),
                    (None, _) if !definition.head_value => Ok(Some(Value::Bool(true))),
                    (None, _) => Ok(None),
                };
            }
        }
        Ok(None)
    }

    /// Runs `statements`, calling `solution` with the frame each time all of them hold.
    fn query(
        &mut self,
        frame: &mut Frame,
        query: &Query,
        solution: &mut dyn FnMut(&mut Self, &mut Frame) -> Result<Flow>,
    ) -> Result<Flow> {
        self.statements(frame, &query.statements, solution)
    }

    fn statements(
        &mut self,
        frame: &mut Frame,
        statements: &[Statement],
        solution: &mut dyn FnMut(&mut Self, &mut Frame) -> Result<Flow>,
    ) -> Result<Flow> {
        let Some((first, rest)) = statements.split_first() else {
            return solution(self, frame);
        };
        let holds = match first {
            Statement::SomeIn {
                key,
                value,
                collection,
            } => return self.some_in(frame, key.as_ref(), value, collection, rest, solution),
            other => self.holds(frame, other)?,
        };
        if holds {
            self.statements(frame, rest, solution)
        } else {
            Ok(Flow::Continue)
        }
    }

    /// Whether a statement that is not a generator holds (binding what it binds).
    fn holds(&mut self, frame: &mut Frame, statement: &Statement) -> Result<bool> {
        Ok(match statement {
            Statement::Test(expr) => {
                !matches!(self.expr(frame, expr)?, None | Some(Value::Bool(false)))
            }
            Statement::Not(expr) => {
                matches!(self.expr(frame, expr)?, None | Some(Value::Bool(false)))
            }
            Statement::Equal(lhs, rhs) => {
                let lhs = self.expr(frame, lhs)?;
                let rhs = self.expr(frame, rhs)?;
                matches!((lhs, rhs), (Some(l), Some(r)) if l == r)
            }
            Statement::Match { pattern, value } => match self.expr(frame, value)? {
                Some(value) => self.bind(frame, pattern, &value)?,
                None => false,
            },
            Statement::Every {
                key,
                value,
                domain,
                body,
            } => self.every(frame, *key, *value, domain, body)?,
            Statement::With { replace, statement } => self.with(frame, replace, statement)?,
            Statement::SomeIn { .. } => bail!("plan: a generator under `with`"),
        })
    }

    /// `statement with …`: decided by an evaluation of its own over the replaced documents.
    fn with(
        &mut self,
        frame: &mut Frame,
        replace: &[(Document, Expr)],
        statement: &Statement,
    ) -> Result<bool> {
        let mut input = self.input.clone();
        let mut data = self.data.clone();
        for (document, value) in replace {
            let Some(value) = self.expr(frame, value)? else {
                return Ok(false);
            };
            match document {
                Document::Input => input = value,
                Document::Data(path) => set_path(&mut data, path, value)?,
            }
        }
        let mut inner = Evaluation::new(self.plan, &input, &data);
        inner.depth = self.depth;
        inner.holds(frame, statement)
    }

    /// `some key, value in collection`, then the rest of the query for each item.
    fn some_in(
        &mut self,
        frame: &mut Frame,
        key: Option<&Pattern>,
        value: &Pattern,
        collection: &Expr,
        rest: &[Statement],
        solution: &mut dyn FnMut(&mut Self, &mut Frame) -> Result<Flow>,
    ) -> Result<Flow> {
        let collection = match self.expr(frame, collection)? {
            None => return Ok(Flow::Continue),
            Some(c @ (Value::Array(_) | Value::Set(_) | Value::Object(_))) => c,
            Some(other) => {
                bail!("`some .. in collection` expects array/set/object. Got `{other}`")
            }
        };
        for_each_item(&collection, key.is_some(), |item_key, item| {
            if let Some(key) = key {
                if !self.bind(frame, key, item_key)? {
                    return Ok(Flow::Continue);
                }
            }
            if !self.bind(frame, value, item)? {
                return Ok(Flow::Continue);
            }
            self.statements(frame, rest, solution)
        })
    }

    /// `every`: the body has a solution for each item; false for anything but a collection.
    fn every(
        &mut self,
        frame: &mut Frame,
        key: Option<u32>,
        value: u32,
        domain: &Expr,
        body: &Query,
    ) -> Result<bool> {
        let domain = match self.expr(frame, domain)? {
            Some(d @ (Value::Array(_) | Value::Set(_) | Value::Object(_))) => d,
            _ => return Ok(false),
        };
        let flow = for_each_item(&domain, key.is_some(), |item_key, item| {
            set(frame, value, item.clone())?;
            if let Some(key) = key {
                set(frame, key, item_key.clone())?;
            }
            let mut solved = false;
            self.query(frame, body, &mut |_, _| {
                solved = true;
                Ok(Flow::Continue)
            })?;
            Ok(if solved { Flow::Continue } else { Flow::Stop })
        })?;
        Ok(flow == Flow::Continue)
    }

    /// Matches `value` against `pattern`, binding its slots.
    fn bind(&mut self, frame: &mut Frame, pattern: &Pattern, value: &Value) -> Result<bool> {
        if *value == Value::Undefined {
            return Ok(false);
        }
        match pattern {
            Pattern::Bind(slot) => {
                set(frame, *slot, value.clone())?;
                Ok(true)
            }
            Pattern::Ignore => Ok(true),
            Pattern::Equal(expected) => Ok(self.expr(frame, expected)?.as_ref() == Some(value)),
            Pattern::Array(patterns) => {
                let Value::Array(items) = value else {
                    return Ok(false);
                };
                if items.len() != patterns.len() {
                    return Ok(false);
                }
                for (pattern, item) in patterns.iter().zip(items.iter()) {
                    if !self.bind(frame, pattern, item)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Pattern::Object(fields) => {
                let Value::Object(members) = value else {
                    return Ok(false);
                };
                for (key, pattern) in fields {
                    match members.get(key) {
                        Some(member) => {
                            if !self.bind(frame, pattern, member)? {
                                return Ok(false);
                            }
                        }
                        None => return Ok(false),
                    }
                }
                Ok(true)
            }
        }
    }

    /// An expression's value; `None` is undefined.
    pub(crate) fn expr(&mut self, frame: &mut Frame, expr: &Expr) -> Result<Option<Value>> {
        Ok(match expr {
            Expr::Const(value) => defined(value.clone()),
            Expr::Local(slot) => defined(
                frame
                    .get(*slot as usize)
                    .ok_or_else(|| anyhow!("plan: no slot {slot}"))?
                    .clone(),
            ),
            Expr::Input => defined(self.input.clone()),
            Expr::Data(path) => self.path(frame, &Expr::Const(self.data.clone()), path)?,
            Expr::Rule(index) => self.rule(*index)?,
            Expr::Path(base, names) => self.path(frame, base, names)?,
            Expr::Index(base, index) => {
                // regorus evaluates a computed index before what it indexes.
                let index = self.expr(frame, index)?;
                let base = self.expr(frame, base)?;
                match (base, index) {
                    (Some(base), Some(index)) => defined(base[&index].clone()),
                    _ => None,
                }
            }
            Expr::Array(items) => {
                let mut array = Vec::with_capacity(items.len());
                for item in items {
                    let Some(item) = self.expr(frame, item)? else {
                        return Ok(None);
                    };
                    array.push(item);
                }
                Some(Value::from(array))
            }
            Expr::Set(items) => {
                let mut set = BTreeSet::new();
                for item in items {
                    let Some(item) = self.expr(frame, item)? else {
                        return Ok(None);
                    };
                    set.insert(item);
                }
                Some(Value::from(set))
            }
            Expr::Object(fields) => {
                let mut object = BTreeMap::new();
                for (key, value) in fields {
                    let Some(key) = self.expr(frame, key)? else {
                        return Ok(None);
                    };
                    let Some(value) = self.expr(frame, value)? else {
                        return Ok(None);
                    };
                    object.insert(key, value);
                }
                Some(Value::from(object))
            }
            Expr::ArrayComprehension(term, body) => {
                let mut array = Vec::new();
                self.query(frame, body, &mut |ev, frame| {
                    if let Some(item) = ev.expr(frame, term)? {
                        array.push(item);
                    }
                    Ok(Flow::Continue)
                })?;
                Some(Value::from(array))
            }
            Expr::SetComprehension(term, body) => {
                let mut set = BTreeSet::new();
                self.query(frame, body, &mut |ev, frame| {
                    if let Some(item) = ev.expr(frame, term)? {
                        set.insert(item);
                    }
                    Ok(Flow::Continue)
                })?;
                Some(Value::from(set))
            }
            Expr::ObjectComprehension(key, value, body) => {
                let mut object: BTreeMap<Value, Value> = BTreeMap::new();
                self.query(frame, body, &mut |ev, frame| {
                    let key = ev.expr(frame, key)?;
                    let value = ev.expr(frame, value)?;
                    if let (Some(key), Some(value)) = (key, value) {
                        match object.get(&key) {
                            Some(old) if *old != value => {
                                bail!("value for key `{key}` generated multiple times")
                            }
                            _ => {
                                object.insert(key, value);
                            }
                        }
                    }
                    Ok(Flow::Continue)
                })?;
                Some(Value::from(object))
            }
            Expr::Compare(op, lhs, rhs) => {
                let lhs = self.expr(frame, lhs)?;
                let rhs = self.expr(frame, rhs)?;
                match (lhs, rhs) {
                    (Some(lhs), Some(rhs)) => defined(comparison::compare(op, &lhs, &rhs)?),
                    _ => None,
                }
            }
            Expr::Arith { op, lhs, rhs, ast } => {
                let lhs = self.expr(frame, lhs)?;
                let rhs = self.expr(frame, rhs)?;
                let (Some(lhs), Some(rhs)) = (lhs, rhs) else {
                    return Ok(None);
                };
                let Ast::ArithExpr {
                    span,
                    lhs: lhs_ast,
                    rhs: rhs_ast,
                    ..
                } = ast.as_ref()
                else {
                    bail!("plan: arithmetic without its node");
                };
                defined(match (op, &lhs, &rhs) {
                    (ArithOp::Sub, Value::Set(_), _) | (ArithOp::Sub, _, Value::Set(_)) => {
                        sets::difference(lhs_ast, rhs_ast, lhs, rhs)?
                    }
                    _ => numbers::arithmetic_operation(span, op, lhs_ast, rhs_ast, lhs, rhs, true)?,
                })
            }
            Expr::SetOp { op, lhs, rhs, ast } => {
                let lhs = self.expr(frame, lhs)?;
                let rhs = self.expr(frame, rhs)?;
                let (Some(lhs), Some(rhs)) = (lhs, rhs) else {
                    return Ok(None);
                };
                let Ast::BinExpr {
                    lhs: lhs_ast,
                    rhs: rhs_ast,
                    ..
                } = ast.as_ref()
                else {
                    bail!("plan: set operation without its node");
                };
                defined(match op {
                    BinOp::Union => sets::union(lhs_ast, rhs_ast, lhs, rhs)?,
                    BinOp::Intersection => sets::intersection(lhs_ast, rhs_ast, lhs, rhs)?,
                })
            }
            Expr::Member {
                key,
                value,
                collection,
            } => {
                // As regorus: always defined; an undefined value is in nothing.
                let value = self.expr(frame, value)?.unwrap_or(Value::Undefined);
                let collection = self.expr(frame, collection)?.unwrap_or(Value::Undefined);
                let found = match (&collection, key) {
                    (Value::Array(_) | Value::Object(_), Some(key)) => {
                        let key = self.expr(frame, key)?.unwrap_or(Value::Undefined);
                        collection[&key] == value
                    }
                    (Value::Array(items), None) => items.contains(&value),
                    (Value::Object(members), None) => members.values().any(|v| *v == value),
                    (Value::Set(items), None) => items.contains(&value),
                    _ => false,
                };
                Some(Value::Bool(found))
            }
            Expr::Call(call, args) => {
                let Some(args) = self.args(frame, args)? else {
                    return Ok(None);
                };
                defined(call.call(&args)?)
            }
            Expr::Function(index, args) => {
                let Some(args) = self.args(frame, args)? else {
                    return Ok(None);
                };
                self.call(*index, &args)?
            }
        })
    }

    /// `base.a.b…`, walked by reference: only the end is copied. A local, `input`, a rule or
    /// a constant is read where it lies; anything else is computed first.
    fn path(&mut self, frame: &mut Frame, base: &Expr, names: &[Value]) -> Result<Option<Value>> {
        let walk = |mut value: &Value| {
            for name in names {
                value = &value[name];
            }
            defined(value.clone())
        };
        Ok(match base {
            Expr::Local(slot) => walk(
                frame
                    .get(*slot as usize)
                    .ok_or_else(|| anyhow!("plan: no slot {slot}"))?,
            ),
            Expr::Input => walk(self.input),
            Expr::Const(value) => walk(value),
            Expr::Rule(index) => {
                if self.rule(*index)?.is_none() {
                    return Ok(None);
                }
                match self.rule_value(*index) {
                    Some(value) => walk(value),
                    None => None,
                }
            }
            other => match self.expr(frame, other)? {
                Some(value) => walk(&value),
                None => None,
            },
        })
    }

    /// Rule `index`'s value once computed, by reference.
    fn rule_value(&self, index: usize) -> Option<&Value> {
        if let Some(Folded::Value(value)) =
            self.plan.rules.get(index).and_then(|r| r.folded.as_ref())
        {
            return value.as_ref();
        }
        match self.memo.get(index) {
            Some(Memo::Done(value)) => value.as_ref(),
            _ => None,
        }
    }

    /// Every argument's value (all evaluated, so an error in any surfaces), or `None` when
    /// one is undefined.
    fn args(&mut self, frame: &mut Frame, args: &[Expr]) -> Result<Option<Args>> {
        let mut values = Args::new();
        let mut all = true;
        for arg in args {
            match self.expr(frame, arg)? {
                Some(value) => values.push(value),
                None => all = false,
            }
        }
        Ok(all.then_some(values))
    }
}

/// A call's arguments: builtins and functions take a few, kept off the heap.
type Args = smallvec::SmallVec<[Value; 4]>;

/// `each(key, item)` for every item of an array (key: its index), set (the item) or object
/// (its key), in regorus' order, until it says stop. Keys are only made when `keys` is set.
fn for_each_item(
    collection: &Value,
    keys: bool,
    mut each: impl FnMut(&Value, &Value) -> Result<Flow>,
) -> Result<Flow> {
    let no_key = Value::Undefined;
    match collection {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let key = if keys {
                    Value::from(index)
                } else {
                    Value::Undefined
                };
                if each(&key, item)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        Value::Set(items) => {
            for item in items.iter() {
                if each(item, item)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        Value::Object(members) => {
            for (key, item) in members.iter() {
                if each(if keys { key } else { &no_key }, item)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        _ => {}
    }
    Ok(Flow::Continue)
}

fn defined(value: Value) -> Option<Value> {
    (value != Value::Undefined).then_some(value)
}

/// `document` with the value at `path` replaced (objects made along it, as regorus' `with`).
fn set_path(document: &mut Value, path: &[Value], value: Value) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        *document = value;
        return Ok(());
    };
    if !matches!(document, Value::Object(_)) {
        *document = Value::new_object();
    }
    let object = document.as_object_mut()?;
    let child = object.get_or_insert_with(first.clone(), Value::new_object);
    set_path(child, rest, value)
}

fn set(frame: &mut Frame, slot: u32, value: Value) -> Result<()> {
    let place = frame
        .get_mut(slot as usize)
        .ok_or_else(|| anyhow!("plan: no slot {slot}"))?;
    *place = value;
    Ok(())
}
