//! What the fuzz targets beyond the corpus cases share with their seed writer
//! (`attestgate-corpus --fuzz-seeds`): a gate that requires request signatures, the token its
//! requests carry, and the input formats of the `signature`, `route` and `policy_input`
//! targets (`fuzz/src/lib.rs` checks them).

use attestgate_policy::signature::{AccountKey, SignOptions};
use attestgate_policy::Request;
use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey};

/// The install key's private scalar (the token's `ipk` is its public half).
pub const INSTALL_SCALAR: [u8; 32] = [7; 32];
/// The account message-signing key (base64).
pub const ACCOUNT_SECRET: &str = "YWNjb3VudC1zaWduaW5nLWtleS1mb3ItZnV6emluZy0xMjM=";
/// The token secret (Approov-style base64 HS256).
pub const TOKEN_SECRET: &str = "dG9rZW4tc2VjcmV0LWZvci10aGUtc2lnbmF0dXJlLWZ1eno=";
/// The host every fuzzed request goes to.
pub const HOST: &str = "api.example.com";
/// What every signature must cover.
pub const COMPONENTS: [&str; 3] = ["@method", "@target-uri", "content-digest"];

/// The gate of the `signature` target: a valid token, and an install or account signature
/// covering [`COMPONENTS`], required on every request; no age limit, so seeds stay valid.
pub fn signature_gate_config() -> String {
    serde_json::json!({
        "keys": { "approov_secret": TOKEN_SECRET },
        "signature": {
            "mode": "required",
            "account_secret": ACCOUNT_SECRET,
            "accept": "either",
            "components": COMPONENTS,
            "max_age_seconds": 0,
            "max_body_bytes": 4096,
        },
    })
    .to_string()
}

/// The token of the `signature` target's requests: valid at `now`, carrying the install key.
pub fn signature_token(now: i64) -> Result<String, String> {
    let install = InstallSigner::from_slice(&INSTALL_SCALAR).map_err(|e| e.to_string())?;
    let claims =
        serde_json::json!({ "exp": now + 3600, "did": "fuzz-device", "ipk": install.ipk() });
    let key = SigningKey::hs256_from_base64_secret(TOKEN_SECRET).map_err(|e| e.to_string())?;
    key.sign(claims.as_object().ok_or("claims")?)
        .map_err(|e| e.to_string())
}

