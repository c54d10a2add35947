//! Rules that read only `data` (fixed per gate) are computed once, when the plan is built.

use regorus::Value;

use super::eval::Evaluation;
use super::ir::{Body, Expr, Folded, Pattern, Plan, Query, Statement};

/// What a part of the plan reads: `input`, and which rules and functions.
#[derive(Default)]
struct Reads {
    input: bool,
    rules: Vec<usize>,
    functions: Vec<usize>,
}

/// Computes every rule that reads no `input`, directly or through what it uses.
pub(crate) fn fold(plan: &mut Plan) {
    let rule_reads: Vec<Reads> = plan
        .rules
        .iter()
        .map(|rule| {
            let mut reads = Reads::default();
            for definition in &rule.definitions {
                definition.bodies.iter().for_each(|b| body(b, &mut reads));
            }
            reads
        })
        .collect();
    let function_reads: Vec<Reads> = plan
        .functions
        .iter()
        .map(|function| {
            let mut reads = Reads::default();
            for definition in &function.definitions {
                definition
                    .params
                    .iter()
                    .for_each(|p| pattern(p, &mut reads));
                definition.bodies.iter().for_each(|b| body(b, &mut reads));
            }
            reads
        })
        .collect();
    // A fixpoint over the (acyclic) use graph: input-reading spreads to users.
    let mut rule_input: Vec<bool> = rule_reads.iter().map(|r| r.input).collect();
    let mut function_input: Vec<bool> = function_reads.iter().map(|r| r.input).collect();
    loop {
        let mut changed = false;
        let reaches = |reads: &Reads, rules: &[bool], functions: &[bool]| {
            reads
                .rules
                .iter()
                .any(|r| rules.get(*r).copied().unwrap_or(true))
                || reads
                    .functions
                    .iter()
                    .any(|f| functions.get(*f).copied().unwrap_or(true))
        };
        for (index, reads) in rule_reads.iter().enumerate() {
            if !rule_input.get(index).copied().unwrap_or(true)
                && reaches(reads, &rule_input, &function_input)
            {
                if let Some(flag) = rule_input.get_mut(index) {
                    *flag = true;
                    changed = true;
                }
            }
        }
        for (index, reads) in function_reads.iter().enumerate() {
            if !function_input.get(index).copied().unwrap_or(true)
                && reaches(reads, &rule_input, &function_input)
            {
                if let Some(flag) = function_input.get_mut(index) {
                    *flag = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let input = Value::Undefined;
    let folded: Vec<Option<Folded>> = {
        let mut evaluation = Evaluation::new(plan, &input);
        rule_input
            .iter()
            .enumerate()
            .map(|(index, reads_input)| {
                (!reads_input).then(|| match evaluation.rule(index) {
                    Ok(value) => Folded::Value(value),
                    Err(err) => Folded::Error(format!("{err:#}")),
                })
            })
            .collect()
    };
    for (rule, folded) in plan.rules.iter_mut().zip(folded) {
        rule.folded = folded;
    }
}

fn body(body: &Body, reads: &mut Reads) {
    query(&body.query, reads);
    body.key.iter().for_each(|e| expr(e, reads));
    body.value.iter().for_each(|e| expr(e, reads));
}

fn query(q: &Query, reads: &mut Reads) {
    for statement in &q.statements {
        match statement {
            Statement::Test(e) | Statement::Not(e) => expr(e, reads),
            Statement::Equal(a, b) => {
                expr(a, reads);
                expr(b, reads);
            }
            Statement::Match { pattern: p, value } => {
                pattern(p, reads);
                expr(value, reads);
            }
            Statement::SomeIn {
                key,
                value,
                collection,
            } => {
                key.iter().for_each(|k| pattern(k, reads));
                pattern(value, reads);
                expr(collection, reads);
            }
            Statement::Every { domain, body, .. } => {
                expr(domain, reads);
                query(body, reads);
            }
        }
    }
}

fn pattern(p: &Pattern, reads: &mut Reads) {
    match p {
        Pattern::Bind(_) | Pattern::Ignore => {}
        Pattern::Equal(e) => expr(e, reads),
        Pattern::Array(items) => items.iter().for_each(|i| pattern(i, reads)),
        Pattern::Object(fields) => fields.iter().for_each(|(_, f)| pattern(f, reads)),
    }
}

fn expr(e: &Expr, reads: &mut Reads) {
    match e {
        Expr::Const(_) | Expr::Local(_) => {}
        Expr::Input => reads.input = true,
        Expr::Rule(index) => reads.rules.push(*index),
        Expr::Function(index, args) => {
            reads.functions.push(*index);
            args.iter().for_each(|a| expr(a, reads));
        }
        Expr::Call(_, args) | Expr::Array(args) | Expr::Set(args) => {
            args.iter().for_each(|a| expr(a, reads))
        }
        Expr::Object(fields) => fields.iter().for_each(|(k, v)| {
            expr(k, reads);
            expr(v, reads);
        }),
        Expr::Path(base, _) => expr(base, reads),
        Expr::Index(a, b)
        | Expr::Compare(_, a, b)
        | Expr::Arith { lhs: a, rhs: b, .. }
        | Expr::SetOp { lhs: a, rhs: b, .. } => {
            expr(a, reads);
            expr(b, reads);
        }
        Expr::ArrayComprehension(term, body) | Expr::SetComprehension(term, body) => {
            expr(term, reads);
            query(body, reads);
        }
        Expr::ObjectComprehension(key, value, body) => {
            expr(key, reads);
            expr(value, reads);
            query(body, reads);
        }
        Expr::Member {
            key,
            value,
            collection,
        } => {
            key.iter().for_each(|k| expr(k, reads));
            expr(value, reads);
            expr(collection, reads);
        }
    }
}
