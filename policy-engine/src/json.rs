//! A strict parser for the JSON inside a token.
//!
//! `serde_json` keeps the last of duplicate object keys and nests up to 128 levels. In a token
//! either is a smell (RFC 8725 §3.1: parsers that disagree on duplicates let an attacker show
//! one value to the verifier and another to the app), so the document is read in one pass that
//! rejects duplicates and deep nesting as it builds the value: the claims are then used as
//! built, never parsed a second time by a laxer reader.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

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

/// The one JSON value `bytes` hold, refused unless that is all they hold, no object repeats a
/// key and it nests at most `max_depth` levels (a flat object is depth 1); numbers and strings
/// read as `serde_json::from_slice` reads them.
pub(crate) fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let outcome = Walker {
        depth_left: max_depth,
        max_depth,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
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
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walker {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity (serde_json refuses 1e400), so `from_f64` always holds.
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Refused before its value is read, as the key is met.
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_TAG}{key}")));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], max_depth: usize) -> Result<(), StrictJsonError> {
        parse(bytes, max_depth).map(drop)
    }

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
    fn parses_what_serde_json_parses() {
        let text = br#"{"s":"\u00e9\n","n":[0,-1,18446744073709551615,1.5,1e3,-0.0],"o":{"t":true,"z":null}}"#;
        assert_eq!(
            parse(text, 4),
            Ok(serde_json::from_slice::<Value>(text).unwrap())
        );
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#, 4),
            Err(StrictJsonError::DuplicateKey("a".into()))
        );
    }

    /// JSONTestSuite's parsing cases (tests/data/JSONTestSuite): every document is accepted,
    /// and read, exactly as `serde_json::from_slice` reads it, but for repeated keys; the
    /// depth limit is set past serde_json's own (128) so that only serde_json's applies.
    #[test]
    fn reads_json_test_suite_as_serde_json_does() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/JSONTestSuite/test_parsing"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let ours = parse(&bytes, 1_000);
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(_) if name.contains("duplicated_key") => {
                    assert!(
                        matches!(ours, Err(StrictJsonError::DuplicateKey(_))),
                        "{name}: {ours:?}"
                    );
                }
                Ok(theirs) => assert_eq!(ours, Ok(theirs), "{name}"),
                Err(_) => assert!(ours.is_err(), "{name}: accepted as {ours:?}"),
            }
            if name.starts_with("y_") {
                assert!(ours.is_ok() || name.contains("duplicated_key"), "{name}");
            }
            if name.starts_with("n_") {
                assert!(ours.is_err(), "{name}");
            }
            seen += 1;
        }
        assert_eq!(seen, 317);
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
