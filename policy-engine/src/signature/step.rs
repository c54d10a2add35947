//! The gate's signature step: a [`SignatureConfig`]'s validation and verify options, and a
//! request's signatures checked against the verified token's claims ([`SignatureOutcome`]).

use crate::config::MAX_MAX_BODY_BYTES;
use crate::verifier::Verifier;

use super::{
    covers, parse, verify_through, Accept, AccountKey, InstallKey, Message, SignatureConfig,
    SignatureError, SignatureKey, SignatureMode, Verified, VerifyOptions,
};

impl SignatureConfig {
    /// What the verifier requires of the install signature.
    pub(crate) fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            label: self.label.clone(),
            required_components: self.components.clone(),
            max_age_seconds: self.max_age_seconds,
            clock_skew_seconds: self.clock_skew_seconds,
            require_created: true,
        }
    }

    /// The labels whose signatures count.
    fn accepted_labels(&self) -> impl Iterator<Item = &str> {
        let accept = self.acceptance();
        [
            accept.covers_install().then_some(self.label.as_str()),
            accept
                .covers_account()
                .then_some(self.account_label.as_str()),
        ]
        .into_iter()
        .flatten()
    }

    /// Whether this request must be decided on its complete body: signatures are checked and
    /// an accepted signature it carries covers `content-digest`. Hosts ask it at the request
    /// headers; a request that covers no digest is decided there.
    pub(crate) fn body_needed(&self, request: &crate::Request) -> bool {
        if self.mode == SignatureMode::Off {
            return false;
        }
        let message = Message::from_request(request, &self.scheme);
        covers(&message, self.accepted_labels(), "content-digest")
    }

    /// Refuses configs that cannot work; `field` is the dotted path for the message.
    pub(crate) fn validate(&self, field: &str) -> Result<(), crate::ConfigError> {
        let invalid = |message: String| {
            Err(crate::ConfigError::Invalid {
                field: field.to_owned(),
                message,
            })
        };
        for label in [&self.label, &self.account_label] {
            if sfv::KeyRef::from_str(label).is_err() {
                return invalid(format!("label `{label}` is not a structured-field key"));
            }
        }
        if self.label == self.account_label {
            return invalid("`label` and `account_label` must differ".to_owned());
        }
        for component in &self.components {
            let derived = [
                "@method",
                "@scheme",
                "@authority",
                "@path",
                "@query",
                "@request-target",
                "@target-uri",
            ];
            let ok = if component.starts_with('@') {
                derived.contains(&component.as_str())
            } else {
                crate::request::is_header_name(component)
                    && !component.bytes().any(|b| b.is_ascii_uppercase())
            };
            if !ok {
                return invalid(format!(
                    "component `{component}` is not a supported derived component or a lower-case header name"
                ));
            }
        }
        if self.key_claim.is_empty() {
            return invalid("key_claim must not be empty".to_owned());
        }
        if self.scheme != "https" && self.scheme != "http" {
            return invalid("scheme must be `https` or `http`".to_owned());
        }
        if !(1..=MAX_MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return invalid(format!(
                "max_body_bytes must be between 1 and {MAX_MAX_BODY_BYTES}"
            ));
        }
        match (&self.account_secret, self.acceptance().covers_account()) {
            (Some(secret), _) => {
                if let Err(err) = AccountKey::from_base64(secret) {
                    return invalid(format!("account_secret: {err}"));
                }
            }
            (None, true) => {
                return invalid(format!(
                    "accept `{}` needs an `account_secret`",
                    serde_json::to_value(self.acceptance())
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ))
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// Checks a request's signatures against the verified token's claims: the gate's step.
    pub(crate) fn check(
        &self,
        request: &crate::Request,
        claims: &serde_json::Map<String, serde_json::Value>,
        verifier: &Verifier,
        now: i64,
    ) -> SignatureOutcome {
        let accept = self.acceptance();
        let message = Message::from_request(request, &self.scheme);
        let body = request.body.as_deref();
        let checked = self.mode != SignatureMode::Off;
        let install = if accept.covers_install() {
            let options = self.verify_options();
            MemberOutcome::of(&message, &options.label, checked, || {
                let key = match claims.get(&self.key_claim) {
                    None => return Err(SignatureError::NoKey(self.key_claim.clone())),
                    Some(serde_json::Value::String(ipk)) => InstallKey::from_base64_spki(ipk)?,
                    Some(_) => {
                        return Err(SignatureError::InvalidKey(format!(
                            "claim `{}` is not a string",
                            self.key_claim
                        )))
                    }
                };
                verify_through(
                    verifier,
                    &message,
                    body,
                    SignatureKey::Install(&key),
                    &options,
                    now,
                )
            })
        } else {
            MemberOutcome::default()
        };
        let account = if accept.covers_account() {
            let options = VerifyOptions {
                label: self.account_label.clone(),
                ..self.verify_options()
            };
            MemberOutcome::of(&message, &options.label, checked, || {
                let key = AccountKey::from_base64(
                    self.account_secret
                        .as_deref()
                        .ok_or(SignatureError::NoAccountKey)?,
                )?;
                verify_through(
                    verifier,
                    &message,
                    body,
                    SignatureKey::Account(&key),
                    &options,
                    now,
                )
            })
        } else {
            MemberOutcome::default()
        };
        let valid = match accept {
            Accept::Install => install.valid,
            Accept::Account => account.valid,
            Accept::Either => install.valid || account.valid,
            Accept::Both => install.valid && account.valid,
        };
        let components = if install.valid {
            install.components.clone()
        } else if valid {
            account.components.clone()
        } else {
            Vec::new()
        };
        let present_failure = [&install, &account]
            .into_iter()
            .filter(|m| m.present)
            .find_map(|m| m.error.clone());
        let neither = !install.present && !account.present;
        let error = match (checked && !valid, present_failure) {
            (_, Some(error)) => Some(error),
            // Name every label that would have done.
            (true, None) if neither && accept == Accept::Either => Some(SignatureError::Missing(
                format!("{}` or `{}", self.label, self.account_label),
            )),
            (true, None) => [&install, &account]
                .into_iter()
                .find_map(|m| m.error.clone()),
            (false, None) => None,
        };
        SignatureOutcome {
            present: install.present || account.present,
            valid: checked && valid,
            components,
            error,
            install,
            account,
        }
    }
}

/// What the gate learned about one accepted signature (`install` or `account`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberOutcome {
    /// Signatures under this label count on the route.
    pub(crate) accepted: bool,
    /// The request carries one under the label (well-formed or not).
    pub(crate) present: bool,
    /// It verified.
    pub(crate) valid: bool,
    /// The components it covers, when valid.
    pub(crate) components: Vec<String>,
    /// Why it did not verify, when checked.
    pub(crate) error: Option<SignatureError>,
}

impl MemberOutcome {
    fn of(
        message: &Message<'_>,
        label: &str,
        checked: bool,
        verify: impl FnOnce() -> Result<Verified, SignatureError>,
    ) -> MemberOutcome {
        let present = !matches!(parse(message, label), Err(SignatureError::Missing(_)));
        let mut outcome = MemberOutcome {
            accepted: true,
            present,
            ..MemberOutcome::default()
        };
        if !checked {
            return outcome;
        }
        match verify() {
            Ok(verified) => {
                outcome.valid = true;
                outcome.components = verified.components;
            }
            Err(error) => outcome.error = Some(error),
        }
        outcome
    }

    /// Present and refused: this alone denies the request, whatever else verified (a token
    /// without `ipk` is a fail-over token: not a failure in `optional` mode).
    fn failed(&self, mode: SignatureMode) -> bool {
        self.present
            && match &self.error {
                None => false,
                Some(SignatureError::NoKey(_)) => mode == SignatureMode::Required,
                Some(_) => true,
            }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "present": self.present,
            "valid": self.valid,
            "components": self.components,
            "error": self.error.as_ref().map(ToString::to_string),
        })
    }
}

