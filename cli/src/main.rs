//! `attestgate`: evaluate tokens and policies offline, mint test tokens, generate keys.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use attestgate_policy::plan::decision_log_line;
use attestgate_policy::signature::{AccountKey, SignOptions};
use attestgate_policy::verifier::NativeVerifier;
use attestgate_policy::{Config, Decision, Gate, Request};
use attestgate_testkit::{claims_with_expiry, ApproovSigner, InstallSigner, SigningKey};
use clap::{Parser, Subcommand, ValueEnum};

use attestgate_testkit::keygen;

mod report;

/// Mobile-app attestation gate: check tokens against a gate config, mint tokens, make keys.
#[derive(Debug, Parser)]
#[command(name = "attestgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide one request as the gateway filter would; prints the decision as JSON.
    /// Exit code: 0 allowed, 1 denied, 2 usage or config error.
    Check(CheckArgs),
    /// Sign claims into a token with a private JWK or an Approov-style base64 secret.
    Mint(MintArgs),
    /// Sign a request with an app install's key and/or the account key (RFC 9421), as the
    /// app would; prints the headers to add (`Content-Digest`, `Signature-Input`, `Signature`), one per line.
    Sign(SignArgs),
    /// Generate a private JWK and print it with its public JWKS.
    Keygen(KeygenArgs),
    /// Run the Rego `test_` rules of every .rego file under the given paths, like `opa test`.
    /// Exit code: 0 all passed, 1 some failed, 2 no tests or a policy that does not load.
    Test(TestArgs),
    /// Evaluate a Rego query on an input, like `opa eval`; prints OPA-style JSON results.
    Eval(EvalArgs),
    /// Print a config as the filter takes it: one JSON document, Rego modules inlined.
    /// With --envoy-template, print the template with `{{ATTESTGATE_CONFIG}}` replaced.
    Render(RenderArgs),
    /// Print the JSON Schema (Draft 4) of the config the filter takes, generated from the
    /// config model. With --kong, print it as Kong's `attestgate.meta.json`.
    Schema(SchemaArgs),
    /// Read decision log lines (the hosts' access logs) and report what enforcing would deny:
    /// by reason, app version, platform and device, over time. A table, `--json`, or `--html FILE`.
    Report(report::Args),
}

#[derive(Debug, clap::Args)]
struct SchemaArgs {
    /// Wrap the schema as the filter metadata Kong reads (`{"config_schema": …}`).
    #[arg(long)]
    kong: bool,
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Files or directories (searched recursively for .rego files).
    #[arg(default_value = "policies")]
    paths: Vec<PathBuf>,
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Rego files to load; repeatable.
    #[arg(long = "policy", required = true)]
    policies: Vec<PathBuf>,
    /// The input document: inline JSON, or a JSON file (`-` for stdin).
    #[arg(long, conflicts_with = "inputs")]
    input: Option<String>,
    /// Many inputs: a file (`-` for stdin) of one JSON input a line. Prints one line for
    /// each: `{"bindings": {..}}` of the query's first result, `{"undefined": true}`, or
    /// `{"error": ".."}` (for differential runs against another engine, like scripts/opa).
    #[arg(long)]
    inputs: Option<PathBuf>,
    /// Data merged under `data`: inline JSON, or a JSON file.
    #[arg(long)]
    data: Option<String>,
    /// The query.
    #[arg(long, default_value = "data.attestgate.decision")]
    query: String,
}

