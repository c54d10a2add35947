//! The Kong package's `attestgate.meta.json` is `attestgate schema --kong`'s output: generated
//! from the config model, never edited by hand. A change to the model that changes the schema
//! fails here until `make examples` regenerates the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn attestgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(args)
        .output()
        .expect("running attestgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_kong_meta_json_is_the_generated_schema() {
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../filter/kong/attestgate.meta.json");
    let committed = std::fs::read_to_string(committed).unwrap();
    let generated = attestgate(&["schema", "--kong"]);
    assert!(
        committed == generated,
        "filter/kong/attestgate.meta.json is not what `attestgate schema --kong` prints: \
         run `make examples` and commit the result"
    );
}

#[test]
fn the_schema_is_draft_4_and_kong_meta_only_wraps_it() {
    let plain: serde_json::Value = serde_json::from_str(&attestgate(&["schema"])).unwrap();
    let kong: serde_json::Value = serde_json::from_str(&attestgate(&["schema", "--kong"])).unwrap();
    assert_eq!(kong, serde_json::json!({ "config_schema": plain }));
    assert_eq!(plain["$schema"], "http://json-schema.org/draft-04/schema#");
    // Nothing of later drafts, which Kong's Draft 4 validator would ignore or refuse.
    let text = plain.to_string();
    for later in [
        "\"const\"",
        "\"$ref\"",
        "\"$defs\"",
        "\"definitions\"",
        "\"format\"",
        "\"unevaluatedProperties\"",
    ] {
        assert!(!text.contains(later), "the schema uses {later}");
    }
}
