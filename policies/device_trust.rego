# Default device-trust policy for attestgate (Rego v1).
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
#
# One rule per reason. A claim the check needs is read with a default where its
# absence must not decide on its own (object.get), and checked for presence
# before a `not`, so the policy means the same in every Rego engine.
package attestgate

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

# --- the attestation -----------------------------------------------------------

# The token's attestation claims, when it has them as an object. Without them
# nothing else is meaningful: attestation_missing is then the one reason.
_att := att if {
	att := input.token.claims.att
	is_object(att)
}

_attested if is_object(_att)

deny contains "attestation_missing" if not _attested

_platform := object.get(_att, ["device", "platform"], null)

# A lone string is a one-item list (see _list), for the lists a service reports.
_signers := _list(object.get(_att, ["app", "signer_sha256"], []))

_integrity := _list(object.get(_att, ["device", "integrity"], []))

_hooks := _list(object.get(_att, ["runtime", "hooks"], []))

# Services without a risk engine (Play Integrity, App Attest) omit the score,
# which counts as 0.
_score := object.get(_att, ["risk", "score"], 0)

# --- settings ------------------------------------------------------------------

# data.device_trust without its null settings, so `key: ~` in YAML config means
# "use the default". It is read by its path: a read of all of `data` would
# include this policy's own rules, which OPA refuses as recursion.
default _given := {}

_given := {key: value | some key, value in data.device_trust; value != null} if {
	is_object(data.device_trust)
}

# Only a literal true setting allows what it names.
_allowed(setting) if _given[setting] == true

# --- the checks ----------------------------------------------------------------

deny contains "unknown_platform" if {
	_attested
	not _platform in {"android", "ios"}
}

deny contains "app_id_not_allowed" if {
	_attested
	allowed := _restriction(_given.allowed_app_ids)
	not object.get(_att, ["app", "id"], null) in allowed
}

deny contains "signer_not_allowed" if {
	_attested
	restriction := _restriction(_given.allowed_signers)
	allowed := {_lower(s) | some s in restriction}
	not _signed_by_one_of(allowed)
}

_signed_by_one_of(allowed) if {
	some signer in _signers
	_lower(signer) in allowed
}

deny contains "installer_not_allowed" if {
	_platform == "android"
	allowed := _restriction(_given.allowed_installers)
	not object.get(_att, ["app", "installer"], null) in allowed
}

deny contains "app_version_too_old" if {
	_attested
	want := _given.min_app_version
	want != ""
	not _version_at_least(object.get(_att, ["app", "version"], null), want)
}

# The platform is a key of min_os_version here; only a string names one.
deny contains "os_version_too_old" if {
	is_string(_platform)
	want := object.get(_given, ["min_os_version", _platform], "")
	want != ""
	not _version_at_least(object.get(_att, ["device", "os_version"], null), want)
}

deny contains "patch_level_too_old" if {
	_platform == "android"
	want := _given.min_patch_level
	want != ""
	not _patch_at_least(object.get(_att, ["device", "patch_level"], null), want)
}

deny contains "integrity_not_met" if {
	_platform == "android"
	some required in _list(object.get(_given, "required_integrity", ["MEETS_DEVICE_INTEGRITY"]))
	not required in _integrity
}

# A reported boolean is only "safe" when it is absent or literally false, so a
# null or a stringly "true" from a sloppy attestation service fails closed.
deny contains "device_rooted" if {
	_att.device.rooted != false
	not _allowed("allow_rooted")
}

deny contains "emulator" if {
	_att.device.emulator != false
	not _allowed("allow_emulator")
}

deny contains "bootloader_unlocked" if {
	_att.device.bootloader_unlocked != false
	not _allowed("allow_bootloader_unlocked")
}

# allow_debuggable covers both debug signals: together they mean "dev build".
deny contains "app_debuggable" if {
	_att.app.debuggable != false
	not _allowed("allow_debuggable")
}