#[derive(Debug, clap::Args)]
struct RenderArgs {
    /// Gate config, JSON or YAML (by extension).
    #[arg(long)]
    config: PathBuf,
    /// An Envoy config template holding `{{ATTESTGATE_CONFIG}}` where the plugin
    /// configuration's string value goes.
    #[arg(long)]
    envoy_template: Option<PathBuf>,
    /// The host the config is for (envoy, kong-wasm, native, js, worker, cli): a config that
    /// needs what that host lacks (fetching, shared state, a verifier's record, ...) is refused,
    /// as that host refuses it at load.
    #[arg(long = "for", value_name = "HOST", default_value = "envoy")]
    for_host: String,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Gate config, JSON or YAML (by extension).
    #[arg(long)]
    config: PathBuf,
    /// The token; placed in the configured header with its prefix.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// File holding the token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    request: RequestArgs,
    /// Client address.
    #[arg(long)]
    source_ip: Option<String>,
    /// The request body, from a file (for request signatures that cover `content-digest`).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Evaluation time, unix seconds (default: now).
    #[arg(long, allow_hyphen_values = true)]
    now: Option<i64>,
    /// Pretty-print the JSON.
    #[arg(long)]
    pretty: bool,
    /// Run the check through this built filter (`build/attestgate.wasm`) in the wasmtime
    /// harness instead of the native core; prints the decision the filter made.
    #[arg(long, value_name = "FILTER.wasm")]
    wasm: Option<PathBuf>,
    /// The gateway the harness behaves like, with --wasm.
    #[arg(long, value_enum, default_value = "envoy", requires = "wasm")]
    profile: ProfileArg,
    /// Load the config as this host does (envoy, kong-wasm, native, js, worker, cli), refusing
    /// what it cannot carry out. The decision is still made here, offline: nothing fetched, no
    /// rate-limit buckets. Default: the CLI itself, which has neither.
    #[arg(
        long = "for",
        value_name = "HOST",
        default_value = "cli",
        conflicts_with = "wasm"
    )]
    for_host: String,
}

/// The request `check` decides and `sign` signs.
#[derive(Debug, clap::Args)]
struct RequestArgs {
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path, with query if any.
    #[arg(long, default_value = "/")]
    path: String,
    /// Request host (`:authority`, what `@authority` and `@target-uri` sign).
    #[arg(long, default_value = "localhost")]
    host: String,
    /// A request header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileArg {
    Envoy,
    Kong,
}

#[derive(Debug, clap::Args)]
struct MintArgs {
    /// Private JWK file (as printed by `attestgate keygen`).
    #[arg(long, required_unless_present = "secret")]
    key: Option<PathBuf>,
    /// Approov-style base64 HS256 secret instead of a JWK.
    #[arg(long, conflicts_with = "key")]
    secret: Option<String>,
    /// Claims: a JSON object file (`-` for stdin).
    #[arg(long)]
    claims: PathBuf,
    /// Key id for the header (default: the JWK's `kid`).
    #[arg(long)]
    kid: Option<String>,
    /// Set `exp` this many seconds from now (and `iat` to now if absent).
    #[arg(long, allow_hyphen_values = true)]
    exp_in: Option<i64>,
    /// Time to mint at, unix seconds (default: now).
    #[arg(long, allow_hyphen_values = true)]
    now: Option<i64>,
    /// An app install's private EC P-256 JWK (`attestgate keygen --alg ES256`): its public
    /// half goes into the `ipk` claim, for request signatures (see `attestgate sign`).
    #[arg(long)]
    install_key: Option<PathBuf>,
    /// Mint this many distinct tokens, one per line: each gets its own `jti` (`0`, `1`, …),
    /// for load tests that need a fresh token per request.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The install's private EC P-256 JWK (the one whose public half is the token's `ipk`):
    /// an `install` signature (`ecdsa-p256-sha256`).
    #[arg(long, required_unless_present = "account_secret")]
    install_key: Option<PathBuf>,
    /// The account message-signing key (base64): an `account` signature (`hmac-sha256`).
    /// With `--install-key` too, both members go in one `Signature-Input` / `Signature` pair,
    /// as Approov's SDK sends them.
    #[arg(long)]
    account_secret: Option<String>,
    /// Cover what Approov's SDK covers by default (@method, @target-uri, approov-token, the
    /// Approov trace and status headers, authorization, content-length and content-type when
    /// present, content-digest with a body) and set `expires` 15 s after `created`.
    #[arg(long, conflicts_with_all = ["components", "expires_in"])]
    approov: bool,
    #[command(flatten)]
    request: RequestArgs,
    /// The body, from a file (`-` for stdin).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// A component to cover; repeatable (default: @method @target-uri content-digest).
    #[arg(long = "component")]
    components: Vec<String>,
    /// `expires`, this many seconds after `created`.
    #[arg(long)]
    expires_in: Option<i64>,
    /// `created`, unix seconds (default: now).
    #[arg(long, allow_hyphen_values = true)]
    now: Option<i64>,
    /// A `keyid` parameter (informational: the gate takes the key from the token or config).
    #[arg(long)]
    keyid: Option<String>,
    /// Add the `alg` parameter (`ecdsa-p256-sha256` / `hmac-sha256`).
    #[arg(long)]
    alg: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyAlg {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "PS256")]
    Ps256,
    #[value(name = "EdDSA")]
    EdDsa,
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Algorithm the key is pinned to.
    #[arg(long, value_enum)]
    alg: KeyAlg,
    /// Key id (default: the RFC 7638 thumbprint).
    #[arg(long)]
    kid: Option<String>,
    /// Write the private JWK here and the public JWKS to `<FILE>.pub.json` instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Check(args) => check(&args),
        Command::Mint(args) => mint(&args).map(|()| ExitCode::SUCCESS),
        Command::Sign(args) => sign(&args).map(|()| ExitCode::SUCCESS),
        Command::Keygen(args) => keygen_cmd(&args).map(|()| ExitCode::SUCCESS),
        Command::Render(args) => render(&args).map(|()| ExitCode::SUCCESS),
        Command::Test(args) => rego_test(&args),
        Command::Eval(args) => eval(&args).map(|()| ExitCode::SUCCESS),
        Command::Schema(args) => schema(&args).map(|()| ExitCode::SUCCESS),
        Command::Report(args) => report::run(&args).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|err| {
        eprintln!("attestgate: {err:#}");
        ExitCode::from(2)
    })
}

