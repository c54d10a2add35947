//! Visiting every expression of a plan part, operands before what holds them: the one walk the
//! load-time passes (what a rule reads, folding, substitution) share.

use super::ir::{Body, Expr, Pattern, Query, Statement};

/// Calls `each` on every expression of `body`.
pub(crate) fn body(body: &mut Body, each: &mut dyn FnMut(&mut Expr)) {
    query(&mut body.query, each);
    if let Some(key) = &mut body.key {
        expr(key, each);
    }
    if let Some(value) = &mut body.value {
        expr(value, each);
    }
}

pub(crate) fn query(query: &mut Query, each: &mut dyn FnMut(&mut Expr)) {
    for statement in &mut query.statements {
        self::statement(statement, each);
    }
}

pub(crate) fn statement(statement: &mut Statement, each: &mut dyn FnMut(&mut Expr)) {
    match statement {
        Statement::Test(e) | Statement::Not(e) => expr(e, each),
        Statement::Equal(a, b) => {
            expr(a, each);
            expr(b, each);
        }
        Statement::Match { pattern: p, value } => {
            pattern(p, each);
            expr(value, each);
        }
        Statement::SomeIn {
            key,
            value,
            collection,
        } => {
            if let Some(key) = key {
                pattern(key, each);
            }
            pattern(value, each);
            expr(collection, each);
        }
        Statement::Every { domain, body, .. } => {
            expr(domain, each);
            query(body, each);
        }
        Statement::With {
            replace,
            statement: inner,
        } => {
            for (_, value) in replace {
                expr(value, each);
            }
            self::statement(inner, each);
        }
    }
}

pub(crate) fn pattern(pattern: &mut Pattern, each: &mut dyn FnMut(&mut Expr)) {
    match pattern {
        Pattern::Bind(_) | Pattern::Ignore => {}
        Pattern::Equal(e) => expr(e, each),
        Pattern::Array(items) => items.iter_mut().for_each(|p| self::pattern(p, each)),
        Pattern::Object(fields) => fields.iter_mut().for_each(|(_, p)| self::pattern(p, each)),
    }
}

/// `each` on `e`'s operands (and a comprehension's body), then on `e`.
pub(crate) fn expr(e: &mut Expr, each: &mut dyn FnMut(&mut Expr)) {
    match e {
        Expr::Const(_) | Expr::Local(_) | Expr::Input | Expr::Data(_) | Expr::Rule(_) => {}
        Expr::Path(base, _) => expr(base, each),
        Expr::Index(a, b) | Expr::Compare(_, a, b) => {
            expr(a, each);
            expr(b, each);
        }
        Expr::Arith { lhs, rhs, .. } | Expr::SetOp { lhs, rhs, .. } => {
            expr(lhs, each);
            expr(rhs, each);
        }
        Expr::Array(items) | Expr::Set(items) | Expr::Call(_, items) | Expr::Function(_, items) => {
            items.iter_mut().for_each(|item| expr(item, each))
        }
        Expr::Object(fields) => {
            for (key, value) in fields {
                expr(key, each);
                expr(value, each);
            }
        }
        Expr::ArrayComprehension(term, body) | Expr::SetComprehension(term, body) => {
            query(body, each);
            expr(term, each);
        }
        Expr::ObjectComprehension(key, value, body) => {
            query(body, each);
            expr(key, each);
            expr(value, each);
        }
        Expr::Member {
            key,
            value,
            collection,
        } => {
            if let Some(key) = key {
                expr(key, each);
            }
            expr(value, each);
            expr(collection, each);
        }
    }
    each(e);
}
