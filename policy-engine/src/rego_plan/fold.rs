//! What depends only on `data` (fixed per gate) is computed once, when the plan is built.
//!
//! In rounds until nothing changes: rules that read no `input` (directly or through what they
//! use) are computed; every expression whose operands are all constants is replaced by its
//! value (a builtin, an input-free function, a path into a constant); a local bound to a
//! constant is replaced by it; and a function called with some constant arguments gets a copy
//! with those parameters replaced, so its body folds too (`_version_at_least(v, "2.0.0")`
//! parses "2.0.0" once). An expression whose evaluation fails is left as it is, so its error
//! still comes when a decision reaches it.

use std::collections::{BTreeMap, HashMap, HashSet};

use regorus::Value;

use super::eval::Evaluation;
use super::ir::{Body, Expr, Folded, Function, Pattern, Plan, Statement};
use super::walk;

/// Rounds of folding; each only runs when the one before changed something.
const MAX_ROUNDS: usize = 8;

/// Copies of functions made for constant arguments, at most, per plan.
const MAX_SPECIALIZATIONS: usize = 256;

/// A function and the constant arguments (by position) a copy of it was made for.
type Specialization = (usize, Vec<Option<Value>>);

pub(crate) fn fold(plan: &mut Plan) {
    let mut copies: BTreeMap<Specialization, usize> = BTreeMap::new();
    let mut is_copy: HashSet<usize> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let (rule_input, function_input) = reads_input(plan);
        fold_rules(plan, &rule_input);
        let mut changed = fold_expressions(plan, &function_input);
        changed |= propagate_constants(plan);
        changed |= specialize(plan, &mut copies, &mut is_copy);
        if !changed {
            break;
        }
    }
}

