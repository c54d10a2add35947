# Unit tests for device_trust.rego. Every test_* rule must evaluate to true.
# Data-driven end-to-end cases live in policy-engine/tests/data/claims_cases.yaml.
package attestgate_test

import rego.v1

_signer := "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

_android := {
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
		"bootloader_unlocked": false,
	},
	"runtime": {"debugger": false, "hooks": [], "app_tampered": false},
	"risk": {"score": 10},
}

# App Attest has no installer, patch level or integrity verdict.
_ios := {
	"app": {"id": "ABCDE12345.com.example.app", "version": "2.4.1", "debuggable": false},
	"device": {"platform": "ios", "os_version": "17.4.1", "rooted": false, "emulator": false},
	"runtime": {"debugger": false, "hooks": [], "app_tampered": false},
	"risk": {"score": 5},
}

# A production-like config: per-platform app ids and signers.
_strict := {
	"allowed_app_ids": {"android": ["com.example.app"], "ios": ["ABCDE12345.com.example.app"]},
	"allowed_signers": {"android": [_signer]},
	"allowed_installers": ["com.android.vending"],
	"min_app_version": "2.3.0",
	"min_os_version": {"android": "12", "ios": "15.0"},
	"min_patch_level": "2024-01-01",
}

_input(att) := {
	"token": {
		"header": {"alg": "HS256", "kid": null, "typ": "JWT"},
		"claims": {"exp": 2000000000, "iat": 1700000000, "did": "device-1", "att": att},
	},
	"request": {"method": "GET", "path": "/v1/items", "host": "api.example.com", "headers": {}, "source_ip": "127.0.0.1"},
	"binding": {"checked": false, "valid": false},
	"now": 1700000000,
	"rule": null,
}

_decide(att, settings) := d if {
	d := data.attestgate.decision with input as _input(att) with data.device_trust as settings
}

# Deep-merges overrides into a base claim object.
_with(base, patch) := object.union(base, patch)

_allowed(att, settings) if _decide(att, settings) == {"allow": true, "reasons": []}

_denied(att, settings, reasons) if _decide(att, settings) == {"allow": false, "reasons": reasons}

# --- allow -------------------------------------------------------------------

test_android_good_default_settings if _allowed(_android, {})

test_ios_good_default_settings if _allowed(_ios, {})

test_android_good_strict_settings if _allowed(_android, _strict)

test_ios_good_strict_settings if _allowed(_ios, _strict)

test_no_device_trust_data_at_all if {
	d := data.attestgate.decision with input as _input(_android)
	d == {"allow": true, "reasons": []}
}

test_missing_booleans_count_as_false if {
	_allowed({"device": {"platform": "android", "integrity": ["MEETS_DEVICE_INTEGRITY"]}}, {})
}

test_null_setting_means_default if _denied(_with(_android, {"device": {"emulator": true}}), {"allow_emulator": null}, ["emulator"])

# --- fail closed -------------------------------------------------------------

test_attestation_missing if _denied(null, {}, ["attestation_missing"])

test_attestation_not_an_object if _denied("yes", {}, ["attestation_missing"])

test_attestation_missing_suppresses_other_reasons if _denied(null, _strict, ["attestation_missing"])

test_decision_defined_for_empty_input if {
	d := data.attestgate.decision with input as {}
	d == {"allow": false, "reasons": ["attestation_missing"]}
}

test_unknown_platform if _denied(_with(_ios, {"device": {"platform": "windows"}}), {}, ["unknown_platform"])

test_missing_platform if _denied({"app": {"id": "x"}}, {}, ["unknown_platform"])

test_null_flag_fails_closed if _denied(_with(_android, {"device": {"rooted": null}}), {}, ["device_rooted"])

# --- app identity --------------------------------------------------------------

test_app_id_not_allowed if _denied(_with(_android, {"app": {"id": "com.evil.clone"}}), _strict, ["app_id_not_allowed"])

test_app_id_flat_list_applies_to_all_platforms if {
	_denied(_ios, {"allowed_app_ids": ["com.example.app"]}, ["app_id_not_allowed"])
}

