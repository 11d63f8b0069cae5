//! The image header every arena image starts with.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::arena::RuntimeArenaLayout;

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
    /// Explicit padding to a whole number of lines.
    pub _pad: [u8; 48],
    /// The sizing and every region offset.
    pub layout: RuntimeArenaLayout,
    /// Explicit padding to a whole number of lines.
    pub _pad_tail: [u8; 32],
}
