# Example policy: Play-Integrity-style rules for Android-only routes (Rego v1, regorus).
#
# Entrypoint data.attestgate.examples.android.decision is always defined:
#   {"allow": bool, "reasons": [sorted snake_case strings, empty when allowed]}
# Standalone: load this file on its own; it does not need policies/device_trust.rego.
#
# Settings come from data.android_integrity (gate config policy.data.android_integrity).
# A setting that is absent, null or of the wrong type takes its default; every default
# is the strict choice.
#   required_integrity  "MEETS_STRONG_INTEGRITY" (default) or "MEETS_DEVICE_INTEGRITY".
#       Tiers: STRONG > DEVICE > BASIC. A verdict meets its own tier and every tier
#       below it, so a STRONG-only label list also meets a DEVICE requirement. Any
#       other value (a typo, "MEETS_BASIC_INTEGRITY") falls back to the default.
#   allowed_signers     list of lowercase hex SHA-256 signing-certificate digests.
#       REQUIRED: absent or [] denies every token. One att.app.signer_sha256 entry
#       must be listed (compared case-insensitively).
#   allowed_installers  list, default ["com.android.vending"] (Google Play only).
#       att.app.installer must be listed; [] denies every token.
#   min_patch_level     "YYYY-MM-DD" (or "YYYY-MM"); absent, null or "" = not checked.
#       When set, a missing or malformed att.device.patch_level is denied, and so is
#       every token when the setting itself is not a string.
#
# Reasons:
#   attestation_missing    the token has no att object (reported alone)
#   platform_not_android   att.device.platform is not "android" (reported alone)
#   integrity_not_met      att.device.integrity is below required_integrity
#   signer_not_allowed     no signer digest is in allowed_signers
#   installer_not_allowed  the installer is not in allowed_installers (sideloaded: null)
#   patch_level_too_old    the patch level is before min_patch_level, missing or malformed
package attestgate.examples.android

import rego.v1

default decision := {"allow": false, "reasons": ["decision_undefined"]}

decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}

deny contains "attestation_missing" if not is_object(_att_raw)

deny contains "platform_not_android" if {
	is_object(_att_raw)
	_platform != "android"
}

# The Android checks only mean something for an Android attestation.
deny contains reason if {
	_platform == "android"
	some reason in _findings
}

# --- inputs, normalised so that a malformed token can never error out --------

_att_raw := object.get(input, ["token", "claims", "att"], null)

_att := _obj(_att_raw)

_app := _obj(object.get(_att, "app", {}))

_device := _obj(object.get(_att, "device", {}))

_platform := object.get(_device, "platform", null)

_obj(x) := x if {
	is_object(x)
} else := {}

_list(x) := x if {
	is_array(x)
} else := [x] if {
	is_string(x)
} else := []

_lower_set(x) := {lower(s) | some s in _list(x); is_string(s)}

# --- settings ----------------------------------------------------------------

default _settings := {}

_settings := _obj(data.android_integrity)

_setting(key, dflt) := v if {
	v := object.get(_settings, key, null)
	v != null
} else := dflt

# --- checks ------------------------------------------------------------------

_tiers := {"MEETS_BASIC_INTEGRITY": 1, "MEETS_DEVICE_INTEGRITY": 2, "MEETS_STRONG_INTEGRITY": 3}

# The tier is computed in the body: regorus 0.14 reports "multiple outputs" for an
# else-chain whose head is a reference like _tiers[r].
_required_tier := tier if {
	r := _setting("required_integrity", "MEETS_STRONG_INTEGRITY")
	r in {"MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"}
	tier := _tiers[r]
} else := 3

# The highest tier among the reported labels; 0 when none is known.
_device_tier := max(array.concat([0], [_tiers[l] |
	some l in _list(object.get(_device, "integrity", []))
	is_string(l)
	_tiers[l]
]))

_findings contains "integrity_not_met" if _device_tier < _required_tier

_findings contains "signer_not_allowed" if {
	allowed := _lower_set(_setting("allowed_signers", []))
	count(_lower_set(object.get(_app, "signer_sha256", [])) & allowed) == 0
}

_findings contains "installer_not_allowed" if {
	allowed := _list(_setting("allowed_installers", ["com.android.vending"]))
	installer := object.get(_app, "installer", null)
	not _installer_ok(installer, allowed)
}

_installer_ok(installer, allowed) if {
	is_string(installer)
	installer in allowed
}

# Zero-padded ISO dates order correctly as strings; anything else fails closed.
_findings contains "patch_level_too_old" if {
	want := _setting("min_patch_level", "")
	want != ""
	not _patch_at_least(object.get(_device, "patch_level", null), want)
}

_patch_at_least(have, want) if {
	is_string(want)
	is_string(have)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`, have)
	have >= want
}
