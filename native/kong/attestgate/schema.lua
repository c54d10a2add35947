-- GENERATED from attestgate_policy::config_schema() by
--   cargo run -q -p attestgate-native --example kong_schema > native/kong/attestgate/schema.lua
-- (make kong-plugin); do not edit. The config is the gate's JSON config; what this format cannot
-- express, the library checks: custom_validator loads the config with libattestgate.so.
local typedefs = require "kong.db.schema.typedefs"

local config = {
  type = "record",
  description = "The gate's JSON config (the filter's config in Envoy) as plugin fields; the library loads it and checks what this schema cannot (key material, Rego, cross-field rules).",
  fields = {
    { ["audiences"] = { type = "array", elements = { type = "string" }, len_min = 1, description = "Accepted `aud` values, when set: the token's `aud` must contain one of them." } },
    { ["binding"] = {
      required = false,
      type = "record",
      description = "Token binding: the hash of chosen request headers carried in a claim.",
      fields = {
        { ["claim"] = { type = "string", len_min = 1, description = "Claim that carries the base64 SHA-256 of those values." } },
        { ["headers"] = { type = "array", elements = { type = "string" }, len_min = 1, required = true, description = "Headers whose values, concatenated in this order, are hashed." } },
        { ["required"] = { type = "boolean", description = "Whether a token without the claim is refused." } },
      },
    } },
    { ["cache"] = {
      required = false,
      type = "record",
      description = "The per-worker decision cache: on by default, 10 000 entries.",
      fields = {
        { ["entries"] = { type = "integer", between = { 0, math.huge }, description = "Most cached verified tokens (and, separately, most cached decisions) per worker." } },
      },
    } },
    { ["claim_to_headers"] = { type = "array", elements = {
      type = "record",
      description = "Copies a verified claim into an upstream header.",
      fields = {
        { ["claim"] = { type = "string", len_min = 1, required = true, description = "Claim name; nested claims by dotted path, e.g. `att.device.platform`." } },
        { ["header"] = { type = "string", required = true, description = "Header to set." } },
      },
    }, description = "Verified claims copied into upstream request headers." } },
    { ["decision_log"] = {
      required = false,
      type = "record",
      description = "With `log_decisions`: which decisions are logged and which of their fields never are.",
      fields = {
        { ["mask"] = { type = "array", elements = { type = "string" }, len_max = 64, description = "Fields of the logged decision never written, as dot paths into its JSON (`claims.did`, `claims.att.device`, `headers`, `detail`): removed, and named in the line's `erased` list." } },
        { ["sample_rate"] = { type = "number", between = { 0.000001, 1 }, description = "The share of decisions logged, above 0 and at most 1 (all, the default). A request is sampled by its request id (Envoy's `x-request-id`) where it has one, so every hop of a request logs it or none does." } },
      },
    } },
    { ["denylist"] = {
      required = false,
      type = "record",
      description = "Devices to refuse (`device_denied`), inline and/or fetched.",
      fields = {
        { ["claim"] = { type = "string", len_min = 1, description = "The claim holding the device id." } },
        { ["devices"] = { type = "array", elements = { type = "string" }, description = "Device ids given inline." } },
        { ["remote"] = {
          required = false,
          type = "record",
          description = "A list fetched and refreshed like a remote JWKS: `{\"devices\": [\"id\", ...]}`.",
          fields = {
            { ["authority"] = { type = "string", len_min = 1, required = true, description = "The request's `:authority`." } },
            { ["max_bytes"] = { type = "integer", between = { 1, math.huge }, description = "Largest response body accepted, in bytes." } },
            { ["path"] = { type = "string", required = true, description = "The request's path." } },
            { ["refresh_seconds"] = { type = "integer", between = { 1, 4294967295 }, description = "Seconds between fetches." } },
            { ["timeout_ms"] = { type = "integer", between = { 1, 4294967295 }, description = "How long a fetch may take." } },
            { ["upstream"] = { type = "string", len_min = 1, required = true, description = "Where to send the request: an Envoy cluster name, or `host:port` on Kong and NGINX." } },
          },
        } },
      },
    } },
    { ["forward"] = { type = "boolean", description = "Whether the token header goes on to the upstream (jwt_authn's `forward`)." } },
    { ["host_verification"] = {
      required = false,
      type = "record",
      description = "Hybrid mode: the gateway verified the token's signature before the filter ran (Envoy's `jwt_authn`, whose BoringSSL is several times faster at ES256/RS256 than verifying in wasm). The gate then checks everything but the signature.",
      fields = {
        { ["filter"] = { type = "string", len_min = 1, description = "The dynamic-metadata namespace the verifier writes to." } },
        { ["payload_in_metadata"] = { type = "string", len_min = 1, required = true, description = "The key the verified payload is stored under (jwt_authn's `payload_in_metadata`)." } },
      },
    } },
    { ["issuer"] = { type = "string", description = "Required `iss` claim, when set." } },
    { ["keys"] = {
      required = false,
      type = "record",
      description = "The keys tokens may be signed with. Leave empty with `host_verification`.",
      fields = {
        { ["approov_secret"] = { type = "string", description = "An HS256 secret as base64 (standard or url-safe, padded or not), as Approov hands it out." } },
        { ["keys"] = { type = "array", elements = {
          type = "record",
          description = "A public JWK (or an oct secret), pinned to one algorithm. Private members (d, p, q, dp, dq, qi, oth) are refused: configure the public key only.",
          fields = {
            { ["alg"] = { type = "string", one_of = { "HS256", "HS384", "HS512", "ES256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA" }, description = "The one algorithm this key verifies. Without it: HS256 for oct, ES256 for EC P-256, RS256 for RSA, EdDSA for OKP Ed25519 (PS256 must be named)." } },
            { ["crv"] = { type = "string", one_of = { "P-256", "Ed25519" }, description = "P-256 for EC keys, Ed25519 for OKP keys." } },
            { ["e"] = { type = "string", description = "RSA public exponent, base64url." } },
            { ["ext"] = { type = "boolean", description = "Accepted and ignored." } },
            { ["k"] = { type = "string", description = "oct secret, base64url; at least 32 bytes (48 for HS384, 64 for HS512)." } },
            { ["key_ops"] = { type = "array", elements = { type = "string" }, description = "When present, must include \"verify\"." } },
            { ["kid"] = { type = "string", description = "Key id, matched against the token's kid; unique across keys." } },
            { ["kty"] = { type = "string", one_of = { "oct", "EC", "RSA", "OKP" }, required = true, description = "`kty`: Key type." } },
            { ["n"] = { type = "string", description = "RSA modulus, base64url; at least 2048 bits." } },
            { ["use"] = { type = "string", one_of = { "sig" }, description = "Only signature keys are accepted." } },
            { ["x"] = { type = "string", description = "EC or OKP public key, base64url." } },
            { ["x5c"] = { type = "array", elements = { type = "string" }, description = "Accepted and ignored." } },
            { ["x5t"] = { type = "string", description = "Accepted and ignored." } },
            { ["x5t#S256"] = { type = "string", description = "Accepted and ignored." } },
            { ["x5u"] = { type = "string", description = "Accepted and ignored." } },
            { ["y"] = { type = "string", description = "EC public key y coordinate, base64url." } },
          },
        }, description = "Public JWKs (or `oct` secrets), each pinned to one algorithm." } },
        { ["remote"] = {
          required = false,
          type = "record",
          description = "A JWKS fetched from an upstream and refreshed, so keys rotate without a redeploy. Used beside the local keys; with no local keys, requests are refused with `keys_unavailable` until the first fetch succeeds.",
          fields = {
            { ["authority"] = { type = "string", len_min = 1, required = true, description = "The request's `:authority`." } },
            { ["max_bytes"] = { type = "integer", between = { 1, math.huge }, description = "Largest response body accepted, in bytes." } },
            { ["path"] = { type = "string", required = true, description = "The request's path." } },
            { ["refresh_seconds"] = { type = "integer", between = { 1, 4294967295 }, description = "Seconds between fetches." } },
            { ["timeout_ms"] = { type = "integer", between = { 1, 4294967295 }, description = "How long a fetch may take." } },
            { ["upstream"] = { type = "string", len_min = 1, required = true, description = "Where to send the request: an Envoy cluster name, or `host:port` on Kong and NGINX." } },
          },
        } },
      },
      entity_checks = { { at_least_one_of = { "approov_secret", "keys", "remote" } } },
    } },
    { ["leeway_seconds"] = { type = "integer", between = { 0, 4294967295 }, description = "Clock skew tolerated on `exp` and `nbf`." } },
    { ["log_decisions"] = { type = "boolean", description = "Whether the filter logs every decision as JSON at debug level (for diagnosis and for `attestgate check --wasm`; off in production, where it costs a serialization per request)." } },
    { ["mode"] = { type = "string", one_of = { "enforce", "monitor" }, description = "Default mode for requests no rule matches (`bypass` only in a rule)." } },
    { ["policy"] = {
      required = false,
      type = "record",
      description = "Rego device-trust policy. Without one, a verified token is enough.",
      fields = {
        { ["data"] = { type = "json", json_schema = { inline = { type = { "object", "null" } } }, description = "Policy data, visible as `data` (the default policy reads `data.device_trust`)." } },
        { ["entrypoint"] = { type = "string", description = "Rule whose value is the decision." } },
        { ["module_files"] = { type = "array", elements = { type = "string" }, len_max = 0, description = "Rego files to read. Only the CLI reads files (it moves them into `modules`); the filter refuses them, and so does the schema." } },
        { ["modules"] = { type = "map", keys = { type = "string" }, values = { type = "string" }, len_min = 1, required = true, description = "Rego v1 modules by file name, inlined: the filter reads no files." } },
      },
    } },
    { ["record_fields"] = { type = "array", elements = { type = "string", one_of = { "verdict", "allowed", "mode", "status", "reason", "policy_reasons", "policy_reasons_dropped", "rule", "device", "platform", "app_version", "cache" }, description = "A field of the decision record, named as in its JSON." }, len_max = 12, description = "Decision-record fields the host also keeps one by one, beside the whole record, for matchers and logs that read a single value (Envoy: filter state `wasm.attestgate.<field>`, which RBAC's `filter_state` principal reads). None by default: in Envoy each is one more write into the stream's filter state a request." } },
    { ["require_exp"] = { type = "boolean", description = "Whether a token without `exp` is refused." } },
    { ["rules"] = { type = "array", elements = {
      type = "record",
      description = "A per-route rule. All given conditions must hold.",
      fields = {
        { ["entrypoint"] = { type = "string", description = "Another policy entrypoint for matching requests." } },
        { ["methods"] = { type = "array", elements = { type = "string" }, description = "Methods; empty matches any." } },
        { ["mode"] = { type = "string", one_of = { "enforce", "monitor", "bypass" }, description = "Mode for matching requests; the top-level mode when absent." } },
        { ["name"] = { type = "string", description = "Name reported in decisions and given to the policy as `input.rule`." } },
        { ["path"] = { type = "string", description = "Exact path (query string ignored)." } },
        { ["path_prefix"] = { type = "string", description = "Path prefix, matched on segment boundaries unless `prefix_match` says `string`: `/beta` matches `/beta` and `/beta/…`, not `/betamax`." } },
        { ["prefix_match"] = { type = "string", one_of = { "segment", "string" }, description = "How `path_prefix` matches: `segment` (default, like Envoy's `path_separated_prefix`) or `string` (any path that starts with the prefix's characters)." } },
        { ["rate_limit"] = {
          required = false,
          type = "record",
          description = "Per-device rate limit for matching requests (by source IP when the token has no device id), shared by the gateway's workers.",
          fields = {
            { ["per_seconds"] = { type = "integer", between = { 1, 4294967295 }, required = true, description = "The period, in seconds." } },
            { ["requests"] = { type = "integer", between = { 1, 4294967295 }, required = true, description = "Bucket size, and requests regained per period." } },
          },
        } },
        { ["signature"] = {
          required = false,
          type = "record",
          description = "Request signatures for matching requests, replacing the top-level `signature`.",
          fields = {
            { ["accept"] = { type = "string", one_of = { "install", "account", "either", "both" }, description = "Which signatures count: `install`, `account`, `either` or `both`. Default: `either` with an `account_secret`, else `install`." } },
            { ["account_label"] = { type = "string", description = "The account signature's label." } },
            { ["account_secret"] = { type = "string", description = "The account message-signing key for `hmac-sha256` signatures: base64, like `approov_secret`; at least 32 bytes." } },
            { ["clock_skew_seconds"] = { type = "integer", between = { 0, 4294967295 }, description = "Allowed clock difference on `created` and `expires`." } },
            { ["components"] = { type = "array", elements = { type = "string" }, description = "Components every accepted signature must cover (it may cover more)." } },
            { ["key_claim"] = { type = "string", len_min = 1, description = "The token claim holding the install key (base64 DER SubjectPublicKeyInfo, P-256)." } },
            { ["label"] = { type = "string", description = "The install signature's label." } },
            { ["max_age_seconds"] = { type = "integer", between = { 0, 4294967295 }, description = "Maximum seconds since `created`; 0 for no limit." } },
            { ["max_body_bytes"] = { type = "integer", between = { 1, 67108864 }, description = "Most body bytes read when a received signature covers `content-digest`; a longer body is refused with 413 `body_too_large`." } },
            { ["mode"] = { type = "string", one_of = { "off", "optional", "required" }, description = "`off` (default), `optional` or `required`." } },
            { ["scheme"] = { type = "string", one_of = { "https", "http" }, description = "The scheme `@scheme` and `@target-uri` use (the gate sits behind TLS termination)." } },
          },
        } },
      },
    }, description = "Per-route rules, first match wins." } },
    { ["signature"] = {
      required = false,
      type = "record",
      description = "Install-key request signatures (RFC 9421) for requests no rule configures; off by default.",
      fields = {
        { ["accept"] = { type = "string", one_of = { "install", "account", "either", "both" }, description = "Which signatures count: `install`, `account`, `either` or `both`. Default: `either` with an `account_secret`, else `install`." } },
        { ["account_label"] = { type = "string", description = "The account signature's label." } },
        { ["account_secret"] = { type = "string", description = "The account message-signing key for `hmac-sha256` signatures: base64, like `approov_secret`; at least 32 bytes." } },
        { ["clock_skew_seconds"] = { type = "integer", between = { 0, 4294967295 }, description = "Allowed clock difference on `created` and `expires`." } },
        { ["components"] = { type = "array", elements = { type = "string" }, description = "Components every accepted signature must cover (it may cover more)." } },
        { ["key_claim"] = { type = "string", len_min = 1, description = "The token claim holding the install key (base64 DER SubjectPublicKeyInfo, P-256)." } },
        { ["label"] = { type = "string", description = "The install signature's label." } },
        { ["max_age_seconds"] = { type = "integer", between = { 0, 4294967295 }, description = "Maximum seconds since `created`; 0 for no limit." } },
        { ["max_body_bytes"] = { type = "integer", between = { 1, 67108864 }, description = "Most body bytes read when a received signature covers `content-digest`; a longer body is refused with 413 `body_too_large`." } },
        { ["mode"] = { type = "string", one_of = { "off", "optional", "required" }, description = "`off` (default), `optional` or `required`." } },
        { ["scheme"] = { type = "string", one_of = { "https", "http" }, description = "The scheme `@scheme` and `@target-uri` use (the gate sits behind TLS termination)." } },
      },
    } },
    { ["token"] = {
      required = false,
      type = "record",
      description = "Where the token is found in the request.",
      fields = {
        { ["header"] = { type = "string", description = "Header name, matched case-insensitively." } },
        { ["max_bytes"] = { type = "integer", between = { 1, 65536 }, description = "Longest token accepted, in bytes." } },
        { ["max_json_depth"] = { type = "integer", between = { 1, 64 }, description = "Deepest JSON nesting accepted in the token header and claims." } },
        { ["prefix"] = { type = "string", description = "Prefix before the token, such as `Bearer `, matched case-insensitively." } },
      },
    } },
  },
  entity_checks = { { at_least_one_of = { "keys", "host_verification" } } },
}

config.custom_validator = function(conf)
  local attestgate = require "attestgate"
  local handler = require "kong.plugins.attestgate.handler"
  local text, err = handler.config_json(conf, config)
  if not text then
    return nil, err
  end
  local gate, load_err = attestgate.new(text)
  if not gate then
    return nil, load_err
  end
  return true
end

return {
  name = "attestgate",
  fields = {
    { consumer = typedefs.no_consumer },
    { protocols = typedefs.protocols_http },
    { config = config },
  },
}
