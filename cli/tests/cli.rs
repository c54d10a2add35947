//! The `attestgate` binary, run for real: its JSON output and exit codes are a public contract.
//!
//! `check` prints one JSON decision and exits 0 (allowed), 1 (denied) or 2 (usage or config
//! error: a message on stderr, nothing on stdout). Every test works in its own scratch
//! directory and passes `--now`, so the tests run in parallel and never depend on the clock.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

mod common;
use std::process::{Command, Output, Stdio};

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The fixed clock every command runs at.
const NOW: i64 = 1_700_000_000;

/// The members a decision may have; `rule`, `headers`, `claims` and `detail` only when set.
const DECISION_MEMBERS: [&str; 10] = [
    "allow", "status", "reason", "reasons", "mode", "verdict", "rule", "headers", "claims",
    "detail",
];

/// Denies rooted devices with the reason `device_rooted`.
const ROOTED_POLICY: &str = r#"package attestgate
decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}
deny contains "device_rooted" if input.token.claims.att.device.rooted == true
"#;

/// A 32-byte Approov-style secret.
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// A scratch directory per test (named after the test and this process), removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("attestgate-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn attestgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn attestgate_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Standard padded base64 of SHA-256: the `pay` binding claim for one bound header.
fn pay(value: &str) -> String {
    Base64::encode_string(&Sha256::digest(value.as_bytes()))
}

/// `keygen --out` with kid `k1`: the private JWK's path and the public JWKS.
fn keygen(scratch: &Scratch, alg: &str, name: &str) -> (PathBuf, Value) {
    let private = scratch.path(&format!("{name}.json"));
    let out = attestgate(&["keygen", "--alg", alg, "--kid", "k1", "--out", p(&private)]);
    assert_eq!(out.status.code(), Some(0), "keygen {alg}: {}", stderr(&out));
    assert!(stdout(&out).is_empty(), "keygen --out printed to stdout");
    let public = read_json(&private.with_extension("pub.json"));
    (private, public)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
}

/// Mints `claims` at [`NOW`] with `exp` `exp_in` seconds later, signed with a JWK file or
/// (`--secret`) an Approov-style secret.
fn mint(scratch: &Scratch, key: &[&str], claims: &Value, exp_in: i64) -> String {
    let file = scratch.write("claims.json", &claims.to_string());
    let (exp_in, now) = (exp_in.to_string(), NOW.to_string());
    let mut args = vec!["mint"];
    args.extend_from_slice(key);
    args.extend_from_slice(&["--claims", p(&file), "--exp-in", &exp_in, "--now", &now]);
    let out = attestgate(&args);
    assert_eq!(out.status.code(), Some(0), "mint: {}", stderr(&out));
    let token = stdout(&out);
    assert_eq!(token.matches('.').count(), 2, "not a compact JWS: {token}");
    token.trim().to_owned()
}

fn mint_with_jwk(scratch: &Scratch, key: &Path, claims: &Value, exp_in: i64) -> String {
    mint(scratch, &["--key", p(key)], claims, exp_in)
}

/// Runs `check` at [`NOW`] (unless `extra` passes its own `--now`) and returns the exit code
/// and the decision, after checking that stdout is exactly one line holding one JSON object
/// with only documented members, and that stderr is empty.
fn check(config: &Path, token: Option<&str>, extra: &[&str]) -> (i32, Value) {
    let now = NOW.to_string();
    let mut args = vec!["check", "--config", p(config)];
    if let Some(token) = token {
        args.extend_from_slice(&["--token", token]);
    }
    if !extra.contains(&"--now") {
        args.extend_from_slice(&["--now", &now]);
    }
    args.extend_from_slice(extra);
    let out = attestgate(&args);
    let code = out.status.code().unwrap();
    let text = stdout(&out);
    assert!(
        code == 0 || code == 1,
        "exit {code}, stderr: {}",
        stderr(&out)
    );
    assert!(stderr(&out).is_empty(), "stderr: {}", stderr(&out));
    assert!(
        text.ends_with('\n') && text.lines().count() == 1,
        "stdout is not one line: {text:?}"
    );
    let decision: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("stdout is not one JSON object ({err}): {text}"));
    let members = decision.as_object().expect("the decision is a JSON object");
    for name in members.keys() {
        assert!(
            DECISION_MEMBERS.contains(&name.as_str()),
            "undocumented member `{name}`: {decision}"
        );
    }
    for name in ["allow", "status", "reason", "reasons", "mode", "verdict"] {
        assert!(members.contains_key(name), "no `{name}`: {decision}");
    }
    assert_eq!(
        code,
        if decision["allow"] == true { 0 } else { 1 },
        "exit code disagrees with allow: {decision}"
    );
    (code, decision)
}

