//! Length-prefixed field lists, hashed with SHA-256 or kept whole: what the cache and the
//! policy-input scan key on.

use sha2::{Digest, Sha256};

/// Length-prefixed, so no two different field lists hash the same bytes.
pub(crate) fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// The same field appended to a key kept whole.
pub(crate) fn put_field(key: &mut Vec<u8>, bytes: &[u8]) {
    key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    key.extend_from_slice(bytes);
}
