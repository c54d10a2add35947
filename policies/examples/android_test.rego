# Unit tests for examples/android.rego. Every test_* rule must evaluate to true.
package attestgate.examples.android_test

import rego.v1

_signer := "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

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
		"integrity": ["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"],
	},
	"runtime": {"debugger": false, "hooks": [], "app_tampered": false},
}

_settings := {"allowed_signers": [_signer], "min_patch_level": "2024-01-01"}

_input(att) := {
	"token": {"header": {"alg": "HS256", "kid": null, "typ": "JWT"}, "claims": {"exp": 2000000000, "iat": 1700000000, "att": att}},
	"request": {"method": "GET", "path": "/v1/items", "host": "api.example.com", "headers": {}, "source_ip": "127.0.0.1"},
	"binding": {"checked": false, "valid": false},
	"now": 1700000000,
	"rule": null,
}

_decide(att, settings) := d if {
	d := data.attestgate.examples.android.decision with input as _input(att) with data.android_integrity as settings
}

_with(base, patch) := object.union(base, patch)

_device_only(integrity) := _with(_good, {"device": {"integrity": integrity}})

_allowed(att, settings) if _decide(att, settings) == {"allow": true, "reasons": []}

_denied(att, settings, reasons) if _decide(att, settings) == {"allow": false, "reasons": reasons}

# --- allow -------------------------------------------------------------------

test_good_device_allowed if _allowed(_good, _settings)

test_signer_compared_case_insensitively if {
	_allowed(_with(_good, {"app": {"signer_sha256": ["00ff", upper(_signer)]}}), _settings)
}

test_device_integrity_configurable if {
	_allowed(_device_only(["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"]), object.union(_settings, {"required_integrity": "MEETS_DEVICE_INTEGRITY"}))
}

test_strong_label_meets_device_requirement if {
	_allowed(_device_only(["MEETS_STRONG_INTEGRITY"]), object.union(_settings, {"required_integrity": "MEETS_DEVICE_INTEGRITY"}))
}

test_patch_level_not_checked_by_default if {
	_allowed(_with(_good, {"device": {"patch_level": null}}), {"allowed_signers": [_signer]})
}

test_patch_level_equal_to_minimum_allowed if {
	_allowed(_good, {"allowed_signers": [_signer], "min_patch_level": "2024-05-05"})
}

test_extra_installer_configurable if {
	_allowed(_with(_good, {"app": {"installer": "com.amazon.venezia"}}), object.union(_settings, {"allowed_installers": ["com.android.vending", "com.amazon.venezia"]}))
}

# --- deny --------------------------------------------------------------------

test_attestation_missing if _denied(null, _settings, ["attestation_missing"])

test_empty_input_decides if {
	d := data.attestgate.examples.android.decision with input as {}
	d == {"allow": false, "reasons": ["attestation_missing"]}
}

test_ios_token_denied_alone if {
	ios := {"app": {"id": "ABCDE12345.com.example.app"}, "device": {"platform": "ios", "os_version": "17.4"}}
	_denied(ios, _settings, ["platform_not_android"])
}

test_missing_platform_denied if _denied(object.remove(_good, ["device"]), _settings, ["platform_not_android"])

test_strong_required_by_default if {
	_denied(_device_only(["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"]), _settings, ["integrity_not_met"])
}

test_basic_only_fails_device_requirement if {
	_denied(_device_only(["MEETS_BASIC_INTEGRITY"]), object.union(_settings, {"required_integrity": "MEETS_DEVICE_INTEGRITY"}), ["integrity_not_met"])
}

test_virtual_integrity_is_not_a_tier if {
	_denied(_device_only(["MEETS_VIRTUAL_INTEGRITY"]), object.union(_settings, {"required_integrity": "MEETS_DEVICE_INTEGRITY"}), ["integrity_not_met"])
}

test_invalid_requirement_falls_back_to_strong if {
	dev := _device_only(["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"])
	_denied(dev, object.union(_settings, {"required_integrity": "MEETS_BASIC_INTEGRITY"}), ["integrity_not_met"])
	_denied(dev, object.union(_settings, {"required_integrity": "DEVICE"}), ["integrity_not_met"])
}

test_missing_integrity_denied if _denied(object.union(object.remove(_good, ["device"]), {"device": {"platform": "android"}}), {"allowed_signers": [_signer]}, ["integrity_not_met"])

test_signer_not_allowed if {
	_denied(_with(_good, {"app": {"signer_sha256": ["00ff"]}}), _settings, ["signer_not_allowed"])
}

test_no_signer_allow_list_denies_everything if _denied(_good, {}, ["signer_not_allowed"])

test_no_settings_data_at_all if {
	d := data.attestgate.examples.android.decision with input as _input(_good)
	d == {"allow": false, "reasons": ["signer_not_allowed"]}
}

test_sideloaded_denied if {
	_denied(_with(_good, {"app": {"installer": null}}), _settings, ["installer_not_allowed"])
	_denied(object.union(object.remove(_good, ["app"]), {"app": {"signer_sha256": [_signer]}}), _settings, ["installer_not_allowed"])
}

test_other_store_denied_by_default if {
	_denied(_with(_good, {"app": {"installer": "com.amazon.venezia"}}), _settings, ["installer_not_allowed"])
}

test_patch_level_too_old if {
	_denied(_with(_good, {"device": {"patch_level": "2023-12-01"}}), _settings, ["patch_level_too_old"])
}

test_patch_level_missing_or_malformed_denied if {
	_denied(_with(_good, {"device": {"patch_level": null}}), _settings, ["patch_level_too_old"])
	_denied(_with(_good, {"device": {"patch_level": "2024-5-5"}}), _settings, ["patch_level_too_old"])
	_denied(_with(_good, {"device": {"patch_level": 20240505}}), _settings, ["patch_level_too_old"])
}

test_non_string_patch_setting_fails_closed if {
	_denied(_good, {"allowed_signers": [_signer], "min_patch_level": 20240101}, ["patch_level_too_old"])
}

test_all_reasons_sorted if {
	att := _with(_good, {
		"app": {"signer_sha256": ["00ff"], "installer": "com.sideload.store"},
		"device": {"integrity": ["MEETS_BASIC_INTEGRITY"], "patch_level": "2022-01-01"},
	})
	_denied(att, _settings, ["installer_not_allowed", "integrity_not_met", "patch_level_too_old", "signer_not_allowed"])
}

# --- robustness: garbage claims or settings must still decide (deny), never error --

test_garbage_never_errors_and_never_allows if {
	atts := [
		null, 1, "x", [],
		{"app": "x", "device": []},
		{"app": {"signer_sha256": 5, "installer": ["com.android.vending"]}, "device": {"platform": "android", "integrity": "MEETS_STRONG_INTEGRITY X", "patch_level": {}}},
		{"app": {"signer_sha256": [{}], "installer": 1}, "device": {"platform": "android", "integrity": [1, null, {}]}},
	]
	settings := [
		{},
		{"allowed_signers": 5, "allowed_installers": {}, "required_integrity": ["x"], "min_patch_level": []},
		{"allowed_signers": [null, 1], "allowed_installers": [null, 1], "required_integrity": 3},
	]
	results := [d | some a in atts; some s in settings; d := _decide(a, s)]
	count(results) == count(atts) * count(settings)
	every d in results {
		d.allow == false
		count(d.reasons) > 0
	}
}
