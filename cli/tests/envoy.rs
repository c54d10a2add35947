//! End to end in real Envoy: every example in envoy-examples/ with the built filter.
//!
//! Needs `build/attestgate.wasm` (`make filter`) and Envoy (`make envoy`, or `ENVOY=path`);
//! `make test` provides both. Missing either is a failure, never a skip.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use attestgate_testkit::upstream::{spellings, Answer, DocumentServer, RecordingUpstream};
use base64ct::{Base64, Encoding};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn envoy_binary() -> PathBuf {
    let path =
        std::env::var_os("ENVOY").map_or_else(|| root().join(".venv/bin/envoy"), PathBuf::from);
    assert!(
        path.exists(),
        "no Envoy at {}: run `make envoy` (or set ENVOY)",
        path.display()
    );
    path
}

fn wasm() -> PathBuf {
    common::filter_path()
}

fn example(name: &str) -> PathBuf {
    root().join("envoy-examples").join(name)
}

const EXAMPLES: [&str; 8] = [
    "quickstart",
    "token-binding",
    "per-route",
    "jwks-es256",
    "remote-jwks",
    "hybrid-es256",
    "android-only",
    "firebase-app-check",
];

/// `N` distinct free ports: every listener is held until all are chosen, so none is handed
/// out twice.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [TcpListener; N] =
        std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attestgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The demo secret in an example's attestgate.yaml.
