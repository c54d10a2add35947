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
    count += write_policy_plan(dir, materialized.now)?;
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

/// A module's text without its comment lines: the `policy_plan` target's policies are bounded
/// (8 KB), and libFuzzer's mutations then land on Rego rather than prose.
fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `line` with its rule name `from` (at the start of the line, after an optional `default `)
/// renamed to `to`.
fn rename_head(line: &str, from: &str, to: &str) -> String {
    let (prefix, head) = match line.strip_prefix("default ") {
        Some(rest) => ("default ", rest),
        None => ("", line),
    };
    match head.strip_prefix(from) {
        Some(rest) if rest.starts_with([' ', '\t', ':', '=']) => format!("{prefix}{to}{rest}"),
        _ => line.to_owned(),
    }
}

/// The `policy_plan` target's policies, each one module: the shipped policies (not their
/// tests), and each Envoy example's Rego merged into the default policy it is loaded with,
/// its `*_decision` rule renamed `decision` (the target's entrypoint) and the default
/// policy's own `decision` renamed `_default_decision`.
fn policy_plan_policies() -> std::io::Result<Vec<(String, String)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("policies/device_trust.rego")];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("policies/examples"))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    examples.sort();
    files.extend(examples);
    let mut policies = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path.extension().is_none_or(|ext| ext != "rego") || name.ends_with("_test") {
            continue;
        }
        policies.push((name, without_comments(&std::fs::read_to_string(&path)?)));
    }
    let default_policy = std::fs::read_to_string(root.join("policies/device_trust.rego"))?;
    let default_policy: String = without_comments(&default_policy)
        .lines()
        .map(|line| rename_head(line, "decision", "_default_decision") + "\n")
        .collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("envoy-examples"))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut modules: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        modules.sort();
        for path in modules {
            if path.extension().is_none_or(|ext| ext != "rego") {
                continue;
            }
            let mut merged = default_policy.clone();
            for line in without_comments(&std::fs::read_to_string(&path)?).lines() {
                if line.starts_with("package ") || line.starts_with("import ") {
                    continue;
                }
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let line = if name.ends_with("_decision") {
                    rename_head(line, &name, "decision")
                } else {
                    line.to_owned()
                };
                merged.push_str(&line);
                merged.push('\n');
            }
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let example = dir.file_name().unwrap_or_default().to_string_lossy();
            policies.push((format!("{example}-{stem}"), merged));
        }
    }
    Ok(policies)
}

/// A gate's policy input document (docs/configuration.md) for a token with `claims`.
fn gate_input(now: i64, method: &str, path: &str, claims: Value) -> Value {
    let did = claims.get("did").cloned().unwrap_or(Value::Null);
    let bound = claims.get("pay").is_some();
    serde_json::json!({
        "token": {"header": {"alg": "ES256", "kid": "attest-1", "typ": "JWT"}, "claims": claims},
        "request": {"method": method, "path": path, "host": "api.example.com",
                    "headers": {"content-type": "application/json", "user-agent": "shapes/2.4.1"},
                    "source_ip": "203.0.113.7"},
        "binding": {"checked": bound, "valid": bound},
        "signature": {"present": false, "valid": false, "components": [], "error": null},
        "device": {"id": did, "listed": false},
        "now": now,
        "rule": null,
    })
}

/// The `policy_plan` target's inputs: allowed and denied attestations of both platforms, a
/// Firebase App Check token, and no attestation at all.
fn policy_plan_inputs(now: i64) -> Vec<(&'static str, Value)> {
    use serde_json::json;
    let signer = "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";
    let claims = |did: &str, att: Value| {
        json!({"iss": "attest.example.com", "aud": "api.example.com", "exp": now + 300,
               "iat": now - 30, "did": did, "att": att})
    };
    let good_android = json!({
        "app": {"id": "com.example.shapes", "version": "2.4.1", "signer_sha256": [signer],
                "installer": "com.android.vending", "debuggable": false},
        "device": {"platform": "android", "os_version": "14", "patch_level": "2024-05-05",
                   "integrity": ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"],
                   "rooted": false, "emulator": false, "bootloader_unlocked": false},
        "runtime": {"debugger": false, "hooks": [], "app_tampered": false},
        "risk": {"score": 5},
    });
    let medium_ios = json!({
        "app": {"id": "ABCDE12345.com.example.shapes", "version": "2.3.0",
                "environment": "production"},
        "device": {"platform": "ios", "os_version": "17.4.1", "emulator": false},
        "runtime": {"debugger": false, "hooks": []},
        "risk": {"score": 45},
    });
    let compromised_android = json!({
        "app": {"id": "com.example.shapes", "version": "1.9.9", "signer_sha256": ["AA"],
                "installer": "adb", "debuggable": true},
        "device": {"platform": "android", "os_version": "10", "patch_level": "2023-01-05",
                   "integrity": ["MEETS_BASIC_INTEGRITY"], "rooted": true, "emulator": true,
                   "bootloader_unlocked": true},
        "runtime": {"debugger": true, "hooks": ["Frida", "xposed"], "app_tampered": true},
        "risk": {"score": 95.5},
    });
    let odd_types = json!({
        "app": {"id": null, "version": 2.4, "signer_sha256": signer},
        "device": {"platform": "Android", "os_version": 15,
                   "integrity": "MEETS_DEVICE_INTEGRITY", "rooted": "false"},
        "runtime": {"hooks": "frida"},
        "risk": {"score": "10"},
    });
    let app_check = json!({
        "iss": "https://firebaseappcheck.googleapis.com/123456789012",
        "aud": ["projects/123456789012", "projects/shapes"], "exp": now + 3600,
        "iat": now - 200, "sub": "1:123456789012:android:abc123",
    });
    // Bound to a header (`pay`), as the payments example requires.
    let mut android_good = claims("device-1", good_android);
    if let Some(object) = android_good.as_object_mut() {
        let pay = json!("hmK6bY3Fp0b9Jd0k8cXo5uE2X0wQeU3r0n1l4zvA2gI=");
        object.insert("pay".to_owned(), pay);
    }
    let cases = [
        ("android-good", "GET", "/v1/shapes", android_good),
        (
            "ios-medium-risk-post",
            "POST",
            "/login",
            claims("device-2", medium_ios),
        ),
        (
            "android-compromised",
            "DELETE",
            "/v1/account",
            claims("device-3", compromised_android),
        ),
        ("odd-types", "post", "/pay", claims("device-4", odd_types)),
        ("app-check", "GET", "/v1/shapes", app_check),
    ];
    cases
        .into_iter()
        .map(|(name, method, path, claims)| (name, gate_input(now, method, path, claims)))
        .collect()
}

/// Seeds of the `policy_plan` target: each shipped policy with each input.
fn write_policy_plan(dir: &Path, now: i64) -> std::io::Result<usize> {
    let mut count = 0;
    let inputs = policy_plan_inputs(now);
    for (policy, text) in policy_plan_policies()? {
        for (name, input) in &inputs {
            let mut seed = text.clone().into_bytes();
            seed.push(0);
            seed.extend_from_slice(input.to_string().as_bytes());
            save(dir, "policy_plan", &format!("{policy}-{name}"), &seed)?;
            count += 1;
        }
    }
    Ok(count)
}