/// Runs `check` expecting a config or usage error: exit 2, nothing on stdout; returns stderr.
fn check_fails(args: &[&str]) -> String {
    let out = attestgate(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: stdout {}, stderr {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{args:?}: stdout {}", stdout(&out));
    let message = stderr(&out);
    assert!(!message.trim().is_empty(), "{args:?}: no message");
    message
}

/// One row of the algorithm-family table.
struct Case {
    name: &'static str,
    token: String,
    code: i32,
    allow: bool,
    status: u64,
    reason: &'static str,
    /// Whether verified claims are reported (only once signature and time checks passed).
    claims: bool,
}

/// Valid, forged, wrong-algorithm, expired, unbound and policy-denied tokens for one
/// algorithm family, checked against a config holding that family's public JWKS.
fn algorithm_family(alg: &str) {
    let scratch = Scratch::new(&format!("family-{alg}"));
    let (key, public) = keygen(&scratch, alg, "good");
    // Same algorithm, same kid, different key material.
    let (forger, _) = keygen(&scratch, alg, "forger");
    // Same kid, another algorithm.
    let other_alg = if alg == "HS256" { "EdDSA" } else { "HS256" };
    let (other_alg_key, _) = keygen(&scratch, other_alg, "other-alg");

    assert_eq!(public["keys"].as_array().unwrap().len(), 1, "{public}");
    assert_eq!(public["keys"][0]["alg"], alg);
    assert_eq!(public["keys"][0]["kid"], "k1");
    let config = scratch.write(
        "gate.json",
        &json!({
            "keys": public,
            "binding": { "headers": ["authorization"] },
            "policy": { "modules": { "rooted.rego": ROOTED_POLICY } },
        })
        .to_string(),
    );

    let auth = "Bearer session-123";
    let claims = |rooted: bool, bound_to: &str| {
        json!({
            "did": format!("device-{alg}"),
            "pay": pay(bound_to),
            "att": { "device": { "rooted": rooted } },
        })
    };
    let case = |name, token, code, allow, status, reason, claims| Case {
        name,
        token,
        code,
        allow,
        status,
        reason,
        claims,
    };
    let cases = [
        case(
            "valid",
            mint_with_jwk(&scratch, &key, &claims(false, auth), 300),
            0,
            true,
            200,
            "allowed",
            true,
        ),
        case(
            "forged",
            mint_with_jwk(&scratch, &forger, &claims(false, auth), 300),
            1,
            false,
            401,
            "signature_invalid",
            false,
        ),
        case(
            "other-alg",
            mint_with_jwk(&scratch, &other_alg_key, &claims(false, auth), 300),
            1,
            false,
            401,
            "alg_not_allowed",
            false,
        ),
        case(
            "unknown-kid",
            mint(
                &scratch,
                &["--key", p(&key), "--kid", "k2"],
                &claims(false, auth),
                300,
            ),
            1,
            false,
            401,
            "key_not_found",
            false,
        ),
        case(
            "expired",
            mint_with_jwk(&scratch, &key, &claims(false, auth), -600),
            1,
            false,
            401,
            "token_expired",
            false,
        ),
        case(
            "unbound",
            mint_with_jwk(&scratch, &key, &claims(false, "Bearer other-session"), 300),
            1,
            false,
            401,
            "binding_mismatch",
            true,
        ),
        case(
            "policy-denied",
            mint_with_jwk(&scratch, &key, &claims(true, auth), 300),
            1,
            false,
            403,
            "policy_denied",
            true,
        ),
    ];

    let header = format!("Authorization: {auth}");
    let filter = common::filter_path();
    for (index, case) in cases.iter().enumerate() {
        let (code, decision) = check(&config, Some(&case.token), &["-H", &header]);
        let label = format!("{alg} {}: {decision}", case.name);
        // The shipped filter, run in the harness, makes the very same decision.
        let profile = ["envoy", "kong"][index % 2];
        let wasm_args = ["-H", &header, "--wasm", p(&filter), "--profile", profile];
        let (wasm_code, wasm_decision) = check(&config, Some(&case.token), &wasm_args);
        assert_eq!(
            (wasm_code, &wasm_decision),
            (code, &decision),
            "{label}: through the filter ({profile})"
        );
        assert_eq!(code, case.code, "{label}");
        assert_eq!(decision["allow"], case.allow, "{label}");
        assert_eq!(decision["status"], case.status, "{label}");
        assert_eq!(decision["reason"], case.reason, "{label}");
        assert_eq!(decision["mode"], "enforce", "{label}");
        let verdict = if case.allow { "allow" } else { "deny" };
        assert_eq!(decision["verdict"], verdict, "{label}");
        assert_eq!(decision.get("claims").is_some(), case.claims, "{label}");
        for absent in ["rule", "headers", "detail"] {
            assert!(decision.get(absent).is_none(), "{label}");
        }
        match case.name {
            "valid" => {
                assert_eq!(
                    decision["claims"]["did"],
                    format!("device-{alg}"),
                    "{label}"
                );
                assert_eq!(decision["claims"]["pay"], pay(auth), "{label}");
                assert_eq!(decision["claims"]["exp"], NOW + 300, "{label}");
                assert_eq!(decision["reasons"], json!([]), "{label}");
            }
            "policy-denied" => {
                assert_eq!(decision["reasons"], json!(["device_rooted"]), "{label}");
            }
            _ => {
                let reasons = decision["reasons"].as_array().unwrap();
                assert!(
                    reasons.len() == 1 && reasons[0].as_str().is_some_and(|r| !r.is_empty()),
                    "{label}"
                );
            }
        }
    }

    // The valid token without the bound header is not bound either.
    let valid = mint_with_jwk(&scratch, &key, &claims(false, auth), 300);
    let (code, decision) = check(&config, Some(&valid), &[]);
    assert_eq!(
        (code, decision["reason"].as_str()),
        (1, Some("binding_mismatch"))
    );
}

#[test]
fn family_hs256() {
    algorithm_family("HS256");
}

#[test]
fn family_es256() {
    algorithm_family("ES256");
}

#[test]
fn family_rs256() {
    algorithm_family("RS256");
}

#[test]
fn family_ps256() {
    algorithm_family("PS256");
}

#[test]
fn family_eddsa() {
    algorithm_family("EdDSA");
}

#[test]
fn check_and_render_say_which_construct_keeps_a_policy_interpreted() {
    let scratch = Scratch::new("interpreted");
    std::fs::create_dir_all(scratch.path("rego")).unwrap();
    // `walk` is a builtin the compiled plan never calls: this entrypoint stays interpreted.
    scratch.write(
        "rego/walked.rego",
        "package attestgate\nimport rego.v1\n\ndecision := {\"allow\": count([p | walk(input, [p, _])]) > 0}\n",
    );
    let config = scratch.write(
        "gate.yaml",
        &format!(
            "keys:\n  approov_secret: \"{SECRET}\"\npolicy:\n  module_files: [rego/walked.rego]\n"
        ),
    );
    let good = mint(
        &scratch,
        &["--secret", SECRET],
        &json!({ "did": "d1" }),
        300,
    );
    let now = NOW.to_string();
    for args in [
        vec![
            "check",
            "--config",
            p(&config),
            "--token",
            &good,
            "--now",
            &now,
        ],
        vec!["render", "--config", p(&config)],
    ] {
        let out = attestgate(&args);
        assert!(
            stderr(&out).contains(
                "policy: data.attestgate.decision interpreted by regorus (walked.rego:4: `walk`"
            ),
            "{}: {}",
            args[0],
            stderr(&out)
        );
    }
}

#[test]
fn yaml_config_reads_module_files_relative_to_itself() {
    let scratch = Scratch::new("yaml");
    std::fs::create_dir_all(scratch.path("conf/rego")).unwrap();
    scratch.write("conf/rego/rooted.rego", ROOTED_POLICY);
    let config = scratch.write(
        "conf/gate.yaml",
        &format!(
            "# comment\nkeys:\n  approov_secret: \"{SECRET}\"\npolicy:\n  module_files: [rego/rooted.rego]\n"
        ),
    );
    let secret = ["--secret", SECRET];
    let good = mint(&scratch, &secret, &json!({ "did": "d1" }), 300);
    let rooted = mint(
        &scratch,
        &secret,
        &json!({ "did": "d1", "att": { "device": { "rooted": true } } }),
        300,
    );
    let (code, decision) = check(&config, Some(&good), &[]);
    assert_eq!(
        (code, &decision["reason"]),
        (0, &json!("allowed")),
        "{decision}"
    );
    let (code, decision) = check(&config, Some(&rooted), &[]);
    assert_eq!(code, 1, "{decision}");
    assert_eq!(decision["reason"], "policy_denied");
    assert_eq!(decision["status"], 403);
    assert_eq!(decision["reasons"], json!(["device_rooted"]));

    // Run from another directory: the module path is relative to the config, not the cwd.
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .current_dir(std::env::temp_dir())
        .args(["check", "--config", p(&config), "--token", &rooted])
        .args(["--now", &NOW.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // `.yml` is YAML too.
    let yml = scratch.write("conf/gate.yml", &std::fs::read_to_string(&config).unwrap());
    let (code, decision) = check(&yml, Some(&rooted), &[]);
    assert_eq!((code, &decision["reason"]), (1, &json!("policy_denied")));

    // A module file that is not there is a config error.
    let missing = scratch.write(
        "conf/missing.yaml",
        &format!(
            "keys:\n  approov_secret: \"{SECRET}\"\npolicy:\n  module_files: [rego/nope.rego]\n"
        ),
    );
    let message = check_fails(&["check", "--config", p(&missing), "--token", &good]);
    assert!(message.contains("nope.rego"), "{message}");
}

#[test]
fn unknown_config_fields_are_named() {
    let scratch = Scratch::new("unknown-field");
    let cases = [
        (
            "top.json",
            json!({ "keys": {}, "leway_seconds": 5 }).to_string(),
            "leway_seconds",
        ),
        (
            "nested.json",
            json!({ "keys": {}, "binding": { "headers": ["a"], "claims": "pay" } }).to_string(),
            "claims",
        ),
        (
            "keys.json",
            json!({ "keys": { "approov_secrt": SECRET } }).to_string(),
            "approov_secrt",
        ),
        (
            "top.yaml",
            format!("keys:\n  approov_secret: \"{SECRET}\"\nmodes: monitor\n"),
            "modes",
        ),
    ];
    for (name, text, field) in cases {
        let path = scratch.write(name, &text);
        let message = check_fails(&["check", "--config", p(&path), "--token", "x.y.z"]);
        assert!(
            message.contains(&format!("unknown field `{field}`")),
            "{name}: {message}"
        );
    }
}

#[test]
fn weak_hmac_keys_are_refused() {
    let scratch = Scratch::new("weak");
    let sixteen = b"0123456789012345";
    let cases = [
        json!({ "keys": { "approov_secret": Base64::encode_string(sixteen) } }),
        json!({ "keys": { "keys": [{
            "kty": "oct", "alg": "HS256", "kid": "k1", "k": Base64UrlUnpadded::encode_string(sixteen)
        }] } }),
    ];
    for config in cases {
        let path = scratch.write("weak.json", &config.to_string());
        let message = check_fails(&["check", "--config", p(&path), "--token", "x.y.z"]);
        assert!(message.contains("weak key"), "{config}: {message}");
    }
}

#[test]
fn private_keys_are_refused_as_gate_keys() {
    let scratch = Scratch::new("private-as-gate-key");
    for alg in ["ES256", "RS256", "PS256", "EdDSA"] {
        let (private, _) = keygen(&scratch, alg, alg);
        let config = scratch.write(
            &format!("{alg}.json"),
            &json!({ "keys": { "keys": [read_json(&private)] } }).to_string(),
        );
        let message = check_fails(&["check", "--config", p(&config), "--token", "x.y.z"]);
        assert!(message.contains("private key material"), "{alg}: {message}");
    }
}

#[test]
fn other_config_and_usage_errors_exit_2() {
    let scratch = Scratch::new("usage");
    let good = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET } }).to_string(),
    );
    let not_json = scratch.write("bad.json", "{ keys: ");
    let bad_rego = scratch.write(
        "rego.json",
        &json!({ "keys": { "approov_secret": SECRET },
                 "policy": { "modules": { "p.rego": "package attestgate\ndecision := {" } } })
        .to_string(),
    );
    let token_file = scratch.path("no-such-token");
    let missing = scratch.path("no-such-config.json");
    for (args, message) in [
        (
            vec!["check", "--config", p(&not_json), "--token", "x.y.z"],
            "invalid config",
        ),
        (
            vec!["check", "--config", p(&bad_rego), "--token", "x.y.z"],
            "invalid policy",
        ),
        (
            vec!["check", "--config", p(&missing), "--token", "x.y.z"],
            "no-such-config.json",
        ),
        (
            vec![
                "check",
                "--config",
                p(&good),
                "--token-file",
                p(&token_file),
            ],
            "no-such-token",
        ),
        (
            vec![
                "check",
                "--config",
                p(&good),
                "--token",
                "x",
                "-H",
                "no colon",
            ],
            "no colon",
        ),
        (
            vec![
                "check",
                "--config",
                p(&good),
                "--token",
                "x",
                "--token-file",
                p(&token_file),
            ],
            "cannot be used with",
        ),
        (vec!["check", "--token", "x.y.z"], "--config"),
        (
            vec!["check", "--config", p(&good), "--now", "soon"],
            "--now",
        ),
        (vec!["mint", "--claims", "-"], "--key"),
        (vec!["keygen", "--alg", "HS999"], "HS999"),
    ] {
        let stderr = check_fails(&args);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn missing_token_is_denied() {
    let scratch = Scratch::new("missing-token");
    let config = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET } }).to_string(),
    );
    let (code, decision) = check(&config, None, &[]);
    assert_eq!(code, 1, "{decision}");
    assert_eq!(decision["allow"], false);
    assert_eq!(decision["status"], 401);
    assert_eq!(decision["reason"], "token_missing");
    assert_eq!(decision["verdict"], "deny");
    assert!(decision.get("claims").is_none());
}

