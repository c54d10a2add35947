# Unit tests for examples/app_check.rego. Every test_* rule must evaluate to true.
package attestgate.examples.app_check_test

import rego.v1

_android := "1:123456789012:android:abc123"

_ios := "1:123456789012:ios:def456"

# An App Check token's claims, as App Check issues them: no att, no did.
_claims(sub) := {
	"sub": sub,
	"aud": ["projects/123456789012", "projects/my-project-id"],
	"iss": "https://firebaseappcheck.googleapis.com/123456789012",
	"exp": 1700003600,
	"iat": 1700000000,
}

_header := {"alg": "RS256", "kid": "app-check-test", "typ": "JWT"}

_input(header, claims) := {
	"token": {"header": header, "claims": claims},
	"request": {"method": "GET", "path": "/v1/items", "host": "api.example.com", "headers": {}, "source_ip": "127.0.0.1"},
	"binding": {"checked": false, "valid": false},
	"device": {"id": null, "listed": false},
	"now": 1700000000,
	"rule": null,
}

_settings := {"allowed_app_ids": [_android, _ios]}

_decide(header, claims, settings) := d if {
	d := data.attestgate.examples.app_check.decision with input as _input(header, claims)
		with data.app_check as settings
}

_allowed(claims, settings) if _decide(_header, claims, settings) == {"allow": true, "reasons": []}

_denied(claims, settings, reasons) if _decide(_header, claims, settings) == {"allow": false, "reasons": reasons}

# --- allow -------------------------------------------------------------------

test_listed_android_app_allowed if _allowed(_claims(_android), _settings)

test_listed_ios_app_allowed if _allowed(_claims(_ios), _settings)

# App Check tokens carry no measurement claims: their absence is no reason to deny.
test_no_attestation_claims_needed if {
	claims := _claims(_android)
	not "att" in object.keys(claims)
	not "did" in object.keys(claims)
	_allowed(claims, _settings)
}

# The policy reads `sub` only: Approov-style claims that happen to be there change nothing,
# even ones the default device-trust policy would deny for.
test_att_claims_are_ignored if {
	claims := object.union(_claims(_android), {"att": {"device": {"rooted": true, "platform": "android"}}})
	_allowed(claims, _settings)
}

test_lone_string_setting_is_one_app if _allowed(_claims(_android), {"allowed_app_ids": _android})

test_null_fields_in_settings_take_defaults if {
	_denied(_claims(_android), {"allowed_app_ids": null}, ["app_id_not_allowed"])
}

# --- deny --------------------------------------------------------------------

test_unlisted_app_denied if _denied(_claims("1:123456789012:android:000000"), _settings, ["app_id_not_allowed"])

test_app_of_another_project_denied if {
	_denied(_claims("1:999999999999:android:abc123"), _settings, ["app_id_not_allowed"])
}

test_app_ids_compare_exactly if {
	_denied(_claims(upper(_android)), _settings, ["app_id_not_allowed"])
	_denied(_claims(concat("", [_android, " "])), _settings, ["app_id_not_allowed"])
	_denied(_claims("abc123"), _settings, ["app_id_not_allowed"])
}

test_no_allowlist_denies_everything if {
	_denied(_claims(_android), {}, ["app_id_not_allowed"])
	_denied(_claims(_android), {"allowed_app_ids": []}, ["app_id_not_allowed"])
	_denied(_claims(_android), {"allowed_app_ids": 7}, ["app_id_not_allowed"])
	_denied(_claims(_android), "strict", ["app_id_not_allowed"])
}

test_no_settings_at_all_denies if {
	d := data.attestgate.examples.app_check.decision with input as _input(_header, _claims(_android))
	d == {"allow": false, "reasons": ["app_id_not_allowed"]}
}

test_sub_missing_or_not_a_string if {
	_denied(object.remove(_claims(_android), ["sub"]), _settings, ["app_id_missing"])
	_denied(_claims(null), _settings, ["app_id_missing"])
	_denied(_claims([_android]), _settings, ["app_id_missing"])
	_denied(_claims(7), _settings, ["app_id_missing"])
}

test_typ_must_be_jwt if {
	_decide(object.union(_header, {"typ": "at+jwt"}), _claims(_android), _settings) == {"allow": false, "reasons": ["token_type_not_jwt"]}
	_decide(object.union(_header, {"typ": "jwt"}), _claims(_android), _settings) == {"allow": false, "reasons": ["token_type_not_jwt"]}
	_decide(object.remove(_header, ["typ"]), _claims(_android), _settings) == {"allow": false, "reasons": ["token_type_not_jwt"]}
}

test_reasons_are_sorted_and_all_reported if {
	_decide({"alg": "RS256"}, _claims("1:1:web:x"), _settings) == {"allow": false, "reasons": ["app_id_not_allowed", "token_type_not_jwt"]}
}

test_empty_input_decides if {
	d := data.attestgate.examples.app_check.decision with input as {}
	d == {"allow": false, "reasons": ["app_id_missing", "token_type_not_jwt"]}
}
