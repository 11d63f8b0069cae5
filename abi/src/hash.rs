//! FNV-1a 64: the one hash of the ABI.
//!
//! A `const fn`, so the compile-time [`ABI_FINGERPRINT`](crate::ABI_FINGERPRINT) and the content
//! hashes of callable blobs (computed by the host builder and checked by the device parser) use the
//! same function on every target. It is a checksum against accidents (a stale or corrupted blob, an
//! image of another ABI), not a defence against a forger.

/// FNV-1a 64 offset basis (the hash of nothing).
pub const FNV1A64_INIT: u64 = 0xcbf2_9ce4_8422_2325;

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`, continuing from `hash` ([`FNV1A64_INIT`] for a fresh hash).
pub const fn fnv1a64(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(FNV1A64_INIT, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV1A64_INIT, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV1A64_INIT, b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(fnv1a64(FNV1A64_INIT, b"foo"), b"bar"), fnv1a64(FNV1A64_INIT, b"foobar"));
    }
}
