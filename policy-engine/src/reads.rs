//! Which parts of `input` a Rego policy can read, found from its source, so a decision can be
//! memoized on just those parts.
//!
//! A policy's result depends only on `input`, `data` (fixed per gate) and its builtins. With
//! the builtins this crate enables, all are deterministic except the few in
//! [`NONDETERMINISTIC`]. So when every mention of `input` in the modules is a static path
//! (`input.token.claims.att`, `input["now"]`, `object.get(input, ["token", "claims"], d)`,
//! `import input.request`), the result is a function of the sub-documents at those paths, and
//! two inputs that agree on them get the same answer. The default policy reads only
//! `input.token.claims.att`: every token from the same app build on the same kind of device
//! shares one evaluation.
//!
//! The scan is conservative. Any other use of `input` (`input[x]`, `walk(input)`, passing
//! `input` whole, `x := input`) or a nondeterministic builtin makes the policy *opaque*: it is
//! then evaluated for every request.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::digest::put_field;

use crate::rego_plan::NONDETERMINISTIC;

/// The longest policy-memo key kept in full; a longer one is kept as its SHA-256, so the
/// memo's `cache.entries` entries stay within a few MB (10 000 × 1 KB).
pub(crate) const MAX_KEY_BYTES: usize = 1024;
/// A key's first byte: what follows is the read parts themselves, or the SHA-256 of those.
const FULL: u8 = 0;
const DIGEST: u8 = 1;

/// The paths under `input` a policy reads, or `None` when it is opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputReads {
    /// Sorted; none is a prefix of another; none is empty.
    paths: Vec<Vec<String>>,
}

impl InputReads {
    /// Scans Rego modules; `None` when any use of `input` is not a static path or a
    /// nondeterministic builtin is called.
    pub(crate) fn scan<'a>(sources: impl IntoIterator<Item = &'a str>) -> Option<InputReads> {
        let mut paths = Vec::new();
        for source in sources {
            let tokens = lex(source)?;
            scan_tokens(&tokens, &mut paths)?;
        }
        paths.sort();
        paths.dedup();
        // A path under another adds nothing: the shorter one's whole subtree is keyed.
        let mut kept: Vec<Vec<String>> = Vec::new();
        for path in paths {
            if !kept.iter().any(|shorter| path.starts_with(shorter)) {
                kept.push(path);
            }
        }
        Some(InputReads { paths: kept })
    }

    /// The paths, for diagnostics and tests.
    pub(crate) fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

    /// What the policy can see of `input` at `entrypoint`, as bytes compared in full: equal
    /// keys, equal answers. Each path contributes the value at the deepest object member
    /// reachable along it (and how deep that was), so a path that runs into an array or a
    /// scalar keys that whole value. A key longer than [`MAX_KEY_BYTES`] is kept as its SHA-256
    /// instead (tagged apart), so a memo entry stays small whatever a token carries.
    pub(crate) fn key(&self, entrypoint: &str, input: &Value) -> Vec<u8> {
        let mut key = key_start(entrypoint);
        for path in &self.paths {
            let (depth, value) = walk(Some(input), path, 0);
            put_read(&mut key, depth, value);
        }
        key_end(key)
    }

    /// [`InputReads::key`] of an input whose `token.claims` are `claims`, without the input:
    /// the same bytes, when every path lies under `input.token.claims`; `None` otherwise.
    pub(crate) fn claims_key(
        &self,
        entrypoint: &str,
        claims: &Map<String, Value>,
    ) -> Option<Vec<u8>> {
        let mut key = key_start(entrypoint);
        for path in &self.paths {
            let [token, claims_member, rest @ ..] = path.as_slice() else {
                return None;
            };
            if token != "token" || claims_member != "claims" {
                return None;
            }
            // `input` and `input.token` are objects: two members deep to reach the claims.
            match rest.split_first() {
                None => put_read(&mut key, 2, Some(claims)),
                Some((first, rest)) => {
                    let (depth, value) = walk(claims.get(first), rest, 3);
                    put_read(&mut key, depth, value);
                }
            }
        }
        Some(key_end(key))
    }
}

fn key_start(entrypoint: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(512);
    key.push(FULL);
    put_field(&mut key, entrypoint.as_bytes());
    key
}

