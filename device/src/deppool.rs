//! The dep-list pool of a ring: singly linked nodes `{task id, next}` for fanout lists and for
//! fanin edges beyond the inline ones.
//!
//! Nodes are handed out by the orchestrator in ring order (a bump cursor that wraps) and reclaimed
//! in the same order behind the ring's watermark: each task records the pool head after its submit
//! (`dep_pool_mark`), and once the task is consumed every node up to that mark is free again.
//! Entry 0 is the null sentinel. A node is named across rings by a [`NodeRef`]: ring in the top
//! two bits, index in the low 30 bits.
//!
//! The pool lives in device memory: [`DepPool::read`] and [`DepPool::write`] check every index
//! against the pool in every build (an index outside it reads as an empty node and is never
//! written), and walks of a list stop after [`DepPools::max_list_len`] nodes, so a corrupted link
//! ends a walk instead of leaving the pool or looping.

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use pto_abi::consts::RING_COUNT;
use pto_abi::task::DepListEntry;

use crate::sync::{atomic_u32, atomic_u64};

/// Most usable nodes of one ring's pool (indices must fit in 30 bits of a [`NodeRef`]).
pub const MAX_POOL_NODES: u32 = (1 << 30) - 1;

/// A dep-list node named by ring and index; 0 is the null reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef(pub u32);

impl NodeRef {
    /// The null reference (end of a list).
    pub const NULL: NodeRef = NodeRef(0);

    /// Node `index` (>= 1) of ring `ring`'s pool.
    pub const fn new(ring: u32, index: u32) -> NodeRef {
        NodeRef((ring << 30) | index)
    }

    /// True for the null reference.
    pub const fn is_null(self) -> bool {
        self.0 & MAX_POOL_NODES == 0
    }

    /// The pool's ring.
    pub const fn ring(self) -> usize {
        (self.0 >> 30) as usize
    }

    /// The index inside the pool.
    pub const fn index(self) -> u32 {
        self.0 & MAX_POOL_NODES
    }
}

/// One ring's pool in the arena (a view over `capacity + 1` entries).
#[derive(Clone, Copy, Debug)]
pub struct DepPool {
    entries: *mut DepListEntry,
    capacity: u32,
}

// SAFETY: nodes are written by the orchestrator before they are published (under a producer's
// lock or before the consumer becomes visible) and read afterwards; the fields are atomics.
unsafe impl Send for DepPool {}
// SAFETY: as above.
unsafe impl Sync for DepPool {}

impl DepPool {
    /// A view over `entries`, of which `capacity + 1` exist (index 0 is the sentinel). At most
    /// [`MAX_POOL_NODES`] nodes are used.
    ///
    /// # Safety
    /// `entries` is 8-aligned and valid for reads and writes of `capacity + 1` entries for as long
    /// as the view is used.
    pub unsafe fn from_raw(entries: *mut DepListEntry, capacity: u32) -> Self {
        DepPool { entries, capacity: capacity.min(MAX_POOL_NODES) }
    }

    /// Usable nodes (excluding the sentinel).
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Node `index`, or `None` for the sentinel and for any index outside the pool.
    #[inline(always)]
    fn entry(&self, index: u32) -> Option<*mut DepListEntry> {
        // One compare: index 0 wraps to u32::MAX.
        if index.wrapping_sub(1) >= self.capacity {
            return None;
        }
        // SAFETY: `1 <= index <= capacity`, inside the `capacity + 1` entries.
        Some(unsafe { self.entries.add(index as usize) })
    }

    /// Writes node `index` (an index outside the pool is not written).
    #[inline(always)]
    pub fn write(&self, index: u32, task_id: u64, next: u32) {
        let Some(e) = self.entry(index) else { return };
        // SAFETY: `e` is a valid entry; its fields are naturally aligned.
        unsafe {
            atomic_u64(addr_of_mut!((*e).task_id)).store(task_id, Ordering::Relaxed);
            atomic_u32(addr_of_mut!((*e).next)).store(next, Ordering::Relaxed);
        }
    }

    /// Reads node `index`: `(task id, next)`; an index outside the pool reads as
    /// `(NO_TASK, 0)`, the end of a list.
    #[inline(always)]
    pub fn read(&self, index: u32) -> (u64, u32) {
        let Some(e) = self.entry(index) else { return (pto_abi::task::NO_TASK, 0) };
        // SAFETY: as in `write`.
        unsafe {
            (
                atomic_u64(addr_of_mut!((*e).task_id)).load(Ordering::Relaxed),
                atomic_u32(addr_of_mut!((*e).next)).load(Ordering::Relaxed),
            )
        }
    }
}

/// The per-ring pools of a runtime.
#[derive(Clone, Copy, Debug)]
pub struct DepPools {
    /// One pool per ring.
    pub rings: [DepPool; RING_COUNT],
}

