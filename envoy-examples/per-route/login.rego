# Logging in is where credential stuffing happens: on top of the default device-trust rules,
# require a low risk score and a real device.
package attestgate

import rego.v1

login_deny contains reason if some reason in deny

login_deny contains "risk_score_too_high_for_login" if {
	object.get(input.token.claims, ["att", "risk", "score"], 100) >= 30
}

login_deny contains "emulator_not_allowed_for_login" if {
	object.get(input.token.claims, ["att", "device", "emulator"], true) != false
}

login_decision := {"allow": count(login_deny) == 0, "reasons": sort([r | some r in login_deny])}
