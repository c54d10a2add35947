# Unit tests for examples/payments.rego. Every test_* rule must evaluate to true.
# The policy reuses data.attestgate.deny, so policies/device_trust.rego must be loaded too:
# run `attestgate test policies` (or name both files).
package attestgate.examples.payments_test

import rego.v1

_signer := "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

_now := 1700000000

_good := {
	"app": {
		"id": "com.example.app",
		"version": "2.4.1",
		"signer_sha256": [_signer],
		"installer": "com.android.vending",
		"debuggable": false,
	},
	"device": {
		"platform": "android",
		"os_version": "14",
		"patch_level": "2024-05-05",
		"integrity": ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"],
		"rooted": false,
		"emulator": false,
	},
	"runtime": {"debugger": false, "hooks": [], "app_tampered": false},
	"risk": {"score": 10},
}

_device_trust := {"allowed_signers": {"android": [_signer]}, "allowed_installers": ["com.android.vending"]}

_bound := {"checked": true, "valid": true}

_claims(att, iat) := {"exp": _now + 270, "iat": iat, "did": "device-1", "pay": "x", "att": att}

_input(claims, binding) := {
	"token": {"header": {"alg": "HS256", "kid": null, "typ": "JWT"}, "claims": claims},
	"request": {"method": "POST", "path": "/v1/payments", "host": "api.example.com", "headers": {"authorization": "Bearer abc"}, "source_ip": "127.0.0.1"},
	"binding": binding,
	"now": _now,
	"rule": "payments",
}

# A request minted 30 s ago, with a verified token binding.
_request := _input(_claims(_good, _now - 30), _bound)

_with_att(att) := _input(_claims(att, _now - 30), _bound)

_with_iat(iat) := _input(_claims(_good, iat), _bound)

_with_binding(binding) := _input(_claims(_good, _now - 30), binding)

_patch(att_patch) := _with_att(object.union(_good, att_patch))

_decide(req, settings) := d if {
	d := data.attestgate.examples.payments.decision with input as req
		with data.device_trust as _device_trust
		with data.payments as settings
}

_allowed(req, settings) if _decide(req, settings) == {"allow": true, "reasons": []}

_denied(req, settings, reasons) if _decide(req, settings) == {"allow": false, "reasons": reasons}

# --- allow -------------------------------------------------------------------

test_good_payment_allowed if _allowed(_request, {})

test_token_exactly_max_age_allowed if {
	_allowed(_with_iat(_now - 120), {})
}

test_small_clock_skew_allowed if {
	_allowed(_with_iat(_now + 60), {})
}

test_risk_score_just_below_limit_allowed if _allowed(_patch({"risk": {"score": 19}}), {})

test_missing_hooks_allowed if {
	_allowed(_patch({"runtime": {"hooks": null}}), {})
	_allowed(_with_att(object.remove(_good, ["runtime"])), {})
}

test_missing_score_allowed_when_not_required if {
	_allowed(_with_att(object.remove(_good, ["risk"])), {"require_risk_score": false})
}

test_settings_configurable if {
	old := _input(_claims(object.union(_good, {"risk": {"score": 35}}), _now - 300), _bound)
	_allowed(old, {"risk_score_limit": 40, "max_token_age": 600})
}

test_ios_payment_allowed if {
	ios := {
		"app": {"id": "ABCDE12345.com.example.app", "version": "2.4.1"},
		"device": {"platform": "ios", "os_version": "17.4.1"},
		"runtime": {"hooks": []},
		"risk": {"score": 3},
	}
	_allowed(_with_att(ios), {})
}

# --- deny: the default policy's reasons come through ----------------------------

test_default_policy_reasons_included if {
	_denied(_patch({"device": {"rooted": true}}), {}, ["device_rooted"])
	_denied(_patch({"app": {"signer_sha256": ["00ff"]}}), {}, ["signer_not_allowed"])
}

test_default_device_trust_settings_apply if {
	d := data.attestgate.examples.payments.decision with input as _patch({"device": {"emulator": true}})
		with data.device_trust as {"allow_emulator": true}
		with data.payments as {}
	d == {"allow": true, "reasons": []}
}