fn check(args: &CheckArgs) -> Result<ExitCode> {
    let config = load_config(&args.config)?;
    let mut headers = Vec::new();
    for header in &args.request.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header `{header}` is not `Name: value`"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.trim().to_owned()),
        (None, Some(file)) => Some(read_text(file)?.trim().to_owned()),
        (None, None) => None,
    };
    if let Some(token) = token {
        let value = format!("{}{token}", config.token.prefix.as_deref().unwrap_or(""));
        headers.push((config.token.header.clone(), value));
    }
    let now = args.now.unwrap_or_else(unix_now);
    let body = match &args.body_file {
        Some(file) => Some(read_bytes(file)?),
        None => None,
    };
    let decision = match &args.wasm {
        None => {
            let mut gate =
                Gate::for_host(config, host(&args.for_host)?).context("loading the gate config")?;
            // As the native library: ring checks ES256 and RS* signatures.
            gate.use_host_verifier(Box::new(NativeVerifier));
            // Said when a policy is not all compiled: which construct kept it interpreted.
            if let Some(policy) = gate.policy_summary().filter(|_| gate.policy_interpreted()) {
                eprintln!("{policy}");
            }
            let mut request = Request::new(&args.request.method, &args.request.path)
                .with_host(&args.request.host);
            if let Some(ip) = &args.source_ip {
                request = request.with_source_ip(ip);
            }
            for (name, value) in headers {
                request = request.with_header(name, value);
            }
            if let Some(body) = body {
                request = request.with_body(body);
            }
            let decision = gate.check(&request, now);
            // The decision log, as the filter writes it (sampled by the request's
            // x-request-id, masked): to stderr, beside the decision printed on stdout.
            let sample_key = request.header_values("x-request-id").next().unwrap_or("");
            if let Some(line) = decision_log_line(gate.config(), &decision, sample_key) {
                eprintln!("attestgate decision log: {line}");
            }
            decision
        }
        Some(wasm) => check_in_filter(args, wasm, config, headers, body, now)?,
    };
    // Printed from the struct, so members keep their documented order on both paths.
    let text = if args.pretty {
        serde_json::to_string_pretty(&decision)?
    } else {
        serde_json::to_string(&decision)?
    };
    emit(format_args!("{text}"))?;
    Ok(if decision.allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Without the `wasm` feature there is no harness to run the filter in.
#[cfg(not(feature = "wasm"))]
fn check_in_filter(
    _args: &CheckArgs,
    wasm: &Path,
    _config: Config,
    _headers: Vec<(String, String)>,
    _body: Option<Vec<u8>>,
    _now: i64,
) -> Result<Decision> {
    bail!(
        "this attestgate was built without `check --wasm` (cannot run {}): build it with \
         `cargo install --path cli --features wasm`",
        wasm.display()
    )
}

/// Runs one request through the built filter in the harness. The filter is asked to log its
/// decision (`log_decisions`), so the JSON printed is the one it made, not a reconstruction;
/// what the filter did with the request must agree with it.
#[cfg(feature = "wasm")]
fn check_in_filter(
    args: &CheckArgs,
    wasm: &Path,
    mut config: Config,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    now: i64,
) -> Result<Decision> {
    use attestgate_filter::DECISION_LOG_PREFIX;
    use attestgate_harness::host::{Host, HostOptions, HttpRequest, Profile};
    let profile = match args.profile {
        ProfileArg::Envoy => Profile::Envoy,
        ProfileArg::Kong => Profile::Kong,
    };
    // The whole decision, whatever the config samples or masks: it is what is printed.
    config.log_decisions = true;
    config.decision_log = None;
    let host = Host::from_file(wasm, HostOptions::new(profile))?;
    let mut vm = host
        .vm(serde_json::to_string(&config)?.as_bytes())
        .now(now)
        .start()?;
    let mut request =
        HttpRequest::new(&args.request.method, &args.request.path).authority(&args.request.host);
    request.source_address = args.source_ip.as_ref().map(|ip| format!("{ip}:0"));
    request.headers = headers;
    request.body = body.unwrap_or_default();
    let outcome = vm.send(&request)?;
    let line = outcome
        .logs
        .iter()
        .find_map(|line| line.message.strip_prefix(DECISION_LOG_PREFIX))
        .context("the filter logged no decision")?;
    let decision: Decision =
        serde_json::from_str(line).context("the filter's decision line is not a decision")?;
    let allow = decision.allow;
    if allow != outcome.reached_upstream() {
        bail!(
            "the filter decided allow={allow} but the request {} the upstream",
            if outcome.reached_upstream() {
                "reached"
            } else {
                "did not reach"
            }
        );
    }
    Ok(decision)
}

/// Reads a config as JSON or YAML, resolving `policy.module_files` relative to the file.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = read_text(path)?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let mut config: Config = if yaml {
        serde_yaml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
    } else {
        serde_json::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?
    };
    if let Some(policy) = &mut config.policy {
        let base = path.parent().unwrap_or(Path::new("."));
        for file in std::mem::take(&mut policy.module_files) {
            let full = base.join(&file);
            let source = read_text(&full)?;
            let name = Path::new(&file)
                .file_name()
                .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
            if policy.modules.insert(name.clone(), source).is_some() {
                bail!("policy module `{name}` is given twice");
            }
        }
    }
    Ok(config)
}