test_signer_not_allowed if {
	_denied(_with(_android, {"app": {"signer_sha256": ["00ff"]}}), _strict, ["signer_not_allowed"])
}

test_signer_missing_denied_when_required if {
	_denied(object.union(_android, {"app": {"signer_sha256": []}}), {"allowed_signers": [_signer]}, ["signer_not_allowed"])
}

test_signer_any_of_several if {
	_allowed(_with(_android, {"app": {"signer_sha256": ["00ff", upper(_signer)]}}), {"allowed_signers": [_signer]})
}

test_installer_not_allowed_sideloaded if {
	_denied(_with(_android, {"app": {"installer": null}}), _strict, ["installer_not_allowed"])
}

test_installer_not_checked_on_ios if _allowed(_ios, {"allowed_installers": ["com.android.vending"]})

# --- versions --------------------------------------------------------------------

test_app_version_too_old if {
	_denied(_with(_android, {"app": {"version": "2.2.9"}}), _strict, ["app_version_too_old"])
}

test_app_version_compares_numerically if {
	_allowed(_with(_android, {"app": {"version": "2.10"}}), {"min_app_version": "2.9.0"})
}

test_app_version_missing_denied if {
	_denied(object.remove(_android, ["app"]), {"min_app_version": "1.0"}, ["app_version_too_old"])
}

test_os_version_too_old_android if {
	_denied(_with(_android, {"device": {"os_version": "11"}}), _strict, ["os_version_too_old"])
}

test_os_version_too_old_ios if {
	_denied(_with(_ios, {"device": {"os_version": "14.8.1"}}), _strict, ["os_version_too_old"])
}

test_os_version_numeric_setting if _allowed(_ios, {"min_os_version": {"ios": 15.0}})

test_patch_level_too_old if {
	_denied(_with(_android, {"device": {"patch_level": "2023-11-01"}}), _strict, ["patch_level_too_old"])
}

test_patch_level_malformed_denied if {
	_denied(_with(_android, {"device": {"patch_level": "2024-5-5"}}), _strict, ["patch_level_too_old"])
}

test_version_helper if {
	data.attestgate._version_lt("2.2.9", "2.3")
	data.attestgate._version_lt("1.9", "1.10")
	not data.attestgate._version_lt("2.3", "2.3.0")
	not data.attestgate._version_lt("2.10", "2.9")
	data.attestgate._int("08") == 8
	data.attestgate._int("3-beta") == 3
}

# --- device integrity ------------------------------------------------------------

test_integrity_not_met_basic_only if {
	_denied(_with(_android, {"device": {"integrity": ["MEETS_BASIC_INTEGRITY"]}}), {}, ["integrity_not_met"])
}

test_integrity_strong_required if {
	_denied(_android, {"required_integrity": ["MEETS_STRONG_INTEGRITY"]}, ["integrity_not_met"])
}

test_integrity_requirement_can_be_dropped if {
	_allowed(_with(_android, {"device": {"integrity": []}}), {"required_integrity": []})
}

test_integrity_not_checked_on_ios if _allowed(_ios, {"required_integrity": ["MEETS_STRONG_INTEGRITY"]})

test_device_rooted if _denied(_with(_ios, {"device": {"rooted": true}}), {}, ["device_rooted"])

test_allow_rooted if _allowed(_with(_android, {"device": {"rooted": true}}), {"allow_rooted": true})

test_emulator if _denied(_with(_android, {"device": {"emulator": true}}), {}, ["emulator"])

test_allow_emulator if _allowed(_with(_android, {"device": {"emulator": true}}), {"allow_emulator": true})

test_bootloader_unlocked if {
	_denied(_with(_android, {"device": {"bootloader_unlocked": true}}), {}, ["bootloader_unlocked"])
}

test_allow_bootloader_unlocked if {
	_allowed(_with(_android, {"device": {"bootloader_unlocked": true}}), {"allow_bootloader_unlocked": true})
}

# --- runtime -----------------------------------------------------------------------

