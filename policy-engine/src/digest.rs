//! Length-prefixed SHA-256 of field lists: what the cache and the policy-input scan key on.

use sha2::{Digest, Sha256};

/// Length-prefixed, so no two different field lists hash the same bytes.
pub(crate) fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}
