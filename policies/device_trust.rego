# Default device-trust policy for attestgate (Rego v1, evaluated by regorus).
#
# Entrypoint data.attestgate.decision is always defined:
#   {"allow": bool, "reasons": [sorted snake_case strings, empty when allowed]}
#
# Settings come from data.device_trust (gate config); absent or null = default,
# so an empty config is already strict. Full table: docs/claims.md.
#   allowed_app_ids / allowed_signers / allowed_installers
#       list, or {"android": [...], "ios": [...]}; absent/[] = any. Signers are
#       lowercase hex SHA-256 cert digests (one token signer must match).
#       Installers are checked on android only (iOS reports none).
#   min_app_version "2.3.0" | min_os_version {"android": "12", "ios": "15.0"}
#       numeric component-wise compare; a missing reported version is denied.
#   min_patch_level "YYYY-MM-DD", android only.
#   required_integrity  default ["MEETS_DEVICE_INTEGRITY"], android only.
#   allow_emulator / allow_rooted / allow_bootloader_unlocked  default false.
#   allow_debuggable    default false; covers app_debuggable + debugger_attached.
#   denied_hooks        absent = any hook denies; list = only those; [] = none.
#   max_risk_score      default 70; deny when att.risk.score > it.
package attestgate

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

# --- inputs, normalised so that a malformed token can never error out --------

_reported := object.get(input, ["token", "claims", "att"], null)

_has_att if is_object(_reported)

_att := _obj(_reported)

_obj(x) := x if {
	is_object(x)
} else := {}

# A lone string is a one-item list: forgiving for hand-written config, and a
# scalar `hooks: "frida"` from a sloppy service must still count as a hook.
_list(x) := x if {
	is_array(x)
} else := [x] if {
	is_string(x)
} else := []

_app := _obj(object.get(_att, "app", {}))

_device := _obj(object.get(_att, "device", {}))

_platform := object.get(_device, "platform", null)

# --- settings ----------------------------------------------------------------

default _settings := {}

_settings := _obj(data.device_trust)

# null counts as absent so `key: ~` in YAML config means "use the default".
# The settings given (not null) are gathered once per evaluation; the rules
# below read them with object.get(_given, key, default).
_given := {key: v | some key, v in _settings; v != null}

_setting(key, dflt) := object.get(_given, key, dflt)

# List settings restrict every platform, or only the platforms named when the
# setting is an object (app ids and signers usually differ between stores).
# Undefined when the setting imposes no restriction on this token's platform.
# (A setting not given imposes none: both branches stop at `_given[key]`.)
_restriction(key) := s if {
	s := _list(_given[key])
	count(s) > 0
} else := s if {
	o := _given[key]
	is_object(o)
	s := _list(object.get(o, _platform, []))
	count(s) > 0
}

_lower(x) := lower(x) if {
	is_string(x)
} else := x

# --- version helpers: numeric, component-wise, shorter side padded with 0 -----

# Accept numbers too: YAML turns an unquoted 15.0 into a number.
_vstr(x) := x if {
	is_string(x)
} else := sprintf("%v", [x]) if {
	is_number(x)
}

# Leading digits of a component ("3-beta" -> 3, no digits -> 0): trim_left
# drops the leading digits, so trimming what is left off the end keeps them.
# Zeros are stripped first because to_number parses JSON, which rejects "08";
# nothing left (no digits, or only zeros) reads as "0".
_int(s) := to_number(object.get({"": "0"}, d, d)) if {
	d := trim_left(trim_suffix(s, trim_left(s, "0123456789")), "0")
} else := 0

# _int of every component, inline: a function call per component costs more
# than the component's work.
_parts(v) := [to_number(object.get({"": "0"}, d, d)) |
	some p in split(v, ".")
	d := trim_left(trim_suffix(p, trim_left(p, "0123456789")), "0")
]

# Both sides padded with zeros to the same length, then compared as arrays:
# arrays of one length order at their first differing component.
_version_lt(have, want) if {
	h := _parts(have)
	w := _parts(want)
	n := max([count(h), count(w)])
	array.slice(array.concat(h, [0 | some _ in w]), 0, n) < array.slice(array.concat(w, [0 | some _ in h]), 0, n)
}

# Undefined (=> deny) when the reported version is missing or not a string/number.
_version_at_least(have, want) if {
	h := _vstr(have)
	w := _vstr(want)
	not _version_lt(h, w)
}