test_app_debuggable if _denied(_with(_android, {"app": {"debuggable": true}}), {}, ["app_debuggable"])

test_debugger_attached if _denied(_with(_ios, {"runtime": {"debugger": true}}), {}, ["debugger_attached"])

test_allow_debuggable_covers_debugger if {
	_allowed(_with(_android, {"app": {"debuggable": true}, "runtime": {"debugger": true}}), {"allow_debuggable": true})
}

test_any_hook_denies_by_default if _denied(_with(_android, {"runtime": {"hooks": ["substrate"]}}), {}, ["hooking_detected"])

test_denied_hooks_list_only_those if {
	_allowed(_with(_android, {"runtime": {"hooks": ["frida"]}}), {"denied_hooks": ["xposed"]})
	_denied(_with(_android, {"runtime": {"hooks": ["Xposed"]}}), {"denied_hooks": ["xposed"]}, ["hooking_detected"])
}

test_app_tampered_has_no_override if {
	_denied(_with(_android, {"runtime": {"app_tampered": true}}), {"allow_debuggable": true}, ["app_tampered"])
}

# --- risk ------------------------------------------------------------------------------

test_risk_score_too_high if _denied(_with(_android, {"risk": {"score": 71}}), {}, ["risk_score_too_high"])

test_risk_score_at_limit_allowed if _allowed(_with(_android, {"risk": {"score": 70}}), {})

test_risk_score_custom_limit if _denied(_with(_ios, {"risk": {"score": 30}}), {"max_risk_score": 20}, ["risk_score_too_high"])

test_risk_score_missing_counts_as_zero if _allowed(object.remove(_android, ["risk"]), {})

test_risk_score_non_numeric_denied if _denied(_with(_android, {"risk": {"score": "low"}}), {}, ["risk_score_too_high"])

# --- combinations --------------------------------------------------------------------

test_compromised_android_reports_all_reasons_sorted if {
	att := _with(_android, {
		"app": {"version": "1.0.0", "installer": "com.sideload.store"},
		"device": {"rooted": true, "emulator": true, "integrity": ["MEETS_BASIC_INTEGRITY"]},
		"runtime": {"hooks": ["frida"], "debugger": true},
		"risk": {"score": 95},
	})
	_denied(att, _strict, [
		"app_version_too_old", "debugger_attached", "device_rooted", "emulator",
		"hooking_detected", "installer_not_allowed", "integrity_not_met", "risk_score_too_high",
	])
}

test_unknown_platform_still_reports_generic_findings if {
	_denied({"device": {"platform": "symbian", "rooted": true}}, {}, ["device_rooted", "unknown_platform"])
}

# --- robustness: garbage claims or settings must still decide (deny), never error --

_garbage_atts := [
	null, 1, "x", [],
	{"app": "x", "device": [], "runtime": 3, "risk": "high"},
	{
		"app": {"id": 5, "version": 7, "signer_sha256": "ABC", "installer": [], "debuggable": "no"},
		"device": {"platform": "android", "os_version": ["1"], "patch_level": 20240101, "integrity": "X", "rooted": 0},
		"runtime": {"hooks": "frida", "debugger": null},
		"risk": {"score": null},
	},
	{"app": {"version": ".."}, "device": {"platform": "ios", "os_version": "abc", "rooted": "false"}},
]

_garbage_settings := [
	{},
	{"allowed_app_ids": "com.x", "allowed_signers": 5, "min_app_version": ["1"], "min_os_version": "12", "required_integrity": "X", "denied_hooks": "frida", "max_risk_score": "70"},
	{"min_app_version": "1.0", "min_os_version": {"android": 12, "ios": ["15"]}, "min_patch_level": "2024-01-01", "denied_hooks": [1, "FRIDA"]},
]

test_garbage_never_errors_and_never_allows if {
	results := [d |
		some att in _garbage_atts
		some s in _garbage_settings
		d := _decide(att, s)
	]
	count(results) == count(_garbage_atts) * count(_garbage_settings)
	every d in results {
		d.allow == false
		count(d.reasons) > 0
	}
}
