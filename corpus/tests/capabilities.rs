//! Every field of the config model x every host: enforced (shown by a corpus case or a test in
//! that host, `corpus/capabilities.yaml`), refused at load (the core's capability model,
//! policy-engine/src/capability.rs), or of no effect (a speed-up the host does without). A
//! field in neither list fails. The same data generates docs/capabilities.md and README.md's
//! "Where it runs" table (its rows' text from corpus/targets.yaml, what each refuses at load
//! from the model); `ATTESTGATE_BLESS=1` (`make capabilities`) rewrites them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use attestgate_corpus::{Materialized, Runner};
use attestgate_policy::capability::{Capability, Host, NEEDS};
use attestgate_policy::Gate;
use serde::Deserialize;
use serde_json::{json, Value};

const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const README_BEGIN: &str =
    "<!-- BEGIN generated: where it runs (make capabilities; corpus/targets.yaml, corpus/tests/capabilities.rs) -->";
const README_END: &str = "<!-- END generated -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One entry of corpus/capabilities.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    fields: Vec<String>,
    #[serde(default)]
    corpus: Option<String>,
    #[serde(default)]
    corpus_default: Vec<String>,
    #[serde(default)]
    tests: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    refused_by_core: bool,
}

/// One row of corpus/targets.yaml: README's "Where it runs".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    target: String,
    hosts: Vec<String>,
    status: String,
}

/// What a host does with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    /// Shown by these (corpus cases, tests).
    Enforced(Vec<String>),
    /// Refused at load: it needs this capability.
    Refused(Capability),
    /// Refused at load by the core in every gateway host (read only by the CLI).
    RefusedByCore,
    /// The host lacks this capability, which only speeds things up.
    NoEffect(Capability),
}

/// Every leaf field of the schema, as `a.b`, `rules[].c`. `keys.keys` (JWKs, JOSE's members),
/// `policy.modules` and `policy.data` (free-form) are leaves.
fn schema_fields() -> Vec<String> {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if path == "keys.keys" || path == "policy.data" || path == "policy.modules" {
            out.push(path.to_owned());
            return;
        }
        let is_array = node["type"] == "array"
            || node["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "array"));
        if is_array && node["items"]["properties"].is_object() {
            return walk(&node["items"], &format!("{path}[]"), out);
        }
        if let Some(props) = node["properties"].as_object() {
            for (name, child) in props {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(child, &child_path, out);
            }
            return;
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alternatives) = node[key].as_array() {
                if let Some(object) = alternatives
                    .iter()
                    .find(|alt| alt["properties"].is_object())
                {
                    return walk(object, path, out);
                }
            }
        }
        out.push(path.to_owned());
    }
    let mut out = Vec::new();
    walk(&attestgate_policy::config_schema(), "", &mut out);
    out
}

/// The runners whose cases show a field enforced in `host`.
fn runners_of(host: Host) -> &'static [Runner] {
    match host {
        Host::Envoy => &[Runner::Envoy, Runner::Harness],
        Host::KongWasm => &[Runner::Harness],
        Host::Native => &[Runner::Nginx],
        Host::Js => &[Runner::Js],
        Host::Worker => &[Runner::Workerd],
        // `attestgate check` is `Gate::check` on the loaded config: the native runner.
        _ => &[Runner::Native],
    }
}

/// Whether `config` sets the schema path `field` (`rules[].path`: some rule sets `path`).
fn sets(config: &Value, field: &str) -> bool {
    fn at(value: &Value, parts: &[&str]) -> bool {
        let Some((first, rest)) = parts.split_first() else {
            return !value.is_null();
        };
        match first.strip_suffix("[]") {
            Some(name) => value[name]
                .as_array()
                .is_some_and(|items| items.iter().any(|item| at(item, rest))),
            None => at(&value[*first], rest),
        }
    }
    at(config, &field.split('.').collect::<Vec<_>>())
}

