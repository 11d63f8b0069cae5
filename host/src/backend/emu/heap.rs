//! The allocator of the emulated device: first fit over the guest RAM range the firmware's
//! `.pto_abi` record leaves to the host, every block a multiple of 1024 bytes on a 1024-aligned
//! base (what the simulated device does: a DMA requirement on hardware), with committed and peak
//! byte counts. Addresses are guest physical addresses.

use std::collections::BTreeMap;

use pto_abi::consts::REGION_BASE_ALIGN;
use pto_abi::DevAddr;

/// Free ranges and live blocks, by guest address.
#[derive(Debug)]
pub struct GuestHeap {
    base: u64,
    size: u64,
    free: BTreeMap<u64, u64>,
    live: BTreeMap<u64, u64>,
    committed: u64,
    peak: u64,
}

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// The request was 0 bytes.
    ZeroSize,
    /// No free block is large enough; `largest` is the largest free block.
    Exhausted {
        /// The largest free block, bytes.
        largest: u64,
    },
}

impl GuestHeap {
    /// A heap over `[base, base + size)`, shrunk inwards to 1024-byte boundaries.
    pub fn new(base: u64, size: u64) -> GuestHeap {
        let start = base.checked_next_multiple_of(REGION_BASE_ALIGN).unwrap_or(u64::MAX);
        let end = base.saturating_add(size) & !(REGION_BASE_ALIGN - 1);
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        GuestHeap { base: start, size: end.saturating_sub(start), free, live: BTreeMap::new(), committed: 0, peak: 0 }
    }

    /// First address of the heap.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Bytes the heap manages.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of live blocks (each rounded up to 1024).
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Highest committed byte count so far.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Live blocks.
    pub fn live_blocks(&self) -> usize {
        self.live.len()
    }

    /// Allocates `size` bytes (rounded up to 1024) on a 1024-aligned base.
    pub fn allocate(&mut self, size: u64) -> Result<DevAddr, HeapError> {
        if size == 0 {
            return Err(HeapError::ZeroSize);
        }
        let largest = || self.free.values().copied().max().unwrap_or(0);
        let Some(rounded) = size.checked_next_multiple_of(REGION_BASE_ALIGN) else {
            return Err(HeapError::Exhausted { largest: largest() });
        };
        let Some((&at, &len)) = self.free.iter().find(|(_, &len)| len >= rounded) else {
            return Err(HeapError::Exhausted { largest: largest() });
        };
        self.free.remove(&at);
        if len > rounded {
            self.free.insert(at + rounded, len - rounded);
        }
        self.live.insert(at, rounded);
        self.committed += rounded;
        self.peak = self.peak.max(self.committed);
        Ok(DevAddr(at))
    }

    /// Frees the block starting at `addr`; `None` when no live block starts there.
    pub fn release(&mut self, addr: DevAddr) -> Option<u64> {
        let at = addr.get();
        let size = self.live.remove(&at)?;
        self.committed -= size;
        let (mut start, mut len) = (at, size);
        if let Some((&prev, &plen)) = self.free.range(..at).next_back() {
            if prev + plen == at {
                self.free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(nlen) = self.free.remove(&(at + size)) {
            len += nlen;
        }
        self.free.insert(start, len);
        Some(size)
    }

    /// True when `[addr, addr + len)` lies inside one live block.
    pub fn contains(&self, addr: DevAddr, len: u64) -> bool {
        let Some((&start, &size)) = self.live.range(..=addr.get()).next_back() else { return false };
        addr.get().checked_add(len).is_some_and(|end| end <= start + size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_rounded_counted_and_coalesce_when_freed() {
        let mut h = GuestHeap::new(0x4100_0100, 8 << 20);
        assert_eq!(h.base(), 0x4100_0400, "the base moves up to a 1024 boundary");
        let a = h.allocate(3 << 20).unwrap();
        let b = h.allocate(1000).unwrap();
        let c = h.allocate(3 << 20).unwrap();
        for x in [a, b, c] {
            assert!(x.is_aligned(1024));
        }
        assert_eq!(h.committed(), (6 << 20) + 1024);
        assert!(matches!(h.allocate(4 << 20), Err(HeapError::Exhausted { .. })));
        assert_eq!(h.allocate(0), Err(HeapError::ZeroSize));
        assert!(h.contains(b, 1000) && h.contains(b, 1024) && !h.contains(b, 1025));
        assert_eq!(h.release(b), Some(1024));
        assert_eq!(h.release(a), Some(3 << 20));
        assert_eq!(h.allocate((3 << 20) + 1024).unwrap(), a, "a and b merged");
        assert_eq!(h.release(b), None, "b is inside a live block but does not start one");
        assert_eq!(h.peak(), (6 << 20) + 1024);
        assert_eq!(h.live_blocks(), 2);
        assert!(matches!(h.allocate(u64::MAX), Err(HeapError::Exhausted { .. })));
    }
}
