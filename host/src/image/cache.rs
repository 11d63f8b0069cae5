//! The prebuilt image cache: which image is resident in the runner's arena.
//!
//! Key = the serialised sizing key + the ABI fingerprint; a hash finds an entry, a full byte
//! compare confirms it. A probe never mutates. The runner invalidates before every upload and
//! marks only after a successful one, and any region reallocation or setup failure invalidates.
//!
//! An image is marked *unverified* when its bytes arrive fresh (an upload): the next launch asks
//! the device to check the image checksum (`LAUNCH_FLAG_VERIFY_IMAGE`); later launches reuse the
//! image, which boots mutate in place, and skip it.

use pto_abi::fingerprint::{fnv1a64, FNV1A64_INIT};
use pto_abi::sizing::{ArenaSizingKey, SIZING_KEY_BYTES};
use pto_abi::{RuntimeArenaLayout, ABI_FINGERPRINT};
use pto_device::boot::DeviceRegions;

/// Bytes of a [`CacheKey`].
pub const CACHE_KEY_BYTES: usize = SIZING_KEY_BYTES + 8;

/// Cache key: sizing key bytes followed by the ABI fingerprint (little-endian), plus its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheKey {
    bytes: [u8; CACHE_KEY_BYTES],
    hash: u64,
}

impl CacheKey {
    /// The key of `sizing` for this build's fingerprint.
    pub fn new(sizing: &ArenaSizingKey) -> Self {
        Self::with_fingerprint(sizing, ABI_FINGERPRINT)
    }

    /// The key of `sizing` for an arbitrary fingerprint.
    pub fn with_fingerprint(sizing: &ArenaSizingKey, fingerprint: u64) -> Self {
        let mut bytes = [0u8; CACHE_KEY_BYTES];
        bytes[..SIZING_KEY_BYTES].copy_from_slice(&sizing.to_key_bytes());
        bytes[SIZING_KEY_BYTES..].copy_from_slice(&fingerprint.to_le_bytes());
        CacheKey { bytes, hash: fnv1a64(FNV1A64_INIT, &bytes) }
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; CACHE_KEY_BYTES] {
        &self.bytes
    }

    /// The lookup hash (FNV-1a 64 over the bytes).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Hash first, then a full byte compare.
    pub fn matches(&self, other: &CacheKey) -> bool {
        self.hash == other.hash && self.bytes == other.bytes
    }
}

/// The image resident in the arena: what a hit needs to boot without any device write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResidentImage {
    /// Its key.
    pub key: CacheKey,
    /// The regions it was uploaded for (the runner's current regions).
    pub regions: DeviceRegions,
    /// Its layout.
    pub layout: RuntimeArenaLayout,
    /// Offset of the runtime header inside the arena.
    pub runtime_header_offset: u64,
    /// Bytes uploaded.
    pub image_size: u64,
}

/// The resident-image record of one runner (one arena region holds one image).
#[derive(Debug, Default)]
pub struct ImageCache {
    resident: Option<ResidentImage>,
    unverified: bool,
}

impl ImageCache {
    /// The resident image if its key matches `key`. Never mutates.
    pub fn probe(&self, key: &CacheKey) -> Option<&ResidentImage> {
        self.resident.as_ref().filter(|r| r.key.matches(key))
    }

    /// Forgets the resident image (its bytes or bases can no longer be trusted).
    pub fn invalidate(&mut self) {
        self.resident = None;
        self.unverified = false;
    }

    /// Records `image` as resident and unverified; call only after its upload succeeded.
    pub fn mark(&mut self, image: ResidentImage) {
        self.resident = Some(image);
        self.unverified = true;
    }

    /// True while a resident image's checksum has not been handed to a boot yet.
    pub fn unverified(&self) -> bool {
        self.resident.is_some() && self.unverified
    }

    /// Takes the unverified mark: true (and cleared) when the next launch must verify the image.
    pub fn take_unverified(&mut self) -> bool {
        std::mem::take(&mut self.unverified) && self.resident.is_some()
    }

    /// Marks the resident image unverified again (its bytes were rewritten from outside).
    /// False when no image is resident.
    pub fn mark_unverified(&mut self) -> bool {
        self.unverified = self.resident.is_some();
        self.unverified
    }

    /// The resident image, if any.
    pub fn resident(&self) -> Option<&ResidentImage> {
        self.resident.as_ref()
    }

    /// True when no image is resident.
    pub fn is_empty(&self) -> bool {
        self.resident.is_none()
    }
}