fn mint(args: &MintArgs) -> Result<()> {
    let key = match (&args.key, &args.secret) {
        (Some(path), _) => {
            let jwk: serde_json::Value = serde_json::from_str(&read_text(path)?)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            SigningKey::from_jwk(&jwk)?
        }
        (None, Some(secret)) => SigningKey::hs256_from_base64_secret(secret)?,
        (None, None) => bail!("give --key or --secret"),
    };
    let key = match &args.kid {
        Some(kid) => key.with_kid(Some(kid.clone())),
        None => key,
    };
    let claims: serde_json::Value = serde_json::from_str(&read_text(&args.claims)?)
        .with_context(|| format!("{} is not JSON", args.claims.display()))?;
    let serde_json::Value::Object(claims) = claims else {
        bail!("claims must be a JSON object");
    };
    let mut claims = claims_with_expiry(claims, args.now.unwrap_or_else(unix_now), args.exp_in);
    if let Some(path) = &args.install_key {
        claims.insert("ipk".to_owned(), install_signer(path)?.ipk().into());
    }
    // Written, not printed: a reader that closes the pipe early (`| head`) ends the command
    // with an error instead of a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.count == 1 {
        writeln!(out, "{}", key.sign(&claims)?)?;
    } else {
        for jti in 0..args.count {
            claims.insert("jti".to_owned(), jti.to_string().into());
            writeln!(out, "{}", key.sign(&claims)?)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn install_signer(path: &Path) -> Result<InstallSigner> {
    let jwk: serde_json::Value = serde_json::from_str(&read_text(path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    InstallSigner::from_jwk(&jwk).with_context(|| format!("install key {}", path.display()))
}

fn sign(args: &SignArgs) -> Result<()> {
    let signer = ApproovSigner {
        install: args
            .install_key
            .as_deref()
            .map(install_signer)
            .transpose()?,
        account: args
            .account_secret
            .as_deref()
            .map(AccountKey::from_base64)
            .transpose()
            .context("--account-secret")?,
    };
    let mut request =
        Request::new(&args.request.method, &args.request.path).with_host(&args.request.host);
    for header in &args.request.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header `{header}` is not `Name: value`"))?;
        request = request.with_header(name.trim(), value.trim());
    }
    if let Some(file) = &args.body_file {
        let body = if file == Path::new("-") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .context("reading stdin")?;
            bytes
        } else {
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
        };
        request = request.with_body(body);
    }
    let created = args.now.unwrap_or_else(unix_now);
    let before = request.headers.len();
    let mut options = if args.approov {
        attestgate_testkit::approov_options(&request, created)
    } else {
        let components = if args.components.is_empty() {
            vec![
                "@method".to_owned(),
                "@target-uri".to_owned(),
                "content-digest".to_owned(),
            ]
        } else {
            args.components.clone()
        };
        let mut options = SignOptions::new(components, created);
        options.expires = args.expires_in.map(|seconds| created + seconds);
        options
    };
    options.keyid = args.keyid.clone();
    options.alg = args.alg;
    let signed = signer.sign_request_with(request, &options)?;
    for (name, value) in signed.headers.iter().skip(before) {
        emit(format_args!("{name}: {value}"))?;
    }
    Ok(())
}

fn keygen_cmd(args: &KeygenArgs) -> Result<()> {
    let alg = match args.alg {
        KeyAlg::Hs256 => "HS256",
        KeyAlg::Es256 => "ES256",
        KeyAlg::Rs256 => "RS256",
        KeyAlg::Ps256 => "PS256",
        KeyAlg::EdDsa => "EdDSA",
    };
    let key = keygen::keygen(alg, args.kid.as_deref())?;
    let private = serde_json::to_string_pretty(&key.private_jwk)?;
    let public = serde_json::to_string_pretty(&key.public_jwks)?;
    match &args.out {
        Some(path) => {
            write_private(path, &(private + "\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            let public_path = path.with_extension("pub.json");
            // An HMAC "public" JWKS holds the secret itself.
            let written = if alg.starts_with("HS") {
                write_private(&public_path, &(public + "\n"))
            } else {
                std::fs::write(&public_path, public + "\n")
            };
            written.with_context(|| format!("writing {}", public_path.display()))?;
        }
        None => emit(format_args!(
            "{}",
            serde_json::json!({ "private_jwk": key.private_jwk, "public_jwks": key.public_jwks })
        ))?,
    }
    Ok(())
}

fn rego_test(args: &TestArgs) -> Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_rego_files(path, &mut files)?;
    }
    files.sort();
    let modules = files
        .iter()
        .map(|file| Ok((file.display().to_string(), read_text(file)?)))
        .collect::<Result<Vec<_>>>()?;
    let results = attestgate_policy::run_rego_tests(&modules)?;
    // Decisions that may differ in OPA: said, not failed (the tests decide here).
    for (file, source) in &modules {
        for found in attestgate_policy::undefined_under_not(source) {
            eprintln!(
                "warning: {file}:{}: `{}` is an argument of a call under `not`: when it is \
                 undefined OPA lifts it out of the `not` and decides otherwise; pass a defined \
                 value (object.get(..., default))",
                found.line, found.reference
            );
        }
    }
    if results.is_empty() {
        bail!("no test_ rules found in {} file(s)", files.len());
    }
    for test in &results {
        if let Some(why) = &test.interpreted_only {
            eprintln!(
                "note: {} ran on the interpreter alone, without a plan ({why})",
                test.name
            );
        }
    }
    let failed = results.iter().filter(|t| !t.passed).count();
    for test in &results {
        match (&test.error, test.passed) {
            (_, true) if args.quiet => {}
            (_, true) => emit(format_args!("PASS {}", test.name))?,
            (Some(error), false) => emit(format_args!("ERROR {}: {error}", test.name))?,
            (None, false) => emit(format_args!("FAIL {}", test.name))?,
        }
    }
    emit(format_args!(
        "{} passed, {failed} failed",
        results.len() - failed
    ))?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn collect_rego_files(path: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let entries =
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
        for entry in entries {
            collect_rego_files(&entry?.path(), files)?;
        }
    } else if path.extension().is_some_and(|e| e == "rego") {
        files.push(path.to_owned());
    } else if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let mut engine = regorus::Engine::new();
    for file in &args.policies {
        engine
            .add_policy(file.display().to_string(), read_text(file)?)
            .with_context(|| format!("loading {}", file.display()))?;
    }
    if let Some(data) = &args.data {
        engine.add_data(json_argument(data)?.into())?;
    }
    if let Some(inputs) = &args.inputs {
        return eval_each(&engine, &args.query, &read_text(inputs)?);
    }
    if let Some(input) = &args.input {
        engine.set_input(json_argument(input)?.into());
    }
    let results = engine.eval_query(args.query.clone(), false)?;
    emit(format_args!("{}", serde_json::to_string_pretty(&results)?))?;
    Ok(())
}

/// `eval --inputs`: the query on each line's input, one answer line each.
fn eval_each(engine: &regorus::Engine, query: &str, lines: &str) -> Result<()> {
    for (number, line) in lines.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let input: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("input line {} is not JSON", number + 1))?;
        let mut engine = engine.clone();
        engine.set_input(input.into());
        let answer = match engine.eval_query(query.to_owned(), false) {
            Ok(results) => match results.result.first() {
                Some(first) => serde_json::json!({"bindings": first.bindings}),
                None => serde_json::json!({"undefined": true}),
            },
            Err(err) => serde_json::json!({"error": err.to_string()}),
        };
        emit(format_args!("{answer}"))?;
    }
    Ok(())
}