/// Which rules and functions read `input`, directly or through a rule or function they use.
fn reads_input(plan: &mut Plan) -> (Vec<bool>, Vec<bool>) {
    // (reads input, rules used, functions used) of each rule, then of each function.
    let mut uses: Vec<(bool, Vec<usize>, Vec<usize>)> = Vec::new();
    let note = |input: &mut bool,
                rules: &mut Vec<usize>,
                functions: &mut Vec<usize>,
                e: &mut Expr| match e {
        Expr::Input | Expr::Data(_) => *input = true,
        Expr::Rule(index) => rules.push(*index),
        Expr::Function(index, _) => functions.push(*index),
        _ => {}
    };
    for rule in &mut plan.rules {
        let (mut input, mut rules, mut functions) = (false, Vec::new(), Vec::new());
        for definition in &mut rule.definitions {
            for body in &mut definition.bodies {
                walk::body(body, &mut |e| {
                    note(&mut input, &mut rules, &mut functions, e)
                });
            }
        }
        uses.push((input, rules, functions));
    }
    for function in &mut plan.functions {
        let (mut input, mut rules, mut functions) = (false, Vec::new(), Vec::new());
        for definition in &mut function.definitions {
            for param in &mut definition.params {
                walk::pattern(param, &mut |e| {
                    note(&mut input, &mut rules, &mut functions, e)
                });
            }
            for body in &mut definition.bodies {
                walk::body(body, &mut |e| {
                    note(&mut input, &mut rules, &mut functions, e)
                });
            }
        }
        uses.push((input, rules, functions));
    }
    let rule_count = plan.rules.len();
    let mut reads: Vec<bool> = uses.iter().map(|u| u.0).collect();
    // A fixpoint over the (acyclic) use graph: reading input spreads to users.
    loop {
        let mut changed = false;
        for (index, (_, rules, functions)) in uses.iter().enumerate() {
            let reached = rules.iter().any(|r| reads.get(*r).copied().unwrap_or(true))
                || functions
                    .iter()
                    .any(|f| reads.get(rule_count + f).copied().unwrap_or(true));
            if let Some(flag) = reads.get_mut(index) {
                if reached && !*flag {
                    *flag = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let functions = reads.split_off(rule_count.min(reads.len()));
    (reads, functions)
}

/// Computes every rule that reads no `input` and is not computed yet.
fn fold_rules(plan: &mut Plan, rule_input: &[bool]) {
    let nothing = Value::Undefined;
    let folded: Vec<Option<Folded>> = {
        let mut evaluation = Evaluation::new(plan, &nothing, &nothing);
        (0..plan.rules.len())
            .map(|index| {
                let fresh = plan.rules.get(index).is_some_and(|r| r.folded.is_none());
                let reads = rule_input.get(index).copied().unwrap_or(true);
                (fresh && !reads).then(|| match evaluation.rule(index) {
                    Ok(value) => Folded::Value(value),
                    Err(err) => Folded::Error(format!("{err:#}")),
                })
            })
            .collect()
    };
    for (rule, folded) in plan.rules.iter_mut().zip(folded) {
        if folded.is_some() {
            rule.folded = folded;
        }
    }
}

/// Replaces every constant expression of every rule and function by its value; whether any
/// was.
fn fold_expressions(plan: &mut Plan, function_input: &[bool]) -> bool {
    let mut changed = false;
    each_body(plan, &mut |plan, body| {
        walk::body(body, &mut |e| changed |= fold_node(plan, function_input, e));
    });
    changed
}

/// `each` on every body of every rule not computed yet and of every function (copies made on
/// the way included), with the plan at hand: the rule's or function's definitions are taken
/// out of it meanwhile. What `each` evaluates never reaches back into them: a plan has no
/// recursion.
fn each_body(plan: &mut Plan, each: &mut dyn FnMut(&mut Plan, &mut Body)) {
    for index in 0..plan.rules.len() {
        let mut definitions = match plan.rules.get_mut(index) {
            Some(rule) if rule.folded.is_none() => std::mem::take(&mut rule.definitions),
            _ => continue,
        };
        for body in definitions.iter_mut().flat_map(|d| d.bodies.iter_mut()) {
            each(plan, body);
        }
        if let Some(rule) = plan.rules.get_mut(index) {
            rule.definitions = definitions;
        }
    }
    let mut index = 0;
    while index < plan.functions.len() {
        if let Some(function) = plan.functions.get_mut(index) {
            let mut definitions = std::mem::take(&mut function.definitions);
            for body in definitions.iter_mut().flat_map(|d| d.bodies.iter_mut()) {
                each(plan, body);
            }
            if let Some(function) = plan.functions.get_mut(index) {
                function.definitions = definitions;
            }
        }
        index += 1;
    }
}

/// `expr` replaced by its value when its operands are constants (they were folded first).
fn fold_node(plan: &Plan, function_input: &[bool], expr: &mut Expr) -> bool {
    let constant = |e: &Expr| matches!(e, Expr::Const(_));
    let foldable = match expr {
        Expr::Rule(index) => {
            if let Some(Some(Folded::Value(value))) = plan.rules.get(*index).map(|r| &r.folded) {
                *expr = Expr::Const(value.clone().unwrap_or(Value::Undefined));
                return true;
            }
            false
        }
        Expr::Path(base, _) => constant(base),
        Expr::Index(a, b) | Expr::Compare(_, a, b) => constant(a) && constant(b),
        Expr::Arith { lhs, rhs, .. } | Expr::SetOp { lhs, rhs, .. } => {
            constant(lhs) && constant(rhs)
        }
        Expr::Array(items) | Expr::Set(items) | Expr::Call(_, items) => items.iter().all(constant),
        Expr::Function(index, args) => {
            args.iter().all(constant) && !function_input.get(*index).copied().unwrap_or(true)
        }
        Expr::Object(fields) => fields.iter().all(|(k, v)| constant(k) && constant(v)),
        Expr::Member {
            key,
            value,
            collection,
        } => key.as_deref().is_none_or(constant) && constant(value) && constant(collection),
        // A comprehension's body may read the enclosing locals: only its parts fold.
        _ => false,
    };
    if !foldable {
        return false;
    }
    let nothing = Value::Undefined;
    match Evaluation::new(plan, &nothing, &nothing).expr(&mut super::eval::Frame::new(), expr) {
        Ok(value) => {
            *expr = Expr::Const(value.unwrap_or(Value::Undefined));
            true
        }
        Err(_) => false,
    }
}

/// Replaces each local bound to a constant (`want := "2.0.0"`, a folded setting) by the
/// constant, and drops the binding, which always holds; whether any was.
///
/// A slot has one binding site (the lowering gives each its own), and every read of it comes
/// after that site, so the substitution is exact.
fn propagate_constants(plan: &mut Plan) -> bool {
    let mut changed = false;
    for rule in &mut plan.rules {
        if rule.folded.is_some() {
            continue;
        }
        let bodies = rule
            .definitions
            .iter_mut()
            .flat_map(|d| d.bodies.iter_mut());
        changed |= substitute_bound_constants(bodies.collect());
    }
    for function in &mut plan.functions {
        for definition in &mut function.definitions {
            changed |= substitute_bound_constants(definition.bodies.iter_mut().collect());
        }
    }
    changed
}

fn substitute_bound_constants(mut bodies: Vec<&mut super::ir::Body>) -> bool {
    let mut constants: HashMap<u32, Value> = HashMap::new();
    for body in bodies.iter_mut() {
        body.query.statements.retain(|statement| match statement {
            Statement::Match {
                pattern: Pattern::Bind(slot),
                value: Expr::Const(value),
            } if *value != Value::Undefined => {
                constants.insert(*slot, value.clone());
                false
            }
            _ => true,
        });
    }
    if constants.is_empty() {
        return false;
    }
    for body in bodies {
        walk::body(body, &mut |e| {
            if let Expr::Local(slot) = e {
                if let Some(value) = constants.get(slot) {
                    *e = Expr::Const(value.clone());
                }
            }
        });
    }
    true
}

/// Points each call with constant arguments at a copy of its function made for them (made
/// once per function and arguments); whether any call was. Copies made on the way are visited
/// too: their calls may specialize in turn.
fn specialize(
    plan: &mut Plan,
    copies: &mut BTreeMap<Specialization, usize>,
    is_copy: &mut HashSet<usize>,
) -> bool {
    let mut changed = false;
    each_body(plan, &mut |plan, body| {
        walk::body(body, &mut |e| {
            changed |= specialize_call(&mut plan.functions, copies, is_copy, e)
        });
    });
    changed
}

fn specialize_call(
    functions: &mut Vec<Function>,
    copies: &mut BTreeMap<Specialization, usize>,
    is_copy: &mut HashSet<usize>,
    expr: &mut Expr,
) -> bool {
    let Expr::Function(index, args) = expr else {
        return false;
    };
    if is_copy.contains(index) {
        return false;
    }
    let constants: Vec<Option<Value>> = args
        .iter()
        .map(|arg| match arg {
            Expr::Const(value) if *value != Value::Undefined => Some(value.clone()),
            _ => None,
        })
        .collect();
    if constants.iter().all(Option::is_none) {
        return false;
    }
    let key = (*index, constants);
    let copy = match copies.get(&key) {
        Some(copy) => *copy,
        None => {
            if copies.len() >= MAX_SPECIALIZATIONS {
                return false;
            }
            let Some(function) = functions.get(*index) else {
                return false;
            };
            let copy = functions.len();
            functions.push(specialized(function, &key.1));
            is_copy.insert(copy);
            copies.insert(key, copy);
            copy
        }
    };
    *index = copy;
    true
}

/// `function` with each parameter that `constants` gives replaced by it in its bodies.
fn specialized(function: &Function, constants: &[Option<Value>]) -> Function {
    let mut copy = function.clone();
    copy.path = format!("{} (specialized)", function.path);
    for definition in &mut copy.definitions {
        let mut bound: HashMap<u32, Value> = HashMap::new();
        for (param, constant) in definition.params.iter().zip(constants) {
            if let (Pattern::Bind(slot), Some(value)) = (param, constant) {
                bound.insert(*slot, value.clone());
            }
        }
        for body in &mut definition.bodies {
            walk::body(body, &mut |e| {
                if let Expr::Local(slot) = e {
                    if let Some(value) = bound.get(slot) {
                        *e = Expr::Const(value.clone());
                    }
                }
            });
        }
    }
    copy
}
