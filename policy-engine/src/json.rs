//! A strict pre-check for the JSON inside a token.
//!
//! `serde_json` keeps the last of duplicate object keys and nests up to 128 levels. In a token
//! either is a smell (RFC 8725 §3.1: parsers that disagree on duplicates let an attacker show
//! one value to the verifier and another to the app), so we walk the document once, without
//! building it, and reject duplicates and deep nesting before anything else reads it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StrictJsonError {
    /// Not JSON at all, or trailing bytes after the value.
    #[error("invalid json: {0}")]
    Syntax(String),
    /// An object repeats a key.
    #[error("duplicate json key `{0}`")]
    DuplicateKey(String),
    /// Arrays and objects nest deeper than allowed.
    #[error("json nested deeper than {0} levels")]
    TooDeep(usize),
}

/// Checks that `bytes` hold exactly one JSON value with no duplicate object keys and at most
/// `max_depth` levels of nesting (a flat object is depth 1).
pub(crate) fn check(bytes: &[u8], max_depth: usize) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let outcome = Walker {
        depth_left: max_depth,
        max_depth,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    outcome.map_err(|err| {
        let text = err.to_string();
        // Our own findings travel through serde's error as a tagged message; map them back.
        if let Some(key) = text.strip_prefix(DUPLICATE_TAG) {
            let key = key.split(" at line ").next().unwrap_or(key);
            StrictJsonError::DuplicateKey(key.to_owned())
        } else if text.starts_with(TOO_DEEP_TAG) {
            StrictJsonError::TooDeep(max_depth)
        } else {
            StrictJsonError::Syntax(text)
        }
    })
}

const DUPLICATE_TAG: &str = "attestgate-duplicate-key:";
const TOO_DEEP_TAG: &str = "attestgate-too-deep";

#[derive(Clone, Copy)]
struct Walker {
    depth_left: usize,
    max_depth: usize,
}

impl Walker {
    fn nested<E: de::Error>(self) -> Result<Walker, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Walker {
                depth_left,
                max_depth: self.max_depth,
            }),
            None => Err(E::custom(TOO_DEEP_TAG)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walker {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_TAG}{key}")));
            }
            map.next_value_seed(inner)?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_flat_and_nested_documents() {
        assert_eq!(check(br#"{"a":1,"b":[1,2,{"c":null}]}"#, 3), Ok(()));
        assert_eq!(check(b"12", 0), Ok(()));
    }

    #[test]
    fn rejects_duplicate_keys_at_any_level() {
        assert_eq!(
            check(br#"{"alg":"HS256","alg":"none"}"#, 4),
            Err(StrictJsonError::DuplicateKey("alg".into()))
        );
        assert_eq!(
            check(br#"{"a":{"x":1,"x":2}}"#, 4),
            Err(StrictJsonError::DuplicateKey("x".into()))
        );
    }

    #[test]
    fn same_key_in_sibling_objects_is_fine() {
        assert_eq!(check(br#"[{"x":1},{"x":2}]"#, 4), Ok(()));
    }

    #[test]
    fn rejects_nesting_past_the_limit() {
        assert_eq!(check(br#"{"a":{"b":1}}"#, 2), Ok(()));
        assert_eq!(
            check(br#"{"a":{"b":{"c":1}}}"#, 2),
            Err(StrictJsonError::TooDeep(2))
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(
            check(deep.as_bytes(), 32),
            Err(StrictJsonError::TooDeep(32))
        );
    }

    #[test]
    fn rejects_trailing_garbage_and_bad_syntax() {
        assert!(matches!(check(b"{} x", 4), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(check(b"{", 4), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(check(b"\xff", 4), Err(StrictJsonError::Syntax(_))));
    }
}
