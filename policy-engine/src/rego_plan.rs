//! Rego policies compiled to a plan, so a decision does not pay an interpreter's cost.
//!
//! At load, [`CompiledPlan::build`] parses the modules with regorus' own parser and lowers the
//! entrypoint and everything it reaches ([`ir`]): names become slots, rules, functions and
//! builtin pointers; rules that read only `data` are computed once; regex literals are
//! compiled once. A decision then walks the plan ([`eval`]), each rule evaluated at most once.
//!
//! A policy using something the lowering does not cover keeps regorus' interpreter, and
//! [`Unsupported`] says which construct at which file:line. The plan decides as regorus does
//! (errors included); the differential tests and the `policy_plan` fuzz target check it.

mod builtins;
mod eval;
mod fold;
mod ir;
mod lower;
mod walk;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests;

pub use lower::Unsupported;

pub(crate) use builtins::{find_all_string_submatch_n, string_args, Regexes, NONDETERMINISTIC};

use regorus::Value;

/// One entrypoint's plan.
#[derive(Debug)]
pub(crate) struct CompiledPlan {
    plan: ir::Plan,
    /// The config data, for a test plan (a gate's plan holds it as constants).
    data: Value,
}

impl CompiledPlan {
    /// Lowers `modules` (name, Rego source) for `entrypoint` over `data`, or says why not.
    pub(crate) fn build(
        modules: &[(String, String)],
        data: &Value,
        entrypoint: &str,
        regexes: &Regexes,
    ) -> Result<CompiledPlan, Unsupported> {
        let mut plan = lower::lower(modules, data, entrypoint, regexes, lower::Purpose::Gate)?;
        fold::fold(&mut plan);
        Ok(CompiledPlan {
            plan,
            data: Value::Undefined,
        })
    }

    /// A plan for a `test_` rule: `with input as …` and `with data.… as …` are taken, and
    /// `data` is read as the plan runs.
    pub(crate) fn build_test(
        modules: &[(String, String)],
        data: &Value,
        rule: &str,
        regexes: &Regexes,
    ) -> Result<CompiledPlan, Unsupported> {
        // Run once, so not folded: what `with` replaces would change what folds.
        let plan = lower::lower(modules, data, rule, regexes, lower::Purpose::Test)?;
        Ok(CompiledPlan {
            plan,
            data: data.clone(),
        })
    }

    /// The entrypoint's value for `input` (`Undefined` when it has none); errors as text.
    pub(crate) fn evaluate(&self, input: &Value) -> Result<Value, String> {
        eval::Evaluation::new(&self.plan, input, &self.data)
            .rule(self.plan.entry)
            .map(|value| value.unwrap_or(Value::Undefined))
            .map_err(|err| format!("{err:#}"))
    }
}