/// Follows `path` from `value` (reached `depth` members deep) through objects, as far as they go.
fn walk<'a>(
    mut value: Option<&'a Value>,
    path: &[String],
    mut depth: u64,
) -> (u64, Option<&'a Value>) {
    for part in path {
        match value {
            Some(Value::Object(map)) => {
                value = map.get(part);
                depth += 1;
            }
            _ => break,
        }
    }
    (depth, value)
}

/// One path's part of a key: its depth, then its value length-prefixed, or a mark for none.
fn put_read(key: &mut Vec<u8>, depth: u64, value: Option<&impl serde::Serialize>) {
    key.extend_from_slice(&depth.to_le_bytes());
    match value {
        Some(value) => {
            key.push(1);
            // Object members serialize in sorted order (no `preserve_order`), so equal
            // documents give equal bytes. Length-prefixed: the length is patched in once the
            // value is written.
            let at = key.len();
            key.extend_from_slice(&[0; 8]);
            // Writing JSON values into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *key, value);
            let len = (key.len() - at - 8) as u64;
            if let Some(slot) = key.get_mut(at..at + 8) {
                slot.copy_from_slice(&len.to_le_bytes());
            }
        }
        None => key.push(0),
    }
}

fn key_end(mut key: Vec<u8>) -> Vec<u8> {
    if key.len() > MAX_KEY_BYTES {
        let digest = Sha256::digest(&key);
        key.clear();
        key.push(DIGEST);
        key.extend_from_slice(&digest);
    }
    key
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Ident(String),
    /// A string literal without escapes: its text is its value.
    Str(String),
    /// A string literal with escapes (`"\u0074oken"` is `token`): never taken as a member
    /// name, so a path through one stops before it (or, bare, makes the policy opaque).
    Escaped,
    Punct(char),
    Other,
}

/// Identifiers, string literals and punctuation; comments dropped. `None` on an unterminated
/// string (the policy would not compile anyway) or a template string.
pub(crate) fn lex(source: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut text = String::new();
                let mut escaped = false;
                loop {
                    match chars.next()? {
                        '\\' => {
                            escaped = true;
                            chars.next()?;
                        }
                        '"' => break,
                        c => text.push(c),
                    }
                }
                tokens.push(if escaped {
                    Token::Escaped
                } else {
                    Token::Str(text)
                });
            }
            '`' => {
                let mut text = String::new();
                loop {
                    match chars.next()? {
                        '`' => break,
                        c => text.push(c),
                    }
                }
                tokens.push(Token::Str(text));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' {
                        name.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Ident(name));
            }
            c if c.is_whitespace() => {}
            c if c.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '.')
                {
                    chars.next();
                }
                tokens.push(Token::Other);
            }
            // A template string (`$"…{input.x}…"`, newer Rego) hides expressions inside a
            // string: treat the whole source as unknowable.
            '$' if chars.peek() == Some(&'"') => return None,
            c if c.is_ascii_punctuation() => tokens.push(Token::Punct(c)),
            _ => tokens.push(Token::Other),
        }
    }
    Some(tokens)
}

fn is_ident(token: Option<&Token>, name: &str) -> bool {
    matches!(token, Some(Token::Ident(n)) if n == name)
}

fn is_punct(token: Option<&Token>, c: char) -> bool {
    token == Some(&Token::Punct(c))
}

fn scan_tokens(tokens: &[Token], paths: &mut Vec<Vec<String>>) -> Option<()> {
    for (i, token) in tokens.iter().enumerate() {
        let Token::Ident(name) = token else { continue };
        let after_dot = i
            .checked_sub(1)
            .is_some_and(|p| is_punct(tokens.get(p), '.'));
        if after_dot {
            continue; // a member named like this, not a root document or builtin
        }
        if name != "input" {
            if let Some(dotted) = dotted_name(tokens, i) {
                if NONDETERMINISTIC.contains(&dotted.as_str()) {
                    return None;
                }
            }
            continue;
        }
        let path = static_path(tokens, i + 1);
        if !path.is_empty() {
            paths.push(path);
            continue;
        }
        paths.push(object_get_path(tokens, i)?);
    }
    Some(())
}

/// `a.b.c` starting at `start`, joined with dots.
fn dotted_name(tokens: &[Token], start: usize) -> Option<String> {
    let Some(Token::Ident(first)) = tokens.get(start) else {
        return None;
    };
    let mut name = first.clone();
    let mut i = start + 1;
    while is_punct(tokens.get(i), '.') {
        let Some(Token::Ident(part)) = tokens.get(i + 1) else {
            break;
        };
        name.push('.');
        name.push_str(part);
        i += 2;
    }
    Some(name)
}