fn secret(example_name: &str) -> String {
    let text = std::fs::read_to_string(example(example_name).join("attestgate.yaml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("approov_secret:"))
        .unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

fn write_claims(dir: &Path, name: &str, claims: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, claims.to_string()).unwrap();
    path
}

fn claims(example_name: &str, file: &str) -> Value {
    let path = example(example_name).join("claims").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A running Envoy on free loopback ports, killed on drop.
struct Envoy {
    child: Child,
    port: u16,
    admin: u16,
    dir: PathBuf,
}

impl Envoy {
    fn start(example_name: &str) -> Envoy {
        Envoy::start_with(
            example_name,
            &std::fs::read_to_string(example(example_name).join("envoy.yaml")).unwrap(),
        )
    }

    /// Starts Envoy on free ports; again on others when one was taken between finding it free
    /// and Envoy binding it (tests run in parallel, and their connections take ports too).
    fn start_with(name: &str, config: &str) -> Envoy {
        for _ in 0..3 {
            match Envoy::try_start(name, config) {
                Ok(envoy) => return envoy,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("envoy exited before it was ready:\n{log}"),
            }
        }
        panic!("envoy found no free ports in 3 tries");
    }

    fn try_start(name: &str, config: &str) -> Result<Envoy, String> {
        let [port, upstream, admin, extra] = free_ports();
        let dir = std::env::temp_dir().join(format!("attestgate-envoy-{name}-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = config
            .replace("port_value: 8080", &format!("port_value: {port}"))
            .replace("port_value: 8081", &format!("port_value: {upstream}"))
            .replace("port_value: 9901", &format!("port_value: {admin}"))
            .replace("port_value: 8082", &format!("port_value: {extra}"))
            .replace(
                "filename: build/attestgate.wasm",
                &format!("filename: {}", wasm().display()),
            );
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
        let child = Command::new(envoy_binary())
            .args([
                "-c",
                config_path.to_str().unwrap(),
                "--concurrency",
                "1",
                "--disable-hot-restart", // no shared memory to leak; parallel runs never collide
            ])
            .args(["--log-level", "warn", "--component-log-level", "wasm:info"])
            // The examples' access log goes to Envoy's stdout.
            .stdout(std::fs::File::create(dir.join("access.log")).unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut envoy = Envoy {
            child,
            port,
            admin,
            dir,
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The access log's lines (Envoy's stdout) once there are `n`: Envoy writes them out
    /// about once a second. Each is checked against the line format `attestgate report` reads.
    fn access_log(&self, n: usize) -> Vec<AccessLine> {
        let path = self.dir.join("access.log");
        let read = || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        eventually(10, &format!("{n} access log lines"), || read().len() >= n);
        let lines = read();
        assert_eq!(lines.len(), n, "{lines:#?}");
        lines.iter().map(|line| AccessLine::parse(line)).collect()
    }

    /// Waits for the admin's /ready; Envoy's log if it exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("({status})\n{}", self.log()));
            }
            if let Ok(resp) = ureq::get(&format!("http://127.0.0.1:{}/ready", self.admin)).call() {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "envoy not ready in 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = ureq::request(method, &format!("http://127.0.0.1:{}{path}", self.port));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let resp = match req.call() {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(err) => panic!("{method} {path}: {err}\n{}", self.log()),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|name| {
                let value = resp.header(&name).unwrap_or_default().to_owned();
                (name, value)
            })
            .collect();
        let mut body = String::new();
        resp.into_reader().read_to_string(&mut body).unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        match token {
            Some(token) => self.request("GET", path, &[("approov-token", token)]),
            None => self.request("GET", path, &[]),
        }
    }

    /// The filter's counters, by name without Envoy's `wasmcustom.` prefix.
    fn counters(&self) -> BTreeMap<String, u64> {
        let text = ureq::get(&format!(
            "http://127.0.0.1:{}/stats?filter=attestgate",
            self.admin
        ))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((
                    name.strip_prefix("wasmcustom.")?.to_owned(),
                    value.trim().parse().ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("body is not JSON: {self:?}"))
    }

    /// A denial as the filter must send it.
    fn assert_denied(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-attestgate-reason"), Some(reason), "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        assert_eq!(self.json()["error"], reason, "{self:?}");
        assert!(self.json()["reasons"].is_array(), "{self:?}");
        assert!(
            self.header("x-upstream-device-id").is_none(),
            "reached upstream: {self:?}"
        );
        assert!(
            !self.body.contains("upstream"),
            "reached upstream: {self:?}"
        );
    }

    fn assert_reached_upstream(&self) {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.body.trim(), r#"{"upstream":"reached"}"#, "{self:?}");
    }
}

/// One access-log line, parsed as the contract with `attestgate report` says: one JSON object
/// a line, `time` an RFC 3339 timestamp, `attestgate` the decision record (an object, or a JSON
/// string holding one).
#[derive(Debug)]
struct AccessLine {
    line: String,
    fields: Value,
    record: attestgate_policy::record::DecisionRecord<String>,
}

impl AccessLine {
    fn parse(line: &str) -> AccessLine {
        let fields: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let time = fields["time"]
            .as_str()
            .unwrap_or_else(|| panic!("no time: {line}"));
        let seconds = rfc3339_seconds(time).unwrap_or_else(|| panic!("not RFC 3339: {line}"));
        assert!(
            (seconds - unix_now()).abs() < 300,
            "time {time} is not now: {line}"
        );
        let record = match &fields["attestgate"] {
            Value::String(json) => serde_json::from_str(json),
            other => serde_json::from_value(other.clone()),
        }
        .unwrap_or_else(|e| panic!("attestgate is not a decision record ({e}): {line}"));
        AccessLine {
            line: line.to_owned(),
            fields,
            record,
        }
    }

    fn status(&self) -> u64 {
        self.fields["status"].as_u64().unwrap()
    }
}

/// Unix seconds of an RFC 3339 timestamp (`2026-01-02T03:04:05.678Z`, or with `+hh:mm`).
fn rfc3339_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction.find(|c: char| !c.is_ascii_digit())?;
        if end == 0 {
            return None;
        }
        rest = &fraction[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let minutes = rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?;
            if rest.starts_with('-') {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60)
}

#[test]
fn rfc3339_reads_what_envoy_writes() {
    assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        rfc3339_seconds("2023-11-14T22:13:20.123Z"),
        Some(1_700_000_000)
    );
    assert_eq!(
        rfc3339_seconds("2023-11-15T00:13:20+02:00"),
        Some(1_700_000_000)
    );
    assert_eq!(rfc3339_seconds("2023-11-14 22:13:20"), None);
    assert_eq!(rfc3339_seconds("[14/Nov/2023:22:13:20 +0000]"), None);
}

/// Sends a GET with the path exactly as given and returns the status code.
fn raw_get_status(port: u16, path: &str) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap_or_default();
    status
        .parse()
        .unwrap_or_else(|_| panic!("no status line: {response}"))
}

fn mint_hs256(dir: &Path, secret: &str, claims: &Value, exp_in: i64) -> String {
    let file = write_claims(dir, &format!("claims-{exp_in}.json"), claims);
    cli(&[
        "mint",
        "--secret",
        secret,
        "--claims",
        file.to_str().unwrap(),
        "--exp-in",
        &exp_in.to_string(),
    ])
    .trim()
    .to_owned()
}

/// A scratch directory, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("attestgate-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// `envoy --mode validate` on an Envoy config (pointed at the built filter), which loads the
/// wasm and runs the filter's `on_configure`. Leaves the config in `dir/envoy.yaml`.
fn validate(dir: &Path, config: &str) -> (bool, String) {
    let config = config.replace(
        "filename: build/attestgate.wasm",
        &format!("filename: {}", wasm().display()),
    );
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(envoy_binary())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_passes_envoy_validate() {
    for name in EXAMPLES {
        let dir = scratch(&format!("validate-{name}"));
        let config = std::fs::read_to_string(example(name).join("envoy.yaml")).unwrap();
        let (ok, log) = validate(&dir, &config);
        assert!(ok, "{name}: envoy --mode validate failed:\n{log}");
        assert!(
            log.contains("configured with"),
            "{name}: the filter did not load:\n{log}"
        );
    }
}

#[test]
fn rendered_examples_are_up_to_date() {
    for name in EXAMPLES {
        let dir = example(name);
        let own = dir.join("envoy.yaml.in");
        let template = if own.exists() {
            own
        } else {
            root().join("envoy-examples/envoy.yaml.in")
        };
        let rendered = cli(&[
            "render",
            "--config",
            dir.join("attestgate.yaml").to_str().unwrap(),
            "--envoy-template",
            template.to_str().unwrap(),
        ]);
        let checked_in = std::fs::read_to_string(dir.join("envoy.yaml")).unwrap();
        assert!(
            rendered == checked_in,
            "{name}/envoy.yaml is stale: run `make examples`"
        );
    }
}

#[test]
fn a_bad_filter_config_is_rejected_by_envoy() {
    let dir = scratch("bad-config");
    let template = std::fs::read_to_string(root().join("envoy-examples/envoy.yaml.in")).unwrap();
    let weak = r#"{"keys":{"approov_secret":"c2hvcnQ="}}"#;
    let config = template.replace(
        "{{ATTESTGATE_CONFIG}}",
        &serde_json::to_string(weak).unwrap(),
    );
    let (ok, log) = validate(&dir, &config);
    assert!(!ok, "envoy accepted a weak key:\n{log}");
    let path = dir.join("envoy.yaml");
    assert!(log.contains("weak key"), "the log does not say why:\n{log}");

    // Started for real, Envoy refuses to run with it rather than serve unprotected.
    let mut child = Command::new(envoy_binary())
        .args(["--disable-hot-restart", "-c", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("envoy kept running with a weak key");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !status.success(),
        "envoy exited successfully with a weak key"
    );
}

#[test]
fn quickstart_end_to_end() {
    let dir = scratch("quickstart");
    let envoy = Envoy::start("quickstart");
    let secret = secret("quickstart");
    let good = mint_hs256(&dir, &secret, &claims("quickstart", "good.json"), 300);
    let rooted = mint_hs256(&dir, &secret, &claims("quickstart", "rooted.json"), 300);
    let expired = mint_hs256(&dir, &secret, &claims("quickstart", "good.json"), -600);
    let forged_secret = Base64::encode_string(b"not-the-attestation-service-secret!!");
    let forged = mint_hs256(
        &dir,
        &forged_secret,
        &claims("quickstart", "good.json"),
        300,
    );

    let ok = envoy.request(
        "GET",
        "/v1/shapes",
        &[("approov-token", &good), ("x-device-id", "spoofed")],
    );
    ok.assert_reached_upstream();
    assert_eq!(
        ok.header("x-upstream-device-id"),
        Some("demo-device-0001"),
        "{ok:?}"
    );
    assert_eq!(ok.header("x-upstream-platform"), Some("android"), "{ok:?}");
    assert_eq!(
        ok.header("x-upstream-token"),
        None,
        "the token went upstream: {ok:?}"
    );

    envoy
        .get("/v1/shapes", None)
        .assert_denied(401, "token_missing");
    envoy
        .get("/v1/shapes", Some("not.a.jwt"))
        .assert_denied(401, "token_malformed");
    envoy
        .get("/v1/shapes", Some(&forged))
        .assert_denied(401, "signature_invalid");
    envoy
        .get("/v1/shapes", Some(&expired))
        .assert_denied(401, "token_expired");
    let denied = envoy.get("/v1/shapes", Some(&rooted));
    denied.assert_denied(403, "policy_denied");
    let reasons = denied.json()["reasons"].clone();
    assert!(
        reasons
            .as_array()
            .unwrap()
            .contains(&"device_rooted".into()),
        "{denied:?}"
    );

    // A client-supplied x-device-id never reaches the upstream on its own.
    let spoof_only = envoy.request("GET", "/v1/shapes", &[("x-device-id", "spoofed")]);
    spoof_only.assert_denied(401, "token_missing");

    let counters = envoy.counters();
    let count = |name: &str| counters.get(name).copied().unwrap_or_default();
    assert_eq!(count("attestgate.allowed"), 1, "{counters:?}");
    assert_eq!(count("attestgate.denied"), 6, "{counters:?}");
    assert_eq!(count("attestgate.denied.token_missing"), 2, "{counters:?}");
    assert_eq!(
        count("attestgate.denied.token_malformed"),
        1,
        "{counters:?}"
    );
    assert_eq!(
        count("attestgate.denied.signature_invalid"),
        1,
        "{counters:?}"
    );
    assert_eq!(count("attestgate.denied.token_expired"), 1, "{counters:?}");
    assert_eq!(count("attestgate.denied.policy_denied"), 1, "{counters:?}");
    assert_eq!(count("attestgate.errors"), 0, "{counters:?}");
    // Prometheus output carries them too.
    let prometheus = ureq::get(&format!(
        "http://127.0.0.1:{}/stats/prometheus",
        envoy.admin
    ))
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    assert!(
        prometheus.contains("attestgate_denied_token_expired"),
        "no counter in /stats/prometheus"
    );
}

#[test]
fn token_binding_end_to_end() {
    let dir = scratch("binding");
    let envoy = Envoy::start("token-binding");
    let secret = secret("token-binding");
    let auth = "Bearer session-42";
    let mut bound = claims("token-binding", "good.json");
    bound["pay"] = Base64::encode_string(&Sha256::digest(auth.as_bytes())).into();
    let token = mint_hs256(&dir, &secret, &bound, 300);
    let unbound = mint_hs256(&dir, &secret, &claims("token-binding", "good.json"), 301);

    let ok = envoy.request(
        "GET",
        "/v1/me",
        &[("approov-token", &token), ("authorization", auth)],
    );
    ok.assert_reached_upstream();
    let stolen = envoy.request(
        "GET",
        "/v1/me",
        &[("approov-token", &token), ("authorization", "Bearer other")],
    );
    stolen.assert_denied(401, "binding_mismatch");
    envoy
        .request("GET", "/v1/me", &[("approov-token", &token)])
        .assert_denied(401, "binding_mismatch");
    envoy
        .request(
            "GET",
            "/v1/me",
            &[("approov-token", &unbound), ("authorization", auth)],
        )
        .assert_denied(401, "binding_missing");
}

#[test]
fn per_route_end_to_end() {
    let dir = scratch("per-route");
    let envoy = Envoy::start("per-route");
    let secret = secret("per-route");
    let medium_risk = mint_hs256(&dir, &secret, &claims("per-route", "medium-risk.json"), 300);
    let expired = mint_hs256(&dir, &secret, &claims("per-route", "good.json"), -600);

    envoy.get("/health", None).assert_reached_upstream();
    envoy
        .get("/healthz", None)
        .assert_denied(401, "token_missing");
    // The /beta monitor prefix does not cover paths that only start like it. Sent raw: HTTP
    // client libraries would resolve the dot segments themselves.
    for path in [
        "/beta/../v1/secret",
        "/beta/%2e%2e/v1/secret",
        "//beta/./../v1",
    ] {
        let status = raw_get_status(envoy.port, path);
        assert_eq!(status, 401, "{path} rode the monitor rule");
    }
    assert_eq!(
        raw_get_status(envoy.port, "/beta/x/../y"),
        200,
        "still under /beta"
    );

    let login = envoy.request("POST", "/login", &[("approov-token", &medium_risk)]);
    login.assert_denied(403, "policy_denied");
    assert!(
        login.body.contains("risk_score_too_high_for_login"),
        "{login:?}"
    );
    envoy
        .get("/login", Some(&medium_risk))
        .assert_reached_upstream();

    let beta = envoy.get("/beta/feature?x=1", Some(&expired));
    beta.assert_reached_upstream();
    assert_eq!(beta.header("x-upstream-decision"), Some("deny"), "{beta:?}");
    assert_eq!(
        beta.header("x-upstream-reason"),
        Some("token_expired"),
        "{beta:?}"
    );

    let counters = envoy.counters();
    assert_eq!(
        counters.get("attestgate.bypassed"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("attestgate.monitored_denied.token_expired"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("attestgate.denied.policy_denied"),
        Some(&1),
        "{counters:?}"
    );
}

#[test]
fn jwks_es256_end_to_end() {
    let dir = scratch("es256");
    let envoy = Envoy::start("jwks-es256");
    let key = example("jwks-es256").join("demo-es256.json");
    let mint_es = |claims: &Value, name: &str| mint_with_key(&dir, &key, claims, name, "300");
    let good = mint_es(&claims("jwks-es256", "good.json"), "good.json");
    let ok = envoy.get("/v1/shapes", Some(&good));
    ok.assert_reached_upstream();
    assert_eq!(ok.header("x-upstream-platform"), Some("android"), "{ok:?}");

    let mut other_issuer = claims("jwks-es256", "good.json");
    other_issuer["iss"] = "evil.example".into();
    envoy
        .get("/v1/shapes", Some(&mint_es(&other_issuer, "evil.json")))
        .assert_denied(401, "issuer_mismatch");
    envoy
        .get(
            "/v1/shapes",
            Some(&mint_es(
                &claims("jwks-es256", "rooted.json"),
                "rooted.json",
            )),
        )
        .assert_denied(403, "policy_denied");

    // Algorithm confusion: an HS256 token naming the ES256 key's kid.
    let confused = hs256_naming_the_es256_key(&dir, &claims("jwks-es256", "good.json"));
    envoy
        .get("/v1/shapes", Some(&confused))
        .assert_denied(401, "alg_not_allowed");

    // Envoy's BoringSSL checked these (`verify_signature`, issue #28): one token's payload
    // under another's signature is refused there too.
    assert!(
        envoy
            .log()
            .contains("signatures: ES256, RS256, RS384, RS512 by the host's verifier"),
        "{}",
        envoy.log()
    );
    // The default policy runs as a compiled plan in the filter (issue #27), and says so.
    assert!(
        envoy
            .log()
            .contains("policy: data.attestgate.decision compiled to a plan"),
        "{}",
        envoy.log()
    );
    let rooted = mint_es(&claims("jwks-es256", "rooted.json"), "rooted2.json");
    let (signing_input, _) = good.rsplit_once('.').unwrap();
    let (_, other_signature) = rooted.rsplit_once('.').unwrap();
    envoy
        .get(
            "/v1/shapes",
            Some(&format!("{signing_input}.{other_signature}")),
        )
        .assert_denied(401, "signature_invalid");
}

/// A token for `claims` (written to `dir/name`) signed with the private JWK at `key`.
fn mint_with_key(dir: &Path, key: &Path, claims: &Value, name: &str, exp_in: &str) -> String {
    let file = write_claims(dir, name, claims);
    cli(&[
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--claims",
        file.to_str().unwrap(),
        "--exp-in",
        exp_in,
    ])
    .trim()
    .to_owned()
}

/// The algorithm-confusion token: HS256 with an arbitrary secret, naming the examples' ES256
/// key (`kid: demo-es256`).
fn hs256_naming_the_es256_key(dir: &Path, claims: &Value) -> String {
    let file = write_claims(dir, "hs.json", claims);
    cli(&[
        "mint",
        "--secret",
        &Base64::encode_string(&[7u8; 32]),
        "--kid",
        "demo-es256",
        "--claims",
        file.to_str().unwrap(),
        "--exp-in",
        "300",
    ])
    .trim()
    .to_owned()
}

#[test]
fn hybrid_es256_end_to_end() {
    // jwt_authn verifies the signature natively; attestgate decides with its record.
    let dir = scratch("hybrid");
    let envoy = Envoy::start("hybrid-es256");
    let mint_with = |key: &Path, claims: &Value, name: &str, exp_in: &str| {
        mint_with_key(&dir, key, claims, name, exp_in)
    };
    let key = example("hybrid-es256").join("demo-es256.json");
    let good_claims = claims("hybrid-es256", "good.json");
    let good = mint_with(&key, &good_claims, "good.json", "300");
    let ok = envoy.get("/v1/shapes", Some(&good));
    ok.assert_reached_upstream();
    assert_eq!(ok.header("x-upstream-platform"), Some("android"), "{ok:?}");
    assert_eq!(
        ok.header("x-upstream-token"),
        None,
        "the token went upstream: {ok:?}"
    );

    // Signature good, device not: the policy still runs.
    let rooted = mint_with(
        &key,
        &claims("hybrid-es256", "rooted.json"),
        "rooted.json",
        "300",
    );
    envoy
        .get("/v1/shapes", Some(&rooted))
        .assert_denied(403, "policy_denied");

    // What jwt_authn does not verify carries no record, and attestgate refuses it with its
    // own JSON 401: a token signed by another key under the same kid, an expired one, an
    // HS256 token naming the ES256 key (algorithm confusion).
    let mut other = serde_json::from_str::<Value>(
        &std::fs::read_to_string(root().join("policy-engine/tests/data/keys/es256_other.json"))
            .unwrap(),
    )
    .unwrap();
    other["kid"] = "demo-es256".into();
    let other_key = write_claims(&dir, "other-key.json", &other);
    let forged = mint_with(&other_key, &good_claims, "forged.json", "300");
    envoy
        .get("/v1/shapes", Some(&forged))
        .assert_denied(401, "signature_invalid");
    let expired = mint_with(&key, &good_claims, "expired.json", "-600");
    envoy
        .get("/v1/shapes", Some(&expired))
        .assert_denied(401, "signature_invalid");
    let confused = hs256_naming_the_es256_key(&dir, &good_claims);
    envoy
        .get("/v1/shapes", Some(&confused))
        .assert_denied(401, "signature_invalid");
    envoy
        .get("/v1/shapes", None)
        .assert_denied(401, "token_missing");
    // The good token again: still allowed (and now from the decision cache).
    envoy
        .get("/v1/shapes", Some(&good))
        .assert_reached_upstream();
}

/// One request written byte for byte (path, header names and values exactly as the case
/// gives them), and the reply: status, lower-cased headers, body.
fn raw_request(port: u16, request: &attestgate_corpus::CaseRequest) -> Reply {
    raw_exchange(port, request, b"")
}

/// [`raw_request`] with a body (sent with its `content-length`).
fn raw_exchange(port: u16, request: &attestgate_corpus::CaseRequest, body: &[u8]) -> Reply {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        request.method, request.path, request.authority
    );
    for (name, value) in &request.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    // Envoy may answer (431) and close before it has read a huge request.
    let _ = stream.write_all(&bytes);
    // Read one whole response by its content-length rather than to EOF: Envoy holds a
    // connection it closes for up to a second (delayed_close_timeout) waiting for us.
    let mut response = Vec::new();
    let mut buffer = [0u8; 16384];
    loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok());
            if length.is_some_and(|length| response.len() >= end + 4 + length) {
                break;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The shared corpus (`corpus/cases/`) through real Envoy: each gate in its own Envoy, each
/// case as a raw HTTP/1.1 request. The decision is read off the reply and the filter's
/// counters in `/stats`, and must equal both the case's expectation and the native core's.
#[test]
fn the_corpus_decides_the_same_in_envoy_as_natively() {
    use attestgate_corpus::Runner;
    use attestgate_harness::observe::{from_counters, Observed};

    let template = std::fs::read_to_string(root().join("envoy-examples/envoy.yaml.in")).unwrap();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
    let gate_count = corpus.materialize(unix_now()).unwrap().gates.len();
    let (mut failures, mut ran, mut not_here) = (Vec::new(), 0, 0);
    for index in 0..gate_count {
        let started = Instant::now();
        // Envoy's clock is the real one: mint each gate's tokens just before it runs, so
        // cases near a time limit (expiry within the leeway) stay on their side of it.
        let now = unix_now();
        let materialized = corpus.materialize(now).unwrap();
        let gate = &materialized.gates[index];
        let native = attestgate_policy::Gate::from_json(&gate.config.to_string()).unwrap();
        let literal = serde_json::to_string(&gate.config.to_string()).unwrap();
        let config = template.replace("{{ATTESTGATE_CONFIG}}", &literal);
        let envoy = Envoy::start_with(&gate.name.replace('/', "-"), &config);
        for case in &gate.cases {
            let Some(expect) = gate.expect_for(case, Runner::Envoy) else {
                not_here += 1;
                continue;
            };
            ran += 1;
            let label = format!("{}/{}", gate.name, case.name);
            let before = envoy.counters();
            let reply = raw_request(envoy.port, &case.request);
            let after = envoy.counters();
            if expect.reason.is_empty() {
                // Envoy answers before the filter runs: no decision may be counted.
                if reply.status != expect.status || from_counters(&before, &after).is_ok() {
                    failures.push(format!(
                        "{label}: expected Envoy's own {}, got {} {:?}",
                        expect.status,
                        reply.status,
                        from_counters(&before, &after)
                    ));
                }
                continue;
            }
            let (allow, verdict, reason) = match from_counters(&before, &after) {
                Ok(decision) => decision,
                Err(problem) => {
                    failures.push(format!("{label}: {problem} (status {})", reply.status));
                    continue;
                }
            };
            let reached = reply.body.contains(r#""upstream":"reached""#);
            let told = reply
                .header("x-upstream-reason")
                .filter(|v| !v.is_empty() && *v != "-");
            let consistent = if allow {
                reached
                    && reply.status == 200
                    && told == (verdict == "deny").then_some(reason.as_str())
            } else {
                !reached && reply.header("x-attestgate-reason") == Some(reason.as_str())
            };
            if !consistent {
                failures.push(format!(
                    "{label}: counters say allow={allow} reason={reason}, reply {reply:?}"
                ));
                continue;
            }
            let observed = Observed {
                allow,
                status: reply.status,
                reason,
                verdict: verdict.to_owned(),
            };
            let decision = native.check(&case.request.to_request(), now);
            let native = Observed::of(&decision);
            // An Envoy override says Envoy decides another request than the one sent (it
            // resolved the path first): then only the override is the truth.
            if observed != native
                && !case
                    .overrides
                    .contains_key(&attestgate_corpus::Runner::Envoy)
            {
                failures.push(format!("{label}: native {native}, envoy {observed}"));
            }
            let meets = observed.meets(
                expect.allow,
                expect.status,
                &expect.reason,
                expect.verdict.as_deref(),
            );
            if !meets {
                failures.push(format!("{label}: expected {expect:?}, envoy {observed}"));
            }
        }
        println!(
            "{}: {} cases in {:.1} s",
            gate.name,
            gate.cases.len(),
            started.elapsed().as_secs_f64()
        );
        // The VM survived every case.
        let stats = ureq::get(&format!(
            "http://127.0.0.1:{}/stats?filter=wasm",
            envoy.admin
        ))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
        assert!(
            !stats
                .lines()
                .any(|l| l.contains("failed") && !l.ends_with(": 0")),
            "{}: a wasm failure in Envoy's stats:\n{stats}",
            gate.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        ran >= 200,
        "only {ran} cases ran in Envoy ({not_here} are not for Envoy)"
    );
    println!("{ran} cases agreed in Envoy ({not_here} not for Envoy)");
}

/// Mints an ES256 token with one of policy-engine's test keys.
fn mint_test_key(key: &str, claims: &Value) -> String {
    let path = root().join(format!("policy-engine/tests/data/keys/{key}.json"));
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    attestgate_testkit::SigningKey::from_jwk(&jwk)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn test_jwks(key: &str) -> String {
    std::fs::read_to_string(root().join(format!("policy-engine/tests/data/keys/{key}.pub.json")))
        .unwrap()
}

/// Polls until `f` holds, for up to `seconds`.
fn eventually(seconds: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !f() {
        assert!(Instant::now() < deadline, "not within {seconds} s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn remote_jwks_example_end_to_end() {
    let envoy = Envoy::start("remote-jwks");
    let key = example("remote-jwks").join("demo-es256.json");
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(key).unwrap()).unwrap();
    let mint = |file: &str| {
        let mut claims = claims("remote-jwks", file);
        claims["exp"] = serde_json::json!(unix_now() + 300);
        attestgate_testkit::SigningKey::from_jwk(&jwk)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    let good = mint("good.json");
    // The first fetch starts when the config loads; until it lands, 503 keys_unavailable.
    eventually(10, "the JWKS is fetched", || {
        envoy.get("/v1/shapes", Some(&good)).status == 200
    });
    let reply = envoy.get("/v1/shapes", Some(&good));
    reply.assert_reached_upstream();
    assert_eq!(
        reply.header("x-upstream-device-id"),
        Some("demo-device-0001")
    );
    eventually(10, "the denylist is fetched", || {
        envoy.get("/v1/shapes", Some(&mint("stolen.json"))).status == 403
    });
    envoy
        .get("/v1/shapes", Some(&mint("stolen.json")))
        .assert_denied(403, "device_denied");
    // Three logins a minute per device.
    let login = |token: &str| envoy.request("POST", "/v1/login", &[("approov-token", token)]);
    for _ in 0..3 {
        login(&good).assert_reached_upstream();
    }
    let refused = login(&good);
    refused.assert_denied(429, "rate_limited");
    // One request every 20 s refills; a slow machine may have spent a second on the logins.
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((15..=20).contains(&wait), "retry-after {wait}");
    let counters = envoy.counters();
    assert!(counters["attestgate.jwks.fetched"] >= 1, "{counters:?}");
    assert!(counters["attestgate.denylist.fetched"] >= 1, "{counters:?}");
    // Envoy configures VMs on its main thread too, whose first fetch may come before the
    // clusters are up (a 503 from Envoy itself); no other fetch fails.
    for source in ["jwks", "denylist"] {
        assert!(
            counters[&format!("attestgate.{source}.fetch_failed")] <= 2,
            "{counters:?}\n{}",
            envoy.log()
        );
    }
}

/// The remote-jwks example's template with its `keyserver` cluster (the last port 8082) at
/// `server`.
fn key_server_template(server: &DocumentServer) -> String {
    let template = std::fs::read_to_string(example("remote-jwks").join("envoy.yaml.in")).unwrap();
    let at = template.rfind("port_value: 8082").unwrap();
    format!(
        "{}port_value: {}{}",
        &template[..at],
        server.port(),
        &template[at + "port_value: 8082".len()..]
    )
}

/// The remote-jwks example's Envoy, its keyserver cluster at `server`, and a gate whose keys
/// come only from `/jwks.json` there.
fn envoy_with_key_server(
    name: &str,
    server: &DocumentServer,
    refresh_seconds: u32,
    timeout_ms: u32,
) -> Envoy {
    let config = serde_json::json!({
        "keys": {"remote": {"upstream": "keyserver", "authority": "keys.test", "path": "/jwks.json",
                            "refresh_seconds": refresh_seconds, "timeout_ms": timeout_ms}},
    });
    let literal = serde_json::to_string(&config.to_string()).unwrap();
    Envoy::start_with(
        name,
        &key_server_template(server).replace("{{ATTESTGATE_CONFIG}}", &literal),
    )
}

/// One device's token under the `es256` test key and under `es256_other`.
fn es256_and_other() -> (String, String) {
    let claims = serde_json::json!({"did": "d1", "exp": unix_now() + 600});
    (
        mint_test_key("es256", &claims),
        mint_test_key("es256_other", &claims),
    )
}

/// Before the first JWKS lands (at start-up, or in a VM Envoy creates for a new config, which
/// starts with empty shared data), requests are held for it, not refused: with a slow key
/// server, requests sent as soon as Envoy is ready are let on once the keys come, and a
/// forged one is refused then.
#[test]
fn requests_before_the_first_jwks_wait_for_it_in_real_envoy() {
    let server = DocumentServer::start().unwrap();
    server.answer("/jwks.json", Answer::ok(test_jwks("es256")));
    server.delay("/jwks.json", Duration::from_secs(3));
    let envoy = envoy_with_key_server("remote-first-fetch", &server, 60, 8000);
    let (good, forged) = es256_and_other();
    let started = Instant::now();
    let replies: Vec<(Reply, Duration)> = std::thread::scope(|scope| {
        let threads: Vec<_> = [&good, &good, &forged]
            .into_iter()
            .map(|token| {
                let envoy = &envoy;
                scope.spawn(move || {
                    let reply = envoy.get("/", Some(token));
                    (reply, started.elapsed())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    // One fetch per VM that started with no keys: the worker's, and the main thread's
    // (Envoy configures a VM there too).
    assert!(
        (1..=2).contains(&server.served("/jwks.json")),
        "{} fetches",
        server.served("/jwks.json")
    );
    for (reply, took) in &replies[..2] {
        reply.assert_reached_upstream();
        // Answered only once the slow key server answered: they were held.
        assert!(
            *took >= Duration::from_millis(500),
            "answered after {took:?}"
        );
    }
    replies[2].0.assert_denied(401, "signature_invalid");
    assert!(
        envoy.log().contains("request(s) held for the first JWKS"),
        "{}",
        envoy.log()
    );
    let counters = envoy.counters();
    assert_eq!(counters.get("attestgate.denied.keys_unavailable"), Some(&0));
}

#[test]
fn remote_jwks_rotates_while_requests_flow_and_survives_the_server_going_down() {
    let mut server = DocumentServer::start().unwrap();
    server.answer("/jwks.json", Answer::ok(test_jwks("es256")));
    let envoy = envoy_with_key_server("remote-rotation", &server, 1, 1000);
    let (old, new) = es256_and_other();
    eventually(10, "the first JWKS is fetched", || {
        envoy.get("/", Some(&old)).status == 200
    });
    assert_eq!(envoy.get("/", Some(&new)).status, 401);

    // Rotate while requests flow: every answer is a clean 200 or 401, never an error, and once
    // the new key verifies the old one never does again.
    server.answer("/jwks.json", Answer::ok(test_jwks("es256_other")));
    let (mut rotated, mut answers) = (false, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !rotated {
        assert!(Instant::now() < deadline, "the new key never verified");
        let (a, b) = (envoy.get("/", Some(&old)), envoy.get("/", Some(&new)));
        for reply in [&a, &b] {
            assert!(matches!(reply.status, 200 | 401), "{reply:?}");
        }
        rotated = b.status == 200;
        // `a` went before `b`: the keys may have changed between the two.
        answers += 2;
    }
    for _ in 0..10 {
        envoy
            .get("/", Some(&old))
            .assert_denied(401, "signature_invalid");
        envoy.get("/", Some(&new)).assert_reached_upstream();
    }
    assert!(answers >= 2);

    // The key server goes away: fetches fail, the last good keys stay.
    let failed_before = envoy.counters()["attestgate.jwks.fetch_failed"];
    server.shut_down();
    eventually(10, "a fetch fails", || {
        envoy.counters()["attestgate.jwks.fetch_failed"] > failed_before
    });
    for _ in 0..10 {
        envoy.get("/", Some(&new)).assert_reached_upstream();
    }
    assert!(server.served("/jwks.json") >= 2);
}

/// Firebase App Check as the token source (issue #28) in real Envoy: the firebase-app-check
/// example's gate config (`X-Firebase-AppCheck`, App Check's issuer and audience, the app-id
/// allowlist policy), its keys fetched from a local stand-in for App Check's JWKS endpoint
/// (`/v1/jwks`, the committed test key's JWKS) instead of firebaseappcheck.googleapis.com, and
/// tokens minted by PyJWT in App Check's shape (scripts/interop/app_check.py). A listed app
/// reaches the upstream with its verified app id and without its token; another app is
/// refused by the policy, and a token signed by another key under App Check's kid is refused
/// before it reaches anything.
#[test]
fn firebase_app_check_tokens_minted_by_pyjwt_in_real_envoy() {
    const ANDROID_APP: &str = "1:123456789012:android:abc123";
    let server = DocumentServer::start().unwrap();
    server.answer("/v1/jwks", Answer::ok(test_jwks("app_check")));
    let recorder = RecordingUpstream::start().unwrap();
    let rendered = cli(&[
        "render",
        "--config",
        example("firebase-app-check")
            .join("attestgate.yaml")
            .to_str()
            .unwrap(),
    ]);
    let mut config: Value = serde_json::from_str(&rendered).unwrap();
    // The example fetches App Check's JWKS over TLS (its `firebaseappcheck` cluster); here the
    // same path comes from the key server, plain HTTP.
    assert_eq!(config["keys"]["remote"]["path"], "/v1/jwks", "{rendered}");
    assert_eq!(config["keys"]["remote"]["upstream"], "firebaseappcheck");
    config["keys"]["remote"]["upstream"] = "keyserver".into();
    let envoy = Envoy::start_with(
        "firebase-app-check",
        &render_to(&key_server_template(&server), &recorder, &config),
    );
    let now = unix_now();
    let mint = |key: &str, app: &str, extra: &[&str]| {
        common::app_check_token(key, app, now - 5, now + 3600, extra)
    };
    let send = |case: &str, token: &str| {
        envoy.request(
            "GET",
            &format!("/v1/items?case={case}"),
            &[
                ("X-Firebase-AppCheck", token),
                // A client's own claim of an app id goes nowhere.
                ("x-firebase-app-id", "1:123456789012:ios:def456"),
            ],
        )
    };

    let good = mint("app_check.json", ANDROID_APP, &[]);
    // Held for the first fetch, then let on.
    send("allowed", &good).assert_reached_upstream();
    let other = send(
        "other-app",
        &mint("app_check.json", "1:123456789012:web:0badc0ffee", &[]),
    );
    other.assert_denied(403, "policy_denied");
    assert_eq!(
        other.json()["reasons"],
        serde_json::json!(["app_id_not_allowed"])
    );
    let forged = mint("rs256.json", ANDROID_APP, &["--kid", "app-check-test"]);
    send("forged", &forged).assert_denied(401, "signature_invalid");
    envoy
        .request("GET", "/v1/items?case=none", &[])
        .assert_denied(401, "token_missing");

    // The upstream saw the allowed request only: the verified app id, no token, no client copy.
    let seen = recorder.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].target, "/v1/items?case=allowed");
    assert_eq!(seen[0].values("x-firebase-app-id"), [ANDROID_APP]);
    assert!(!seen[0].has("x-firebase-appcheck"), "{:?}", seen[0]);
    assert!(seen[0].valued(&good).is_empty(), "{:?}", seen[0]);
    assert!(server.served("/v1/jwks") >= 1);
    let counters = envoy.counters();
    assert_eq!(counters["attestgate.allowed"], 1, "{counters:?}");
    assert_eq!(
        counters["attestgate.denied.policy_denied"], 1,
        "{counters:?}"
    );
    assert_eq!(
        counters["attestgate.denied.signature_invalid"], 1,
        "{counters:?}"
    );
    assert_eq!(
        counters["attestgate.denied.keys_unavailable"], 0,
        "{counters:?}"
    );
}

/// Install-key request signatures (issue #9) in real Envoy: on a route whose signature covers
/// `content-digest`, the filter holds the request at its headers, Envoy buffers the body, and
/// the filter decides at the end of the stream.
#[test]
fn a_signed_post_body_end_to_end() {
    use attestgate_policy::signature::SignOptions;
    use attestgate_testkit::{InstallSigner, SigningKey};

    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let components = ["@method", "@target-uri", "authorization", "content-digest"];
    let config = serde_json::json!({
        "keys": {"approov_secret": secret},
        "rules": [{"name": "pay", "path_prefix": "/v1/pay",
                   "signature": {"mode": "required", "components": components}}],
    });
    let template = std::fs::read_to_string(root().join("envoy-examples/envoy.yaml.in")).unwrap();
    let literal = serde_json::to_string(&config.to_string()).unwrap();
    let envoy = Envoy::start_with(
        "signed-body",
        &template.replace("{{ATTESTGATE_CONFIG}}", &literal),
    );

    let install = InstallSigner::from_slice(&[9; 32]).unwrap();
    let now = unix_now();
    let claims = serde_json::json!({"exp": now + 300, "did": "d1", "ipk": install.ipk()});
    let token = SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let body = br#"{"to":"alice","amount":100}"#;
    let signed = |path: &str, body: &[u8]| {
        let request = attestgate_policy::Request::new("POST", path)
            .with_host("api.example.com")
            .with_header("approov-token", token.as_str())
            .with_header("authorization", "Bearer session-1")
            .with_body(body.to_vec());
        let signed = install
            .sign_request(request, &SignOptions::new(components, now))
            .unwrap();
        attestgate_corpus::CaseRequest {
            method: "POST".to_owned(),
            path: path.to_owned(),
            authority: "api.example.com".to_owned(),
            headers: signed
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect(),
        }
    };

    let good = signed("/v1/pay?to=alice", body);
    raw_exchange(envoy.port, &good, body).assert_reached_upstream();
    // The body changed on the way: the digest no longer matches.
    raw_exchange(envoy.port, &good, br#"{"to":"mallory","amount":100}"#)
        .assert_denied(401, "request_signature_invalid");
    // Another path than the one signed.
    let mut moved = good.clone();
    moved.path = "/v1/pay?to=mallory".to_owned();
    raw_exchange(envoy.port, &moved, body).assert_denied(401, "request_signature_invalid");
    // No signature at all.
    let mut unsigned = good.clone();
    unsigned
        .headers
        .retain(|(n, _)| n != "signature" && n != "signature-input");
    raw_exchange(envoy.port, &unsigned, body).assert_denied(401, "request_signature_missing");
    // Other routes do not ask for a signature.
    envoy
        .get("/v1/shapes", Some(&token))
        .assert_reached_upstream();
    let counters = envoy.counters();
    assert_eq!(
        counters["attestgate.denied.request_signature_invalid"], 2,
        "{counters:?}"
    );
    assert_eq!(
        counters["attestgate.denied.request_signature_missing"], 1,
        "{counters:?}"
    );
}

/// The example template with its `upstream` cluster sent to a recording upstream (the
/// example's echo upstream answers as it does, so `assert_reached_upstream` holds for either).
fn template_to(upstream: &RecordingUpstream, config: &Value) -> String {
    let template = std::fs::read_to_string(root().join("envoy-examples/envoy.yaml.in")).unwrap();
    render_to(&template, upstream, config)
}

/// `template` with the gate config `config` and its `upstream` cluster sent to `upstream`.
fn render_to(template: &str, upstream: &RecordingUpstream, config: &Value) -> String {
    let cluster_endpoint =
        "endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}";
    assert!(template.contains(cluster_endpoint));
    let literal = serde_json::to_string(&config.to_string()).unwrap();
    template
        .replace(
            cluster_endpoint,
            &format!(
                "endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}",
                upstream.port()
            ),
        )
        .replace("{{ATTESTGATE_CONFIG}}", &literal)
}

/// Issue #15: with the per-route example's rules (bypass `/health`, monitor `/beta`), no
/// request without a token reaches a path outside those rules, whatever the path trick. The
/// upstream records every target it received; each must lie inside a bypass or monitor rule
/// under every reading an upstream may give it.
#[test]
fn no_path_trick_reaches_the_upstream_outside_a_bypass_or_monitor_rule() {
    let recorder = RecordingUpstream::start().unwrap();
    let config = serde_json::json!({
        "keys": {"approov_secret": secret("per-route")},
        "rules": [
            {"name": "health", "path": "/health", "mode": "bypass"},
            {"name": "beta", "path_prefix": "/beta", "mode": "monitor"},
        ],
    });
    let envoy = Envoy::start_with("path-tricks", &template_to(&recorder, &config));
    let tricks = [
        "/beta%2F..%2Fadmin",
        "/beta/..%2fadmin",
        "/beta/..%2Fadmin",
        "/beta%5C..%5Cadmin",
        "/beta/..%5Cadmin",
        "/beta/..\\admin",
        "/beta\\..\\admin",
        "/beta/..;/admin",
        "/beta;/../admin",
        "/health;x=1",
        "/health/..;/admin",
        "/health%2F..%2Fadmin",
        "/x//../health",
        "/betamax",
        "/beta/../admin",
        "/beta/%2e%2e/admin",
        "/beta/%2E%2E%2Fadmin",
        "/%62eta/../admin",
        "/beta/.%2e/admin",
        // Issue #26: a second decoding, and control characters.
        "/beta/%252e%252e/admin",
        "/beta/%252E%252E%252Fadmin",
        "/beta/..%00/admin",
        "/beta/%2500/x",
        "/health%0d%0ax",
    ];
    let mut statuses = Vec::new();
    for path in tricks {
        let request = attestgate_corpus::CaseRequest {
            method: "GET".to_owned(),
            path: path.to_owned(),
            authority: "api.example.com".to_owned(),
            headers: Vec::new(),
        };
        statuses.push((path, raw_request(envoy.port, &request).status));
    }
    // The controls do reach it.
    envoy.get("/health", None).assert_reached_upstream();
    envoy.get("/beta/x", None).assert_reached_upstream();
    let inside = |path: &str| {
        attestgate_policy::Request::new("GET", path)
            .path_readings()
            .iter()
            .all(|p| p == "/health" || p == "/beta" || p.starts_with("/beta/"))
    };
    let seen = recorder.requests();
    for request in &seen {
        let target = &request.target;
        assert!(
            inside(target),
            "an unauthenticated request reached {target} (statuses: {statuses:?})"
        );
    }
    assert_eq!(
        seen.iter()
            .filter(|r| r.target == "/health" || r.target == "/beta/x")
            .count(),
        2,
        "{seen:?}"
    );
    // Every trick was refused (by the gate, or by Envoy itself) unless it reached a path
    // inside the rules.
    for (path, status) in &statuses {
        assert!(matches!(status, 200 | 400 | 401 | 404), "{path}: {status}");
    }
    println!(
        "path tricks in Envoy: {statuses:?}; the upstream saw {:?}",
        seen.iter().map(|r| &r.target).collect::<Vec<_>>()
    );

    // What Envoy (normalize_path, merge_slashes, UNESCAPE_AND_FORWARD) forwards for each
    // trick, with a gate that lets everything through: the corpus' Envoy overrides say the
    // gate sees these paths.
    let recorder = RecordingUpstream::start().unwrap();
    let open =
        serde_json::json!({ "keys": {"approov_secret": secret("per-route")}, "mode": "monitor" });
    let envoy = Envoy::start_with("path-forwarded", &template_to(&recorder, &open));
    let forwarded = [
        ("/beta/..%2fadmin", "/admin"),
        ("/beta/..%5Cadmin", "/admin"),
        ("/beta/..\\admin", "/admin"),
        ("/beta/..;/admin", "/admin"),
        ("/x//../health", "/x/health"),
        ("/beta%2Fx", "/beta/x"),
    ];
    for (sent, _) in forwarded {
        let request = attestgate_corpus::CaseRequest {
            method: "GET".to_owned(),
            path: sent.to_owned(),
            authority: "api.example.com".to_owned(),
            headers: Vec::new(),
        };
        raw_request(envoy.port, &request);
    }
    let seen: Vec<String> = recorder.requests().into_iter().map(|r| r.target).collect();
    let want: Vec<&str> = forwarded.iter().map(|(_, got)| *got).collect();
    assert_eq!(seen, want, "what Envoy forwards");
}

/// Issue #15: a request signed exactly as Approov's SDK signs (install and account members;
/// `Content-Digest` only with a body) passes real Envoy with one config, GET and POST alike,
/// and what reached the upstream has no token and no client copy of the gate's headers.
#[test]
fn the_sdks_signed_get_and_post_pass_real_envoy_with_one_config() {
    use attestgate_policy::signature::AccountKey;
    use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey};

    let recorder = RecordingUpstream::start().unwrap();
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let account = "YWNjb3VudC1tZXNzYWdlLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";
    let config = serde_json::json!({
        "keys": {"approov_secret": secret},
        "signature": {"mode": "required",
                      "components": ["@method", "@target-uri", "approov-token"],
                      "account_secret": account},
        "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
    });
    let envoy = Envoy::start_with("sdk-signed", &template_to(&recorder, &config));
    // Install signatures are checked by Envoy's BoringSSL (`verify_signature`, issue #28):
    // every decision below went through it.
    eventually(10, "the host verifier's log line", || {
        envoy
            .log()
            .contains("signatures: ES256, RS256, RS384, RS512 by the host's verifier")
    });
    let install = InstallSigner::from_slice(&[11; 32]).unwrap();
    let now = unix_now();
    let claims = serde_json::json!({"exp": now + 300, "did": "device-1", "ipk": install.ipk()});
    let token = SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let sign = |signer: &ApproovSigner, method: &str, path: &str, body: &[u8]| {
        let mut request = attestgate_policy::Request::new(method, path)
            .with_host("api.example.com")
            .with_header("approov-token", token.as_str())
            .with_header("authorization", "Bearer user-1")
            .with_header("x-device-id", "attacker-device")
            .with_header("x-attestgate-decision", "allow");
        if !body.is_empty() {
            request = request
                .with_header("content-type", "application/json")
                .with_header("content-length", body.len().to_string())
                .with_body(body.to_vec());
        }
        let signed = signer.sign_request(request, now).unwrap();
        attestgate_corpus::CaseRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: "api.example.com".to_owned(),
            headers: signed
                .headers
                .iter()
                // raw_exchange adds content-length itself for a body.
                .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect(),
        }
    };
    let both = ApproovSigner {
        install: Some(install.clone()),
        account: Some(AccountKey::from_base64(account).unwrap()),
    };
    let body = br#"{"to":"alice","amount":100}"#;
    let get = sign(&both, "GET", "/v1/shapes?colour=red", b"");
    raw_request(envoy.port, &get).assert_reached_upstream();
    let post = sign(&both, "POST", "/v1/pay", body);
    assert!(post.headers.iter().any(|(n, _)| n == "content-digest"));
    raw_exchange(envoy.port, &post, body).assert_reached_upstream();
    // Each member alone (the SDK may not produce both): accepted under `either`.
    for signer in [
        ApproovSigner {
            install: Some(install.clone()),
            account: None,
        },
        ApproovSigner {
            install: None,
            account: Some(AccountKey::from_base64(account).unwrap()),
        },
    ] {
        raw_exchange(envoy.port, &sign(&signer, "POST", "/v1/pay", body), body)
            .assert_reached_upstream();
    }
    // A changed body and an unsigned request are refused.
    raw_exchange(envoy.port, &post, br#"{"to":"mallory","amount":100}"#)
        .assert_denied(401, "request_signature_invalid");
    let mut unsigned = post.clone();
    unsigned
        .headers
        .retain(|(n, _)| !n.starts_with("signature"));
    raw_exchange(envoy.port, &unsigned, body).assert_denied(401, "request_signature_missing");
    // What the upstream received: the verified device id once, no token, no client copy of
    // the gate's headers; the body and its digest intact.
    let seen = recorder.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for request in &seen {
        assert!(!request.has("approov-token"), "{request:?}");
        assert_eq!(request.values("x-device-id"), ["device-1"], "{request:?}");
        assert!(!request.has("x-attestgate-decision"), "{request:?}");
    }
}

/// Issue #26, item 0: no spelling of a gate-owned header reaches the upstream. With Envoy's
/// own default (`headers_with_underscores_action: ALLOW`) the filter strips every spelling a
/// CGI-style upstream folds into the gate's header; with the examples' HCM setting Envoy
/// refuses the request before the filter.
#[test]
fn no_spelling_of_a_gate_header_reaches_the_upstream() {
    use attestgate_testkit::{upstream::spoofed_gate_headers, SigningKey};

    let recorder = RecordingUpstream::start().unwrap();
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let config = serde_json::json!({
        "keys": {"approov_secret": secret},
        "rules": [{"name": "beta", "path_prefix": "/beta", "mode": "monitor"}],
        "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
    });
    let examples = template_to(&recorder, &config);
    let setting = "common_http_protocol_options: {headers_with_underscores_action: REJECT_REQUEST}";
    assert!(examples.contains(setting), "the template no longer sets it");
    let defaults = examples.replace(setting, "");
    let now = unix_now();
    let token = SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(
            serde_json::json!({"exp": now + 300, "did": "device-1"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
    let spoofs = spoofed_gate_headers();
    let request = |path: &str, token: Option<&str>| attestgate_corpus::CaseRequest {
        method: "GET".to_owned(),
        path: path.to_owned(),
        authority: "api.example.com".to_owned(),
        headers: spoofs
            .iter()
            .cloned()
            .chain(token.map(|t| ("approov-token".to_owned(), t.to_owned())))
            .chain([
                ("x-test-case".to_owned(), path.to_owned()),
                ("x_app_flavour".to_owned(), "kept".to_owned()),
            ])
            .collect(),
    };
    {
        let envoy = Envoy::start_with("spellings-defaults", &defaults);
        raw_request(envoy.port, &request("/v1/enforced", Some(&token))).assert_reached_upstream();
        // Monitor mode lets a missing token through with the gate's own decision headers.
        raw_request(envoy.port, &request("/beta/monitored", None)).assert_reached_upstream();
        raw_request(envoy.port, &request("/v1/denied", None)).assert_denied(401, "token_missing");
    }
    let seen = recorder.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for received in &seen {
        let spoofed = received.valued("spoofed");
        assert!(
            spoofed.is_empty(),
            "{spoofed:?} reached the upstream: {received:?}"
        );
        assert!(
            received.cgi_values("approov-token").is_empty(),
            "{received:?}"
        );
    }
    let enforced = recorder.find("x-test-case", "/v1/enforced").unwrap();
    // Envoy's default forwards underscored names: the test would prove nothing otherwise.
    assert_eq!(enforced.values("x_app_flavour"), ["kept"], "{enforced:?}");
    assert_eq!(
        enforced.cgi_values("x-device-id"),
        ["device-1"],
        "{enforced:?}"
    );
    assert!(
        enforced.cgi_values("x-attestgate-decision").is_empty(),
        "{enforced:?}"
    );
    let monitored = recorder.find("x-test-case", "/beta/monitored").unwrap();
    assert!(
        monitored.cgi_values("x-device-id").is_empty(),
        "{monitored:?}"
    );
    assert_eq!(
        monitored.cgi_values("x-attestgate-decision"),
        ["deny"],
        "{monitored:?}"
    );
    assert_eq!(
        monitored.cgi_values("x-attestgate-reason"),
        ["token_missing"],
        "{monitored:?}"
    );

    // The examples' setting: Envoy answers 400 itself and nothing goes upstream.
    let envoy = Envoy::start_with("spellings-examples", &examples);
    let refused = raw_request(envoy.port, &request("/v1/refused", Some(&token)));
    assert_eq!(refused.status, 400, "{refused:?}");
    let mut dashed = request("/v1/dashed", Some(&token));
    dashed.headers.retain(|(name, _)| !name.contains('_'));
    raw_request(envoy.port, &dashed).assert_reached_upstream();
    drop(envoy);
    assert!(recorder.find("x-test-case", "/v1/refused").is_none());
    let dashed = recorder.find("x-test-case", "/v1/dashed").unwrap();
    assert_eq!(dashed.cgi_values("x-device-id"), ["device-1"], "{dashed:?}");
}

/// Runs `scripts/interop/rfc9421.py` (PyPI `http-message-signatures` 3.x) and returns its
/// stdout; the package missing, or the script failing, is a failure.
fn interop_script(args: &[&str]) -> String {
    let python = common::interop_python();
    let run = |args: &[&str]| {
        Command::new(&python)
            .arg(root().join("scripts/interop/rfc9421.py"))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} ({err}): this test needs Python 3 with `pip install \
                     http-message-signatures==3.0.0` (scripts/install-envoy.sh installs it); \
                     set ATTESTGATE_PYTHON",
                    python.display()
                )
            })
    };
    let version = run(&["version"]);
    let said = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    assert!(
        version.status.success() && said.starts_with("http-message-signatures 3."),
        "this test needs the Python package http-message-signatures 3.x for {}: `{} -m pip \
         install http-message-signatures==3.0.0` (or set ATTESTGATE_PYTHON). It said: {said} {}",
        python.display(),
        python.display(),
        String::from_utf8_lossy(&version.stderr)
    );
    let out = run(args);
    assert!(
        out.status.success(),
        "rfc9421.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// RFC 9421 interop in real Envoy: requests signed by an independent implementation (PyPI
/// `http-message-signatures`, through scripts/interop/rfc9421.py), a GET without a body and a
/// POST whose `Content-Digest` (sha-256) is covered, each as `install` (ecdsa-p256-sha256,
/// the token's `ipk`) and as `account` (hmac-sha256), pass one gate config that accepts
/// either; the upstream sees no token; a changed body is refused.
#[test]
fn library_signed_requests_pass_real_envoy() {
    use attestgate_testkit::{InstallSigner, SigningKey};

    let dir = scratch("library-signed");
    let recorder = RecordingUpstream::start().unwrap();
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let account = "aW50ZXJvcCBhY2NvdW50IGtleTogaG1hYy1zaGEyNTYsIDMyKw==";
    let config = serde_json::json!({
        "keys": {"approov_secret": secret},
        "signature": {"mode": "required",
                      "components": ["@method", "@target-uri", "approov-token"],
                      "account_secret": account,
                      "accept": "either"},
    });
    let envoy = Envoy::start_with("library-signed", &template_to(&recorder, &config));
    let key_file = root().join("policy-engine/tests/data/keys/es256.json");
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let install = InstallSigner::from_jwk(&jwk).unwrap();
    let now = unix_now();
    let claims = serde_json::json!({"exp": now + 300, "did": "device-1", "ipk": install.ipk()});
    let token = SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let body = br#"{"to":"alice","amount":100}"#;
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).unwrap();

    // The library signs `method https://api.example.com{path}` (the gate's @target-uri:
    // https, the Host, the path) with the key `key` (its --alg and key flags) as `label`.
    let sign = |key: &[&str], label: &str, method: &str, path: &str, with_body: bool| {
        let url = format!("https://api.example.com{path}");
        let token_header = format!("Approov-Token: {token}");
        let (created, expires) = (now.to_string(), (now + 15).to_string());
        let mut args = vec!["sign"];
        args.extend_from_slice(key);
        args.extend(["--label", label, "--method", method, "--url", &url]);
        args.extend(["-H", &token_header]);
        args.extend(["--component", "@method", "--component", "@target-uri"]);
        args.extend(["--component", "approov-token"]);
        if with_body {
            args.extend(["-H", "Content-Type: application/json"]);
            args.extend(["--body-file", body_file.to_str().unwrap()]);
            args.extend(["--component", "content-digest"]);
        }
        args.extend(["--created", &created, "--expires", &expires]);
        let signed = interop_script(&args);
        let mut headers = vec![("approov-token".to_owned(), token.clone())];
        if with_body {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        for line in signed.lines() {
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        assert_eq!(
            headers.iter().any(|(n, _)| n == "content-digest"),
            with_body,
            "{headers:?}"
        );
        attestgate_corpus::CaseRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: "api.example.com".to_owned(),
            headers,
        }
    };
    let install_key = [
        "--alg",
        "ecdsa-p256-sha256",
        "--key-file",
        key_file.to_str().unwrap(),
    ];
    let account_key = ["--alg", "hmac-sha256", "--secret", account];
    let mut reached = 0;
    for (label, key) in [("install", &install_key[..]), ("account", &account_key[..])] {
        let get = sign(key, label, "GET", "/v1/shapes?colour=red", false);
        raw_request(envoy.port, &get).assert_reached_upstream();
        let post = sign(key, label, "POST", "/v1/pay?ref=42", true);
        raw_exchange(envoy.port, &post, body).assert_reached_upstream();
        reached += 2;
        // The body changed on the way: its digest no longer matches.
        raw_exchange(envoy.port, &post, br#"{"to":"mallory","amount":100}"#)
            .assert_denied(401, "request_signature_invalid");
    }
    // What the upstream received: the two requests per member, without the token; the POSTs
    // with their digest and signature intact.
    let seen = recorder.requests();
    assert_eq!(seen.len(), reached, "{seen:?}");
    for request in &seen {
        assert!(!request.has("approov-token"), "{request:?}");
        assert!(request.has("signature-input"), "{request:?}");
        assert_eq!(
            request.has("content-digest"),
            request.target.starts_with("/v1/pay"),
            "{request:?}"
        );
    }
    let counters = envoy.counters();
    assert_eq!(
        counters["attestgate.denied.request_signature_invalid"], 2,
        "{counters:?}"
    );
}

/// An admin stat by its full name, e.g. `extension_config_discovery.http_filter.attestgate.
/// update_rejected`.
fn admin_stat(envoy: &Envoy, name: &str) -> Option<u64> {
    let text = ureq::get(&format!(
        "http://127.0.0.1:{}/stats?filter={name}",
        envoy.admin
    ))
    .call()
    .ok()?
    .into_string()
    .ok()?;
    text.lines().find_map(|line| {
        let (stat, value) = line.split_once(": ")?;
        (stat == name).then(|| value.trim().parse().ok())?
    })
}

/// Issue #19: the filter's config comes by Envoy's extension config discovery (the example in
/// envoy-examples/ecds/, a file as its config source). While requests flow, the config moves
/// to a new key, then a bad config arrives (refused; the last good one keeps serving), then a
/// new `.wasm` file: every request is answered by the old or the new config, none is dropped
/// or fails, and the counters and logs say which config answered.
#[test]
fn ecds_reconfigures_a_running_envoy_without_dropping_a_request() {
    use attestgate_testkit::SigningKey;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let example_dir = example("ecds");
    let template = std::fs::read_to_string(example_dir.join("attestgate-ecds.yaml.in")).unwrap();
    let rendered = cli(&[
        "render",
        "--config",
        example_dir.join("attestgate.yaml").to_str().unwrap(),
        "--envoy-template",
        example_dir
            .join("attestgate-ecds.yaml.in")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(
        rendered,
        std::fs::read_to_string(example_dir.join("attestgate-ecds.yaml")).unwrap(),
        "ecds/attestgate-ecds.yaml is stale: run `make examples`"
    );

    let dir = scratch("ecds");
    let resource = dir.join("attestgate-ecds.yaml");
    // Written beside it, then moved over it: Envoy reloads on the move.
    let publish = |config: &str, wasm: &Path| {
        let literal = serde_json::to_string(config).unwrap();
        let text = template.replace("{{ATTESTGATE_CONFIG}}", &literal).replace(
            "filename: build/attestgate.wasm",
            &format!("filename: {}", wasm.display()),
        );
        let staged = dir.join("staged.yaml");
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(&staged, &resource).unwrap();
    };
    let (secret_a, secret_b) = (
        "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=",
    );
    let config_of = |secret: &str| {
        serde_json::json!({"keys": {"approov_secret": secret},
            "claim_to_headers": [{"claim": "did", "header": "x-device-id"}]})
        .to_string()
    };
    let (config_a, config_b) = (config_of(secret_a), config_of(secret_b));
    publish(&config_a, &wasm());
    let envoy_yaml = std::fs::read_to_string(example_dir.join("envoy.yaml"))
        .unwrap()
        .replace(
            "path: envoy-examples/ecds/attestgate-ecds.yaml",
            &format!("path: {}", resource.display()),
        );
    let envoy = Envoy::start_with("ecds", &envoy_yaml);
    let rejected = "extension_config_discovery.http_filter.attestgate.update_rejected";
    let succeeded = "extension_config_discovery.http_filter.attestgate.update_success";
    assert_eq!(admin_stat(&envoy, succeeded), Some(1));

    let token = |secret: &str| {
        let claims = serde_json::json!({"exp": unix_now() + 600, "did": "device-1"});
        SigningKey::hs256_from_base64_secret(secret)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    let (token_a, token_b) = (token(secret_a), token(secret_b));
    let request = |token: &str| attestgate_corpus::CaseRequest {
        method: "GET".to_owned(),
        path: "/v1/shapes".to_owned(),
        authority: "api.example.com".to_owned(),
        headers: vec![("approov-token".to_owned(), token.to_owned())],
    };
    // Requests flow the whole time: (which token, status) in order.
    let answers: Arc<Mutex<Vec<(char, u16)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (answers, stop, port) = (Arc::clone(&answers), Arc::clone(&stop), envoy.port);
        let (a, b) = (request(&token_a), request(&token_b));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (which, request) in [('a', &a), ('b', &b)] {
                    let status = raw_request(port, request).status;
                    answers.lock().unwrap().push((which, status));
                }
            }
        })
    };
    let status_of = |token: &str| raw_request(envoy.port, &request(token)).status;
    eventually(10, "traffic flows", || answers.lock().unwrap().len() > 20);
    assert_eq!((status_of(&token_a), status_of(&token_b)), (200, 401));

    // A new key.
    publish(&config_b, &wasm());
    eventually(20, "config b serves", || status_of(&token_b) == 200);
    assert_eq!(status_of(&token_a), 401);
    // A bad config: refused, and config b keeps serving.
    publish(r#"{"keys":{"approov_secret":"c2hvcnQ="}}"#, &wasm());
    eventually(20, "the bad config is rejected", || {
        admin_stat(&envoy, rejected) == Some(1)
    });
    assert_eq!((status_of(&token_a), status_of(&token_b)), (401, 200));
    // A new .wasm file (vm_config with another code file), config b again.
    let second_wasm = dir.join("attestgate-2.wasm");
    std::fs::copy(wasm(), &second_wasm).unwrap();
    publish(&config_b, &second_wasm);
    eventually(30, "the new wasm serves", || {
        admin_stat(&envoy, succeeded) == Some(3)
    });
    assert_eq!((status_of(&token_a), status_of(&token_b)), (401, 200));
    eventually(10, "traffic goes on", || {
        answers.lock().unwrap().len() > 200
    });
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();

    // Every request answered, by config a or b; once b answered, a never did again.
    let answers = answers.lock().unwrap().clone();
    assert!(
        answers
            .iter()
            .all(|(_, status)| matches!(status, 200 | 401)),
        "a request failed or was dropped: {:?}",
        answers
            .iter()
            .filter(|(_, s)| !matches!(s, 200 | 401))
            .collect::<Vec<_>>()
    );
    let switched = answers
        .iter()
        .position(|&(which, status)| which == 'b' && status == 200)
        .expect("config b answered the traffic");
    assert!(
        answers[..switched].contains(&('a', 200)),
        "config a answered first"
    );
    assert!(
        !answers[switched..].contains(&('a', 200)),
        "config a answered after config b"
    );
    // Which config answered: a counter per config, and the id in the log.
    let counters = envoy.counters();
    for config in [&config_a, &config_b] {
        let id = attestgate_filter::plan::config_id(config);
        assert!(
            counters
                .get(&format!("attestgate.config.{id}"))
                .is_some_and(|n| *n > 0),
            "no decisions counted for config {id}: {counters:?}"
        );
        assert!(
            envoy.log().contains(&format!("(config {id})")),
            "{}",
            envoy.log()
        );
    }
}

/// A test rate-limit service (scripts/ratelimit/server.py: Envoy's `envoy.service.ratelimit.v3`
/// gRPC API with one fixed-window limit for every descriptor), killed on drop.
struct RateLimitService {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl RateLimitService {
    fn start(dir: &Path, limit: u32) -> RateLimitService {
        let log = dir.join("ratelimit.jsonl");
        let mut child = Command::new(common::interop_python())
            .arg(root().join("scripts/ratelimit/server.py"))
            .args(["--limit", &limit.to_string(), "--window", "3600"])
            .arg("--log")
            .arg(&log)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running scripts/ratelimit/server.py (needs grpcio: make envoy installs it)");
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                panic!("the rate-limit service said {line:?}, not `listening PORT`")
            });
        RateLimitService { child, port, log }
    }

    /// Each call it answered: the descriptors' (key, value) entries and its code (1 ok, 2 over).
    fn calls(&self) -> Vec<(Vec<(String, String)>, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let call: Value = serde_json::from_str(line).unwrap();
                assert_eq!(call["domain"], "attestgate", "{line}");
                let entries = call["descriptors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|descriptor| descriptor.as_array().unwrap().clone())
                    .map(|entry| {
                        (
                            entry[0].as_str().unwrap().to_owned(),
                            entry[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                (entries, call["code"].as_u64().unwrap())
            })
            .collect()
    }
}

impl Drop for RateLimitService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fleet-wide per-device limits through Envoy's own rate-limit filter: two Envoys ask one
/// rate-limit service (a test implementation of the standard `envoy.service.ratelimit.v3`
/// API) about the device id the gate verified, so one device's requests through either Envoy
/// spend one count. A client-sent `x-device-id` changes nothing, a refused token never reaches
/// the service, and without the service requests are refused (fail closed), never let through.
#[test]
fn two_envoys_share_one_devices_limit_through_the_rate_limit_service() {
    let dir = scratch("fleet-rate-limit");
    let limit = 5;
    let service = RateLimitService::start(&dir, limit);
    let config = std::fs::read_to_string(example("fleet-rate-limit").join("envoy.yaml"))
        .unwrap()
        .replace("port_value: 8083", &format!("port_value: {}", service.port));
    let envoys = [
        Envoy::start_with("fleet-a", &config),
        Envoy::start_with("fleet-b", &config),
    ];
    let secret = secret("fleet-rate-limit");
    let good = claims("fleet-rate-limit", "good.json");
    let device = good["did"].as_str().unwrap().to_owned();
    let token = mint_hs256(&dir, &secret, &good, 300);
    let mut other_claims = good.clone();
    other_claims["did"] = "another-device".into();
    let other = mint_hs256(&dir, &secret, &other_claims, 300);

    // One device, alternating Envoys: the first `limit` pass, every later one is refused by
    // whichever Envoy it reaches, also when the client names another device itself.
    for n in 0..limit + 3 {
        let envoy = &envoys[n as usize % 2];
        let reply = if n % 3 == 2 {
            envoy.request(
                "GET",
                "/v1/shapes",
                &[("approov-token", &token), ("x-device-id", "another-device")],
            )
        } else {
            envoy.get("/v1/shapes", Some(&token))
        };
        if n < limit {
            assert_eq!(reply.status, 200, "request {n}: {reply:?}");
            assert_eq!(reply.header("x-upstream-device-id"), Some(device.as_str()));
        } else {
            assert_eq!(reply.status, 429, "request {n}: {reply:?}");
            let body: Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"], "rate_limited", "{reply:?}");
            assert_eq!(reply.header("x-upstream-device-id"), None, "{reply:?}");
        }
    }
    // Another device has its own count, on both Envoys.
    for envoy in &envoys {
        assert_eq!(envoy.get("/v1/shapes", Some(&other)).status, 200);
    }
    // Refused by the gate: the service never hears of it.
    let before = service.calls().len();
    for envoy in &envoys {
        assert_eq!(envoy.get("/v1/shapes", None).status, 401);
        assert_eq!(envoy.get("/v1/shapes", Some("not.a.jwt")).status, 401);
    }
    let calls = service.calls();
    assert_eq!(
        calls.len(),
        before,
        "a refused request reached the rate-limit service"
    );
    // Every call named one verified device, never the client's header.
    let expected: Vec<u64> = (0..limit + 3)
        .map(|n| if n < limit { 1 } else { 2 })
        .chain([1, 1])
        .collect();
    assert_eq!(
        calls.iter().map(|(_, code)| *code).collect::<Vec<_>>(),
        expected,
        "{calls:?}"
    );
    for (n, (entries, _)) in calls.iter().enumerate() {
        let want = if n < (limit + 3) as usize {
            &device
        } else {
            "another-device"
        };
        assert_eq!(
            entries,
            &[("device_id".to_owned(), want.to_owned())],
            "call {n}"
        );
    }

    // The service gone: refused with the gate's JSON shape, not let through.
    drop(service);
    for envoy in &envoys {
        let reply = envoy.get("/v1/shapes", Some(&other));
        assert_eq!(reply.status, 503, "{reply:?}");
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"], "rate_limit_unavailable", "{reply:?}");
        assert_eq!(reply.header("x-upstream-device-id"), None, "{reply:?}");
    }
}

/// An unsigned (`alg: none`) token carrying `claims`.
fn unsigned_token(claims: &Value) -> String {
    use base64ct::Base64UrlUnpadded;
    let mut claims = claims.clone();
    claims["exp"] = (unix_now() + 300).into();
    format!(
        "{}.{}.",
        Base64UrlUnpadded::encode_string(br#"{"alg":"none","typ":"JWT"}"#),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes())
    )
}

/// Issue #29: every decision in Envoy's own access log. The quickstart's access log writes one
/// JSON line a request whose `attestgate` field is the gate's record of the decision, read
/// from the filter state the filter wrote (`wasm.attestgate.record`): allowed, enforced and
/// (with the config in monitor mode) monitored denials with their policy reasons, and the
/// device, platform and app version of a verified token only. A forged or unsigned token's
/// claims never reach the line.
#[test]
fn the_access_log_carries_each_decision() {
    let dir = scratch("access-log");
    let secret = secret("quickstart");
    let good = mint_hs256(&dir, &secret, &claims("quickstart", "good.json"), 300);
    let mut rooted_claims = claims("quickstart", "rooted.json");
    rooted_claims["did"] = "rooted-device-7".into();
    let rooted = mint_hs256(&dir, &secret, &rooted_claims, 301);
    let mut claimed = claims("quickstart", "good.json");
    claimed["did"] = "claimed-by-an-attacker".into();
    claimed["att"]["app"]["version"] = "9.9.9-claimed".into();
    let forged_secret = Base64::encode_string(b"not-the-attestation-service-secret!!");
    let forged = mint_hs256(&dir, &forged_secret, &claimed, 302);
    let unsigned = unsigned_token(&claimed);

    let enforcing = std::fs::read_to_string(example("quickstart").join("envoy.yaml")).unwrap();
    let enforce_mode = r#"\"mode\":\"enforce\""#;
    assert_eq!(enforcing.matches(enforce_mode).count(), 1);
    let monitoring = enforcing.replace(enforce_mode, r#"\"mode\":\"monitor\""#);

    for (name, config) in [("enforce", &enforcing), ("monitor", &monitoring)] {
        let monitor = name == "monitor";
        let envoy = Envoy::start_with(&format!("access-log-{name}"), config);
        let statuses: Vec<u16> = [
            envoy.request("GET", "/v1/shapes?n=1", &[("approov-token", &good)]),
            envoy.request("POST", "/v1/orders", &[("approov-token", &rooted)]),
            envoy.get("/v1/shapes", Some(&forged)),
            envoy.get("/v1/shapes", Some(&unsigned)),
            // The record's fields cannot come from the client.
            envoy.request(
                "GET",
                "/v1/shapes",
                &[
                    ("x-attestgate-platform", "ios"),
                    ("x-device-id", "spoofed"),
                    ("attestgate.device", "spoofed"),
                ],
            ),
        ]
        .iter()
        .map(|reply| reply.status)
        .collect();
        let want: &[u16] = if monitor {
            &[200; 5]
        } else {
            &[200, 403, 401, 401, 401]
        };
        assert_eq!(statuses, want, "{name}");
        let lines = envoy.access_log(5);
        for line in &lines {
            assert_eq!(u64::from(line.record.status), line.status(), "{line:?}");
            for text in ["claimed-by-an-attacker", "9.9.9-claimed", "spoofed"] {
                assert!(!line.line.contains(text), "{text} in the log: {line:?}");
            }
        }
        let [allowed, policy, forged_line, unsigned_line, missing] = &lines[..] else {
            unreachable!()
        };
        let mode = if monitor { "monitor" } else { "enforce" };

        let r = &allowed.record;
        assert_eq!(
            (r.verdict.as_str(), r.allowed, r.status),
            ("allow", true, 200)
        );
        assert_eq!((r.mode.as_str(), r.reason.as_str()), (mode, "allowed"));
        assert_eq!(r.device.as_deref(), Some("demo-device-0001"), "{allowed:?}");
        assert_eq!(r.platform.as_deref(), Some("android"), "{allowed:?}");
        assert_eq!(r.app_version.as_deref(), Some("2.4.1"), "{allowed:?}");
        assert!(r.policy_reasons.is_empty(), "{allowed:?}");
        assert_eq!(allowed.fields["method"], "GET", "{allowed:?}");
        assert_eq!(allowed.fields["path"], "/v1/shapes?n=1", "{allowed:?}");

        let r = &policy.record;
        assert_eq!(r.verdict, "deny", "{policy:?}");
        assert_eq!(
            (r.allowed, r.status),
            (monitor, if monitor { 200 } else { 403 })
        );
        assert_eq!(
            (r.mode.as_str(), r.reason.as_str()),
            (mode, "policy_denied")
        );
        for reason in ["device_rooted", "hooking_detected"] {
            assert!(r.policy_reasons.iter().any(|p| p == reason), "{policy:?}");
        }
        assert_eq!(r.device.as_deref(), Some("rooted-device-7"), "{policy:?}");
        assert_eq!(policy.fields["method"], "POST", "{policy:?}");

        for (line, reason) in [
            (forged_line, "signature_invalid"),
            (unsigned_line, "alg_not_allowed"),
            (missing, "token_missing"),
        ] {
            let r = &line.record;
            assert_eq!((r.verdict.as_str(), r.reason.as_str()), ("deny", reason));
            assert_eq!(r.allowed, monitor, "{line:?}");
            assert_eq!(
                (&r.device, &r.platform, &r.app_version),
                (&None, &None, &None),
                "{line:?}"
            );
        }
        // The policy's reasons are counted by name, enforced and monitored apart.
        let counters = envoy.counters();
        let (counted, not) = if monitor {
            (
                "attestgate.monitored_policy_reason",
                "attestgate.policy_reason",
            )
        } else {
            (
                "attestgate.policy_reason",
                "attestgate.monitored_policy_reason",
            )
        };
        for reason in ["device_rooted", "hooking_detected"] {
            let name = format!("{counted}.{reason}");
            assert_eq!(counters.get(&name), Some(&1), "{name}: {counters:?}");
            let other = format!("{not}.{reason}");
            assert_eq!(counters.get(&other).copied().unwrap_or(0), 0, "{other}");
        }
    }
}

/// Issue #29: Envoy's own RBAC filter acting on the gate's verified platform
/// (envoy-examples/android-only): on `/v1/android/` an Android token passes, an iOS token is
/// refused by RBAC (403) and never reaches the upstream, whatever header the client sends to
/// claim Android; other routes take any device the gate lets through.
#[test]
fn rbac_lets_only_verified_android_devices_through() {
    let dir = scratch("android-only");
    let recorder = RecordingUpstream::start().unwrap();
    let config = std::fs::read_to_string(example("android-only").join("envoy.yaml")).unwrap();
    let endpoint = "endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}";
    assert_eq!(config.matches(endpoint).count(), 1);
    let config = config.replace(
        endpoint,
        &format!(
            "endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}",
            recorder.port()
        ),
    );
    let envoy = Envoy::start_with("android-only", &config);
    let secret = secret("android-only");
    let android = mint_hs256(&dir, &secret, &claims("android-only", "android.json"), 300);
    let ios = mint_hs256(&dir, &secret, &claims("android-only", "ios.json"), 301);
    let mut forged_claims = claims("android-only", "android.json");
    forged_claims["did"] = "forged-android".into();
    let forged = mint_hs256(
        &dir,
        &Base64::encode_string(b"not-the-attestation-service-secret!!"),
        &forged_claims,
        302,
    );
    let path = "/v1/android/offers";
    let reached = |id: &str| recorder.find("x-test-id", id).is_some();

    let ok = envoy.request(
        "GET",
        path,
        &[("approov-token", &android), ("x-test-id", "android")],
    );
    ok.assert_reached_upstream();
    let seen = recorder.find("x-test-id", "android").unwrap();
    assert_eq!(seen.values("x-device-platform"), ["android"]);

    let refused = envoy.request(
        "GET",
        path,
        &[("approov-token", &ios), ("x-test-id", "ios")],
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("RBAC"), "{refused:?}");
    assert!(!reached("ios"), "an iOS device reached {path}");

    // Another route: the iOS device is welcome.
    envoy
        .request("GET", "/v1/shapes", &[("approov-token", &ios)])
        .assert_reached_upstream();

    // The access log says who refused: the gate allowed the iOS device, RBAC answered 403.
    let lines = envoy.access_log(3);
    let rbac = &lines[1];
    assert_eq!(rbac.status(), 403, "{rbac:?}");
    assert_eq!(rbac.record.verdict, "allow", "{rbac:?}");
    assert_eq!(rbac.record.platform.as_deref(), Some("ios"), "{rbac:?}");

    // No header makes an iOS device Android: the platform is the token's verified claim.
    let mut spoofs: Vec<(String, String)> = Vec::new();
    for name in [
        "x-attestgate-platform",
        "x-device-platform",
        "attestgate-platform",
        "wasm-attestgate-platform",
    ] {
        spoofs.extend(spellings(name).into_iter().map(|n| (n, "android".into())));
    }
    for name in ["attestgate.platform", "wasm.attestgate.platform"] {
        spoofs.push((name.into(), "android".into()));
    }
    spoofs.push((
        "x-attestgate-record".into(),
        r#"{"verdict":"allow","platform":"android"}"#.into(),
    ));
    for (n, (name, value)) in spoofs.iter().enumerate() {
        let id = format!("spoof-{n}");
        let reply = envoy.request(
            "GET",
            path,
            &[("approov-token", &ios), (name, value), ("x-test-id", &id)],
        );
        // 403 from RBAC, or 400 from Envoy for a name with `_` (headers_with_underscores).
        let want = if name.contains('_') { 400 } else { 403 };
        assert_eq!(reply.status, want, "{name}: {reply:?}");
        assert!(!reached(&id), "{name}: {value} got an iOS device through");
    }
    // A refused token never gets to RBAC, a forged Android claim included.
    envoy
        .request("GET", path, &[("x-attestgate-platform", "android")])
        .assert_denied(401, "token_missing");
    envoy
        .get(path, Some(&forged))
        .assert_denied(401, "signature_invalid");
    assert_eq!(recorder.count(), 2, "{:#?}", recorder.requests());
}

/// docs/rollout.md end to end, as `make rollout` runs it (scripts/rollout.sh): the quickstart
/// in monitor mode in real Envoy, wrk's mix of good and bad devices (scripts/rollout/tokens.py),
/// `attestgate report` over Envoy's access log, then the same traffic enforced. The report's
/// numbers are held to what wrk saw (non-2xx answers) and to the access log read here.
#[test]
fn the_rollout_path_monitor_report_enforce_runs_in_real_envoy() {
    let dir = scratch("rollout");
    let out = Command::new(root().join("scripts/rollout.sh"))
        .env("ROLLOUT_SECONDS", "3")
        .env("ROLLOUT_DIR", &dir.0)
        .env("ATTESTGATE_CLI", env!("CARGO_BIN_EXE_attestgate"))
        .env("ROLLOUT_WASM", wasm())
        .env("ENVOY", envoy_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rollout.sh failed:\n{stderr}");
    let json = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.0.join(file)).unwrap()).unwrap()
    };
    let names = |rows: &Value| -> Vec<String> {
        let mut names: Vec<String> = rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("(none)").to_owned())
            .collect();
        names.sort();
        names
    };
    for mode in ["monitor", "enforce"] {
        let report = json(&format!("{mode}-report.json"));
        let wrk = json(&format!("{mode}-wrk.json"));
        let would_deny = &report["would_deny"];
        let denied = would_deny["requests"].as_u64().unwrap();
        let requests = report["requests"].as_u64().unwrap();
        assert_eq!(
            report["lines"]["read"], report["lines"]["decisions"],
            "{mode}: skipped lines"
        );
        // Every request wrk finished was decided and logged, and no other (the last few may
        // still have been in flight when wrk stopped counting).
        let (finished, sent) = (
            wrk["requests"].as_u64().unwrap(),
            wrk["sent"].as_u64().unwrap(),
        );
        assert!(
            (finished..=sent).contains(&requests),
            "{mode}: {requests} logged, wrk {finished}..{sent}"
        );
        // A sixth of the fleet is bad, but Zipf favours low device numbers (the bad ones are
        // 14..19 of every 20): between a tenth and a third of the requests.
        assert!(
            denied * 10 > requests && denied * 3 < requests,
            "{mode}: {denied} of {requests}"
        );
        assert_eq!(
            names(&report["by_policy_reason"]),
            ["app_version_too_old", "device_rooted", "emulator"],
            "{mode}"
        );
        assert_eq!(
            names(&report["by_reason"])
                .into_iter()
                .filter(|r| r != "allowed")
                .collect::<Vec<_>>(),
            ["policy_denied", "signature_invalid", "token_expired"],
            "{mode}"
        );
        let refused_by_envoy = wrk["errors"]["status"].as_u64().unwrap();
        if mode == "monitor" {
            assert_eq!(
                (
                    would_deny["monitored"].as_u64(),
                    would_deny["refused"].as_u64()
                ),
                (Some(denied), Some(0))
            );
            assert_eq!(refused_by_envoy, 0, "monitor mode refused requests");
        } else {
            assert_eq!(
                (
                    would_deny["refused"].as_u64(),
                    would_deny["monitored"].as_u64()
                ),
                (Some(denied), Some(0))
            );
            // Requests still in flight when wrk stopped counting were decided and logged
            // but not counted by wrk: only they may differ.
            let in_flight = requests - finished;
            assert!(
                refused_by_envoy <= denied && denied - refused_by_envoy <= in_flight,
                "what the report says enforcement denies ({denied}) is what wrk got \
                 ({refused_by_envoy}), but for the {in_flight} requests in flight"
            );
        }
        // The access log read here, independently of the report.
        let log = std::fs::read_to_string(dir.0.join(format!("{mode}-access.log"))).unwrap();
        let mut devices = std::collections::BTreeSet::new();
        let mut counted = 0;
        for line in log.lines() {
            let line: Value = serde_json::from_str(line).unwrap();
            let record: attestgate_policy::record::DecisionRecord<String> =
                serde_json::from_str(line["attestgate"].as_str().unwrap()).unwrap();
            assert_eq!(record.mode, mode);
            if record.would_deny() {
                counted += 1;
                devices.extend(record.device.clone());
                // Forged and expired tokens vouch for no device.
                if matches!(
                    record.reason.as_str(),
                    "signature_invalid" | "token_expired"
                ) {
                    assert_eq!(record.device, None, "{record:?}");
                }
            }
        }
        assert_eq!(counted, denied, "{mode}");
        assert_eq!(
            would_deny["devices"]["count"].as_u64(),
            Some(devices.len() as u64)
        );
        // The bad devices with a verified id: rooted, outdated, emulators (40 of 200).
        assert!(
            devices.len() <= 40
                && devices.iter().all(|d| {
                    let n: u32 = d.trim_start_matches("rollout-device-").parse().unwrap();
                    matches!(n % 20, 14 | 15 | 16 | 19)
                }),
            "{devices:?}"
        );
        let page = std::fs::read_to_string(dir.0.join(format!("{mode}-report.html"))).unwrap();
        assert!(page.contains("device_rooted"));
        let table = std::fs::read_to_string(dir.0.join(format!("{mode}-report.txt"))).unwrap();
        assert!(table.contains("would be denied"), "{table}");
    }
}

/// Issue #28: Envoy's own `verify_signature` (BoringSSL) on Wycheproof's ECDSA P-256 and RSA
/// PKCS#1 v1.5 vectors, with the arguments exactly as the filter encodes them
/// (`attestgate_filter::crypto::encode`): a small proxy-wasm module (testkit's
/// `verify_signature_probe.wat`) hands Envoy every vector at configure and logs the verdicts,
/// which must be Wycheproof's (and the built-in verifier's, and the harness's stand-in's).
#[test]
fn envoys_verify_signature_gives_every_wycheproof_verdict() {
    use attestgate_testkit::wycheproof;
    let vectors = wycheproof::vectors().unwrap();
    let (config, want) =
        wycheproof::probe_config(&vectors, attestgate_filter::crypto::encode).unwrap();
    let dir = scratch("wycheproof-probe");
    let module = dir.0.join("verify_signature_probe.wasm");
    std::fs::write(
        &module,
        wat::parse_str(wycheproof::VERIFY_SIGNATURE_PROBE_WAT).unwrap(),
    )
    .unwrap();
    let template = std::fs::read_to_string(root().join("envoy-examples/envoy.yaml.in")).unwrap();
    assert!(template.contains("filename: build/attestgate.wasm"));
    let yaml = template
        .replace(
            "filename: build/attestgate.wasm",
            &format!("filename: {}", module.display()),
        )
        .replace("{{ATTESTGATE_CONFIG}}", &format!("\"{config}\""));
    let envoy = Envoy::start_with("wycheproof-probe", &yaml);
    let mut line = String::new();
    eventually(30, "the probe's answer line", || {
        line = envoy
            .log()
            .lines()
            .find_map(|l| {
                l.find("verify_signature: ")
                    .map(|at| l[at..].trim_end().to_owned())
            })
            .unwrap_or_default();
        !line.is_empty()
    });
    let differ = wycheproof::differences(&vectors, &line, &want);
    assert!(
        differ.is_empty(),
        "{} of {} differ: {differ:?}",
        differ.len(),
        vectors.len()
    );
}