/// A config that uses `need_field` and is otherwise good (for the refusal check).
fn sample(need_field: &str) -> Value {
    let remote = json!({"upstream": "u:1", "authority": "a.example", "path": "/x"});
    let mut config = json!({"keys": {"approov_secret": SECRET}});
    match need_field {
        "keys.remote" => config = json!({"keys": {"remote": remote}}),
        "denylist.remote" => config["denylist"] = json!({"remote": remote}),
        "rules[].rate_limit" => {
            config["rules"] = json!([{"rate_limit": {"requests": 1, "per_seconds": 600}}])
        }
        "host_verification" => config = json!({"host_verification": {"payload_in_metadata": "p"}}),
        "signature" => config["signature"] = json!({"mode": "optional"}),
        "rules[].signature" => config["rules"] = json!([{"signature": {"mode": "required"}}]),
        "log_decisions" => config["log_decisions"] = json!(true),
        "decision_log" => {
            config["log_decisions"] = json!(true);
            config["decision_log"] = json!({"sample_rate": 0.5, "mask": ["claims.did"]});
        }
        "record_fields" => config["record_fields"] = json!(["platform"]),
        "cache" => config["cache"] = json!({"entries": 10}),
        "forward" => config["forward"] = json!(true),
        other => panic!("no sample config for the need `{other}`: add one here"),
    }
    config
}

/// Whether a test named `name` is in `file`: a Rust `fn name(` or a JS test title.
fn has_test(file: &str, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(root().join(file)) else {
        return false;
    };
    if file.ends_with(".rs") {
        text.contains(&format!("fn {name}("))
    } else {
        text.contains(&format!("test(\"{name}")) || text.contains(&format!("test(`{name}"))
    }
}

struct Matrix {
    fields: Vec<String>,
    cells: BTreeMap<(String, Host), Cell>,
}

fn matrix() -> (Matrix, Vec<String>) {
    let entries: Vec<Entry> = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("corpus/capabilities.yaml")).unwrap(),
    )
    .unwrap();
    let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
    let materialized: Materialized = corpus.materialize(1_700_000_000).unwrap();
    let fields = schema_fields();
    let mut problems = Vec::new();

    // Each field listed exactly once, and only fields of the schema.
    let mut entry_of: BTreeMap<&str, &Entry> = BTreeMap::new();
    for entry in &entries {
        for field in &entry.fields {
            if !fields.contains(field) {
                problems.push(format!(
                    "capabilities.yaml: `{field}` is not a field of the schema"
                ));
            }
            if entry_of.insert(field, entry).is_some() {
                problems.push(format!("capabilities.yaml: `{field}` is listed twice"));
            }
        }
        for host in entry.tests.keys() {
            if host.parse::<Host>().is_err() {
                problems.push(format!("capabilities.yaml: unknown host `{host}`"));
            }
        }
    }

    let mut cells = BTreeMap::new();
    for field in &fields {
        let Some(entry) = entry_of.get(field.as_str()) else {
            problems.push(format!(
                "`{field}` is a config field in neither corpus/capabilities.yaml nor the capability \
                 model: say where each host enforces it, or what it needs of its host"
            ));
            continue;
        };
        // The need this field falls under: itself or its nearest listed ancestor.
        let need = NEEDS
            .iter()
            .filter(|need| field == need.field || field.starts_with(&format!("{}.", need.field)))
            .max_by_key(|need| need.field.len());
        for host in Host::ALL {
            let cell = if entry.refused_by_core && host != Host::Cli {
                Cell::RefusedByCore
            } else if let Some(need) = need.filter(|need| !host.has(need.capability)) {
                if need.capability.refuses_without() {
                    Cell::Refused(need.capability)
                } else {
                    Cell::NoEffect(need.capability)
                }
            } else {
                let mut shown = Vec::new();
                for gate in &materialized.gates {
                    let by_default = !entry.corpus_default.is_empty();
                    let refused = Gate::from_json_for(&gate.config.to_string(), host).is_err();
                    if refused || (entry.corpus.is_none() && !by_default) {
                        continue;
                    }
                    for case in &gate.cases {
                        let runs_here = runners_of(host)
                            .iter()
                            .any(|runner| gate.expect_for(case, *runner).is_some());
                        let counts = if by_default {
                            entry.corpus_default.contains(&case.name) && !sets(&gate.config, field)
                        } else {
                            sets(&gate.config, field)
                        };
                        if runs_here && counts && shown.is_empty() {
                            shown.push(format!("corpus `{}`", case.name));
                        }
                    }
                }
                for test in entry.tests.get(host.as_str()).into_iter().flatten() {
                    match test.split_once("::") {
                        Some((file, name)) if has_test(file, name) => {
                            shown.push(format!("`{name}` ({file})"))
                        }
                        _ => problems.push(format!("{field} in {host:?}: no test `{test}`")),
                    }
                }
                if shown.is_empty() {
                    problems.push(format!(
                        "`{field}` in {} ({}): neither enforced (no corpus case or test in \
                         corpus/capabilities.yaml) nor refused at load",
                        host.as_str(),
                        host.name()
                    ));
                }
                Cell::Enforced(shown)
            };
            cells.insert((field.clone(), host), cell);
        }
    }
    for entry in &entries {
        for name in &entry.corpus_default {
            if !materialized
                .gates
                .iter()
                .any(|g| g.cases.iter().any(|c| &c.name == name))
            {
                problems.push(format!("capabilities.yaml: no corpus case `{name}`"));
            }
        }
    }
    (Matrix { fields, cells }, problems)
}

