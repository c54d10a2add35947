//! The LuaJIT module declares the C API itself (`ffi.cdef`): its declarations must be the
//! header's, token for token, and the Rust structs must have the header's layout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

/// The declarations without comments or preprocessor lines, as one space-separated token run.
fn tokens(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .split_once("*/")
            .map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    let code: Vec<&str> = out
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    let joined = code.join(" ");
    // Punctuation as its own token, then single spaces.
    let mut spaced = String::new();
    for c in joined.chars() {
        if "(){};,*[]".contains(c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_lua_cdef_declares_exactly_the_header() {
    let header = read("include/attestgate.h");
    let declarations = header
        .split_once("extern \"C\" {\n#endif")
        .and_then(|(_, rest)| rest.split_once("#ifdef __cplusplus\n}"))
        .map(|(body, _)| body)
        .expect("the header's extern \"C\" block");
    let lua = read("lua/attestgate.lua");
    let cdef = lua
        .split_once("ffi.cdef [[")
        .and_then(|(_, rest)| rest.split_once("]]"))
        .map(|(body, _)| body)
        .expect("the Lua module's ffi.cdef block");
    assert_eq!(tokens(cdef), tokens(declarations));
    // Every exported function is declared.
    for name in [
        "attestgate_version",
        "attestgate_gate_new",
        "attestgate_gate_free",
        "attestgate_needs_body",
        "attestgate_decide",
        "attestgate_decision_free",
        "attestgate_string_free",
        "attestgate_gate_remote",
        "attestgate_gate_set_document",
    ] {
        assert!(
            tokens(declarations).contains(&format!("{name} (")),
            "{name}"
        );
    }
}

#[test]
fn the_header_states_the_librarys_codes_and_caps() {
    let header = read("include/attestgate.h");
    for (name, value) in [
        ("ATTESTGATE_OK", attestgate::ATTESTGATE_OK),
        ("ATTESTGATE_ERR_NULL", attestgate::ATTESTGATE_ERR_NULL),
        ("ATTESTGATE_ERR_UTF8", attestgate::ATTESTGATE_ERR_UTF8),
        (
            "ATTESTGATE_ERR_TOO_LARGE",
            attestgate::ATTESTGATE_ERR_TOO_LARGE,
        ),
        ("ATTESTGATE_ERR_CONFIG", attestgate::ATTESTGATE_ERR_CONFIG),
        ("ATTESTGATE_ERR_THREAD", attestgate::ATTESTGATE_ERR_THREAD),
        (
            "ATTESTGATE_ERR_INTERNAL",
            attestgate::ATTESTGATE_ERR_INTERNAL,
        ),
        (
            "ATTESTGATE_ERR_DOCUMENT",
            attestgate::ATTESTGATE_ERR_DOCUMENT,
        ),
        ("ATTESTGATE_DOC_JWKS", attestgate::ATTESTGATE_DOC_JWKS),
        (
            "ATTESTGATE_DOC_DENYLIST",
            attestgate::ATTESTGATE_DOC_DENYLIST,
        ),
    ] {
        let written = if value < 0 {
            format!("#define {name} ({value})")
        } else {
            format!("#define {name} {value}")
        };
        assert!(header.contains(&written), "{written}");
    }
    for (name, shift, value) in [
        (
            "ATTESTGATE_MAX_CONFIG_BYTES",
            "(64u << 20)",
            attestgate::MAX_CONFIG_BYTES,
        ),
        (
            "ATTESTGATE_MAX_FIELD_BYTES",
            "(16u << 20)",
            attestgate::MAX_FIELD_BYTES,
        ),
        (
            "ATTESTGATE_MAX_BODY_BYTES",
            "(256u << 20)",
            attestgate::MAX_BODY_BYTES,
        ),
        ("ATTESTGATE_MAX_HEADERS", "16384u", attestgate::MAX_HEADERS),
        (
            "ATTESTGATE_MAX_DOCUMENT_BYTES",
            "(64u << 20)",
            attestgate::MAX_DOCUMENT_BYTES,
        ),
    ] {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(line.contains(shift), "{line}");
        let number: usize = match shift
            .trim_matches(|c| c == '(' || c == ')')
            .split_once(" << ")
        {
            Some((base, bits)) => {
                base.trim_end_matches('u').parse::<usize>().unwrap() << bits.parse::<u32>().unwrap()
            }
            None => shift.trim_end_matches('u').parse().unwrap(),
        };
        assert_eq!(number, value, "{name}");
    }
}

/// The Lua module's codes are the library's.
#[test]
fn the_lua_module_states_the_same_codes() {
    let lua = read("lua/attestgate.lua");
    assert!(lua.contains("M.OK, M.ERR_NULL, M.ERR_UTF8, M.ERR_TOO_LARGE = 0, -1, -2, -3"));
    assert!(lua.contains("M.ERR_CONFIG, M.ERR_THREAD, M.ERR_INTERNAL = -4, -5, -6"));
    assert!(lua.contains("M.ERR_DOCUMENT, M.DOC_JWKS, M.DOC_DENYLIST = -7, 1, 2"));
    assert_eq!(
        (
            attestgate::ATTESTGATE_ERR_DOCUMENT,
            attestgate::ATTESTGATE_DOC_JWKS,
            attestgate::ATTESTGATE_DOC_DENYLIST
        ),
        (-7, 1, 2)
    );
    assert_eq!(
        (
            attestgate::ATTESTGATE_ERR_CONFIG,
            attestgate::ATTESTGATE_ERR_THREAD,
            attestgate::ATTESTGATE_ERR_INTERNAL
        ),
        (-4, -5, -6)
    );
}

/// The Lua code names two counters itself (a failure of the glue, the Kong plugin's refused
/// config), where no decision carries them: each must be one of the core's names, or a
/// dashboard would read them under another name in NGINX and Kong than in Envoy.
#[test]
fn every_counter_the_lua_code_names_is_the_cores() {
    let known = attestgate_policy::plan::all_counter_names();
    let mut named = Vec::new();
    for file in ["lua/attestgate.lua", "kong/attestgate/handler.lua"] {
        let text = read(file);
        // Every string literal that starts `"attestgate.`: up to its closing quote.
        for (at, _) in text.match_indices("\"attestgate.") {
            let rest = &text[at + 1..];
            let piece = &rest[..rest.find('"').unwrap_or(rest.len())];
            let name_like = piece
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
            if piece.starts_with("attestgate.") && name_like {
                assert!(
                    known.iter().any(|name| name == piece),
                    "{file} counts `{piece}`, which the core does not name"
                );
                named.push(piece.to_owned());
            }
        }
    }
    // The two the glue counts itself, found where they are written.
    assert!(named.iter().any(|n| n == attestgate_policy::plan::ERRORS));
    let refused =
        attestgate_policy::plan::refusal_counters(attestgate_policy::Reason::ConfigInvalid);
    assert!(refused.iter().all(|r| named.contains(r)), "{named:?}");
}