#[test]
fn now_controls_expiry() {
    let scratch = Scratch::new("now");
    let config = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET } }).to_string(),
    );
    // exp = NOW + 300; the default leeway is 60 seconds.
    let token = mint(&scratch, &["--secret", SECRET], &json!({ "did": "d" }), 300);
    for (at, code, reason) in [
        (NOW, 0, "allowed"),
        (NOW + 360, 0, "allowed"),
        (NOW + 361, 1, "token_expired"),
        (NOW + 3600, 1, "token_expired"),
    ] {
        let at_text = at.to_string();
        let (got, decision) = check(&config, Some(&token), &["--now", &at_text]);
        assert_eq!(
            (got, decision["reason"].as_str()),
            (code, Some(reason)),
            "at {at}: {decision}"
        );
    }
}

#[test]
fn token_file_and_pretty_output() {
    let scratch = Scratch::new("token-file");
    let config = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET } }).to_string(),
    );
    let token = mint(
        &scratch,
        &["--secret", SECRET],
        &json!({ "did": "from-file" }),
        300,
    );
    // Surrounding whitespace, as an editor or `echo` leaves it, is ignored.
    let file = scratch.write("token.txt", &format!("  {token}\n\n"));
    let (code, decision) = check(&config, None, &["--token-file", p(&file)]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(decision["claims"]["did"], "from-file");

    let later = (NOW + 3600).to_string();
    let (code, decision) = check(&config, None, &["--token-file", p(&file), "--now", &later]);
    assert_eq!(
        (code, decision["reason"].as_str()),
        (1, Some("token_expired"))
    );

    // `--pretty`: the same decision over several lines.
    let now = NOW.to_string();
    let out = attestgate(&[
        "check",
        "--config",
        p(&config),
        "--token-file",
        p(&file),
        "--now",
        &now,
        "--pretty",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).lines().count() > 1, "{}", stdout(&out));
    let pretty: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (_, compact) = check(&config, Some(&token), &[]);
    assert_eq!(pretty, compact);
}

