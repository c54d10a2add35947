//! The core's modules form layers: a module uses only modules of lower layers, so there is no
//! import cycle and a newcomer can read the core bottom up (ARCHITECTURE.md, "Inside the core").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

/// Each module's layer. Leaves first: request facts and header predicates, strict JSON,
/// digests, the config model; then the decision and its errors; then the mechanisms; the
/// pipeline; and its views. (Signing lives in the test kit crate, attestgate-testkit.)
const LAYERS: &[(&str, u32)] = &[
    ("request", 0),
    ("json", 0),
    ("digest", 0),
    ("verifier", 0),
    ("rego_plan", 0),
    ("config", 1),
    ("decision", 2),
    ("capability", 2),
    ("steps", 3),
    ("decision_log", 3),
    ("error", 4),
    ("keys", 5),
    ("token", 6),
    ("binding", 6),
    ("signature", 6),
    ("remote", 6),
    ("reads", 6),
    ("policy", 7),
    ("input", 7),
    ("reason_names", 7),
    ("portability", 7),
    ("gate", 8),
    ("cache", 9),
    ("explain", 9),
    ("record", 10),
    ("plan", 11),
];

#[test]
fn no_module_uses_a_layer_above_or_beside_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    // A module is `name.rs`, a directory `name/` (`mod.rs` and its submodules' files), or both
    // (`name.rs` with its submodules in `name/`); all its files sit in its layer. A `tests.rs`
    // in the directory is the module's `#[cfg(test)] mod tests`.
    let mut modules: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            let files = modules.entry(name).or_default();
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().path();
                if file.extension().is_some_and(|e| e == "rs") && !file.ends_with("tests.rs") {
                    files.push(file);
                }
            }
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            modules.entry(name).or_default().push(path);
        }
    }
    let mut seen = Vec::new();
    for (name, files) in &modules {
        let Some(&own) = layers.get(name.as_str()) else {
            problems.push(format!("{name} has no layer in LAYERS"));
            continue;
        };
        seen.push(name.clone());
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            // Unit tests may use anything.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (at, _) in code.match_indices("crate::") {
                let used: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if used == *name || used.is_empty() {
                    continue;
                }
                match layers.get(used.as_str()) {
                    Some(&layer) if layer < own => {}
                    Some(&layer) => {
                        problems.push(format!("{name} (layer {own}) uses {used} (layer {layer})"))
                    }
                    None => problems.push(format!("{name} uses {used}, which has no layer")),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        seen.len(),
        LAYERS.len(),
        "a module in LAYERS is gone: {seen:?}"
    );
}