test_attestation_missing_alone if _denied(_with_att(null), {}, ["attestation_missing"])

# --- deny: the payment rules -----------------------------------------------------

test_risk_score_at_limit_denied if _denied(_patch({"risk": {"score": 20}}), {}, ["risk_score_too_high_for_payment"])

test_risk_score_custom_limit if _denied(_patch({"risk": {"score": 10}}), {"risk_score_limit": 5}, ["risk_score_too_high_for_payment"])

test_high_risk_reports_both_limits if {
	_denied(_patch({"risk": {"score": 90}}), {}, ["risk_score_too_high", "risk_score_too_high_for_payment"])
}

test_risk_score_missing_denied if {
	_denied(_with_att(object.remove(_good, ["risk"])), {}, ["risk_score_missing_for_payment"])
}

test_non_numeric_score_always_denied if {
	_denied(_patch({"risk": {"score": "low"}}), {"require_risk_score": false}, ["risk_score_missing_for_payment", "risk_score_too_high"])
}

test_wrong_type_setting_takes_default if _denied(_patch({"risk": {"score": 25}}), {"risk_score_limit": "50"}, ["risk_score_too_high_for_payment"])

test_any_hook_denied_even_if_device_trust_tolerates_it if {
	d := data.attestgate.examples.payments.decision with input as _patch({"runtime": {"hooks": ["frida"]}})
		with data.device_trust as {"denied_hooks": []}
		with data.payments as {}
	d == {"allow": false, "reasons": ["hooking_detected_for_payment"]}
}

test_scalar_or_odd_hooks_denied if {
	_denied(_patch({"runtime": {"hooks": "frida"}}), {}, ["hooking_detected", "hooking_detected_for_payment"])
	_denied(_patch({"runtime": {"hooks": true}}), {}, ["hooking_detected_for_payment"])
}

test_binding_not_checked_denied if {
	_denied(_with_binding({"checked": false, "valid": false}), {}, ["token_binding_required_for_payment"])
}

test_binding_invalid_or_missing_denied if {
	_denied(_with_binding({"checked": true, "valid": false}), {}, ["token_binding_required_for_payment"])
	_denied(_with_binding({"checked": "true", "valid": 1}), {}, ["token_binding_required_for_payment"])
	_denied(object.remove(_request, ["binding"]), {}, ["token_binding_required_for_payment"])
}

test_token_too_old_denied if {
	_denied(_with_iat(_now - 121), {}, ["token_too_old_for_payment"])
}

test_token_from_the_future_denied if {
	_denied(_with_iat(_now + 3600), {}, ["token_issued_in_future"])
}

test_iat_missing_denied if {
	_denied(_input(object.remove(_claims(_good, 0), ["iat"]), _bound), {}, ["token_iat_missing"])
	_denied(_with_iat("1700000000"), {}, ["token_iat_missing"])
}

test_everything_wrong_sorted if {
	att := object.union(_good, {"risk": {"score": 50}, "runtime": {"hooks": ["xposed"]}})
	bad := _input(_claims(att, _now - 1000), {"checked": false, "valid": false})
	_denied(bad, {}, [
		"hooking_detected", "hooking_detected_for_payment", "risk_score_too_high_for_payment",
		"token_binding_required_for_payment", "token_too_old_for_payment",
	])
}

# --- robustness: garbage input must still decide (deny), never error ---------------

test_garbage_never_errors_and_never_allows if {
	inputs := [
		{},
		{"token": "x", "binding": [], "now": "soon"},
		{"token": {"claims": {"iat": null, "att": {"risk": "low", "runtime": "none"}}}, "binding": {"checked": true, "valid": true}, "now": _now},
		_patch({"risk": [], "runtime": {"hooks": {}}}),
	]
	settings := [{}, {"risk_score_limit": null, "require_risk_score": "no", "max_token_age": [], "max_clock_skew": {}}]
	results := [d | some i in inputs; some s in settings; d := _decide(i, s)]
	count(results) == count(inputs) * count(settings)
	every d in results {
		d.allow == false
		count(d.reasons) > 0
	}
}