# --- deny reasons ------------------------------------------------------------

deny contains "attestation_missing" if not _has_att

# Without attestation nothing below is meaningful: report that reason alone.
deny contains reason if {
	_has_att
	some reason in _findings
}

_findings contains "unknown_platform" if not _platform in {"android", "ios"}

_findings contains "app_id_not_allowed" if {
	allowed := _restriction("allowed_app_ids")
	not object.get(_app, "id", null) in allowed
}

_findings contains "signer_not_allowed" if {
	restriction := _restriction("allowed_signers")
	allowed := {_lower(s) | some s in restriction}
	count({s | some s in _list(object.get(_app, "signer_sha256", [])); _lower(s) in allowed}) == 0
}

_findings contains "installer_not_allowed" if {
	_platform == "android"
	allowed := _restriction("allowed_installers")
	not object.get(_app, "installer", null) in allowed
}

_findings contains "app_version_too_old" if {
	want := object.get(_given, "min_app_version", "")
	want != ""
	not _version_at_least(object.get(_app, "version", null), want)
}

_findings contains "os_version_too_old" if {
	want := object.get(_obj(object.get(_given, "min_os_version", {})), _platform, "")
	want != ""
	not _version_at_least(object.get(_device, "os_version", null), want)
}

# Zero-padded ISO dates order correctly as strings; anything else fails closed.
_findings contains "patch_level_too_old" if {
	_platform == "android"
	want := object.get(_given, "min_patch_level", "")
	want != ""
	not _patch_at_least(object.get(_device, "patch_level", null), want)
}

# YYYY-MM-DD, ASCII digits only (what `^[0-9]{4}-[0-9]{2}-[0-9]{2}$` matches),
# checked without compiling a regex: three dash-separated fields of 4, 2 and 2
# characters, each all digits.
_patch_at_least(have, want) if {
	is_string(have)
	[y, m, d] := split(have, "-")
	count(y) == 4
	count(m) == 2
	count(d) == 2
	trim_left(concat("", [y, m, d]), "0123456789") == ""
	have >= want
}

_findings contains "integrity_not_met" if {
	_platform == "android"
	have := _list(object.get(_device, "integrity", []))
	some required in _list(object.get(_given, "required_integrity", ["MEETS_DEVICE_INTEGRITY"]))
	not required in have
}

# Reported booleans: reason -> [claim section, key, setting that overrides it].
# allow_debuggable covers both debug signals: together they mean "dev build".
# Tampering has no override: a patched or re-signed binary is never trusted.
_flag_checks := {
	"device_rooted": ["device", "rooted", "allow_rooted"],
	"emulator": ["device", "emulator", "allow_emulator"],
	"bootloader_unlocked": ["device", "bootloader_unlocked", "allow_bootloader_unlocked"],
	"app_debuggable": ["app", "debuggable", "allow_debuggable"],
	"debugger_attached": ["runtime", "debugger", "allow_debuggable"],
	"app_tampered": ["runtime", "app_tampered", ""],
}

# The claim sections, normalised once.
_sections := {"device": _device, "app": _app, "runtime": _runtime}

_runtime := _obj(object.get(_att, "runtime", {}))

# A reported boolean is only "safe" when it is absent or literally false, so a
# null or a stringly "true" from a sloppy attestation service fails closed.
_findings contains reason if {
	some reason, check in _flag_checks
	object.get(_sections[check[0]], check[1], false) != false
	object.get(_given, check[2], false) != true
}

_hooks := _list(object.get(_runtime, "hooks", []))

_findings contains "hooking_detected" if {
	object.get(_given, "denied_hooks", null) == null
	count(_hooks) > 0
}

_findings contains "hooking_detected" if {
	some h in _hooks
	denied := {_lower(d) | some d in _list(object.get(_given, "denied_hooks", []))}
	_lower(h) in denied
}

# Services without a risk engine (Play Integrity, App Attest) omit the score,
# which counts as 0; a present but non-numeric score fails closed.
_findings contains "risk_score_too_high" if {
	score := object.get(_att, ["risk", "score"], 0)
	not _risk_ok(score)
}

_risk_ok(score) if {
	is_number(score)
	limit := object.get(_given, "max_risk_score", 70)
	is_number(limit)
	score <= limit
}