#[test]
fn every_field_in_every_host_is_enforced_or_refused_at_load() {
    let (matrix, problems) = matrix();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(matrix.fields.len() >= 70, "{} fields", matrix.fields.len());
    assert!(matrix
        .fields
        .contains(&"rules[].rate_limit.requests".to_owned()));
}

/// Each refusal the matrix claims is real: a config using the need loads where the host has
/// the capability and is refused, naming the field and the host, where it does not.
#[test]
fn every_refusal_is_made_at_load_and_names_the_field_and_the_host() {
    for need in NEEDS {
        let config = sample(need.field).to_string();
        // The concrete field: `rules[].x` is `rules[0].x` in the sample.
        let field = need.field.replace("[]", "[0]");
        for host in Host::ALL {
            let loaded = Gate::from_json_for(&config, host);
            match (
                host.has(need.capability) || !need.capability.refuses_without(),
                loaded,
            ) {
                (true, Ok(_)) => {}
                (false, Err(err)) => {
                    let message = err.to_string();
                    assert!(
                        message.starts_with(&format!("unsupported `{field}`"))
                            && message.contains(host.name()),
                        "{}: {message}",
                        host.as_str()
                    );
                }
                (expected, got) => panic!(
                    "{} in {}: expected {}, got {got:?}",
                    need.field,
                    host.as_str(),
                    if expected { "a load" } else { "a refusal" }
                ),
            }
        }
    }
    // module_files: the core refuses them in every host; only the CLI reads (and inlines) them.
    let config = json!({"keys": {"approov_secret": SECRET},
                        "policy": {"modules": {"a.rego": "package attestgate\nimport rego.v1\ndecision := true"},
                                   "module_files": ["p.rego"]}})
    .to_string();
    for host in Host::ALL {
        let err = Gate::from_json_for(&config, host).unwrap_err().to_string();
        assert!(err.contains("policy.module_files"), "{err}");
    }
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Enforced(shown) => format!("yes: {}", shown.join(", ")),
        Cell::Refused(capability) => format!("**refused** (no {})", capability.as_str()),
        Cell::RefusedByCore => "**refused** (CLI only)".to_owned(),
        Cell::NoEffect(capability) => format!("no effect (no {})", capability.as_str()),
    }
}

fn markdown(matrix: &Matrix) -> String {
    let mut out = String::new();
    let hosts = Host::ALL;
    let header = |out: &mut String, first: &str| {
        let _ = write!(out, "| {first} |");
        for host in hosts {
            let _ = write!(out, " {} |", host.as_str());
        }
        out.push('\n');
        out.push_str(&"|---".repeat(hosts.len() + 1));
        out.push_str("|\n");
    };
    out.push_str(
        "# What each host carries out\n\n\
         Generated by `make capabilities` from the core's capability model\n\
         ([policy-engine/src/capability.rs](../policy-engine/src/capability.rs)) and the evidence in\n\
         [corpus/capabilities.yaml](../corpus/capabilities.yaml); `corpus/tests/capabilities.rs` fails when\n\
         this page is stale, and when a config field is neither shown enforced nor refused in some host.\n\n\
         A host loads its config through `Gate::from_json_for(config, host)`: a field that needs what the\n\
         host lacks is refused at load with `config_invalid` and a message naming the field and the host\n\
         (``unsupported `rules[0].rate_limit` (per-device rate limits): it needs state shared by all the\n\
         gateway's workers, which the Cloudflare Worker does not have; ...``), never accepted and silently\n\
         not enforced.\n\n\
         Hosts: ",
    );
    let names: Vec<String> = hosts
        .iter()
        .map(|h| format!("`{}` {}", h.as_str(), h.name()))
        .collect();
    out.push_str(&names.join("; "));
    out.push_str(".\n\n## What each host has\n\n");
    header(&mut out, "capability");
    for capability in Capability::ALL {
        let _ = write!(
            out,
            "| `{}`: {} |",
            capability.as_str(),
            capability.description()
        );
        for host in hosts {
            out.push_str(if host.has(capability) {
                " yes |"
            } else {
                " no |"
            });
        }
        out.push('\n');
    }
    out.push_str("\n## Fields that need something of their host\n\n");
    out.push_str("| field | what | needs | when | refused by |\n|---|---|---|---|---|\n");
    for need in NEEDS {
        let refused: Vec<&str> = hosts
            .iter()
            .filter(|h| need.capability.refuses_without() && !h.has(need.capability))
            .map(|h| h.as_str())
            .collect();
        let refused = if need.capability.refuses_without() {
            if refused.is_empty() {
                "none".to_owned()
            } else {
                refused.join(", ")
            }
        } else {
            "none: a host without it decides the same".to_owned()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} |",
            need.field,
            need.what,
            need.capability.as_str(),
            need.when,
            refused
        );
    }
    out.push_str(
        "\n`policy.module_files` is read only by the CLI (which inlines the files); the core refuses it\n\
         everywhere else.\n\n## Every field in every host\n\n\
         `yes`: enforced, shown by the corpus case or test named (a corpus case runs in every runner of\n\
         the host: envoy in real Envoy and the harness, kong-wasm in the harness's kong profile, native in\n\
         real NGINX, js in Node, worker in real workerd, cli as `Gate::check`).\n\n",
    );
    header(&mut out, "field");
    for field in &matrix.fields {
        let _ = write!(out, "| `{field}` |");
        for host in hosts {
            let _ = write!(
                out,
                " {} |",
                cell_text(&matrix.cells[&(field.clone(), host)])
            );
        }
        out.push('\n');
    }
    out
}

