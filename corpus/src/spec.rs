//! The YAML format of `corpus/cases/*.yaml`, as parsed. `corpus/README.md` documents it with
//! examples; [`crate::Corpus::materialize`] turns it into requests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use attestgate_policy::{Reason, Verdict};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

use crate::Runner;

/// One parsed `cases/*.yaml` file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorpusFile {
    /// The file stem, e.g. `parity`; gate names are prefixed with it.
    pub name: String,
    /// The directory the file is in (`module_files` are resolved against it).
    pub dir: PathBuf,
    /// The file's content.
    pub spec: FileSpec,
}

/// The top level of a case file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Named gate configs; each case names one.
    pub gates: BTreeMap<String, GateSpec>,
    /// The cases, in file order.
    pub cases: Vec<CaseSpec>,
}

/// A gate config in the `attestgate.yaml` form (what `Gate::from_json` takes), plus
/// `keys_from`. Unknown fields are refused when the gate is loaded, by the gate itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateSpec {
    /// Test public keys appended to `keys.keys`: `hs256` reads
    /// `policy-engine/tests/data/keys/hs256.pub.json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_from: Vec<String>,
    /// The rest of the config, as written. `policy.module_files` are read (relative to the
    /// case file) and inlined into `policy.modules`.
    #[serde(flatten)]
    pub config: Map<String, Value>,
}

/// One request case: how to mint its token, the request, and what every runner must see.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Unique across the corpus; letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// The gate (of this file) that decides the request.
    pub gate: String,
    /// The signing key. Required unless `token` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    /// The exact JOSE header. Default: `{alg: <key alg>, typ: JWT, kid: <key kid>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Map<String, Value>>,
    /// A JSON merge patch (RFC 7386) applied to the header: add `jku`, drop `kid` (null)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_merge: Option<Map<String, Value>>,
    /// Claims, as written.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    /// Claims set to `now + offset`: an integer offset gives an integer, a float a float.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims_at: BTreeMap<String, Number>,
    /// `exp = now + exp_in` unless `claims` or `claims_at` set `exp`; `null` leaves it out.
    /// Default 300.
    #[serde(default = "default_exp_in")]
    pub exp_in: Option<i64>,
    /// Adds a claim `pad` of this many `x`, to make big tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_claims: Option<usize>,
    /// Adds a claim `nest` of this many nested arrays around `1`, to test depth limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nest_claims: Option<usize>,
    /// `[header_json, claims_json]`: these exact texts are base64url-encoded and signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_segments: Option<[String; 2]>,
    /// `[header_segment, claims_segment]`: already encoded text, used and signed verbatim
    /// (padded or non-canonical base64url, bytes that are not UTF-8). HMAC keys only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoded_segments: Option<[String; 2]>,
    /// Replaces the signature with these bytes (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_hex: Option<String>,
    /// Changes the token after signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper: Option<Tamper>,
    /// Text appended to the finished token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<String>,
    /// A literal token instead of minting one; `null` sends no token at all.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub token: Option<Option<String>>,
    /// The request.
    #[serde(default)]
    pub request: RequestSpec,
    /// What the gate decides.
    pub expect: ExpectSpec,
    /// Where the case runs (default: everywhere). Needs `why`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<Vec<Runner>>,
    /// Per-runner changes to `expect`, e.g. `envoy: {status: 431, reason: ""}`. Needs `why`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<Runner, ExpectOverride>,
    /// Why the case does not run, or expect the same, everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

fn default_exp_in() -> Option<i64> {
    Some(300)
}

/// Tells `token: null` (send none) from an absent `token` (mint one).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Which key signs the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// A private test key: `hs256` reads `policy-engine/tests/data/keys/hs256.json`.
    Named(String),
    /// Algorithm confusion: an HS256 key whose secret is a test *public* key.
    HmacWithPublic(HmacWithPublic),
}

/// An HS256 key made from a public key's bytes, as a confused verifier would use them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacWithPublic {
    /// The public key's name: `rs256` reads `rs256.pub.json`.
    pub hmac_with_public: String,
    /// Which bytes become the secret.
    pub form: PublicForm,
}

/// The bytes of a public key used as an HMAC secret.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PublicForm {
    /// The JWK object as compact JSON.
    Jwk,
    /// The `.pub.json` file's bytes.
    File,
    /// The raw key: RSA `n`, EC `04‖x‖y`, OKP `x`.
    Raw,
}

/// A change made to the token after signing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// Flip one character of the signature.
    Signature,
    /// Flip one character of the claims.
    Claims,
    /// Empty signature: `h.c.`.
    StripSignature,
    /// Two segments: `h.c`.
    DropSignature,
    /// Signature one byte short.
    TruncateSignature,
    /// Signature with one zero byte more.
    ExtendSignature,
    /// Signature with `=` padding.
    PadSignature,
    /// The signature's last character with its unused low bits set (non-canonical).
    NoncanonicalSignature,
    /// ES256: the r‖s signature re-encoded as ASN.1 DER.
    DerSignature,
    /// ES256: r = 0 (CVE-2022-21449).
    EcdsaRZero,
    /// ES256: s = 0.
    EcdsaSZero,
    /// ES256: r = s = 0 (CVE-2022-21449, "psychic signatures").
    EcdsaZero,
    /// ES256: r = n, the group order.
    EcdsaRN,
    /// ES256: s = n.
    EcdsaSN,
    /// ES256: s replaced by n − s (the other valid signature, "high S").
    EcdsaHighS,
    /// JWS JSON serialization, flattened: `{"protected":..,"payload":..,"signature":..}`.
    JwsJsonFlattened,
    /// JWS JSON serialization, general: `{"payload":..,"signatures":[{..}]}`.
    JwsJsonGeneral,
}

/// The request around the token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Default `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Default `api.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// `[name, value]` pairs in order. `{token}` in a value is replaced by the token; then the
    /// token is not added to the gate's token header by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Extra headers `x-filler-<i>`, for big or many headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler: Option<Filler>,
}

/// `count` headers `x-filler-0`... each with a value of `bytes` characters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filler {
    /// How many headers.
    pub count: usize,
    /// Value length of each.
    pub bytes: usize,
}

/// The expected decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Whether the request goes on.
    pub allow: bool,
    /// The reason code.
    pub reason: Reason,
    /// The HTTP status (200 when allowed).
    pub status: u16,
    /// The verdict before monitor mode, when it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// Fields of `expect` that differ for one runner. `reason: ""` means the reply does not come
/// from the gate at all (the host answered, e.g. Envoy's 431).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectOverride {
    /// Replaces `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<bool>,
    /// Replaces `reason`: a reason code, or `""` for a reply the gate did not make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Replaces `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}
