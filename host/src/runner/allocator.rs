//! The tracking allocator: every device allocation of a runner goes through it.

use std::collections::HashMap;
use std::sync::Arc;

use pto_abi::consts::REGION_BASE_ALIGN;
use pto_abi::DevAddr;

use crate::backend::{BackendError, BackendOp, DeviceBackend, ALLOC_GRANULE};
use crate::callable::DeviceMemory;

/// Records every live allocation so a runner can report committed bytes, free everything at
/// finalize, or abandon everything without freeing after a device fault.
pub struct TrackingAllocator {
    backend: Arc<dyn DeviceBackend>,
    live: HashMap<DevAddr, u64>,
    committed: u64,
    peak: u64,
    abandoned: u64,
}

impl TrackingAllocator {
    /// An allocator over `backend` with nothing allocated.
    pub fn new(backend: Arc<dyn DeviceBackend>) -> Self {
        TrackingAllocator { backend, live: HashMap::new(), committed: 0, peak: 0, abandoned: 0 }
    }

    /// The backend it allocates from.
    pub fn backend(&self) -> &Arc<dyn DeviceBackend> {
        &self.backend
    }

    /// Allocates `size` bytes with a 1024-aligned base.
    pub fn alloc(&mut self, size: u64) -> Result<DevAddr, BackendError> {
        let addr = self.backend.malloc(size)?;
        if !addr.is_aligned(REGION_BASE_ALIGN) {
            // A backend that breaks the alignment contract: give the block back and refuse it.
            let _ = self.backend.free(addr);
            return Err(BackendError::InvalidArgument {
                op: BackendOp::Malloc,
                detail: format!("backend returned base {addr}, not {REGION_BASE_ALIGN}-byte aligned"),
            });
        }
        // The backend holds whole granules: count what it holds, so both accounts agree.
        let held = size.next_multiple_of(ALLOC_GRANULE);
        self.live.insert(addr, held);
        self.committed += held;
        self.peak = self.peak.max(self.committed);
        Ok(addr)
    }

    /// Frees an allocation made by this allocator.
    pub fn free(&mut self, addr: DevAddr) -> Result<(), BackendError> {
        let Some(&size) = self.live.get(&addr) else {
            return Err(BackendError::InvalidRange { op: BackendOp::Free, addr, len: 0 });
        };
        self.backend.free(addr)?;
        self.live.remove(&addr);
        self.committed -= size;
        Ok(())
    }

    /// Bytes of live allocations, each rounded up to the backend's allocation granule.
    pub fn committed_bytes(&self) -> u64 {
        self.committed
    }

    /// Highest committed bytes so far.
    pub fn peak_bytes(&self) -> u64 {
        self.peak
    }

    /// Number of live allocations.
    pub fn live_allocations(&self) -> usize {
        self.live.len()
    }

    /// Frees every live allocation; returns the first error after trying all of them.
    pub fn free_all(&mut self) -> Result<(), BackendError> {
        let mut first = Ok(());
        let addrs: Vec<DevAddr> = self.live.keys().copied().collect();
        for addr in addrs {
            if let Err(e) = self.free(addr) {
                // Forget it anyway: a block the backend refuses to free cannot be freed later.
                if let Some(size) = self.live.remove(&addr) {
                    self.committed -= size;
                }
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// Forgets every allocation without freeing it (after a device fault the device state is
    /// unknown and freeing could touch memory still in use). Returns the bytes abandoned.
    pub fn abandon(&mut self) -> u64 {
        let bytes = self.committed;
        self.live.clear();
        self.committed = 0;
        self.abandoned += bytes;
        bytes
    }

    /// Forgets the allocation at `addr` without freeing it (the device may still touch it);
    /// returns its bytes, or `None` when this allocator does not hold it.
    pub fn abandon_block(&mut self, addr: DevAddr) -> Option<u64> {
        let size = self.live.remove(&addr)?;
        self.committed -= size;
        self.abandoned += size;
        Some(size)
    }

    /// Bytes abandoned so far (forgotten without a free: the device may still touch them).
    pub fn abandoned_bytes(&self) -> u64 {
        self.abandoned
    }
}

impl DeviceMemory for TrackingAllocator {
    fn backend(&self) -> &dyn DeviceBackend {
        TrackingAllocator::backend(self).as_ref()
    }

    fn alloc(&mut self, size: u64) -> Result<DevAddr, BackendError> {
        TrackingAllocator::alloc(self, size)
    }

    fn free(&mut self, addr: DevAddr) -> Result<(), BackendError> {
        TrackingAllocator::free(self, addr)
    }
}
