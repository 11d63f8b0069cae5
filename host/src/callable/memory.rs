//! `DeviceMemory`: where callable uploads allocate from. A runner passes its tracking allocator, so
//! every device copy of a callable is counted in its committed bytes and released at finalize.

use pto_abi::DevAddr;

use crate::backend::{BackendError, DeviceBackend};

/// Device memory a callable upload allocates from and copies into.
pub trait DeviceMemory {
    /// The backend for copies and launches.
    fn backend(&self) -> &dyn DeviceBackend;
    /// Allocates `size` bytes (1024-aligned base).
    fn alloc(&mut self, size: u64) -> Result<DevAddr, BackendError>;
    /// Frees an allocation made by [`DeviceMemory::alloc`].
    fn free(&mut self, addr: DevAddr) -> Result<(), BackendError>;
}