/// A `signature` target input: `METHOD \0 PATH \0 Signature-Input \0 Signature \0
/// Content-Digest \0 body`.
pub fn signature_input(request: &Request) -> Vec<u8> {
    let header = |name: &str| {
        request
            .header_values(name)
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = Vec::new();
    for part in [
        request.method.clone(),
        request.path.clone(),
        header("signature-input"),
        header("signature"),
        header("content-digest"),
    ] {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out.extend_from_slice(request.body.as_deref().unwrap_or_default());
    out
}

/// Parses a `signature` target input into the request it stands for (token added).
pub fn signature_request(data: &[u8], token: &str) -> Request {
    let mut parts = data.splitn(6, |&b| b == 0);
    let mut text = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (method, path, input, signature, digest) = (text(), text(), text(), text(), text());
    let body = parts.next().unwrap_or_default().to_vec();
    let mut request = Request::new(method, path)
        .with_host(HOST)
        .with_header("approov-token", token)
        .with_body(body);
    for (name, value) in [
        ("signature-input", input),
        ("signature", signature),
        ("content-digest", digest),
    ] {
        if !value.is_empty() {
            request = request.with_header(name, value);
        }
    }
    request
}

/// Signed requests the `signature` target's gate allows: install, account and both members,
/// with and without bodies, and one covering more than it must.
pub fn signature_seeds(now: i64) -> Result<Vec<Request>, String> {
    let install = InstallSigner::from_slice(&INSTALL_SCALAR).map_err(|e| e.to_string())?;
    let account = AccountKey::from_base64(ACCOUNT_SECRET).map_err(|e| e.to_string())?;
    let signers = [
        ApproovSigner {
            install: Some(install.clone()),
            account: None,
        },
        ApproovSigner {
            install: None,
            account: Some(account.clone()),
        },
        ApproovSigner {
            install: Some(install),
            account: Some(account),
        },
    ];
    let token = signature_token(now)?;
    let requests = [
        Request::new("GET", "/v1/shapes?shape=circle&size=2"),
        Request::new("POST", "/v1/pay").with_body(r#"{"amount":1200,"to":"acct-9"}"#),
        Request::new("PUT", "/v1/users/7").with_body(vec![0_u8, 255, 10, 13]),
    ];
    let mut seeds = Vec::new();
    for signer in &signers {
        for request in &requests {
            let request = request
                .clone()
                .with_host(HOST)
                .with_header("approov-token", token.as_str());
            let mut components: Vec<String> = COMPONENTS.iter().map(|c| (*c).to_owned()).collect();
            if seeds.len() % 4 == 3 {
                components.push("@query".to_owned());
                components.push("approov-token".to_owned());
            }
            let options = SignOptions::new(components, now);
            seeds.push(
                signer
                    .sign_request_with(request, &options)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(seeds)
}

/// The gate of the `route` target: the per-route example's rules and path tricks' targets.
pub fn route_gate_config() -> String {
    serde_json::json!({
        "keys": { "approov_secret": TOKEN_SECRET },
        "rules": [
            { "name": "health", "path": "/health", "mode": "bypass" },
            { "name": "beta", "path_prefix": "/beta", "mode": "monitor" },
            { "name": "legacy", "path_prefix": "/legacy", "prefix_match": "string", "mode": "bypass" },
            { "name": "public", "path_prefix": "/public/", "methods": ["GET"], "mode": "bypass" },
        ],
    })
    .to_string()
}

/// `route` target seeds: `METHOD PATH` lines of tricks that the corpus (paths.yaml) tries.
pub const ROUTE_SEEDS: &[&str] = &[
    "GET /health",
    "GET /beta/x",
    "GET /betamax",
    "GET /legacyx",
    "GET /public/a.css",
    "POST /public/a.css",
    "GET /beta/../admin",
    "GET /beta/%2e%2e/admin",
    "GET /beta%2F..%2Fadmin",
    "GET /beta/..%2fadmin",
    "GET /beta%5C..%5Cadmin",
    "GET /beta/..\\admin",
    "GET /beta/..;/admin",
    "GET /health;jsessionid=x",
    "GET /beta//../admin",
    "GET //health",
    "GET /public/..%2F..%2Fadmin?x=/health",
];

/// The gate of the `policy_input` target: a policy that allows only what it can check about
/// its own input document, so a wrong input shows as a denial the target catches.
pub fn policy_gate_config() -> String {
    let rego = r#"package attestgate
import rego.v1

default decision := {"allow": false, "reasons": ["input not as documented"]}

decision := {"allow": true} if {
    is_object(input.token.claims)
    input.token.header.alg == "HS256"
    is_object(input.request.headers)
    not input.request.headers["approov-token"]
    is_string(input.request.method)
    is_string(input.request.path)
    input.device.listed == false
}
"#;
    serde_json::json!({
        "keys": { "approov_secret": TOKEN_SECRET },
        "policy": { "modules": { "input.rego": rego } },
        "binding": { "headers": ["authorization"] },
        "claim_to_headers": [{ "claim": "did", "header": "x-device-id" }],
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use attestgate_policy::{Gate, Reason};

    const NOW: i64 = 1_700_000_000;

    /// The seeds reach past the signature check: each is allowed as signed, and refused
    /// once its body changes, so the fuzzer starts from requests its invariants bite on.
    #[test]
    fn signature_seeds_are_allowed_and_their_tamperings_refused() {
        let gate = Gate::from_json(&signature_gate_config()).unwrap();
        let token = signature_token(NOW).unwrap();
        let seeds = signature_seeds(NOW).unwrap();
        assert_eq!(seeds.len(), 9);
        for seed in &seeds {
            let request = signature_request(&signature_input(seed), &token);
            let decision = gate.check(&request, NOW);
            assert!(decision.allow, "{decision:?}\n{request:?}");
            let mut tampered = request.clone();
            tampered.body.get_or_insert_with(Vec::new).push(b'x');
            assert_eq!(
                gate.check(&tampered, NOW).reason,
                Reason::RequestSignatureInvalid
            );
        }
    }

    #[test]
    fn route_and_policy_gates_load_and_decide() {
        let routes = Gate::from_json(&route_gate_config()).unwrap();
        let health = Request::new("GET", "/health");
        assert_eq!(routes.check(&health, NOW).reason, Reason::Bypassed);
        let policy = Gate::from_json(&policy_gate_config()).unwrap();
        let key = SigningKey::hs256_from_base64_secret(TOKEN_SECRET).unwrap();
        let claims = serde_json::json!({ "exp": NOW + 60, "did": "d" });
        let token = key.sign(claims.as_object().unwrap()).unwrap();
        let request = Request::new("GET", "/").with_header("approov-token", token.as_str());
        let decision = policy.check(&request, NOW);
        assert!(decision.allow, "{decision:?}");
    }
}
