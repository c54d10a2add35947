# Example policy: stricter rules for payment routes (Rego v1, regorus).
#
# Entrypoint data.attestgate.examples.payments.decision is always defined:
#   {"allow": bool, "reasons": [sorted snake_case strings, empty when allowed]}
#
# NOT standalone: it reuses data.attestgate.deny, the partial set of the default policy,
# so load it together with policies/device_trust.rego. Every device-trust reason
# (configured as usual under data.device_trust) also denies a payment, and on top:
#   - the risk score must be below risk_score_limit (default 20) and, by default, present;
#   - no hooking framework at all may be reported, whatever data.device_trust.denied_hooks says;
#   - the token must be bound to the request: input.binding.checked and input.binding.valid
#     (configure `binding` in the gate config, or every payment is denied);
#   - the token must be fresh: input.now - iat <= max_token_age (default 120 s), and iat may
#     lie at most max_clock_skew (default 60 s) in the future.
#
# Settings come from data.payments (gate config policy.data.payments). A setting that is
# absent, null or of the wrong type takes its default; every default is the strict choice.
#   risk_score_limit    number, default 20: deny when att.risk.score >= it.
#   require_risk_score  bool, default true: a missing or non-numeric score is denied.
#                       false: a missing score counts as 0 (services without a risk engine);
#                       a present non-numeric score is still denied.
#   max_token_age       seconds, default 120.
#   max_clock_skew      seconds, default 60.
#
# Reasons (besides the default policy's, see docs/claims.md):
#   risk_score_too_high_for_payment   score >= risk_score_limit
#   risk_score_missing_for_payment    no numeric score while require_risk_score
#   hooking_detected_for_payment      att.runtime.hooks is anything but absent, null or []
#   token_binding_required_for_payment  binding not checked, or not valid
#   token_too_old_for_payment         input.now - iat > max_token_age
#   token_issued_in_future            iat - input.now > max_clock_skew
#   token_iat_missing                 iat (or input.now) is missing or not a number
#   device_trust_policy_not_loaded    policies/device_trust.rego is missing from the modules
# The attestation-based checks are skipped when the token has no att object: the default
# policy then reports attestation_missing.
package attestgate.examples.payments

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

# Everything the default device-trust policy denies.
deny contains reason if some reason in data.attestgate.deny

# Fail closed when policies/device_trust.rego was not loaded: an undefined
# data.attestgate.deny would otherwise silently drop every device-trust check.
deny contains "device_trust_policy_not_loaded" if not _device_trust_loaded

default _device_trust_loaded := false

_device_trust_loaded if is_set(data.attestgate.deny)

deny contains reason if some reason in _token_findings

deny contains reason if {
	is_object(_att_raw)
	some reason in _att_findings
}

# --- inputs ------------------------------------------------------------------

_att_raw := object.get(input, ["token", "claims", "att"], null)

_att := _obj(_att_raw)

_obj(x) := x if {
	is_object(x)
} else := {}

# --- settings ----------------------------------------------------------------

default _settings := {}

_settings := _obj(data.payments)

_number(key, dflt) := v if {
	v := object.get(_settings, key, null)
	is_number(v)
} else := dflt

_risk_score_required if object.get(_settings, "require_risk_score", true) != false

# --- attestation checks --------------------------------------------------------

_score := object.get(_att, ["risk", "score"], null)

_att_findings contains "risk_score_too_high_for_payment" if {
	is_number(_score)
	_score >= _number("risk_score_limit", 20)
}

_att_findings contains "risk_score_missing_for_payment" if {
	_score == null
	_risk_score_required
}

# Present but not a number: never trusted, whatever require_risk_score says.
_att_findings contains "risk_score_missing_for_payment" if {
	_score != null
	not is_number(_score)
}

_hooks := object.get(_obj(object.get(_att, "runtime", {})), "hooks", null)

_att_findings contains "hooking_detected_for_payment" if not _hooks in {null, []}

# --- token checks ----------------------------------------------------------------

_token_findings contains "token_binding_required_for_payment" if {
	not _binding_ok
}

_binding_ok if {
	object.get(input, ["binding", "checked"], false) == true
	object.get(input, ["binding", "valid"], false) == true
}

_iat := object.get(input, ["token", "claims", "iat"], null)

_now := object.get(input, "now", null)

_token_findings contains "token_iat_missing" if not _times_known

_times_known if {
	is_number(_iat)
	is_number(_now)
}

_token_findings contains "token_too_old_for_payment" if {
	_times_known
	_now - _iat > _number("max_token_age", 120)
}

_token_findings contains "token_issued_in_future" if {
	_times_known
	_iat - _now > _number("max_clock_skew", 60)
}
