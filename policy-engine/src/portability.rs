//! Where a policy may decide differently in OPA than here: a function call under `not` whose
//! argument is a reference (`not f(att.app.version)`). When the reference is undefined,
//! regorus makes the call undefined and the `not` true; OPA lifts the reference out of the
//! negation, so the whole body is undefined there. A minimum-version check written that way
//! denies a token with no version here and lets it through in OPA. `attestgate test` warns on
//! each; `object.get(att, ["app", "version"], null)` as the argument means the same everywhere.
//!
//! The scan is lexical (the lexer of `reads.rs`), one line at a time.

use crate::reads::{lex, Token};

/// One call under `not` with a reference for an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndefinedUnderNot {
    /// 1-based line in the module.
    pub line: usize,
    /// The reference, as written (`att.app.version`).
    pub reference: String,
}

/// The calls under `not` in `source` (one Rego module) whose arguments include a reference
/// that may be undefined.
///
/// ```
/// use attestgate_policy::undefined_under_not;
///
/// let source = "package p\n\
///     deny contains \"old\" if not newer(input.version, \"2\")\n\
///     deny contains \"old2\" if not newer(object.get(input, \"version\", null), \"2\")\n";
/// let found = undefined_under_not(source);
/// assert_eq!(found.len(), 1);
/// assert_eq!((found[0].line, found[0].reference.as_str()), (2, "input.version"));
/// ```
pub fn undefined_under_not(source: &str) -> Vec<UndefinedUnderNot> {
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        let Some(tokens) = lex(line) else { continue };
        for reference in references_under_not(&tokens) {
            found.push(UndefinedUnderNot {
                line: index + 1,
                reference,
            });
        }
    }
    found
}

/// After each `not NAME(`: the references among the call's arguments, up to its `)`.
fn references_under_not(tokens: &[Token]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token, Token::Ident(n) if n == "not") {
            continue;
        }
        // The function's (possibly dotted) name, then its `(`.
        let mut at = i + 1;
        let Some(after_name) = skip_chain(tokens, at) else {
            continue;
        };
        at = after_name;
        if tokens.get(at) != Some(&Token::Punct('(')) {
            continue;
        }
        at += 1;
        let mut depth = 1usize;
        while let Some(token) = tokens.get(at) {
            match token {
                Token::Punct('(') | Token::Punct('[') | Token::Punct('{') => depth += 1,
                Token::Punct(')') | Token::Punct(']') | Token::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Token::Ident(name) => {
                    let end = skip_chain(tokens, at).unwrap_or(at + 1);
                    let chained = end > at + 1;
                    let indexed = tokens.get(end) == Some(&Token::Punct('['));
                    let called = tokens.get(end) == Some(&Token::Punct('('));
                    if (chained || indexed) && !called && !is_keyword(name) {
                        found.push(written(tokens.get(at..end).unwrap_or_default()));
                    }
                    at = end;
                    continue;
                }
                _ => {}
            }
            at += 1;
        }
    }
    found
}

/// The end of `ident(.ident)*` starting at `at`, or `None` when no identifier is there.
fn skip_chain(tokens: &[Token], mut at: usize) -> Option<usize> {
    if !matches!(tokens.get(at), Some(Token::Ident(_))) {
        return None;
    }
    at += 1;
    while tokens.get(at) == Some(&Token::Punct('.'))
        && matches!(tokens.get(at + 1), Some(Token::Ident(_)))
    {
        at += 2;
    }
    Some(at)
}

fn is_keyword(name: &str) -> bool {
    matches!(name, "true" | "false" | "null" | "some" | "in" | "every")
}

fn written(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| match t {
            Token::Ident(n) => n.clone(),
            Token::Punct(c) => c.to_string(),
            _ => String::new(),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn refs(line: &str) -> Vec<String> {
        undefined_under_not(line)
            .into_iter()
            .map(|f| f.reference)
            .collect()
    }

    #[test]
    fn references_and_indexes_under_not_are_found_calls_and_locals_are_not() {
        assert_eq!(refs("x if not f(a.b, c)"), ["a.b"]);
        assert_eq!(refs("x if not f(a[0])"), ["a"]);
        assert_eq!(
            refs("x if not is_set(data.attestgate.deny)"),
            ["data.attestgate.deny"]
        );
        assert_eq!(refs("x if not regex.match(`^a`, input.x.y)"), ["input.x.y"]);
        assert!(refs("x if not f(object.get(a, [\"b\"], null), want)").is_empty());
        assert!(refs("x if not f(v, 3, \"s\", true)").is_empty());
        assert!(refs("x if not a.b == 1").is_empty());
        assert!(refs("x if not required in have").is_empty());
        assert!(refs("x if f(a.b)").is_empty());
    }

    #[test]
    fn the_shipped_policies_have_none() {
        for path in [
            "../policies/device_trust.rego",
            "../policies/examples/android.rego",
            "../policies/examples/ios.rego",
            "../policies/examples/payments.rego",
            "../policies/examples/step_up.rego",
            "../envoy-examples/per-route/login.rego",
        ] {
            let source = std::fs::read_to_string(path).unwrap_or_default();
            assert!(!source.is_empty(), "{path}");
            assert_eq!(undefined_under_not(&source), [], "{path}");
        }
    }
}
