//! Zeroed, 1024-aligned host allocations standing in for device regions in tests and host tools.

extern crate std;

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// A zeroed host allocation with the alignment of a device region base.
pub struct HostRegion {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the region is plain memory; concurrent access is governed by its users.
unsafe impl Send for HostRegion {}
// SAFETY: as above.
unsafe impl Sync for HostRegion {}

impl HostRegion {
    /// Allocates `size` zeroed bytes (at least one) aligned to 1024.
    pub fn new(size: u64) -> Self {
        let layout = Layout::from_size_align(size.max(1) as usize, 1024).expect("region size fits the host");
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "host allocation of {size} bytes failed");
        HostRegion { ptr, layout }
    }

    /// Base pointer.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Base address as a device address (the simulated device shares the host address space).
    pub fn addr(&self) -> pto_abi::DevAddr {
        pto_abi::DevAddr(self.ptr as u64)
    }

    /// Bytes allocated.
    pub fn len(&self) -> u64 {
        self.layout.size() as u64
    }

    /// True when the region has no bytes (never: at least one byte is allocated).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for HostRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}