/// Inline JSON, or the name of a JSON file (`-` for stdin).
fn json_argument(text: &str) -> Result<serde_json::Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Ok(value);
    }
    let contents = read_text(Path::new(text))?;
    serde_json::from_str(&contents).with_context(|| format!("{text} is not JSON"))
}

/// A `--for` value.
fn host(name: &str) -> Result<attestgate_policy::capability::Host> {
    Ok(name.parse()?)
}

fn schema(args: &SchemaArgs) -> Result<()> {
    let schema = attestgate_policy::config_schema();
    let document = if args.kong {
        serde_json::json!({ "config_schema": schema })
    } else {
        schema
    };
    emit(format_args!("{}", serde_json::to_string_pretty(&document)?))
}

fn render(args: &RenderArgs) -> Result<()> {
    let config = load_config(&args.config)?;
    // Render only what would load: a broken example must not reach Envoy (or the host named).
    let gate =
        Gate::for_host(config.clone(), host(&args.for_host)?).context("loading the gate config")?;
    if let Some(policy) = gate.policy_summary().filter(|_| gate.policy_interpreted()) {
        eprintln!("{policy}");
    }
    let json = serde_json::to_string(&config)?;
    match &args.envoy_template {
        None => emit(format_args!("{json}"))?,
        Some(template) => {
            let template = read_text(template)?;
            if !template.contains(CONFIG_PLACEHOLDER) {
                bail!("the template has no {CONFIG_PLACEHOLDER}");
            }
            // A JSON string literal is also a valid YAML double-quoted scalar.
            let literal = serde_json::to_string(&json)?;
            print!("{}", template.replace(CONFIG_PLACEHOLDER, &literal));
        }
    }
    Ok(())
}

const CONFIG_PLACEHOLDER: &str = "{{ATTESTGATE_CONFIG}}";

/// Private keys are written readable by their owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// A file's bytes (`-` for stdin).
fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading stdin")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin()).context("reading stdin");
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Writes a line to stdout; a closed pipe (`attestgate eval | head`) ends the command with an
/// error instead of a panic.
fn emit(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")
}
