# Example policy: risk-based step-up (Rego v1, regorus).
#
# Entrypoint data.attestgate.examples.step_up.decision is always defined, in one of three shapes:
#   low risk, or medium risk on a method that needs no step-up:
#       {"allow": true, "reasons": []}
#   medium risk on a step-up method (POST by default): ask the client to step up (e.g.
#   re-authenticate, then retry with a fresh token):
#       {"allow": false, "reasons": ["step_up_required"], "status": 401,
#        "headers": {"www-authenticate": "StepUp realm=\"attestgate\""}}
#   high risk, no usable score, or no attestation: refuse outright:
#       {"allow": false, "reasons": [...], "status": 403}
# Standalone: it looks at the risk score only. To add the device-trust rules, load
# policies/device_trust.rego too and add `deny contains r if some r in data.attestgate.deny`.
#
# Settings come from data.step_up (gate config policy.data.step_up). A setting that is
# absent, null or of the wrong type takes its default.
#   step_up_from     number, default 30: a score >= it (and <= deny_above) is medium risk.
#   deny_above       number, default 70: a score > it is high risk.
#   step_up_methods  list of methods, default ["POST"], compared case-insensitively.
#                    Medium risk on any other method is allowed.
# So by default: 0..29 allow, 30..70 step-up on POST (allow otherwise), 71.. deny.
#
# Reasons:
#   step_up_required     medium risk on a step-up method (status 401)
#   risk_score_too_high  score > deny_above (status 403)
#   risk_score_missing   att.risk.score is absent or not a number (status 403): a step-up
#                        policy without a risk verdict fails closed
#   attestation_missing  the token has no att object (status 403, reported alone)
package attestgate.examples.step_up

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"], "status": 403}

decision := d if {
	count(deny) > 0
	d := {"allow": false, "reasons": sort([r | some r in deny]), "status": 403}
} else := d if {
	_step_up
	d := {
		"allow": false,
		"reasons": ["step_up_required"],
		"status": 401,
		"headers": {"www-authenticate": `StepUp realm="attestgate"`},
	}
} else := {"allow": true, "reasons": []}

# --- inputs ------------------------------------------------------------------

_att_raw := object.get(input, ["token", "claims", "att"], null)

_score := object.get(input, ["token", "claims", "att", "risk", "score"], null)

_method := upper(m) if {
	m := object.get(input, ["request", "method"], null)
	is_string(m)
} else := ""

# --- settings ----------------------------------------------------------------

default _settings := {}

_settings := s if {
	s := data.step_up
	is_object(s)
}

_number(key, dflt) := v if {
	v := object.get(_settings, key, null)
	is_number(v)
} else := dflt

_step_up_methods := {upper(m) | some m in _methods_setting; is_string(m)}

_methods_setting := m if {
	m := object.get(_settings, "step_up_methods", null)
	is_array(m)
} else := ["POST"]

# --- decision parts --------------------------------------------------------------

deny contains "attestation_missing" if not is_object(_att_raw)

deny contains "risk_score_missing" if {
	is_object(_att_raw)
	not is_number(_score)
}

deny contains "risk_score_too_high" if {
	is_number(_score)
	_score > _number("deny_above", 70)
}

_step_up if {
	is_number(_score)
	_score >= _number("step_up_from", 30)
	_method in _step_up_methods
}
