//! The three device regions of a runner as the device sees them: base and size of each.

use pto_abi::DevAddr;

/// A device region `[base, base + size)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RegionSpan {
    /// First byte.
    pub base: DevAddr,
    /// Length in bytes.
    pub size: u64,
}

impl RegionSpan {
    /// A region of `size` bytes at `base`.
    pub const fn new(base: DevAddr, size: u64) -> Self {
        RegionSpan { base, size }
    }

    /// End (exclusive), saturated at `u64::MAX`.
    pub const fn end(&self) -> u64 {
        self.base.0.saturating_add(self.size)
    }

    /// True when `addr` lies inside the region.
    pub const fn contains(&self, addr: DevAddr) -> bool {
        addr.0 >= self.base.0 && addr.0 < self.end()
    }

    /// `base + offset`, or `None` when that overflows 64 bits.
    pub const fn at(&self, offset: u64) -> Option<DevAddr> {
        self.base.checked_add_bytes(offset)
    }
}

/// Where the runtime arena, the shared memory and the GM heap lie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DeviceRegions {
    /// The runtime arena (holds the image).
    pub arena: RegionSpan,
    /// Shared memory.
    pub sm: RegionSpan,
    /// GM heap.
    pub heap: RegionSpan,
}