/// What the gate learned about a request's signatures; `input.signature` for the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SignatureOutcome {
    /// The request carries an accepted signature (well-formed or not).
    pub(crate) present: bool,
    /// The accepted signatures verified as the route requires (`accept`).
    pub(crate) valid: bool,
    /// The components the verified signature covers (the install one's when both did).
    pub(crate) components: Vec<String>,
    /// Why a signature did not verify, when checked.
    pub(crate) error: Option<SignatureError>,
    /// The install signature.
    pub(crate) install: MemberOutcome,
    /// The account signature.
    pub(crate) account: MemberOutcome,
}

impl SignatureOutcome {
    /// The decision reason when this outcome refuses the request under `mode`, if it does.
    pub(crate) fn denial(&self, mode: SignatureMode) -> Option<crate::Reason> {
        if mode == SignatureMode::Off {
            return None;
        }
        if self.install.failed(mode) || self.account.failed(mode) {
            return Some(crate::Reason::RequestSignatureInvalid);
        }
        match mode {
            SignatureMode::Required if !self.valid => Some(crate::Reason::RequestSignatureMissing),
            _ => None,
        }
    }

    /// `input.signature`: `{present, valid, components, error, install, account}`, the last
    /// two each `{present, valid, components, error}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut outcome = serde_json::json!({
            "present": self.present,
            "valid": self.valid,
            "components": self.components,
            "error": self.error.as_ref().map(ToString::to_string),
        });
        // Inserted, not interpolated: `json!` would serialize each member's value into a copy.
        if let Some(members) = outcome.as_object_mut() {
            members.insert("install".to_owned(), self.install.to_json());
            members.insert("account".to_owned(), self.account.to_json());
        }
        outcome
    }
}
