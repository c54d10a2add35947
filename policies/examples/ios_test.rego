# Unit tests for examples/ios.rego. Every test_* rule must evaluate to true.
package attestgate.examples.ios_test

import rego.v1

_app_id := "ABCDE12345.com.example.app"

# App Attest has no installer, patch level or integrity verdict.
_good := {
	"app": {"id": _app_id, "version": "2.4.1", "debuggable": false},
	"device": {"platform": "ios", "os_version": "17.4.1", "rooted": false, "emulator": false},
	"runtime": {"debugger": false, "hooks": [], "app_tampered": false},
}

_settings := {"allowed_app_ids": [_app_id], "min_os_version": "16.0"}

_input(att) := {
	"token": {"header": {"alg": "HS256", "kid": null, "typ": "JWT"}, "claims": {"exp": 2000000000, "iat": 1700000000, "att": att}},
	"request": {"method": "GET", "path": "/v1/items", "host": "api.example.com", "headers": {}, "source_ip": "127.0.0.1"},
	"binding": {"checked": false, "valid": false},
	"now": 1700000000,
	"rule": null,
}

_decide(att, settings) := d if {
	d := data.attestgate.examples.ios.decision with input as _input(att) with data.ios_app_attest as settings
}

_with(base, patch) := object.union(base, patch)

_allowed(att, settings) if _decide(att, settings) == {"allow": true, "reasons": []}

_denied(att, settings, reasons) if _decide(att, settings) == {"allow": false, "reasons": reasons}

# --- allow -------------------------------------------------------------------

test_good_device_allowed if _allowed(_good, _settings)

test_default_min_os_is_14 if {
	_allowed(_with(_good, {"device": {"os_version": "14.0"}}), {"allowed_app_ids": [_app_id]})
	_denied(_with(_good, {"device": {"os_version": "13.7"}}), {"allowed_app_ids": [_app_id]}, ["os_version_too_old"])
}

test_os_version_compares_numerically if {
	_allowed(_with(_good, {"device": {"os_version": "16.10"}}), {"allowed_app_ids": [_app_id], "min_os_version": "16.9"})
	_allowed(_with(_good, {"device": {"os_version": "17"}}), {"allowed_app_ids": [_app_id], "min_os_version": "17.0.0"})
}

test_numeric_min_os_setting if _allowed(_good, {"allowed_app_ids": [_app_id], "min_os_version": 17})

test_missing_booleans_count_as_false if {
	_allowed({"app": {"id": _app_id}, "device": {"platform": "ios", "os_version": "17.0"}}, _settings)
}

test_allow_development if {
	dev := _with(_good, {"app": {"debuggable": true}, "runtime": {"debugger": true}})
	_allowed(dev, object.union(_settings, {"allow_development": true}))
}

test_second_app_id if {
	_allowed(_with(_good, {"app": {"id": "ABCDE12345.com.example.app.clip"}}), {"allowed_app_ids": [_app_id, "ABCDE12345.com.example.app.clip"]})
}

# --- deny --------------------------------------------------------------------

test_attestation_missing if _denied(null, _settings, ["attestation_missing"])

test_empty_input_decides if {
	d := data.attestgate.examples.ios.decision with input as {}
	d == {"allow": false, "reasons": ["attestation_missing"]}
}

test_android_token_denied_alone if {
	android := {"app": {"id": "com.example.app"}, "device": {"platform": "android", "rooted": true}}
	_denied(android, _settings, ["platform_not_ios"])
}

test_platform_case_matters if _denied(_with(_good, {"device": {"platform": "iOS"}}), _settings, ["platform_not_ios"])

test_app_id_not_allowed if {
	_denied(_with(_good, {"app": {"id": "ZZZZZ99999.com.example.app"}}), _settings, ["app_id_not_allowed"])
	_denied(_with(_good, {"app": {"id": "com.example.app"}}), _settings, ["app_id_not_allowed"])
}

test_app_id_missing_denied if _denied(object.remove(_good, ["app"]), _settings, ["app_id_not_allowed"])

test_no_app_id_allow_list_denies_everything if {
	_denied(_good, {}, ["app_id_not_allowed"])
	d := data.attestgate.examples.ios.decision with input as _input(_good)
	d == {"allow": false, "reasons": ["app_id_not_allowed"]}
}

test_jailbroken if _denied(_with(_good, {"device": {"rooted": true}}), _settings, ["device_jailbroken"])

test_null_or_stringly_flag_fails_closed if {
	_denied(_with(_good, {"device": {"rooted": null}}), _settings, ["device_jailbroken"])
	_denied(_with(_good, {"device": {"rooted": "false"}}), _settings, ["device_jailbroken"])
}

test_development_setting_does_not_allow_jailbreak if {
	_denied(_with(_good, {"device": {"rooted": true}}), object.union(_settings, {"allow_development": true}), ["device_jailbroken"])
}

test_os_version_too_old if _denied(_with(_good, {"device": {"os_version": "15.8.2"}}), _settings, ["os_version_too_old"])

test_os_version_missing_or_garbage_denied if {
	_denied(object.union(object.remove(_good, ["device"]), {"device": {"platform": "ios"}}), _settings, ["os_version_too_old"])
	_denied(_with(_good, {"device": {"os_version": "seventeen"}}), _settings, ["os_version_too_old"])
	_denied(_with(_good, {"device": {"os_version": ["17"]}}), _settings, ["os_version_too_old"])
}

test_garbage_min_os_setting_fails_closed if {
	_denied(_good, {"allowed_app_ids": [_app_id], "min_os_version": {"ios": "15"}}, ["os_version_too_old"])
}

test_debuggable_build_denied if _denied(_with(_good, {"app": {"debuggable": true}}), _settings, ["app_debuggable"])

test_debugger_attached_denied if _denied(_with(_good, {"runtime": {"debugger": true}}), _settings, ["debugger_attached"])

test_allow_development_must_be_true if {
	_denied(_with(_good, {"app": {"debuggable": true}}), object.union(_settings, {"allow_development": "yes"}), ["app_debuggable"])
}

test_all_reasons_sorted if {
	att := _with(_good, {
		"app": {"id": "x", "debuggable": true},
		"device": {"rooted": true, "os_version": "12.5"},
		"runtime": {"debugger": true},
	})
	_denied(att, _settings, ["app_debuggable", "app_id_not_allowed", "debugger_attached", "device_jailbroken", "os_version_too_old"])
}

# --- robustness: garbage claims or settings must still decide (deny), never error --

test_garbage_never_errors_and_never_allows if {
	atts := [
		null, 1, "x", [],
		{"app": "x", "device": [], "runtime": 3},
		{"app": {"id": 5, "debuggable": "no"}, "device": {"platform": "ios", "os_version": "..", "rooted": 0}},
		{"app": {"id": [_app_id]}, "device": {"platform": "ios", "os_version": -3}},
	]
	settings := [
		{},
		{"allowed_app_ids": 5, "min_os_version": [], "allow_development": "true"},
		{"allowed_app_ids": [null, 1, {}], "min_os_version": "x.y"},
	]
	results := [d | some a in atts; some s in settings; d := _decide(a, s)]
	count(results) == count(atts) * count(settings)
	every d in results {
		d.allow == false
		count(d.reasons) > 0
	}
}
