//! The `attestgate` binary, run for real: its JSON output and exit codes are a public contract.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64ct::{Base64, Encoding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The fixed clock every command runs at.
const NOW: &str = "1700000000";

/// A scratch directory per test, removed afterwards.
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
        .output()
        .unwrap()
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

/// `keygen --out`: the private JWK's path and the public JWKS.
fn keygen(scratch: &Scratch, alg: &str, name: &str) -> (PathBuf, Value) {
    let private = scratch.path(&format!("{name}.json"));
    let out = attestgate(&["keygen", "--alg", alg, "--kid", "k1", "--out", p(&private)]);
    assert!(out.status.success(), "keygen {alg}: {}", stderr(&out));
    let public: Value =
        serde_json::from_str(&std::fs::read_to_string(private.with_extension("pub.json")).unwrap())
            .unwrap();
    (private, public)
}

fn mint(scratch: &Scratch, key: &Path, claims: &Value, exp_in: i64) -> String {
    let file = scratch.write("claims.json", &claims.to_string());
    let exp_in = exp_in.to_string();
    let out = attestgate(&[
        "mint",
        "--key",
        p(key),
        "--claims",
        p(&file),
        "--exp-in",
        &exp_in,
        "--now",
        "1700000000",
    ]);
    assert!(out.status.success(), "mint: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// Runs `check` and returns (exit code, decision).
fn check(config: &Path, token: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "check",
        "--config",
        p(config),
        "--token",
        token,
        "--now",
        "1700000000",
    ];
    args.extend_from_slice(extra);
    let out = attestgate(&args);
    let code = out.status.code().unwrap();
    let decision = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|err| panic!("stdout is not one JSON object ({err}): {}", stdout(&out)));
    (code, decision)
}

fn pay(value: &str) -> String {
    Base64::encode_string(&Sha256::digest(value.as_bytes()))
}

const ROOTED_POLICY: &str = r#"package attestgate
decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}
deny contains "device_rooted" if input.token.claims.att.device.rooted == true
"#;

#[test]
fn documented_output_for_every_algorithm_family() {
    let scratch = Scratch::new("families");
    let auth = "Bearer session-123";
    for alg in ["HS256", "ES256", "RS256", "PS256", "EdDSA"] {
        let (key, public) = keygen(&scratch, alg, &format!("{alg}-good"));
        let (other_key, _) = keygen(&scratch, alg, &format!("{alg}-other"));
        let config = scratch.write(
            &format!("{alg}.json"),
            &json!({
                "keys": public,
                "binding": { "headers": ["authorization"] },
                "policy": { "modules": { "p.rego": ROOTED_POLICY } },
            })
            .to_string(),
        );
        let claims = |rooted: bool, bound_to: &str| json!({ "did": "device-7", "pay": pay(bound_to), "att": { "device": { "rooted": rooted } } });
        let header = format!("Authorization: {auth}");
        let cases = [
            (
                "valid",
                mint(&scratch, &key, &claims(false, auth), 300),
                0,
                true,
                200,
                "allowed",
            ),
            (
                "forged",
                mint(&scratch, &other_key, &claims(false, auth), 300),
                1,
                false,
                401,
                "signature_invalid",
            ),
            (
                "expired",
                mint(&scratch, &key, &claims(false, auth), -600),
                1,
                false,
                401,
                "token_expired",
            ),
            (
                "unbound",
                mint(&scratch, &key, &claims(false, "Bearer other"), 300),
                1,
                false,
                401,
                "binding_mismatch",
            ),
            (
                "rooted",
                mint(&scratch, &key, &claims(true, auth), 300),
                1,
                false,
                403,
                "policy_denied",
            ),
        ];
        for (name, token, code, allow, status, reason) in cases {
            let (got_code, decision) = check(&config, &token, &["-H", &header]);
            let label = format!("{alg} {name}: {decision}");
            assert_eq!(got_code, code, "{label}");
            assert_eq!(decision["allow"], allow, "{label}");
            assert_eq!(decision["status"], status, "{label}");
            assert_eq!(decision["reason"], reason, "{label}");
            assert_eq!(decision["mode"], "enforce", "{label}");
            match name {
                "valid" => {
                    assert_eq!(decision["verdict"], "allow", "{label}");
                    assert_eq!(decision["claims"]["did"], "device-7", "{label}");
                }
                "rooted" => assert_eq!(decision["reasons"], json!(["device_rooted"]), "{label}"),
                _ => assert_eq!(decision["verdict"], "deny", "{label}"),
            }
        }
    }
}