#[test]
fn approov_secret_minting() {
    let scratch = Scratch::new("approov");
    let config = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET },
                 "policy": { "modules": { "rooted.rego": ROOTED_POLICY } } })
        .to_string(),
    );
    let claims = json!({ "did": "approov-device", "att": { "device": { "rooted": false } } });
    let good = mint(&scratch, &["--secret", SECRET], &claims, 300);
    let (code, decision) = check(&config, Some(&good), &[]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(decision["claims"]["did"], "approov-device");
    assert_eq!(decision["claims"]["iat"], NOW, "--exp-in sets iat to now");

    // Approov secrets come as standard base64; url-safe unpadded is the same key.
    let urlsafe = Base64UrlUnpadded::encode_string(&Base64::decode_vec(SECRET).unwrap());
    let also_good = mint(&scratch, &["--secret", &urlsafe], &claims, 300);
    assert_eq!(check(&config, Some(&also_good), &[]).0, 0);

    // Another secret: forged. Claims from stdin.
    let forged_secret = Base64::encode_string(b"not-the-attestation-service-secret");
    let now = NOW.to_string();
    let out = attestgate_with_stdin(
        &[
            "mint",
            "--secret",
            &forged_secret,
            "--claims",
            "-",
            "--exp-in",
            "300",
            "--now",
            &now,
        ],
        &claims.to_string(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let forged = stdout(&out).trim().to_owned();
    let (code, decision) = check(&config, Some(&forged), &[]);
    assert_eq!(
        (code, decision["reason"].as_str()),
        (1, Some("signature_invalid")),
        "{decision}"
    );
}

#[test]
fn monitor_mode_reports_but_allows() {
    let scratch = Scratch::new("monitor");
    let (key, public) = keygen(&scratch, "EdDSA", "ed");
    let config = scratch.write(
        "monitor.json",
        &json!({ "keys": public, "mode": "monitor" }).to_string(),
    );
    let expired = mint_with_jwk(&scratch, &key, &json!({ "did": "d" }), -600);
    let (code, decision) = check(&config, Some(&expired), &[]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(decision["allow"], true);
    assert_eq!(decision["status"], 200);
    assert_eq!(decision["mode"], "monitor");
    assert_eq!(decision["verdict"], "deny");
    assert_eq!(decision["reason"], "token_expired");

    let (code, decision) = check(&config, None, &[]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(
        (&decision["verdict"], &decision["reason"]),
        (&json!("deny"), &json!("token_missing"))
    );

    let fresh = mint_with_jwk(&scratch, &key, &json!({ "did": "d" }), 300);
    let (code, decision) = check(&config, Some(&fresh), &[]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(
        (&decision["verdict"], &decision["reason"]),
        (&json!("allow"), &json!("allowed"))
    );
}

#[test]
fn keygen_out_writes_a_private_jwk_and_a_public_jwks() {
    let scratch = Scratch::new("keygen");
    let private_members = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    for alg in ["HS256", "ES256", "RS256", "PS256", "EdDSA"] {
        let (private_path, public) = keygen(&scratch, alg, alg);
        assert_eq!(
            private_path.with_extension("pub.json"),
            scratch.path(&format!("{alg}.pub.json"))
        );
        let private = read_json(&private_path);
        assert_eq!(private["alg"], alg);
        assert_eq!(private["kid"], "k1");
        let keys = public["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{public}");
        let key = &keys[0];
        assert_eq!(
            (&key["alg"], &key["kid"], &key["use"]),
            (&json!(alg), &json!("k1"), &json!("sig"))
        );
        match alg {
            // A symmetric key has no public half: the "public" JWKS holds the secret.
            "HS256" => {
                assert_eq!(key["k"], private["k"]);
                assert_eq!(
                    Base64UrlUnpadded::decode_vec(key["k"].as_str().unwrap())
                        .unwrap()
                        .len(),
                    32
                );
            }
            _ => {
                assert!(private["d"].is_string(), "{alg} private JWK lacks d");
                for member in private_members {
                    assert!(key.get(member).is_none(), "{alg} public JWK has `{member}`");
                }
            }
        }
        if alg.starts_with("RS") || alg.starts_with("PS") {
            for member in ["p", "q", "dp", "dq", "qi"] {
                assert!(
                    private[member].is_string(),
                    "{alg} private JWK lacks `{member}`"
                );
            }
        }
    }
    // An --out without an extension still gets a separate public file.
    let bare = scratch.path("bare");
    let out = attestgate(&["keygen", "--alg", "EdDSA", "--out", p(&bare)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(read_json(&bare)["d"].is_string());
    assert!(read_json(&scratch.path("bare.pub.json"))["keys"][0]["d"].is_null());

    // Without --out it prints both as one JSON object, kid defaulting to the thumbprint.
    let out = attestgate(&["keygen", "--alg", "ES256"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let both: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(both["private_jwk"]["d"].is_string());
    assert!(both["public_jwks"]["keys"][0]["d"].is_null());
    let kid = both["private_jwk"]["kid"].as_str().unwrap();
    assert_eq!(
        Base64UrlUnpadded::decode_vec(kid).unwrap().len(),
        32,
        "{kid}"
    );
    assert_eq!(both["public_jwks"]["keys"][0]["kid"], kid);
}

/// The quickstart example as its README and scripts/demo.sh describe it.
#[test]
fn quickstart_example_decides_as_documented() {
    let scratch = Scratch::new("quickstart");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/quickstart");
    let config = example.join("attestgate.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let secret = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("approov_secret:"))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .expect("the quickstart has an approov_secret");
    let claims = |name: &str| read_json(&example.join("claims").join(name));
    let key = ["--secret", secret.as_str()];
    let path = ["--path", "/v1/shapes"];

    let good = mint(&scratch, &key, &claims("good.json"), 300);
    let (code, decision) = check(&config, Some(&good), &path);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(
        decision["headers"]["x-device-id"], "demo-device-0001",
        "{decision}"
    );
    assert_eq!(
        decision["headers"]["x-device-platform"], "android",
        "{decision}"
    );

    let rooted = mint(&scratch, &key, &claims("rooted.json"), 300);
    let (code, decision) = check(&config, Some(&rooted), &path);
    assert_eq!(
        (code, &decision["status"], &decision["reason"]),
        (1, &json!(403), &json!("policy_denied"))
    );
    let reasons = decision["reasons"].as_array().unwrap();
    assert!(reasons.contains(&json!("device_rooted")), "{decision}");

    let expired = mint(&scratch, &key, &claims("good.json"), -600);
    let (code, decision) = check(&config, Some(&expired), &path);
    assert_eq!(
        (code, &decision["status"], &decision["reason"]),
        (1, &json!(401), &json!("token_expired"))
    );

    let (code, decision) = check(&config, Some("not.a.jwt"), &path);
    assert_eq!((code, &decision["reason"]), (1, &json!("token_malformed")));
}

#[test]
fn rego_test_runs_test_rules_and_fails_on_a_failure() {
    let scratch = Scratch::new("rego-test");
    std::fs::create_dir_all(scratch.path("pol/nested")).unwrap();
    scratch.write("pol/p.rego", ROOTED_POLICY);
    scratch.write(
        "pol/nested/p_test.rego",
        "package attestgate_test\nimport rego.v1\n\
         test_rooted_denied if not data.attestgate.decision.allow with input as \
         {\"token\": {\"claims\": {\"att\": {\"device\": {\"rooted\": true}}}}}\n\
         test_clean_allowed if data.attestgate.decision.allow with input as {}\n",
    );
    let out = attestgate(&["test", p(&scratch.path("pol"))]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("PASS data.attestgate_test.test_rooted_denied"));
    assert!(
        stdout(&out).ends_with("2 passed, 0 failed\n"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // A call under `not` on a reference that may be undefined decides otherwise in OPA: a
    // warning naming the place, and the tests still decide the exit code.
    scratch.write(
        "pol/version.rego",
        "package version\nimport rego.v1\n\
         old if not newer(input.v, \"2\")\nnewer(a, b) if a >= b\n",
    );
    let out = attestgate(&["test", p(&scratch.path("pol"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("version.rego:3: `input.v` is an argument of a call under `not`"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(scratch.path("pol/version.rego")).unwrap();

    scratch.write(
        "pol/broken_test.rego",
        "package broken_test\ntest_wrong if 1 == 2\n",
    );
    let out = attestgate(&["test", p(&scratch.path("pol"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FAIL data.broken_test.test_wrong"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).ends_with("2 passed, 1 failed\n"),
        "{}",
        stdout(&out)
    );

    let empty = Scratch::new("rego-test-empty");
    empty.write("p.rego", ROOTED_POLICY);
    let out = attestgate(&["test", p(&empty.0)]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no tests must not pass: {}",
        stdout(&out)
    );
}

#[test]
fn rego_eval_prints_opa_style_results() {
    let scratch = Scratch::new("rego-eval");
    let policy = scratch.write("p.rego", ROOTED_POLICY);
    let input = r#"{"token":{"claims":{"att":{"device":{"rooted":true}}}}}"#;
    let out = attestgate(&["eval", "--policy", p(&policy), "--input", input]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let value = &results["result"][0]["expressions"][0]["value"];
    assert_eq!(value["allow"], false, "{results}");
    assert_eq!(value["reasons"], serde_json::json!(["device_rooted"]));

    // Input from a file, data inline, and another query.
    let input_file = scratch.write("input.json", "{}");
    let out = attestgate(&[
        "eval",
        "--policy",
        p(&policy),
        "--input",
        p(&input_file),
        "--data",
        r#"{"x": 7}"#,
        "--query",
        "data.x",
    ]);
    let results: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        results["result"][0]["expressions"][0]["value"], 7,
        "{results}"
    );
}

/// Install-key request signatures from the command line: `mint --install-key` puts the
/// install's public key in `ipk`, `sign` signs a request as the app would, and `check` (native
/// and through the filter, which holds the request for its body) verifies it.
#[test]
fn sign_mint_and_check_a_signed_post() {
    let scratch = Scratch::new("sign");
    let (install, _) = keygen(&scratch, "ES256", "install");
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let config = scratch.write(
        "gate.json",
        &json!({
            "keys": {"approov_secret": secret},
            "signature": {"mode": "required",
                          "components": ["@method", "@target-uri", "content-digest"]},
        })
        .to_string(),
    );
    let token = mint(
        &scratch,
        &["--secret", secret, "--install-key", p(&install)],
        &json!({"did": "d1"}),
        300,
    );
    let body = scratch.write("body.json", r#"{"to":"alice","amount":100}"#);
    let now = NOW.to_string();
    let out = attestgate(&[
        "sign",
        "--install-key",
        p(&install),
        "--method",
        "POST",
        "--path",
        "/v1/pay",
        "--host",
        "api.example.com",
        "--body-file",
        p(&body),
        "--now",
        &now,
    ]);
    assert_eq!(out.status.code(), Some(0), "sign: {}", stderr(&out));
    let headers: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let names: Vec<&str> = headers.iter().filter_map(|h| h.split(':').next()).collect();
    assert_eq!(names, ["Content-Digest", "Signature-Input", "Signature"]);

    let filter = common::filter_path();
    let run = |body_file: &Path, extra: &[&str]| {
        let mut args = vec![
            "--method",
            "POST",
            "--path",
            "/v1/pay",
            "--host",
            "api.example.com",
        ];
        args.extend_from_slice(&["--body-file", p(body_file)]);
        for header in &headers {
            args.extend_from_slice(&["-H", header]);
        }
        args.extend_from_slice(extra);
        check(&config, Some(&token), &args)
    };
    for extra in [
        vec![],
        vec!["--wasm", p(&filter)],
        vec!["--wasm", p(&filter), "--profile", "kong"],
    ] {
        let (code, decision) = run(&body, &extra);
        assert_eq!(
            (code, &decision["reason"]),
            (0, &json!("allowed")),
            "{extra:?}: {decision}"
        );
        let tampered = scratch.write("tampered.json", r#"{"to":"mallory","amount":100}"#);
        let (code, decision) = run(&tampered, &extra);
        assert_eq!(
            (code, &decision["reason"], &decision["status"]),
            (1, &json!("request_signature_invalid"), &json!(401)),
            "{extra:?}: {decision}"
        );
    }
}

#[test]
fn mint_count_prints_distinct_tokens_that_each_verify() {
    let scratch = Scratch::new("mint-count");
    let claims = scratch.write("claims.json", &json!({"did": "d"}).to_string());
    let now = NOW.to_string();
    let out = attestgate(&[
        "mint",
        "--secret",
        SECRET,
        "--claims",
        p(&claims),
        "--exp-in",
        "300",
        "--now",
        &now,
        "--count",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tokens: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(tokens.len(), 3);
    let distinct: std::collections::BTreeSet<_> = tokens.iter().collect();
    assert_eq!(distinct.len(), 3, "tokens repeat: {tokens:?}");
    let config = scratch.write(
        "gate.json",
        &json!({"keys": {"approov_secret": SECRET}}).to_string(),
    );
    for (jti, token) in tokens.iter().enumerate() {
        let (code, decision) = check(&config, Some(token), &[]);
        assert_eq!(code, 0, "{decision}");
        let payload = token.split('.').nth(1).unwrap();
        let payload: Value =
            serde_json::from_slice(&base64ct::Base64UrlUnpadded::decode_vec(payload).unwrap())
                .unwrap();
        assert_eq!(payload["jti"], jti.to_string());
    }
    let out = attestgate(&[
        "mint",
        "--secret",
        SECRET,
        "--claims",
        p(&claims),
        "--count",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "--count 0 is refused");
}

/// `check` loads a config as the CLI itself (nothing fetched, no buckets, no verifier), so what
/// it cannot carry out is refused, naming the field and the host; `--for` loads it as another
/// host does, and `render` as Envoy does by default.
#[test]
fn check_and_render_refuse_what_their_host_cannot_carry_out() {
    let scratch = Scratch::new("capabilities");
    let limited = scratch.write(
        "limited.json",
        &json!({ "keys": { "approov_secret": SECRET },
                 "rules": [{ "path": "/login", "rate_limit": { "requests": 1, "per_seconds": 600 } }] })
        .to_string(),
    );
    let message = check_fails(&["check", "--config", p(&limited), "--token", "x.y.z"]);
    assert!(
        message.contains("unsupported `rules[0].rate_limit`")
            && message.contains("which the attestgate CLI does not have"),
        "{message}"
    );
    let message = check_fails(&[
        "check",
        "--config",
        p(&limited),
        "--for",
        "js",
        "--token",
        "x.y.z",
    ]);
    assert!(message.contains("the JavaScript build"), "{message}");
    // As Envoy loads it: accepted (the token is garbage, so the decision is a denial: exit 1).
    let out = attestgate(&[
        "check",
        "--config",
        p(&limited),
        "--for",
        "envoy",
        "--token",
        "x.y.z",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // render: Envoy by default, another host on request.
    let out = attestgate(&["render", "--config", p(&limited)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let message = check_fails(&["render", "--config", p(&limited), "--for", "native"]);
    assert!(message.contains("the native library"), "{message}");
    let message = check_fails(&["render", "--config", p(&limited), "--for", "nginx-plus"]);
    assert!(message.contains("unknown host `nginx-plus`"), "{message}");
}

/// `check` writes the decision log as the filter does when the config asks for one: to
/// stderr, sampled by the request's `x-request-id` and with the masked fields removed (the
/// decision on stdout stays whole: it is what `check` answers).
#[test]
fn check_writes_the_sampled_and_masked_decision_log_to_stderr() {
    let scratch = Scratch::new("decision-log");
    let config = scratch.write(
        "gate.json",
        &json!({ "keys": { "approov_secret": SECRET }, "log_decisions": true,
                 "decision_log": { "sample_rate": 0.5, "mask": ["claims.did"] } })
        .to_string(),
    );
    let token = mint(
        &scratch,
        &["--secret", SECRET],
        &json!({ "did": "hidden-device" }),
        300,
    );
    let gate =
        attestgate_policy::Gate::from_json(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let now = NOW.to_string();
    let (mut logged, mut expected) = (0, 0);
    for i in 0..40 {
        let id = format!("x-request-id: cli-{i}");
        let out = attestgate(&[
            "check",
            "--config",
            p(&config),
            "--token",
            &token,
            "--now",
            &now,
            "-H",
            &id,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("hidden-device"),
            "the answer is the whole decision"
        );
        let lines: Vec<String> = stderr(&out)
            .lines()
            .filter_map(|l| {
                l.strip_prefix("attestgate decision log: ")
                    .map(str::to_owned)
            })
            .collect();
        let decision: attestgate_policy::Decision = serde_json::from_str(&stdout(&out)).unwrap();
        let want = attestgate_policy::plan::decision_log_line(
            gate.config(),
            &decision,
            &format!("cli-{i}"),
        );
        let parse = |line: &str| serde_json::from_str::<Value>(line).unwrap();
        assert_eq!(
            lines.first().map(|l| parse(l)),
            want.as_deref().map(parse),
            "request cli-{i}"
        );
        for line in &lines {
            assert!(!line.contains("hidden-device"), "{line}");
            let logged: Value = serde_json::from_str(line).unwrap();
            assert_eq!(logged["erased"], json!(["claims.did"]));
        }
        logged += lines.len();
        expected += usize::from(want.is_some());
    }
    assert_eq!(logged, expected);
    assert!((8..=32).contains(&logged), "{logged} of 40 at 0.5");
}
