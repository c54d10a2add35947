//! The plan's data: Rego lowered to expressions and statements over numbered slots.
//!
//! Every name is resolved when the plan is built: a local is a slot of its rule's or function's
//! frame, a rule is an index into [`Plan::rules`], a function an index into
//! [`Plan::functions`], a builtin a function pointer, and a reference into `data` (fixed per
//! gate) is its value. An expression evaluates to a value or to *undefined*; a statement whose
//! expression is undefined ends that solution of its query, as in OPA's planner.

use regorus::unstable::{ArithOp, BinOp, BoolOp, Expr as Ast};
use regorus::Value;

use super::builtins::Call;

/// A slot of the current frame (a rule's, a function's, or a test's locals).
pub(crate) type Slot = u32;

/// A shared node of regorus' syntax tree, kept for the spans of builtin errors.
pub(crate) type AstRef = regorus::unstable::Ref<Ast>;

/// The lowered policy for one entrypoint.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) rules: Vec<Rule>,
    pub(crate) functions: Vec<Function>,
    /// The rule the entrypoint names.
    pub(crate) entry: usize,
}

/// A rule document (complete, partial set or partial object) and every definition of it.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// Its full path, `data.attestgate.decision`.
    pub(crate) path: String,
    pub(crate) kind: RuleKind,
    pub(crate) definitions: Vec<Definition>,
    /// The `default` value: used when no definition yields one (complete rules only).
    pub(crate) default: Option<Value>,
    /// Slots its definitions need.
    pub(crate) frame: u32,
    /// Its value when it depends on `data` alone, computed once when the plan is built.
    pub(crate) folded: Option<Folded>,
}

/// A rule's value computed at load: the value, undefined, or the error every decision that
/// reads it gets.
#[derive(Debug, Clone)]
pub(crate) enum Folded {
    Value(Option<Value>),
    Error(String),
}

/// What a rule's definitions make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    /// `r := v if …`: one value.
    Complete,
    /// `r contains x if …`: a set of every `x`.
    Set,
    /// `r[k] := v if …`: an object of every `k: v`.
    Object,
}

/// One `r … if { … } else … ` of a rule or function: bodies tried in order, each after the
/// ones before it found no solution (the `else` chain; a lone body is a chain of one).
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub(crate) bodies: Vec<Body>,
}

/// A query and what its solutions give: the key of a partial object, and the value (the
/// element of a partial set; `None`: `true`).
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub(crate) query: Query,
    pub(crate) key: Option<Expr>,
    pub(crate) value: Option<Expr>,
    /// A rule's key and value are literals (or absent): one solution is enough, as regorus
    /// stops there.
    pub(crate) stops_at_first: bool,
}

/// A user function: every definition of `f(…)`.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub(crate) path: String,
    pub(crate) arity: usize,
    pub(crate) definitions: Vec<FunctionDefinition>,
}

/// One definition of a function: its parameters as patterns and its `else` chain.
#[derive(Debug, Clone)]
pub(crate) struct FunctionDefinition {
    pub(crate) params: Vec<Pattern>,
    pub(crate) bodies: Vec<Body>,
    pub(crate) frame: u32,
    /// The head names a value (`f(x) := v`); without one, a body with solutions gives `true`.
    pub(crate) head_value: bool,
}

/// Statements run in order; each may bind slots, and a generator runs the rest once per item.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    pub(crate) statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub(crate) enum Statement {
    /// Holds when the value is defined and not `false`.
    Test(Expr),
    /// Holds when the value is undefined or `false`.
    Not(Expr),
    /// `pattern := value` (or `=` binding one side): holds when the value matches.
    Match { pattern: Pattern, value: Expr },
    /// `a = b` with both sides bound: holds when both are defined and equal.
    Equal(Expr, Expr),
    /// `some key, value in collection`: the rest of the query once per item. An error when
    /// the collection is defined but not an array, set or object.
    SomeIn {
        key: Option<Pattern>,
        value: Pattern,
        collection: Expr,
    },
    /// `every key, value in domain { body }`: holds when the body holds for every item;
    /// false when the domain is not a collection.
    Every {
        key: Option<Slot>,
        value: Slot,
        domain: Expr,
        body: Query,
    },
    /// `statement with input as …, with data.a.b as …` (test plans only): the statement
    /// decided over the replaced documents, every rule computed afresh for it.
    With {
        replace: Vec<(Document, Expr)>,
        statement: Box<Statement>,
    },
}

/// What a `with` replaces.
#[derive(Debug, Clone)]
pub(crate) enum Document {
    Input,
    /// The config data at this path (never at or around a rule).
    Data(Vec<Value>),
}

/// The left side of `:=`, a `some … in` binding or a function parameter.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    Bind(Slot),
    Ignore,
    /// Matches a value equal to this one (a literal, or a variable bound before).
    Equal(Expr),
    /// Matches an array of this length, item by item.
    Array(Vec<Pattern>),
    /// Matches an object with these keys, field by field.
    Object(Vec<(Value, Pattern)>),
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Const(Value),
    Local(Slot),
    Input,
    /// The config data at this path, read when the plan runs (test plans, where `with` may
    /// replace it; a gate's plan has these values as constants).
    Data(Vec<Value>),
    Rule(usize),
    /// `base[index]`: undefined when the base is undefined or lacks the member.
    Index(Box<Expr>, Box<Expr>),
    /// `base.a.b["c"]`: members by name, read in place (no copy of what lies between).
    Path(Box<Expr>, Vec<Value>),
    Array(Vec<Expr>),
    Set(Vec<Expr>),
    Object(Vec<(Expr, Expr)>),
    ArrayComprehension(Box<Expr>, Box<Query>),
    SetComprehension(Box<Expr>, Box<Query>),
    ObjectComprehension(Box<Expr>, Box<Expr>, Box<Query>),
    Compare(BoolOp, Box<Expr>, Box<Expr>),
    Arith {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        ast: AstRef,
    },
    SetOp {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        ast: AstRef,
    },
    /// `value in collection`, `key, value in collection`.
    Member {
        key: Option<Box<Expr>>,
        value: Box<Expr>,
        collection: Box<Expr>,
    },
    Call(Call, Vec<Expr>),
    Function(usize, Vec<Expr>),
}
