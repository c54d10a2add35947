# Unit tests for examples/step_up.rego. Every test_* rule must evaluate to true.
package attestgate.examples.step_up_test

import rego.v1

_att(score) := {
	"app": {"id": "com.example.app", "version": "2.4.1"},
	"device": {"platform": "android", "os_version": "14"},
	"risk": {"score": score},
}

_input(att, method) := {
	"token": {"header": {"alg": "HS256", "kid": null, "typ": "JWT"}, "claims": {"exp": 2000000000, "iat": 1700000000, "att": att}},
	"request": {"method": method, "path": "/v1/transfers", "host": "api.example.com", "headers": {}, "source_ip": "127.0.0.1"},
	"binding": {"checked": false, "valid": false},
	"now": 1700000000,
	"rule": null,
}

_decide(att, method, settings) := d if {
	d := data.attestgate.examples.step_up.decision with input as _input(att, method) with data.step_up as settings
}

_allow := {"allow": true, "reasons": []}

_step_up := {
	"allow": false,
	"reasons": ["step_up_required"],
	"status": 401,
	"headers": {"www-authenticate": `StepUp realm="attestgate"`},
}

_forbidden(reasons) := {"allow": false, "reasons": reasons, "status": 403}

# --- allow -------------------------------------------------------------------

test_low_risk_allowed if {
	_decide(_att(0), "POST", {}) == _allow
	_decide(_att(29), "POST", {}) == _allow
	_decide(_att(10), "GET", {}) == _allow
}

test_medium_risk_read_allowed if {
	_decide(_att(30), "GET", {}) == _allow
	_decide(_att(70), "DELETE", {}) == _allow
}

test_no_settings_data_at_all if {
	d := data.attestgate.examples.step_up.decision with input as _input(_att(5), "POST")
	d == _allow
}

test_thresholds_configurable if {
	_decide(_att(45), "POST", {"step_up_from": 50}) == _allow
	_decide(_att(85), "POST", {"deny_above": 90}) == _step_up
}

# --- step up -----------------------------------------------------------------

test_medium_risk_post_steps_up if {
	_decide(_att(30), "POST", {}) == _step_up
	_decide(_att(50), "POST", {}) == _step_up
	_decide(_att(70), "POST", {}) == _step_up
}

test_step_up_decision_shape if {
	d := _decide(_att(42.5), "POST", {})
	d.status == 401
	d.headers["www-authenticate"] == "StepUp realm=\"attestgate\""
	object.keys(d) == {"allow", "reasons", "status", "headers"}
}

test_method_compared_case_insensitively if _decide(_att(40), "post", {}) == _step_up

test_step_up_methods_configurable if {
	settings := {"step_up_methods": ["post", "PUT", "DELETE"]}
	_decide(_att(40), "DELETE", settings) == _step_up
	_decide(_att(40), "GET", settings) == _allow
}

test_empty_method_list_never_steps_up if _decide(_att(40), "POST", {"step_up_methods": []}) == _allow

test_wrong_type_settings_take_defaults if {
	_decide(_att(40), "POST", {"step_up_from": "50", "step_up_methods": "GET"}) == _step_up
	_decide(_att(80), "POST", {"deny_above": null}) == _forbidden(["risk_score_too_high"])
}

# --- deny --------------------------------------------------------------------

test_high_risk_denied_403 if {
	_decide(_att(71), "POST", {}) == _forbidden(["risk_score_too_high"])
	_decide(_att(100), "GET", {}) == _forbidden(["risk_score_too_high"])
}

test_score_missing_fails_closed if {
	_decide(object.remove(_att(0), ["risk"]), "GET", {}) == _forbidden(["risk_score_missing"])
	_decide(_att("low"), "GET", {}) == _forbidden(["risk_score_missing"])
	_decide(_att(null), "POST", {}) == _forbidden(["risk_score_missing"])
}

test_attestation_missing if {
	_decide(null, "POST", {}) == _forbidden(["attestation_missing"])
	d := data.attestgate.examples.step_up.decision with input as {}
	d == _forbidden(["attestation_missing"])
}

# --- robustness: every decision is one the gate accepts, and garbage never allows --

test_every_decision_is_valid_for_the_gate if {
	atts := [null, "x", {}, {"risk": "high"}, {"risk": {"score": -1}}, _att(30), _att(71), _att([50])]
	methods := ["POST", "GET", ""]
	settings := [{}, {"step_up_from": [], "deny_above": "x", "step_up_methods": [1, null]}]
	results := [d | some a in atts; some m in methods; some s in settings; d := _decide(a, m, s)]
	count(results) == (count(atts) * count(methods)) * count(settings)
	every d in results {
		is_boolean(d.allow)
		object.keys(d) - {"allow", "reasons", "status", "headers"} == set()
		d.reasons == sort(d.reasons)
		_status_ok(d)
	}
}

_status_ok(d) if d.allow == true

_status_ok(d) if {
	d.allow == false
	d.status >= 400
	d.status <= 599
}

test_garbage_never_allows if {
	atts := [null, "x", {}, {"risk": "high"}, {"risk": {"score": "0"}}, _att([0])]
	every a in atts {
		_decide(a, "GET", {}).allow == false
	}
}