/// The static members after `input`: `.name` and `["name"]`, up to the first anything else.
fn static_path(tokens: &[Token], mut i: usize) -> Vec<String> {
    let mut path = Vec::new();
    loop {
        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Punct('.')), Some(Token::Ident(name)), _) => {
                path.push(name.clone());
                i += 2;
            }
            (Some(Token::Punct('[')), Some(Token::Str(name)), Some(Token::Punct(']'))) => {
                path.push(name.clone());
                i += 3;
            }
            _ => return path,
        }
    }
}

/// `object.get(input, "name", …)` or `object.get(input, ["a", "b"], …)` with `input` at `at`:
/// the literal path. `None` for any other bare use of `input`.
fn object_get_path(tokens: &[Token], at: usize) -> Option<Vec<String>> {
    let call = at.checked_sub(4)?;
    let is_object_get = is_ident(tokens.get(call), "object")
        && is_punct(tokens.get(call + 1), '.')
        && is_ident(tokens.get(call + 2), "get")
        && is_punct(tokens.get(call + 3), '(')
        && is_punct(tokens.get(at + 1), ',');
    if !is_object_get {
        return None;
    }
    let mut i = at + 2;
    let path = match tokens.get(i)? {
        Token::Str(name) => {
            i += 1;
            vec![name.clone()]
        }
        Token::Punct('[') => {
            let mut path = Vec::new();
            i += 1;
            loop {
                match tokens.get(i)? {
                    Token::Str(name) => path.push(name.clone()),
                    _ => return None,
                }
                i += 1;
                match tokens.get(i)? {
                    Token::Punct(',') => i += 1,
                    Token::Punct(']') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            path
        }
        _ => return None,
    };
    // The path argument must be complete: the default follows.
    (is_punct(tokens.get(i), ',') && !path.is_empty()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(source: &str) -> Option<Vec<String>> {
        InputReads::scan([source]).map(|r| r.paths().iter().map(|p| p.join(".")).collect())
    }

    #[test]
    fn static_paths_are_found_and_nested_ones_merged() {
        let source = r#"
            package p
            import rego.v1
            import input.request as req
            a := input.token.claims.att
            b := input.token.claims.att.app.id
            c := input["now"]
            d := object.get(input, ["binding", "valid"], false)
            e := object.get(input, "rule", null)
            f := input.token.claims[x]   # dynamic below a static prefix: the prefix is read
            # input whole in a comment is fine
            g := "input in a string"
            h := data.input.x
        "#;
        assert_eq!(
            paths(source),
            Some(
                ["binding.valid", "now", "request", "rule", "token.claims"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn the_default_policy_reads_only_the_attestation_claims() {
        let source = include_str!("../../policies/device_trust.rego");
        assert_eq!(paths(source), Some(vec!["token.claims.att".to_owned()]));
    }

    #[test]
    fn any_other_use_of_input_is_opaque() {
        for body in [
            "x := input",
            "x := input[k]",
            "x := walk(input)",
            "x := object.get(input, k, 1)",
            "x := object.get(input, [\"a\", k], 1)",
            "x := object.get(input, [], 1)",
            "x := count(input)",
            "x := json.marshal(input)",
            "x := y with data.z as input",
            "x := $\"{input.a}\"",
        ] {
            assert_eq!(paths(&format!("package p\n{body}")), None, "{body}");
        }
    }

    #[test]
    fn an_escaped_member_name_is_never_taken_at_face_value() {
        // `"\u0074oken"` is `token`: keying on a member named `\u0074oken` would leave the
        // token out of the key. Bare, the use is opaque; below a static prefix, the prefix is
        // keyed whole.
        assert_eq!(paths("package p\nx := input[\"\\u0074oken\"]"), None);
        assert_eq!(
            paths("package p\nx := object.get(input, [\"\\u0074oken\"], 1)"),
            None
        );
        assert_eq!(
            paths("package p\nx := input.token[\"cl\\u0061ims\"]"),
            Some(vec!["token".to_owned()])
        );
    }

    #[test]
    fn nondeterministic_builtins_are_opaque() {
        for body in [
            "x := rand.intn(\"a\", 10)",
            "x := time.now_ns()",
            "x if print(input.a)",
            "x := uuid.rfc4122(\"k\")",
        ] {
            assert_eq!(paths(&format!("package p\n{body}")), None, "{body}");
        }
        // A member merely named like one is not a call to it.
        assert_eq!(
            paths("package p\nx := data.print"),
            Some(Vec::<String>::new())
        );
    }

    #[test]
    fn a_long_key_is_kept_as_its_digest_and_still_tells_inputs_apart() {
        let reads = InputReads::scan(["package p\nx := input.token.claims.att"]).unwrap();
        let input = |pad: &str| json!({"token": {"claims": {"att": {"pad": pad}}}});
        let short = reads.key("data.p.x", &input("a"));
        assert!(short.len() < MAX_KEY_BYTES && short.first() == Some(&FULL));
        let (one, two) = (
            "x".repeat(MAX_KEY_BYTES),
            format!("{}y", "x".repeat(MAX_KEY_BYTES - 1)),
        );
        let long = reads.key("data.p.x", &input(&one));
        assert_eq!((long.len(), long.first()), (33, Some(&DIGEST)));
        assert_ne!(long, reads.key("data.p.x", &input(&two)));
        assert_eq!(long, reads.key("data.p.x", &input(&one)));
    }

    /// Keyed on the claims alone, a policy that reads only claims gets the very key its whole
    /// input would give (one memo, whichever way a request reaches it).
    #[test]
    fn a_claims_key_is_the_key_of_the_whole_input() {
        let sources = [
            "package p\nx := input.token.claims.att",
            "package p\nx := input.token.claims",
            "package p\nx := [input.token.claims.att.app.id, input.token.claims.did]",
            "package p\nx := input.token.claims.att.app.version.major",
            "package p\nx := object.get(input, [\"token\", \"claims\", \"did\"], null)",
        ];
        let long = "v".repeat(2 * MAX_KEY_BYTES);
        let claim_sets = [
            json!({}),
            json!({"att": null}),
            json!({"att": 5, "did": "d"}),
            json!({"att": {"app": {"id": "x", "version": "2.1"}}, "did": "d1", "jti": "j"}),
            json!({"att": {"app": {"id": [1, 2], "version": {"major": 2}}}, "a": {"b": 1}}),
            json!({"att": {"app": {"id": long}}, "did": "d1"}),
        ];
        for source in sources {
            let reads = InputReads::scan([source]).unwrap();
            for claims in &claim_sets {
                let serde_json::Value::Object(map) = claims.clone() else {
                    unreachable!()
                };
                let input = json!({"token": {"header": {"alg": "HS256"}, "claims": claims},
                    "request": {"path": "/"}, "now": 7});
                assert_eq!(
                    reads.claims_key("data.p.x", &map),
                    Some(reads.key("data.p.x", &input)),
                    "{source} on {claims}"
                );
            }
        }
        // Any read outside the claims needs the input.
        for source in [
            "package p\nx := [input.token.claims.att, input.now]",
            "package p\nx := input.token.header.alg",
            "package p\nx := input.token",
        ] {
            let reads = InputReads::scan([source]).unwrap();
            assert_eq!(reads.claims_key("data.p.x", &Map::new()), None, "{source}");
        }
    }

    #[test]
    fn keys_differ_exactly_when_a_read_part_differs() {
        let reads = InputReads::scan(["package p\nx := input.token.claims.att"]).unwrap();
        let input = |att: serde_json::Value, jti: &str, now: i64| json!({"token": {"claims": {"att": att, "jti": jti}}, "now": now});
        let base = reads.key("data.p.x", &input(json!({"a": 1}), "1", 10));
        assert_eq!(
            base,
            reads.key("data.p.x", &input(json!({"a": 1}), "2", 11))
        );
        assert_ne!(
            base,
            reads.key("data.p.x", &input(json!({"a": 2}), "1", 10))
        );
        assert_ne!(
            base,
            reads.key("data.p.y", &input(json!({"a": 1}), "1", 10))
        );
        // Absent, null and a non-object along the way are all told apart.
        let absent = reads.key("data.p.x", &json!({"token": {"claims": {}}}));
        let null = reads.key("data.p.x", &json!({"token": {"claims": {"att": null}}}));
        let scalar = reads.key("data.p.x", &json!({"token": {"claims": 5}}));
        let array = reads.key("data.p.x", &json!({"token": {"claims": [5]}}));
        let all = [absent, null, scalar, array, base];
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }
}
