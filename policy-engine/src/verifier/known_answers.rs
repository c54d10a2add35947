//! The known-answer tests a host verifier must pass before it checks a scheme for the gate
//! ([`crate::verifier`]): one fixed key, message and valid signature per scheme, made once with
//! OpenSSL 3 (`openssl dgst -sign`); the forgery is the same signature over another message.
//! The built-in verifier is held to them in this file's tests.

use base64ct::{Base64, Encoding};

use super::{Scheme, SignatureCheck};

/// One scheme's fixed answer.
pub(crate) struct KnownAnswer {
    pub(crate) scheme: Scheme,
    /// DER SubjectPublicKeyInfo, base64.
    public_key: &'static str,
    /// ECDSA `r || s` or the RSA signature, base64.
    signature: &'static str,
    message: &'static [u8],
    /// A message the signature does not cover.
    other_message: &'static [u8],
}

impl KnownAnswer {
    /// The two checks a probe asks: the valid signature, and the same over another message.
    pub(crate) fn checks(&self) -> Option<(SignatureCheck, SignatureCheck)> {
        let valid = SignatureCheck {
            scheme: self.scheme,
            public_key: Base64::decode_vec(self.public_key).ok()?,
            signature: Base64::decode_vec(self.signature).ok()?,
            message: self.message.to_vec(),
        };
        let forgery = SignatureCheck {
            message: self.other_message.to_vec(),
            ..valid.clone()
        };
        Some((valid, forgery))
    }
}

const MESSAGE: &[u8] = b"attestgate known-answer test";
const OTHER_MESSAGE: &[u8] = b"attestgate known-answer tesT";

const P256_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFzV1SIRiIPyGRyUAWgc0bOFg4TxjVQOJHy3dodVniS97pzprug8lRtkpdfWai/X4Tyr0eblb4sOdLbAA/PBhOA==";

const RSA_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0aeXwCVsZ3K5LjzaREc4BTuMOp2RAfPVYpN3M8RcKdzQsdCp0rtrlob5rhKOriKbQica0TcXw88I4DpcbltoE1YfWyHLDhwBydt0iJ+Urd7PxXFV2mKALlSFAjLhXw/cgxNpH2whpVi7cH/+JXndItkuDo3wM+4WU2hV4Np5CW3lJKBXi7nmpRhTL6mm6kraObsn4RPMerfFdIMyRxDXbrDeUWckSTzturdPTt2hWX+F20hz286a/Wk+wG/BT/4sPosQFYcZ8eRwK6XTC3QF9BGxP5Me1zmBJZG1VuJjAkxp/N/9ZXCCFvjX38ijZRndnST0HpRrZG0DRmtz4yq4BQIDAQAB";

pub(crate) const KNOWN_ANSWERS: &[KnownAnswer] = &[
    KnownAnswer {
        scheme: Scheme::EcdsaP256Sha256,
        public_key: P256_KEY,
        signature: "ZwgqT2vukB9v00bWnJWl7SX9S/KLYl0QVTH46CHWnIUl2DEhTRdGmp9WraYCpvzL96EZ//dZP2pqB4EAgaw18w==",
        message: MESSAGE,
        other_message: OTHER_MESSAGE,
    },
    KnownAnswer {
        scheme: Scheme::RsaPkcs1Sha256,
        public_key: RSA_KEY,
        signature: "CyUylF1Ha+MPNgBJP2w3euR/BPX95+2DZY4gwGusI+ZLx5i3K70QjUGi2DTpNhu4cQ1xt4zscU9TPG75CN/fbml9ehA+h6JTVL5uwhPJDh3sCFSejkAD1Krzmnr+6nNlNPVKUkEa7rIBWKWAUTVxBfJxXLXLKxyEa0JKKhrpk6NfHE0reDJsHQdKTNLRKpaXUszgGA1PvqhpKWC0RQzM2DN70RK1i2fvbm2TYjRe/rObHZzQeulapn5iGYrOU18IqoIFyEwrbYQ+Ps5FJPa96xox1FUwUmk8W8MCeTpCKKmapOPrYjKRgHovrnPtCgKV+Lzqf/yaoGkWIwN32hmw/w==",
        message: MESSAGE,
        other_message: OTHER_MESSAGE,
    },
    KnownAnswer {
        scheme: Scheme::RsaPkcs1Sha384,
        public_key: RSA_KEY,
        signature: "skZJ635IaEUHhre31nF/fLUYkqRJhlClCOeXnFyEiC1QEeFvoLyVNe76U/Jk3Vvg+qrVQDf8N1N9rKGsy/IiAO3ruY4z4MciQYjA2pmUGSgwhY+XeEiGvBNXFrym6EBxiieVEaXQ6Jl8IG9lJCAhT8IMeeSCNNQWR6Uq4+L91IFU/+rvTb2BT/gbBHxp6xP9JBZj/mdk9o1WWKB+Mid+hnlaQ+leOjF0UqQQbghY7n1mvfHTu6nvP/Iqil6i4XuTTinLO22QSQliJHxaVt3iAfhtL/bpAEJoWdBn0t3rYAFsXVHklhztQqGWFd36R40y5xsITMvMwf8RgpQ3Vve36Q==",
        message: MESSAGE,
        other_message: OTHER_MESSAGE,
    },
    KnownAnswer {
        scheme: Scheme::RsaPkcs1Sha512,
        public_key: RSA_KEY,
        signature: "OeKUGWlVvd9SpziAN9FU+QA2eKM3WYpSkPd0sVhu0mMxFQGagq0qk5WA1lcYqkRX7qak0GS7OxsiJ76DiIOUi8iDpl6TJeT4JQ7DWZ/agaPPn1zoQ9bsK5TfJVHq5XJY69Pm6uBamSSD6l8YIV2brIbFeME2F8Ry5Peo+KLpBC2qMduY/Hg0p7Dl712pxDPga7KRxipbXtgvF+aZAh9EaNnM33XFGlmY7JXBc+7Fh2JivaBxnGSXTQ13t0284Y99TbXGbh4V6F5IlfUAqyVgLKa8xhqkZiW88iySnvRlGh3J3pJes7ZvByp92VEnhY4sivazDF0ubAN4cRA+I9bmMw==",
        message: MESSAGE,
        other_message: OTHER_MESSAGE,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::{BuiltInVerifier, HostVerifier};

    #[test]
    fn every_scheme_has_one_answer_the_built_in_verifier_gives() {
        let schemes: Vec<_> = KNOWN_ANSWERS.iter().map(|a| a.scheme).collect();
        assert_eq!(schemes, Scheme::ALL);
        for answer in KNOWN_ANSWERS {
            let (valid, forgery) = answer
                .checks()
                .unwrap_or_else(|| panic!("{}", answer.scheme));
            assert_eq!(
                BuiltInVerifier.verify(&valid.check()),
                Some(true),
                "{}",
                answer.scheme
            );
            assert_eq!(
                BuiltInVerifier.verify(&forgery.check()),
                Some(false),
                "{}",
                answer.scheme
            );
        }
    }
}
