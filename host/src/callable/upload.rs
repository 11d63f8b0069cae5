//! Putting a blob on the device: patch a scratch copy with each child's device code address, upload
//! it with one copy, and report `(func_id, code address)` per child.

use std::mem::offset_of;

use pto_abi::callable::{seal_callable, BlobPart, CoreCallableHeader};
use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::DevAddr;
use zerocopy::IntoBytes;

use super::blob::ChipCallable;
use super::memory::DeviceMemory;
use crate::backend::BackendError;

/// Why an upload failed; nothing stays allocated on the device after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// A device address inside the blob does not fit in 64 bits for this device base.
    #[error("{part} at offset {offset:#x} from device base {base} overflows 64 bits")]
    AddressOverflow {
        /// Which part.
        part: BlobPart,
        /// Device base of the blob.
        base: DevAddr,
        /// Offset of the part in the blob.
        offset: u64,
    },
    /// A func id outside the launch descriptor's func-id table.
    #[error("child {child}: func id {func_id} is out of range (func ids are 0..{max})")]
    FuncIdOutOfRange {
        /// Child index.
        child: u32,
        /// The func id.
        func_id: u32,
        /// Number of func ids.
        max: usize,
    },
    /// The backend failed.
    #[error("uploading a {size}-byte callable: {source}")]
    Backend {
        /// Blob size.
        size: u64,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
}

/// A blob on the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedCallable {
    /// Device address of the blob (the start of its chip header).
    pub base: DevAddr,
    /// Bytes on the device.
    pub size: u64,
    /// Device address of the orchestration bytes.
    pub orchestration_addr: DevAddr,
    /// `(func_id, device address of the kernel code)` per child, in table order.
    pub child_addrs: Vec<(u32, DevAddr)>,
}

/// `(func_id, device code address)` of every child of `blob` placed at `base`.
fn child_code_addrs(blob: &ChipCallable, base: DevAddr) -> Result<Vec<(u32, DevAddr)>, UploadError> {
    blob.view()
        .children()
        .map(|c| {
            if c.func_id as usize >= MAX_FUNC_IDS {
                return Err(UploadError::FuncIdOutOfRange { child: c.index, func_id: c.func_id, max: MAX_FUNC_IDS });
            }
            let addr = base.checked_add_bytes(c.code_offset).ok_or(UploadError::AddressOverflow {
                part: BlobPart::ChildCode(c.index),
                base,
                offset: c.code_offset,
            })?;
            Ok((c.func_id, addr))
        })
        .collect()
}

/// A copy of `blob` in which every child's `resolved_addr` holds its code address for a blob at
/// `device_base`, re-sealed with its own checksum (so the device copy validates on its own).
/// `blob` itself is never touched.
pub fn patch_chip_callable_scratch_for_device(
    blob: &ChipCallable,
    device_base: DevAddr,
) -> Result<Vec<u8>, UploadError> {
    let addrs = child_code_addrs(blob, device_base)?;
    let mut scratch = blob.as_bytes().to_vec();
    for (child, (_, addr)) in blob.view().children().zip(addrs) {
        let at = child.offset as usize + offset_of!(CoreCallableHeader, resolved_addr);
        scratch[at..at + 8].copy_from_slice(addr.as_bytes());
    }
    seal_callable(&mut scratch);
    Ok(scratch)
}

/// Allocates device memory for `blob` from `mem`, uploads a patched scratch copy with one copy, and
/// returns where each child's code landed. On failure the allocation is released.
pub fn upload_and_collect_child_addrs(
    mem: &mut dyn DeviceMemory,
    blob: &ChipCallable,
) -> Result<UploadedCallable, UploadError> {
    let size = blob.total_size();
    let backend_err = |source| UploadError::Backend { size, source };
    let base = mem.alloc(size).map_err(backend_err)?;
    let uploaded = patch_chip_callable_scratch_for_device(blob, base).and_then(|scratch| {
        mem.backend().copy_to_device(base, &scratch).map_err(backend_err)?;
        let orchestration_offset = blob.view().orchestration_offset();
        let orchestration_addr = base.checked_add_bytes(orchestration_offset).ok_or(UploadError::AddressOverflow {
            part: BlobPart::Orchestration,
            base,
            offset: orchestration_offset,
        })?;
        Ok(UploadedCallable { base, size, orchestration_addr, child_addrs: child_code_addrs(blob, base)? })
    });
    if uploaded.is_err() {
        // The first error is the one to report; a failing free cannot leave more behind.
        let _ = mem.free(base);
    }
    uploaded
}
