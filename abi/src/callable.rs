//! Headers of the `ChipCallable` blob (one task graph: orchestration + child kernels) and of each
//! child `CoreCallable`.
//!
//! A blob's [`ChipCallableHeader::checksum`] is its content hash ([`callable_checksum`]: FNV-1a 64
//! over every byte of the blob, the checksum field read as zero). [`ChipCallableView::parse`]
//! refuses a blob whose bytes do not hash to it, so a changed byte anywhere is refused with
//! [`CallableError::ChecksumMismatch`]. Patching a device copy (each child's `resolved_addr`)
//! re-seals that copy with [`seal_callable`]; the caller's blob never changes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;

/// Most arguments of a chip callable's signature.
pub const MAX_CHIP_ARGS: usize = 256;
/// Most children of one chip callable.
pub const MAX_CHILDREN: usize = 1024;
/// Most arguments of one kernel.
pub const MAX_CORE_ARGS: usize = 32;
/// Bytes of each name field.
pub const NAME_BYTES: usize = 64;
/// Offset of a child's kernel code from the start of its [`CoreCallableHeader`].
pub const CORE_CODE_OFFSET: u64 = 192;
/// Alignment of each child inside the blob.
pub const CHILD_ALIGN: u64 = 64;
/// `ChipCallableHeader::magic`: "PTOC".
pub const CHIP_CALLABLE_MAGIC: u32 = u32::from_le_bytes(*b"PTOC");
/// `CoreCallableHeader::magic`: "PTOK".
pub const CORE_CALLABLE_MAGIC: u32 = u32::from_le_bytes(*b"PTOK");
/// Version of the callable blob format.
pub const CALLABLE_FORMAT_VERSION: u32 = 1;

/// Header of a chip callable blob; storage (orchestration bytes, then children) follows it.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ChipCallableHeader {
    /// [`CHIP_CALLABLE_MAGIC`].
    pub magic: u32,
    /// [`CALLABLE_FORMAT_VERSION`].
    pub version: u32,
    /// Used entries of `signature`.
    pub arg_count: u32,
    /// Used entries of `child_func_ids` / `child_offsets`.
    pub child_count: u32,
    /// Bytes of the whole blob.
    pub total_size: u64,
    /// Offset of the orchestration bytes from the blob start.
    pub orchestration_offset: u64,
    /// Bytes of the orchestration.
    pub orchestration_size: u64,
    /// The content hash: [`callable_checksum`] of the blob.
    pub checksum: u64,
    /// Explicit padding to one cache line.
    pub _pad0: [u8; 16],
    /// `TensorDirection` value of each argument.
    pub signature: [u8; MAX_CHIP_ARGS],
    /// Orchestration name, NUL-padded UTF-8.
    pub orchestration_name: [u8; NAME_BYTES],
    /// Config name, NUL-padded UTF-8.
    pub config_name: [u8; NAME_BYTES],
    /// Func id of each child.
    pub child_func_ids: [u32; MAX_CHILDREN],
    /// Offset of each child's header from the blob start (64-aligned).
    pub child_offsets: [u64; MAX_CHILDREN],
}

/// Header of one child kernel; its code starts [`CORE_CODE_OFFSET`] bytes after the header start.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CoreCallableHeader {
    /// [`CORE_CALLABLE_MAGIC`].
    pub magic: u32,
    /// Used entries of `signature`.
    pub arg_count: u32,
    /// Bytes of kernel code.
    pub binary_size: u64,
    /// Device address of the code once uploaded (null in the caller's blob).
    pub resolved_addr: DevAddr,
    /// `TensorDirection` value of each argument.
    pub signature: [u8; MAX_CORE_ARGS],
    /// Kernel name, NUL-padded UTF-8.
    pub name: [u8; NAME_BYTES],
    /// Reserved; zero.
    pub reserved: [u64; 3],
}

/// Bytes of a [`ChipCallableHeader`]; the blob's storage starts here.
pub const CHIP_HEADER_SIZE: u64 = core::mem::size_of::<ChipCallableHeader>() as u64;
/// Bytes of a [`CoreCallableHeader`].
pub const CORE_HEADER_SIZE: u64 = core::mem::size_of::<CoreCallableHeader>() as u64;

const _: () = assert!(CHIP_HEADER_SIZE % CHILD_ALIGN == 0);
const _: () = assert!(CORE_HEADER_SIZE <= CORE_CODE_OFFSET && CORE_CODE_OFFSET % CHILD_ALIGN == 0);

/// Offset of [`ChipCallableHeader::checksum`] in a blob.
pub const CALLABLE_CHECKSUM_OFFSET: usize = core::mem::offset_of!(ChipCallableHeader, checksum);

/// The content hash of a blob: FNV-1a 64 over all of `bytes` with the checksum field read as
/// zero. `None` when `bytes` ends before the checksum field.
pub fn callable_checksum(bytes: &[u8]) -> Option<u64> {
    use crate::hash::{fnv1a64, FNV1A64_INIT};
    let end = CALLABLE_CHECKSUM_OFFSET + 8;
    let (head, rest) = (bytes.get(..CALLABLE_CHECKSUM_OFFSET)?, bytes.get(end..)?);
    Some(fnv1a64(fnv1a64(fnv1a64(FNV1A64_INIT, head), &[0u8; 8]), rest))
}

/// Writes [`callable_checksum`] of `bytes` into its checksum field; `false` (nothing written)
/// when `bytes` ends before that field.
pub fn seal_callable(bytes: &mut [u8]) -> bool {
    match callable_checksum(bytes) {
        Some(sum) => {
            bytes[CALLABLE_CHECKSUM_OFFSET..CALLABLE_CHECKSUM_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
            true
        }
        None => false,
    }
}

mod view;

pub use view::{BlobPart, CallableError, ChildView, ChipCallableView, NameField, NameRule};
