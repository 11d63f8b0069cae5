//! The hashes of the ABI: FNV-1a 64, and a four-lane word checksum for large images.
//!
//! Both are `const fn`s over little-endian bytes, so the host, the simulated device and the aarch64
//! firmware compute the same value on every target. [`fnv1a64`] hashes the compile-time
//! [`ABI_FINGERPRINT`](crate::ABI_FINGERPRINT) and callable blobs (their content hash); it costs a
//! multiply per byte. [`checksum64`] hashes arena images (megabytes at the default sizing): four
//! independent lanes each take a 64-bit word per step, so it runs at memory speed rather than one
//! byte per multiply. Both are checksums against accidents (a stale or corrupted copy, an image of
//! another ABI), not a defence against a forger.

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

/// Seed of [`checksum64`] for a fresh checksum.
pub const CHECKSUM64_INIT: u64 = FNV1A64_INIT;

/// Lanes of [`checksum64`]; each takes one 64-bit word of every 32-byte block.
const LANES: usize = 4;

/// One lane step: mix in a word, multiply, rotate (the rotation carries a high bit's change into
/// the low bits, where the next multiply spreads it, so two changes cannot cancel bit for bit).
const fn lane_step(lane: u64, word: u64) -> u64 {
    (lane ^ word).wrapping_mul(FNV_PRIME).rotate_left(29)
}

/// Little-endian `u64` of `block[at..at + 8]` (constant indices into a fixed block: plain loads).
const fn word(block: &[u8; 32], at: usize) -> u64 {
    u64::from_le_bytes([
        block[at],
        block[at + 1],
        block[at + 2],
        block[at + 3],
        block[at + 4],
        block[at + 5],
        block[at + 6],
        block[at + 7],
    ])
}

/// Four-lane word checksum over `bytes`, continuing from `seed` ([`CHECKSUM64_INIT`] for a fresh
/// checksum; chain two parts by passing the first result as the second seed).
///
/// Every whole 32-byte block feeds its four words to four lanes started from the seed and the
/// lane index; the lanes, the trailing bytes and the length are then folded with FNV-1a 64. A
/// change of any byte changes its lane for good (each step is a bijection of the lane).
pub const fn checksum64(seed: u64, bytes: &[u8]) -> u64 {
    let mut lanes = [0u64; LANES];
    let mut l = 0;
    while l < LANES {
        lanes[l] = lane_step(seed, l as u64 + 1);
        l += 1;
    }
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<32>() {
        lanes[0] = lane_step(lanes[0], word(block, 0));
        lanes[1] = lane_step(lanes[1], word(block, 8));
        lanes[2] = lane_step(lanes[2], word(block, 16));
        lanes[3] = lane_step(lanes[3], word(block, 24));
        rest = tail;
    }
    let mut h = fnv1a64(seed, &(bytes.len() as u64).to_le_bytes());
    let mut l = 0;
    while l < LANES {
        h = fnv1a64(h, &lanes[l].to_le_bytes());
        l += 1;
    }
    fnv1a64(h, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum64_sees_every_byte_and_is_pinned() {
        let mut data = [0u8; 257];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let base = checksum64(CHECKSUM64_INIT, &data);
        for at in 0..data.len() {
            for bit in [0u8, 7] {
                let mut d = data;
                d[at] ^= 1 << bit;
                assert_ne!(checksum64(CHECKSUM64_INIT, &d), base, "byte {at} bit {bit}");
            }
        }
        // Two top-bit flips in the same lane do not cancel.
        let mut d = data;
        d[7] ^= 0x80;
        d[39] ^= 0x80;
        assert_ne!(checksum64(CHECKSUM64_INIT, &d), base);
        assert_ne!(checksum64(CHECKSUM64_INIT, &data[..256]), checksum64(CHECKSUM64_INIT, &data[..255]));
        assert_ne!(checksum64(1, &data), base, "the seed matters");
        // Golden: the device and the host compute this value on every target.
        assert_eq!(checksum64(CHECKSUM64_INIT, b""), 0x61b9_01f4_f874_e5a4);
        assert_eq!(base, 0x7d11_616a_c015_8459, "got {base:#x}");
    }

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(FNV1A64_INIT, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV1A64_INIT, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV1A64_INIT, b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(fnv1a64(FNV1A64_INIT, b"foo"), b"bar"), fnv1a64(FNV1A64_INIT, b"foobar"));
    }
}
