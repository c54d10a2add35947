//! The host-free core of attestgate: a mobile-app attestation gate for API gateways.
//!
//! A request carries an attestation token (an Approov-style JWT). The [`Gate`] finds it,
//! verifies it with a key pinned to one algorithm, checks the token binding, and hands the
//! verified claims with the request facts to a Rego policy that decides whether the app and
//! device are trusted. The result is a [`Decision`] any host can act on: the proxy-wasm filter,
//! the CLI, or a JavaScript build.
//!
//! Nothing here reads a clock, the network or files: time comes in as a parameter and the host
//! supplies the request.
//!
//! ```
//! use attestgate_policy::{Gate, Reason, Request};
//! use attestgate_testkit::SigningKey; // the test kit mints a token, as the attestation service would
//!
//! let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
//! let gate = Gate::from_json(&format!(r#"{{ "keys": {{ "approov_secret": "{secret}" }} }}"#)).unwrap();
//!
//! let now = 1_700_000_000;
//! let claims = serde_json::json!({ "exp": now + 300, "did": "device-1" });
//! let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
//!     .sign(claims.as_object().unwrap()).unwrap();
//!
//! let request = Request::new("GET", "/v1/shapes").with_header("Approov-Token", token.as_str());
//! let decision = gate.check(&request, now);
//! assert!(decision.allow);
//!
//! let decision = gate.check(&request, now + 3600);
//! assert_eq!((decision.allow, decision.reason), (false, Reason::TokenExpired));
//! ```
//!
//! # What a host uses
//!
//! - Load: [`Gate::from_json`] or [`Gate::from_config`] with a [`Config`]; a refusal is a
//!   [`ConfigError`]. A host loads with [`Gate::from_json_for`] / [`Gate::for_host`], naming
//!   itself ([`capability::Host`]): a config that needs what the host lacks (fetching, shared
//!   state, a verifier's record, ...) is refused there ([`capability`]).
//! - Decide: [`Gate::check`] (or [`Gate::check_with`] and a [`remote::Dynamic`] for fetched
//!   keys, a fetched denylist, rate limits and hybrid mode) on a [`Request`], giving a
//!   [`Decision`] with its stable [`Reason`]; [`DecisionCache`] answers the same, faster, per
//!   worker. [`Gate::needs_body`] says when to wait for the body.
//! - Act: [`plan`] turns a decision into what the host does (go upstream with headers
//!   removed and set, or answer with the JSON denial), the same for every host.
//! - Explain: [`Gate::explain`] gives an [`Explanation`], step by step ([`StepId`]).
//! - Remote documents: [`remote`] parses what the host fetches ([`remote::parse_jwks`],
//!   [`remote::Denylist`]) and does the rate-limit arithmetic ([`remote::Bucket`]).
//! - Request signatures (RFC 9421): [`signature`] signs and verifies them outside the gate.
//! - Host crypto: [`Gate::use_host_verifier`] hands public-key signature checks to the host's
//!   own verifier ([`verifier::HostVerifier`]) once it has passed known-answer tests.
//! - Rego: [`run_rego_tests`] runs a policy's `test_` rules; [`Policy`] compiles and
//!   evaluates one directly.

#![warn(missing_docs)]

mod binding;
mod cache;
pub mod capability;
mod config;
mod decision;
mod decision_log;
mod digest;
mod error;
mod explain;
mod gate;
mod input;
mod json;
mod keys;
pub mod plan;
mod policy;
mod portability;
mod reads;
mod reason_names;
pub mod record;
mod rego_plan;
pub mod remote;
mod request;
pub mod signature;
mod steps;
mod token;
pub mod verifier;

pub use binding::binding_hash;
pub use cache::{CacheOutcome, CacheStats, DecisionCache};
pub use config::{
    config_schema, BindingConfig, CacheConfig, ClaimHeader, Config, DecisionLogConfig,
    DenylistConfig, HostVerification, KeysConfig, Mode, PolicyConfig, PrefixMatch, RateLimit,
    RecordField, RemoteSource, RouteRule, TokenConfig,
};
pub use decision::{Decision, Reason, Verdict};
pub use error::ConfigError;
pub use explain::{DecodedToken, Explanation, RuleMatch, Step};
pub use gate::Gate;
pub use keys::{decode_approov_secret, Algorithm, Key, KeySet, MIN_RSA_BITS};
pub use policy::{run_rego_tests, Policy, PolicyEngine, PolicyOutcome, RegoTest};
pub use portability::{undefined_under_not, UndefinedUnderNot};
pub use rego_plan::Unsupported;
pub use request::Request;
pub use steps::{StepId, StepStatus};