#[test]
fn yaml_config_with_module_files_and_approov_secret() {
    let scratch = Scratch::new("yaml");
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    std::fs::create_dir_all(scratch.path("rego")).unwrap();
    scratch.write("rego/p.rego", ROOTED_POLICY);
    let config = scratch.write(
        "gate.yaml",
        &format!("keys:\n  approov_secret: \"{secret}\"\npolicy:\n  module_files: [rego/p.rego]\n"),
    );
    let claims = scratch.write("c.json", r#"{"did":"d1","att":{"device":{"rooted":true}}}"#);
    let out = attestgate(&[
        "mint",
        "--secret",
        secret,
        "--claims",
        p(&claims),
        "--exp-in",
        "300",
        "--now",
        "1700000000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    let (code, decision) = check(&config, &token, &[]);
    assert_eq!(
        (code, decision["reason"].as_str()),
        (1, Some("policy_denied")),
        "{decision}"
    );

    // The same token from a file, and at a later time.
    let token_file = scratch.write("token.txt", &format!("{token}\n"));
    let out = attestgate(&[
        "check",
        "--config",
        p(&config),
        "--token-file",
        p(&token_file),
        "--now",
        "1700003600",
    ]);
    let decision: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(decision["reason"], "token_expired");
}

#[test]
fn missing_token_and_monitor_mode() {
    let scratch = Scratch::new("modes");
    let (key, public) = keygen(&scratch, "EdDSA", "ed");
    let enforce = scratch.write("enforce.json", &json!({ "keys": public }).to_string());
    let out = attestgate(&["check", "--config", p(&enforce), "--now", NOW]);
    let decision: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(decision["reason"], "token_missing");

    let monitor = scratch.write(
        "monitor.json",
        &json!({ "keys": public, "mode": "monitor" }).to_string(),
    );
    let expired = mint(&scratch, &key, &json!({ "did": "d" }), -3600);
    let (code, decision) = check(&monitor, &expired, &[]);
    assert_eq!(code, 0, "{decision}");
    assert_eq!(decision["allow"], true);
    assert_eq!(decision["verdict"], "deny");
    assert_eq!(decision["reason"], "token_expired");
}

#[test]
fn config_errors_exit_2_with_a_message_and_no_output() {
    let scratch = Scratch::new("errors");
    let (private, _) = keygen(&scratch, "ES256", "es");
    let private_jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(&private).unwrap()).unwrap();
    let cases = [
        (
            json!({ "keys": {}, "leway_seconds": 5 }),
            "unknown field `leway_seconds`",
        ),
        (
            json!({ "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NQ==" } }),
            "weak key",
        ),
        (
            json!({ "keys": { "keys": [private_jwk] } }),
            "private key material",
        ),
        (
            json!({ "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
                    "policy": { "modules": { "p.rego": "package attestgate\ndecision := {" } } }),
            "invalid policy",
        ),
    ];
    for (config, message) in cases {
        let path = scratch.write("bad.json", &config.to_string());
        let out = attestgate(&["check", "--config", p(&path), "--token", "x"]);
        assert_eq!(out.status.code(), Some(2), "{config}");
        assert!(stdout(&out).is_empty(), "{config}: {}", stdout(&out));
        assert!(stderr(&out).contains(message), "{config}: {}", stderr(&out));
    }
    let out = attestgate(&["check", "--token", "x"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn keygen_public_output_has_no_private_members() {
    let scratch = Scratch::new("keygen");
    for alg in ["HS256", "ES256", "RS256", "EdDSA"] {
        let (private, public) = keygen(&scratch, alg, alg);
        let private: Value =
            serde_json::from_str(&std::fs::read_to_string(private).unwrap()).unwrap();
        assert_eq!(private["alg"], alg);
        let key = &public["keys"][0];
        assert_eq!(key["alg"], alg);
        if alg != "HS256" {
            assert!(private.get("d").is_some(), "{alg} private JWK lacks d");
            for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(key.get(member).is_none(), "{alg} public JWK has `{member}`");
            }
        }
    }
    // Without --out it prints both as one JSON object.
    let out = attestgate(&["keygen", "--alg", "ES256"]);
    let both: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(both["private_jwk"]["d"].is_string());
    assert!(both["public_jwks"]["keys"][0]["d"].is_null());
    assert!(
        both["private_jwk"]["kid"].is_string(),
        "kid defaults to the thumbprint"
    );
}
