//! Fuzzing seeds from the corpus, in the input formats of `fuzz/src/lib.rs`.

use std::path::{Path, PathBuf};

use attestgate_corpus::Materialized;
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::Value;

fn save(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

/// Gate configs from the Envoy examples: the `configuration.value` of their filters.
fn example_configs() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples");
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path().join("envoy.yaml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(yaml) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
            continue;
        };
        let mut values = Vec::new();
        collect_configuration(&yaml, &mut values);
        for (i, value) in values.into_iter().enumerate() {
            let name = entry.file_name().to_string_lossy().into_owned();
            found.push((format!("example-{name}-{i}"), value));
        }
    }
    found.sort();
    found
}

fn collect_configuration(yaml: &serde_yaml::Value, out: &mut Vec<String>) {
    match yaml {
        serde_yaml::Value::Mapping(map) => {
            for (key, value) in map {
                if key.as_str() == Some("configuration") {
                    if let Some(text) = value.get("value").and_then(serde_yaml::Value::as_str) {
                        out.push(text.to_owned());
                    }
                }
                collect_configuration(value, out);
            }
        }
        serde_yaml::Value::Sequence(list) => {
            for value in list {
                collect_configuration(value, out);
            }
        }
        _ => {}
    }
}

/// Writes the seeds; returns how many.
pub fn write(materialized: &Materialized, dir: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    for (index, gate) in materialized.gates.iter().enumerate() {
        let which = u8::try_from(index).unwrap_or(u8::MAX);
        let file = gate.name.replace('/', "-");
        save(dir, "config", &file, gate.config.to_string().as_bytes())?;
        count += 1;
        let token_header = gate
            .config
            .pointer("/token/header")
            .and_then(Value::as_str)
            .unwrap_or("approov-token")
            .to_ascii_lowercase();
        for case in &gate.cases {
            let request = &case.request;
            let mut text = format!(
                "{} {}\n:authority: {}\n",
                request.method, request.path, request.authority
            );
            for (name, value) in &request.headers {
                text.push_str(&format!("{name}: {value}\n"));
            }
            let mut check = vec![which];
            check.extend_from_slice(text.as_bytes());
            save(dir, "check", &case.name, &check)?;
            count += 1;

            let token = request
                .headers
                .iter()
                .find(|(name, _)| *name == token_header)
                .map(|(_, value)| value.rsplit(' ').next().unwrap_or(value).trim());
            let Some(token) = token else { continue };
            let mut raw = vec![0_u8];
            raw.extend_from_slice(token.as_bytes());
            save(dir, "token", &format!("{}-raw", case.name), &raw)?;
            count += 1;
            let segments: Vec<&str> = token.split('.').collect();
            if let [header, claims, _] = segments.as_slice() {
                if let (Ok(header), Ok(claims)) = (
                    Base64UrlUnpadded::decode_vec(header),
                    Base64UrlUnpadded::decode_vec(claims),
                ) {
                    let mut parts = vec![1_u8];
                    parts.extend_from_slice(&header);
                    parts.push(0);
                    parts.extend_from_slice(&claims);
                    save(dir, "token", &format!("{}-parts", case.name), &parts)?;
                    let mut signed = vec![2_u8];
                    signed.extend_from_slice(&claims);
                    save(dir, "token", &format!("{}-claims", case.name), &signed)?;
                    count += 2;
                }
            }
        }
    }
    for (name, config) in example_configs() {
        save(dir, "config", &name, config.as_bytes())?;
        count += 1;
    }
    count += write_extra(dir, materialized.now)?;
    Ok(count)
}

/// Seeds of the targets that decide with `attestgate_corpus::fuzzing`'s gates.
fn write_extra(dir: &Path, now: i64) -> std::io::Result<usize> {
    use attestgate_corpus::fuzzing;
    let mut count = 0;
    let signed = fuzzing::signature_seeds(now).map_err(std::io::Error::other)?;
    for (i, request) in signed.iter().enumerate() {
        save(
            dir,
            "signature",
            &format!("signed-{i}"),
            &fuzzing::signature_input(request),
        )?;
        count += 1;
    }
    for (i, line) in fuzzing::ROUTE_SEEDS.iter().enumerate() {
        save(dir, "route", &format!("path-{i}"), line.as_bytes())?;
        count += 1;
    }
    let claims = [
        r#"{"exp":1700003600,"did":"d1","att":{"device":{"platform":"android"}}}"#,
        r#"{"exp":1700003600,"did":"d2","pay":"x","nested":{"a":[1,2.5,{"b":null}]}}"#,
        r#"{"exp":1700003600}"#,
    ];
    let headers = [
        "",
        "Authorization: Bearer abc\nX-Trace: 1\nx-trace: 2",
        "x-device-id: forged",
    ];
    for (i, claims) in claims.iter().enumerate() {
        for (j, lines) in headers.iter().enumerate() {
            let mut input = claims.as_bytes().to_vec();
            input.push(0);
            input.extend_from_slice(lines.as_bytes());
            save(dir, "policy_input", &format!("claims-{i}-{j}"), &input)?;
            count += 1;
        }
    }
    Ok(count)
}
