//! The policy reasons a gate counts by name: the string literals of its Rego modules that are
//! reason-shaped (`snake_case`, at most 64 bytes). A policy can return any string as a reason,
//! and a counter per distinct string would let data grow the stats without limit; a reason
//! written in the source is one of a set fixed at load, so it gets a counter of its own, and any
//! other (built with `sprintf`, read from data) is counted as `other`.
//!
//! The scan is lexical (the lexer of `reads.rs`): a literal that is not a reason (`"android"`) only names a counter that
//! no decision increments, and hosts create counters when first incremented.

use std::collections::BTreeSet;

use crate::reads::Token;

/// Most names kept from one config's modules.
pub(crate) const MAX_REASON_NAMES: usize = 256;
/// The longest reason counted by name.
const MAX_REASON_BYTES: usize = 64;

/// The reason-shaped string literals of `sources` (Rego modules), at most
/// [`MAX_REASON_NAMES`].
pub(crate) fn reason_names<'a>(sources: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in sources {
        for literal in string_literals(source) {
            if names.len() >= MAX_REASON_NAMES {
                return names;
            }
            if is_reason_shaped(&literal) {
                names.insert(literal);
            }
        }
    }
    names
}

/// `snake_case`: a lowercase letter, then lowercase letters, digits and `_`.
pub(crate) fn is_reason_shaped(text: &str) -> bool {
    let mut bytes = text.bytes();
    text.len() <= MAX_REASON_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The escape-free string literals of a Rego source (`"..."` and raw `` `...` ``; a reason has
/// no escape), read with the policy-input scan's lexer; none when it cannot lex the source (the
/// policy would not compile then).
fn string_literals(source: &str) -> Vec<String> {
    crate::reads::lex(source)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|token| match token {
            Token::Str(text) => Some(text),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_read_as_rego_writes_them() {
        let source = r#"package x
# "in_a_comment" is not read
deny contains "rooted" if input.x == "Android"
deny contains `raw_reason` if true
deny contains "with \"escape\"" if true
deny contains sprintf("too_old_%v", [input.v]) if true
msg := "two words"
"#;
        let names = reason_names([source]);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        // Not "Android" (not snake_case), nor the comment, the escaped literal, the format
        // string or the words.
        assert_eq!(names, ["raw_reason", "rooted"]);
    }

    #[test]
    fn the_default_policy_names_its_reasons() {
        let names = reason_names([include_str!("../../policies/device_trust.rego")]);
        for reason in [
            "device_rooted",
            "app_version_too_old",
            "decision_undefined",
            "hooking_detected",
        ] {
            assert!(names.contains(reason), "{reason} not in {names:?}");
        }
        assert!(!names.contains("MEETS_DEVICE_INTEGRITY"));
    }

    #[test]
    fn names_are_bounded() {
        let source: String = (0..1000)
            .map(|i| format!("x := \"reason_{i}\"\n"))
            .collect();
        assert_eq!(reason_names([source.as_str()]).len(), MAX_REASON_NAMES);
        assert!(!is_reason_shaped(&"a".repeat(65)));
        assert!(is_reason_shaped(&"a".repeat(64)));
        assert!(
            !is_reason_shaped("Rooted") && !is_reason_shaped("9lives") && !is_reason_shaped("")
        );
    }
}