deny contains "debugger_attached" if {
	_att.runtime.debugger != false
	not _allowed("allow_debuggable")
}

# Tampering has no override: a patched or re-signed binary is never trusted.
deny contains "app_tampered" if _att.runtime.app_tampered != false

# Any hook denies unless denied_hooks is given; then only those do.
deny contains "hooking_detected" if {
	object.get(_given, "denied_hooks", null) == null
	count(_hooks) > 0
}

deny contains "hooking_detected" if {
	denied := {_lower(d) | some d in _list(_given.denied_hooks)}
	some hook in _hooks
	_lower(hook) in denied
}

# A present but non-numeric score, or limit, fails closed.
deny contains "risk_score_too_high" if {
	_attested
	not _risk_within_limit
}

_risk_within_limit if {
	limit := object.get(_given, "max_risk_score", 70)
	is_number(_score)
	is_number(limit)
	_score <= limit
}

# --- helpers -------------------------------------------------------------------

# A lone string is a one-item list: forgiving for hand-written config, and a
# scalar `hooks: "frida"` from a sloppy service must still count as a hook.
_list(x) := x if {
	is_array(x)
} else := [x] if {
	is_string(x)
} else := []

# List settings restrict every platform, or only the platforms named when the
# setting is an object (app ids and signers usually differ between stores).
# Undefined when the setting imposes no restriction on this token's platform
# (a setting not given imposes none: the caller's `_given.key` is undefined).
_restriction(setting) := s if {
	s := _list(setting)
	count(s) > 0
} else := s if {
	is_object(setting)
	s := _list(object.get(setting, _platform, []))
	count(s) > 0
}

_lower(x) := lower(x) if {
	is_string(x)
} else := x

# --- versions: numeric, component-wise, the shorter side padded with zeros ---------

# False (=> deny) when either side is not a string or a number (YAML turns an
# unquoted 15.0 into a number; "%v" prints a string as is).
_version_at_least(have, want) if {
	type_name(have) in {"string", "number"}
	type_name(want) in {"string", "number"}
	h := _components(have)
	w := _components(want)
	array.concat(h, _zeros(w)) >= array.concat(w, _zeros(h))
}

# Each component of a version (up to a dot or the end) as [digit count, digits]:
# its leading digits without leading zeros ("3-beta" -> 3, "08" -> 8, no digits
# -> 0). For numbers written without leading zeros that pair orders as the
# numbers do, however long; "0", "00" and "" all read as [0, ""]. A last empty
# component can go unreported, and reads as the padding would.
_components(version) := [[count(m[1]), m[1]] |
	some m in regex.find_all_string_submatch_n(`0*([0-9]*)[^.]*(?:\.|$)`, sprintf("%v", [version]), -1)
]

# As many zero components as `other` has: padded so, both sides have one
# length, and arrays of one length order at their first differing component.
_zeros(other) := [[0, ""] | some _ in other]

# The same order, strictly below (and true when either side is no version).
_version_lt(have, want) if not _version_at_least(have, want)

# One component's number: its leading digits without leading zeros (to_number
# parses JSON, which rejects "08"); none read as 0.
_int(s) := to_number(object.get({"": "0"}, d, d)) if {
	d := regex.find_all_string_submatch_n(`0*([0-9]*)[^.]*(?:\.|$)`, s, 1)[0][1]
}

# YYYY-MM-DD, ASCII digits only (what `^[0-9]{4}-[0-9]{2}-[0-9]{2}$` matches):
# three dash-separated fields of 4, 2 and 2 characters, each all digits.
# Zero-padded ISO dates then order correctly as strings.
_patch_at_least(have, want) if {
	is_string(have)
	[y, m, d] := split(have, "-")
	count(y) == 4
	count(m) == 2
	count(d) == 2
	trim_left(concat("", [y, m, d]), "0123456789") == ""
	have >= want
}
