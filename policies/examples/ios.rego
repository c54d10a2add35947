# Example policy: App-Attest-style rules for iOS-only routes (Rego v1, regorus).
#
# Entrypoint data.attestgate.examples.ios.decision is always defined:
#   {"allow": bool, "reasons": [sorted snake_case strings, empty when allowed]}
# Standalone: load this file on its own; it does not need policies/device_trust.rego.
#
# Settings come from data.ios_app_attest (gate config policy.data.ios_app_attest).
# A setting that is absent or null takes its default.
#   allowed_app_ids    list of App IDs, "TEAMID.bundle.id" (e.g. "ABCDE12345.com.example.app").
#       REQUIRED: absent or [] denies every token. Compared exactly.
#   min_os_version     default "14.0" (App Attest needs iOS 14). Compared numerically one
#       dot-separated component at a time ("17.4.1" >= "17.4", "16.10" > "16.9").
#       A missing or non-version att.device.os_version is denied; a setting that is not
#       a string or number denies every token.
#   allow_development  default false. true (and only true) lets debuggable/development
#       builds (att.app.debuggable) and attached debuggers (att.runtime.debugger) through,
#       for internal test routes.
#
# Reasons:
#   attestation_missing  the token has no att object (reported alone)
#   platform_not_ios     att.device.platform is not "ios" (reported alone)
#   app_id_not_allowed   att.app.id is not in allowed_app_ids
#   device_jailbroken    att.device.rooted is present and not false
#   os_version_too_old   att.device.os_version is below min_os_version, or missing
#   app_debuggable       att.app.debuggable (get-task-allow, development App Attest key)
#   debugger_attached    att.runtime.debugger
# A reported boolean counts as safe only when absent or literally false.
package attestgate.examples.ios

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

deny contains "attestation_missing" if not is_object(_att_raw)

deny contains "platform_not_ios" if {
	is_object(_att_raw)
	_platform != "ios"
}

deny contains reason if {
	_platform == "ios"
	some reason in _findings
}

# --- inputs, normalised so that a malformed token can never error out --------

_att_raw := object.get(input, ["token", "claims", "att"], null)

_att := _obj(_att_raw)

_app := _obj(object.get(_att, "app", {}))

_device := _obj(object.get(_att, "device", {}))

_runtime := _obj(object.get(_att, "runtime", {}))

_platform := object.get(_device, "platform", null)

_obj(x) := x if {
	is_object(x)
} else := {}

_list(x) := x if {
	is_array(x)
} else := [x] if {
	is_string(x)
} else := []

_flag(obj, key) if object.get(obj, key, false) != false

# --- settings ----------------------------------------------------------------

default _settings := {}

_settings := _obj(data.ios_app_attest)

_setting(key, dflt) := v if {
	v := object.get(_settings, key, null)
	v != null
} else := dflt

_development_allowed if _setting("allow_development", false) == true

# --- checks ------------------------------------------------------------------

_findings contains "app_id_not_allowed" if {
	id := object.get(_app, "id", null)
	not _app_id_ok(id)
}

_app_id_ok(id) if {
	is_string(id)
	id in _list(_setting("allowed_app_ids", []))
}

_findings contains "device_jailbroken" if _flag(_device, "rooted")

_findings contains "os_version_too_old" if {
	not _version_at_least(object.get(_device, "os_version", null), _setting("min_os_version", "14.0"))
}

_findings contains "app_debuggable" if {
	_flag(_app, "debuggable")
	not _development_allowed
}

_findings contains "debugger_attached" if {
	_flag(_runtime, "debugger")
	not _development_allowed
}

# --- version helpers: numeric, component-wise, shorter side padded with 0 -----

# Accept numbers too: YAML turns an unquoted 15.0 into a number.
_vstr(x) := x if {
	is_string(x)
	regex.match(`^[0-9]+(\.[0-9]+)*$`, x)
} else := sprintf("%v", [x]) if {
	is_number(x)
	x >= 0
}

# Zeros are stripped because to_number parses JSON, which rejects "08".
_int(s) := to_number(d) if {
	d := trim_left(s, "0")
	d != ""
} else := 0

_parts(v) := [_int(p) | some p in split(v, ".")]

_part(parts, i) := parts[i] if {
	i < count(parts)
} else := 0

_version_lt(have, want) if {
	h := _parts(have)
	w := _parts(want)
	n := max([count(h), count(w)])
	diffs := [i | some i in numbers.range(0, n - 1); _part(h, i) != _part(w, i)]
	count(diffs) > 0
	_part(h, diffs[0]) < _part(w, diffs[0])
}

# Undefined (=> deny) when either version is missing or not a plain dotted number.
_version_at_least(have, want) if {
	h := _vstr(have)
	w := _vstr(want)
	not _version_lt(h, w)
}
