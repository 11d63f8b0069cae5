//! The packed output heap of one ring.
//!
//! Each task's runtime-allocated outputs form one block (each output rounded up to 1024 bytes).
//! Blocks are handed out in task order and freed in task order behind the watermark. A block never
//! straddles the end of the heap: when it does not fit before the end, the remaining bytes are
//! skipped and the block starts at offset 0 (a wrap). When the ring holds no live bytes, the head
//! is rebased to a lap boundary so the whole heap is one contiguous free range.

/// Outcome of [`HeapRing::try_alloc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapAlloc {
    /// The block lies at `offset` in the ring heap; `end_pos` is the head position after it.
    Fits {
        /// Byte offset inside the ring heap.
        offset: u64,
        /// Monotonic position just past the block (the task's `heap_end_pos`).
        end_pos: u64,
    },
    /// Not enough free bytes until more tasks are consumed.
    Wait,
    /// Larger than the whole heap: can never fit.
    TooLarge,
}

/// Allocation state of one ring heap (orchestrator-owned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapRing {
    /// Heap bytes (a multiple of 1024).
    pub size: u64,
    /// Monotonic position of the next free byte.
    pub head: u64,
    /// Positions below this are free regardless of the published tail.
    pub floor: u64,
    /// Allocations that skipped the end of the heap.
    pub wraps: u64,
}

impl HeapRing {
    /// Allocates `bytes` (a multiple of the output alignment) given the published tail (monotonic
    /// position up to which blocks were freed). State changes only on `Fits`.
    #[inline]
    pub fn try_alloc(&mut self, bytes: u64, tail: u64) -> HeapAlloc {
        if bytes == 0 {
            // An empty block takes no room: it needs neither a rebase nor a free byte.
            return HeapAlloc::Fits { offset: self.offset_of(self.head), end_pos: self.head };
        }
        if bytes > self.size {
            return HeapAlloc::TooLarge;
        }
        let tail = tail.max(self.floor);
        let mut head = self.head;
        if tail >= head && self.offset_of(head) != 0 {
            // Empty: rebase to the next lap boundary so the whole heap is contiguous.
            head = head - self.offset_of(head) + self.size;
            self.floor = head;
            self.head = head;
        }
        let tail = tail.max(self.floor);
        let offset = self.offset_of(head);
        let (start, skipped) =
            if offset + bytes > self.size { (head + (self.size - offset), true) } else { (head, false) };
        let end = start + bytes;
        if end - tail > self.size {
            return HeapAlloc::Wait;
        }
        if skipped {
            self.wraps += 1;
        }
        self.head = end;
        HeapAlloc::Fits { offset: self.offset_of(start), end_pos: end }
    }

    /// The heap offset of monotonic position `pos`: a mask for a power-of-two size (the common
    /// case, and a division is tens of cycles), a remainder otherwise.
    #[inline(always)]
    fn offset_of(&self, pos: u64) -> u64 {
        if self.size.is_power_of_two() {
            pos & (self.size - 1)
        } else {
            pos % self.size
        }
    }

    /// Bytes in use given the published tail.
    pub fn used(&self, tail: u64) -> u64 {
        self.head.saturating_sub(tail.max(self.floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(size: u64) -> HeapRing {
        HeapRing { size, head: 0, floor: 0, wraps: 0 }
    }

    #[test]
    fn blocks_pack_back_to_back_until_full() {
        let mut h = ring(4096);
        assert_eq!(h.try_alloc(1024, 0), HeapAlloc::Fits { offset: 0, end_pos: 1024 });
        assert_eq!(h.try_alloc(2048, 0), HeapAlloc::Fits { offset: 1024, end_pos: 3072 });
        assert_eq!(h.try_alloc(2048, 0), HeapAlloc::Wait, "only 1024 bytes left");
        assert_eq!(h.try_alloc(1024, 0), HeapAlloc::Fits { offset: 3072, end_pos: 4096 });
        assert_eq!(h.used(0), 4096);
        assert_eq!(h.try_alloc(8192, 0), HeapAlloc::TooLarge);
    }

    #[test]
    fn a_block_never_straddles_the_end_and_wraps_to_zero() {
        let mut h = ring(4096);
        h.try_alloc(3072, 0);
        // First block freed; 1024 bytes remain before the end, the next block needs 2048.
        assert_eq!(h.try_alloc(2048, 1024), HeapAlloc::Wait, "wrapping would overrun the live block");
        let before = h;
        assert_eq!(before.head, 3072, "a refused allocation changes nothing");
        assert_eq!(h.try_alloc(2048, 2048), HeapAlloc::Fits { offset: 0, end_pos: 4096 + 2048 });
        assert_eq!(h.wraps, 1);
        // The skipped tail counts as used until the tail passes it.
        assert_eq!(h.used(3072), 4096 + 2048 - 3072);
    }

    #[test]
    fn an_empty_ring_rebases_to_a_lap_boundary() {
        let mut h = ring(4096);
        h.try_alloc(3072, 0);
        // Everything freed: a 2048-byte block would not fit before the end, but the ring is empty,
        // so it rebases and starts at 0 without counting a wrap.
        assert_eq!(h.try_alloc(2048, 3072), HeapAlloc::Fits { offset: 0, end_pos: 4096 + 2048 });
        assert_eq!(h.wraps, 0);
        assert_eq!(h.floor, 4096);
        // A full-size block fits once the ring drains again.
        assert_eq!(h.try_alloc(4096, 6144), HeapAlloc::Fits { offset: 0, end_pos: 12288 });
    }

    #[test]
    fn zero_byte_blocks_take_no_space() {
        let mut h = ring(1024);
        assert_eq!(h.try_alloc(1024, 0), HeapAlloc::Fits { offset: 0, end_pos: 1024 });
        assert_eq!(h.try_alloc(0, 0), HeapAlloc::Fits { offset: 0, end_pos: 1024 });
        assert_eq!(h.try_alloc(1024, 0), HeapAlloc::Wait);
    }
}
