//! The image header every arena image starts with, and the checksum of an image's bytes.
//!
//! # The image checksum
//!
//! [`ImageHeader::checksum`] is [`image_checksum`] of the image as the host built it: every byte
//! of the header (with the checksum field read as zero) and of the body up to `image_size`. A run
//! mutates its resident image (boot wires pointers and resets structures in place), so the
//! checksum holds only until the first boot. It is therefore checked where the bytes arrive fresh:
//! by the first boot after the host uploads an image (the host sets
//! [`LAUNCH_FLAG_VERIFY_IMAGE`](crate::launch::LAUNCH_FLAG_VERIFY_IMAGE) on that launch), by the
//! boot of an image loaded from a file, and by `pto image inspect`. A boot that reuses the
//! resident image stays O(1) and does not hash it.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::arena::RuntimeArenaLayout;
use crate::hash::{checksum64, CHECKSUM64_INIT};

/// `ImageHeader::magic`: "PTOIMAGE" little-endian.
pub const IMAGE_MAGIC: u64 = u64::from_le_bytes(*b"PTOIMAGE");

/// Header at arena offset 0; the device checks it before trusting anything else.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ImageHeader {
    /// [`IMAGE_MAGIC`].
    pub magic: u64,
    /// [`crate::ABI_VERSION`] of the builder.
    pub abi_version: u32,
    /// `size_of::<ImageHeader>()` of the builder.
    pub header_size: u32,
    /// [`crate::ABI_FINGERPRINT`] of the builder.
    pub abi_fingerprint: u64,
    /// Bytes of the whole image (= `layout.offsets.arena_size`).
    pub image_size: u64,
    /// Arena base the image was built for.
    pub built_arena_base: DevAddr,
    /// SM base the image was built for.
    pub built_sm_base: DevAddr,
    /// GM heap base the image was built for.
    pub built_heap_base: DevAddr,
    /// SM bytes the layout needs.
    pub sm_size: u64,
    /// GM heap bytes the layout needs.
    pub heap_size: u64,
    /// Offset of the runtime header inside the arena.
    pub runtime_header_offset: u64,
    /// [`image_checksum`] of the image as built (see the module doc for when it is checked).
    pub checksum: u64,
    /// Explicit padding to a whole number of lines.
    pub _pad: [u8; 40],
    /// The sizing and every region offset.
    pub layout: RuntimeArenaLayout,
    /// Explicit padding to a whole number of lines.
    pub _pad_tail: [u8; 32],
}

/// Offset of [`ImageHeader::checksum`] in an image.
pub const IMAGE_CHECKSUM_OFFSET: usize = offset_of!(ImageHeader, checksum);

/// Bytes of an [`ImageHeader`].
pub const IMAGE_HEADER_BYTES: usize = size_of::<ImageHeader>();

/// The checksum of an image whose header and body are `bytes` (the whole image, header first):
/// [`checksum64`] over the header with its checksum field read as zero, continued over the rest.
/// `None` when `bytes` is shorter than a header.
pub fn image_checksum(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..IMAGE_HEADER_BYTES)?;
    let mut copy = [0u8; IMAGE_HEADER_BYTES];
    copy.copy_from_slice(header);
    copy[IMAGE_CHECKSUM_OFFSET..IMAGE_CHECKSUM_OFFSET + 8].fill(0);
    let h = checksum64(CHECKSUM64_INIT, &copy);
    Some(checksum64(h, &bytes[IMAGE_HEADER_BYTES..]))
}

/// Writes [`image_checksum`] of `bytes` into its header's checksum field; `false` (nothing
/// written) when `bytes` is shorter than a header.
pub fn seal_image(bytes: &mut [u8]) -> bool {
    match image_checksum(bytes) {
        Some(sum) => {
            bytes[IMAGE_CHECKSUM_OFFSET..IMAGE_CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
            true
        }
        None => false,
    }
}

/// The checksum algorithm's answer for a fixed input: listed among the ABI capacities, so a change
/// of the algorithm changes the ABI fingerprint.
pub const IMAGE_CHECKSUM_CHECK_VALUE: u64 =
    checksum64(CHECKSUM64_INIT, b"PTOIMAGE checksum check value: 0123456789abcdef");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_ignores_only_its_own_field() {
        let mut bytes = [0u8; IMAGE_HEADER_BYTES + 100];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let sum = image_checksum(&bytes).unwrap();
        let mut other = bytes;
        other[IMAGE_CHECKSUM_OFFSET..IMAGE_CHECKSUM_OFFSET + 8].fill(0xAB);
        assert_eq!(image_checksum(&other), Some(sum), "the field itself is read as zero");
        for at in [0, IMAGE_CHECKSUM_OFFSET - 1, IMAGE_CHECKSUM_OFFSET + 8, IMAGE_HEADER_BYTES, bytes.len() - 1] {
            let mut b = bytes;
            b[at] ^= 1;
            assert_ne!(image_checksum(&b), Some(sum), "byte {at}");
        }
        assert!(seal_image(&mut other));
        assert_eq!(u64::from_le_bytes(other[IMAGE_CHECKSUM_OFFSET..][..8].try_into().unwrap()), sum);
        assert_eq!(image_checksum(&bytes[..10]), None);
        assert!(!seal_image(&mut [0u8; 10]));
    }
}