impl DepPools {
    /// The most nodes any list can hold (every node of every pool): walks stop after this many.
    pub fn max_list_len(&self) -> u64 {
        self.rings.iter().map(|p| p.capacity as u64).sum()
    }

    /// Writes the node `node`.
    #[inline(always)]
    pub fn write(&self, node: NodeRef, task_id: u64, next: NodeRef) {
        self.rings[node.ring()].write(node.index(), task_id, next.0);
    }

    /// Reads the node `node`: `(task id, next)`.
    #[inline(always)]
    pub fn read(&self, node: NodeRef) -> (u64, NodeRef) {
        let (task, next) = self.rings[node.ring()].read(node.index());
        (task, NodeRef(next))
    }
}

/// The orchestrator's allocation cursor over one ring's pool.
///
/// `head` counts nodes ever handed out; the schedulers publish `tail` (nodes reclaimed) as the
/// watermark advances, so `head - tail` nodes are in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepPoolCursor {
    /// Nodes ever handed out (monotonic).
    pub head: u64,
    /// Index of the next node to hand out, in `1..=capacity`.
    pub next_index: u32,
    /// Usable nodes.
    pub capacity: u32,
}

impl DepPoolCursor {
    /// A cursor resumed from persisted state (`next_index` 0 means 1).
    pub fn resume(head: u64, next_index: u32, capacity: u32) -> Self {
        let capacity = capacity.min(MAX_POOL_NODES);
        let next_index = if next_index == 0 || next_index > capacity { 1 } else { next_index };
        DepPoolCursor { head, next_index, capacity }
    }

    /// Nodes free, given the reclaimed count `tail`.
    #[inline]
    pub fn free(&self, tail: u64) -> u64 {
        (self.capacity as u64).saturating_sub(self.head.wrapping_sub(tail))
    }

    /// Hands out the next node; the caller has checked [`DepPoolCursor::free`].
    #[inline]
    pub fn take(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index = if i == self.capacity { 1 } else { i + 1 };
        self.head += 1;
        i
    }

    /// The full 64-bit head matching a 32-bit `mark` near `reference` (marks are low 32 bits of a
    /// head value that is at most 2^31 away from `reference`).
    pub fn widen_mark(mark: u32, reference: u64) -> u64 {
        reference.wrapping_add((mark.wrapping_sub(reference as u32) as i32) as i64 as u64)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::hostmem::HostRegion;

    #[test]
    fn node_refs_pack_ring_and_index() {
        let n = NodeRef::new(3, 12345);
        assert_eq!((n.ring(), n.index()), (3, 12345));
        assert!(!n.is_null());
        assert!(NodeRef::NULL.is_null());
        assert!(NodeRef::new(2, 0).is_null());
    }

    #[test]
    fn cursor_wraps_and_respects_reclaimed_tail() {
        let mut c = DepPoolCursor::resume(0, 0, 4);
        assert_eq!(c.free(0), 4);
        let got: std::vec::Vec<u32> = (0..4).map(|_| c.take()).collect();
        assert_eq!(got, [1, 2, 3, 4]);
        assert_eq!(c.free(0), 0);
        assert_eq!(c.free(2), 2, "two nodes reclaimed");
        assert_eq!(c.take(), 1, "wraps to the first index");
        assert_eq!(c.head, 5);
        let resumed = DepPoolCursor::resume(c.head, c.next_index, 4);
        assert_eq!(resumed, c);
        assert_eq!(DepPoolCursor::resume(9, 7, 4).next_index, 1, "out-of-range index restarts");
    }

    #[test]
    fn widen_mark_recovers_full_heads_across_32_bit_wrap() {
        assert_eq!(DepPoolCursor::widen_mark(10, 5), 10);
        assert_eq!(DepPoolCursor::widen_mark(3, 10), 3);
        let big = (5u64 << 32) | 0xFFFF_FFF0;
        assert_eq!(DepPoolCursor::widen_mark(0x10, big), (6u64 << 32) | 0x10);
        assert_eq!(DepPoolCursor::widen_mark(0xFFFF_FFE0, (6u64 << 32) | 5), (5u64 << 32) | 0xFFFF_FFE0);
    }

    #[test]
    fn pools_store_lists_across_rings() {
        let regions: std::vec::Vec<HostRegion> = (0..RING_COUNT).map(|_| HostRegion::new(5 * 16)).collect();
        let pools = DepPools {
            rings: core::array::from_fn(|r| {
                // SAFETY: each region holds 5 entries and outlives the pools.
                unsafe { DepPool::from_raw(regions[r].ptr().cast(), 4) }
            }),
        };
        let a = NodeRef::new(0, 1);
        let b = NodeRef::new(3, 4);
        pools.write(a, 100, NodeRef::NULL);
        pools.write(b, 200, a);
        let (t, next) = pools.read(b);
        assert_eq!((t, next), (200, a));
        assert_eq!(pools.read(next), (100, NodeRef::NULL));
        assert_eq!(pools.rings[3].capacity(), 4);
    }
}
