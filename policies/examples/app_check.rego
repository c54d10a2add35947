# Example policy: Firebase App Check tokens (Rego v1, regorus).
#
# Entrypoint data.attestgate.examples.app_check.decision is always defined:
#   {"allow": bool, "reasons": [sorted snake_case strings, empty when allowed]}
# Standalone: load this file on its own; it does not need policies/device_trust.rego.
#
# An App Check token says which registered Firebase app obtained it (`sub`, the app id,
# "1:<project number>:<android|ios|web>:<hash>") and nothing about the device: it carries no
# `att` measurement claims, no `did`. So this policy checks the app id, and never denies for
# the absence of Approov-style claims. The gate config checks the rest, before the policy runs:
# the RS256 signature against App Check's JWKS (keys.remote), `exp`, `iss`
# ("https://firebaseappcheck.googleapis.com/<project number>", `issuer`) and `aud` (contains
# "projects/<project number>", `audiences`). envoy-examples/firebase-app-check has the config.
#
# Settings come from data.app_check (gate config policy.data.app_check).
# A setting that is absent or null takes its default.
#   allowed_app_ids  list of Firebase app ids (e.g. "1:123456789012:android:abc123"); a lone
#       string is a one-item list. REQUIRED: absent or [] denies every token. Compared exactly.
#
# Reasons:
#   app_id_missing      `sub` is absent or not a string
#   app_id_not_allowed  `sub` is not in allowed_app_ids
#   token_type_not_jwt  the JOSE header's `typ` is not "JWT" (App Check's tokens say "JWT";
#                       Firebase's verification steps require it, and the gate leaves `typ`
#                       to the policy)
package attestgate.examples.app_check

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

deny contains "app_id_missing" if not is_string(_app_id)

deny contains "app_id_not_allowed" if {
	is_string(_app_id)
	not _app_id in _list(_setting("allowed_app_ids", []))
}

deny contains "token_type_not_jwt" if object.get(input, ["token", "header", "typ"], null) != "JWT"

# --- inputs ------------------------------------------------------------------

_app_id := object.get(input, ["token", "claims", "sub"], null)

_list(x) := x if {
	is_array(x)
} else := [x] if {
	is_string(x)
} else := []

# --- settings ----------------------------------------------------------------

# Read by its path: a read of all of `data` would include this policy's own rules, which OPA
# refuses as recursion.
default _settings := {}

_settings := s if {
	s := data.app_check
	is_object(s)
}

_setting(key, dflt) := v if {
	v := object.get(_settings, key, null)
	v != null
} else := dflt
