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
#
# How it is written: regorus spends about as much on evaluating one rule or
# partial-set body as on three or four builtin calls, on a function call as on
# two, on reading a rule's value again as on one (docs/performance.md). So every
# check is a set comprehension inside one rule (_findings) that holds its reason
# when the check fails, and the settings are gathered into a local. A claim is
# read by reference (att.device.rooted) where its absence already decides as a
# default would: a reference that is missing or runs into something that is not
# an object is undefined, never an error, so a malformed token never errors.
# Where a default decides otherwise, object.get(att, ["app", "id"], d) gives d;
# so does every argument of a function under `not`, as engines differ on an
# undefined one there (OPA lifts it out of the `not`; scripts/opa/check.py).
package attestgate

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

# --- deny reasons ------------------------------------------------------------

# Without attestation nothing below is meaningful: attestation_missing is then
# the one reason (the else of _findings).
deny contains reason if some reason in _findings

_findings := union({
	{"unknown_platform" | not platform in {"android", "ios"}},
	{"app_id_not_allowed" |
		allowed := _restriction(given.allowed_app_ids, platform)
		not object.get(att, ["app", "id"], null) in allowed
	},
	{"signer_not_allowed" |
		restriction := _restriction(given.allowed_signers, platform)
		allowed := {_lower(s) | some s in restriction}
		count({s | some s in _list(object.get(att, ["app", "signer_sha256"], [])); _lower(s) in allowed}) == 0
	},
	{"installer_not_allowed" |
		platform == "android"
		allowed := _restriction(given.allowed_installers, platform)
		not object.get(att, ["app", "installer"], null) in allowed
	},
	{"app_version_too_old" |
		want := given.min_app_version
		want != ""
		not _version_at_least(object.get(att, ["app", "version"], null), want)
	},
	# The platform is a key of min_os_version here; only a string names one.
	{"os_version_too_old" |
		is_string(platform)
		want := object.get(given, ["min_os_version", platform], "")
		want != ""
		not _version_at_least(object.get(att, ["device", "os_version"], null), want)
	},
	# Zero-padded ISO dates order correctly as strings; anything else fails closed.
	{"patch_level_too_old" |
		platform == "android"
		want := given.min_patch_level
		want != ""
		not _patch_at_least(object.get(att, ["device", "patch_level"], null), want)
	},
	{"integrity_not_met" |
		platform == "android"
		have := _list(object.get(att, ["device", "integrity"], []))
		some required in _list(object.get(given, "required_integrity", ["MEETS_DEVICE_INTEGRITY"]))
		not required in have
	},
	# Reported booleans, each with the setting that overrides it. allow_debuggable
	# covers both debug signals: together they mean "dev build". Tampering has no
	# override: a patched or re-signed binary is never trusted. A reported boolean
	# is only "safe" when it is absent or literally false, so a null or a stringly
	# "true" from a sloppy attestation service fails closed; only a literal true
	# setting overrides.
	{"device_rooted" | att.device.rooted != false; not given.allow_rooted == true},
	{"emulator" | att.device.emulator != false; not given.allow_emulator == true},
	{"bootloader_unlocked" | att.device.bootloader_unlocked != false; not given.allow_bootloader_unlocked == true},
	{"app_debuggable" | att.app.debuggable != false; not given.allow_debuggable == true},
	{"debugger_attached" | att.runtime.debugger != false; not given.allow_debuggable == true},
	{"app_tampered" | att.runtime.app_tampered != false},
	# Any hook denies unless denied_hooks is given; then only those do.
	{"hooking_detected" |
		object.get(given, "denied_hooks", null) == null
		count(hooks) > 0
	},
	{"hooking_detected" |
		denied := {_lower(d) | some d in _list(given.denied_hooks)}
		some h in hooks
		_lower(h) in denied
	},
	# Services without a risk engine (Play Integrity, App Attest) omit the score,
	# which counts as 0; a present but non-numeric score fails closed.
	{"risk_score_too_high" | not is_number(score)},
	{"risk_score_too_high" | not is_number(limit)},
	{"risk_score_too_high" | is_number(score); is_number(limit); score > limit},
}) if {
	att := input.token.claims.att
	is_object(att)
	platform := object.get(att, ["device", "platform"], null)
	hooks := _list(object.get(att, ["runtime", "hooks"], []))
	score := object.get(att, ["risk", "score"], 0)
	# null counts as absent so `key: ~` in YAML config means "use the default".
	settings := _settings
	given := {key: v | is_object(settings); some key, v in settings; v != null}
	limit := object.get(given, "max_risk_score", 70)
} else := {"attestation_missing"}

# --- settings ----------------------------------------------------------------

# The gate config's policy.data.device_trust, read by its path: a read of all of
# `data` would include this policy's own rules, which OPA refuses as recursion.
default _settings := {}

_settings := data.device_trust

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
# (a setting not given imposes none: the caller's `given.key` is undefined).
_restriction(setting, platform) := s if {
	s := _list(setting)
	count(s) > 0
} else := s if {
	is_object(setting)
	s := _list(object.get(setting, platform, []))
	count(s) > 0
}

_lower(x) := lower(x) if {
	is_string(x)
} else := x

# --- version helpers: numeric, component-wise, shorter side padded with 0 -----

# Undefined (=> deny) when the reported version is missing or not a string or a
# number (YAML turns an unquoted 15.0 into a number; "%v" prints a string as is).
# Each component's leading digits ("3-beta" -> 3, no digits -> 0) without
# leading zeros, as [digit count, digits]: for numbers written without leading
# zeros that pair orders as the numbers do, and "0", "00" and "" all read as
# [0, ""]. One regex pass yields every component's digits (a component ends at a
# dot or the end; a last empty one can go unreported, and reads as the padding
# would). Each side is padded with as many [0, ""] as the other has components:
# both then have the same length, and arrays of one length order at their first
# differing component.
_version_at_least(have, want) if {
	type_name(have) in {"string", "number"}
	type_name(want) in {"string", "number"}
	h := [[count(m[1]), m[1]] | some m in regex.find_all_string_submatch_n(`0*([0-9]*)[^.]*(?:\.|$)`, sprintf("%v", [have]), -1)]
	w := [[count(m[1]), m[1]] | some m in regex.find_all_string_submatch_n(`0*([0-9]*)[^.]*(?:\.|$)`, sprintf("%v", [want]), -1)]
	array.concat(h, [[0, ""] | some _ in w]) >= array.concat(w, [[0, ""] | some _ in h])
}

# The same order, strictly below (and true when either side is no version).
_version_lt(have, want) if not _version_at_least(have, want)

# One component's number, read by _version_at_least's pattern: its digits without
# leading zeros (to_number parses JSON, which rejects "08"); none read as "0".
_int(s) := to_number(object.get({"": "0"}, d, d)) if {
	d := regex.find_all_string_submatch_n(`0*([0-9]*)[^.]*(?:\.|$)`, s, 1)[0][1]
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