/// README's "Where it runs" table: each row's text from corpus/targets.yaml, and what it
/// refuses at load from the capability model.
fn readme_section() -> String {
    let text = std::fs::read_to_string(root().join("corpus/targets.yaml")).unwrap();
    let targets: Vec<Target> = serde_yaml::from_str(&text).unwrap();
    let mut out = format!(
        "{README_BEGIN}\n\n| target | status | refused at load ([why](docs/capabilities.md)) |\n|---|---|---|\n"
    );
    let mut covered = Vec::new();
    for target in &targets {
        assert!(!target.hosts.is_empty(), "{}: no hosts", target.target);
        let hosts: Vec<Host> = target
            .hosts
            .iter()
            .map(|name| {
                name.parse()
                    .unwrap_or_else(|err| panic!("{}: {err}", target.target))
            })
            .collect();
        covered.extend(hosts.iter().copied());
        // What every one of its hosts refuses (a row over several hosts says per host).
        let refusals: Vec<String> = hosts
            .iter()
            .map(|host| {
                let fields: Vec<String> = NEEDS
                    .iter()
                    .filter(|need| need.capability.refuses_without() && !host.has(need.capability))
                    .map(|need| format!("`{}`", need.field))
                    .collect();
                let list = if fields.is_empty() {
                    "nothing".to_owned()
                } else {
                    fields.join(", ")
                };
                if hosts.len() > 1 {
                    format!("as `{}`: {list}", host.as_str())
                } else {
                    list
                }
            })
            .collect();
        let status = target.status.trim().replace('\n', " ");
        let _ = writeln!(
            out,
            "| {} | {status} | {} |",
            target.target,
            refusals.join("; ")
        );
    }
    for host in Host::ALL {
        assert!(
            covered.contains(&host),
            "corpus/targets.yaml has no row for host `{}`",
            host.as_str()
        );
    }
    out.push('\n');
    out.push_str(README_END);
    out
}

/// docs/capabilities.md and README.md's section are what the model and the evidence say.
#[test]
fn the_capability_docs_are_up_to_date() {
    let (matrix, _) = matrix();
    let bless = std::env::var_os("ATTESTGATE_BLESS").is_some();
    let page = root().join("docs/capabilities.md");
    let want = markdown(&matrix);
    let readme_path = root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (begin, end) = (
        readme
            .find(README_BEGIN)
            .expect("README.md has no generated capabilities section"),
        readme
            .find(README_END)
            .expect("README.md's capabilities section has no end"),
    );
    let new_readme = format!(
        "{}{}{}",
        &readme[..begin],
        readme_section(),
        &readme[end + README_END.len()..]
    );
    if bless {
        std::fs::write(&page, &want).unwrap();
        std::fs::write(&readme_path, &new_readme).unwrap();
    }
    let have = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        have == want,
        "docs/capabilities.md is stale: run `make capabilities`"
    );
    assert!(
        readme == new_readme || bless,
        "README.md's capabilities section is stale: run `make capabilities`"
    );
}
