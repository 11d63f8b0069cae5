//! The tensor map: which live task last wrote which byte range of which buffer.
//!
//! Entries are keyed by the buffer's base address (hashed into buckets of doubly linked chains),
//! taken from a fixed pool with a free list, and also linked per producer task so all of a task's
//! entries are reclaimed together once the task is consumed (behind the ring's watermark). Only
//! the orchestrator touches the map, so plain memory accesses suffice.
//!
//! A new writer whose range covers an older entry of the same buffer entirely supersedes it: the
//! older entry leaves its bucket at once (lookups stay short) and returns to the pool with its
//! task's chain.
//!
//! The map lives in device memory and trusts none of it: every index read from it (bucket heads,
//! links, chains, an entry's bucket) is checked against the pool or the bucket array before it is
//! used, in every build, and every walk visits at most `capacity` entries, so a corrupted link ends
//! a walk instead of leaving the map's memory or looping. Boot clears no bucket (O(1)): entries are
//! handed out fresh from index 1 (or from this run's free list) and fully written on insert, and a
//! bucket head counts only when it names an entry this run handed out (`index <= fresh`) that is
//! linked, in that bucket, at the head of its chain (`TensorMap::first`). A head this run never
//! wrote fails that test whatever it holds (no linked entry of this run names a bucket whose head
//! it did not write), and a head it wrote always passes it, so stale heads read as empty buckets.

use pto_abi::runtime::{OrchState, TensorMapEntry};

/// How an existing entry's range relates to a query range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// No byte in common.
    Disjoint,
    /// The entry lies entirely inside the query range.
    Covered,
    /// Some bytes in common, and the entry reaches outside the query range.
    Other,
}

impl Overlap {
    /// Classifies entry range `[a, b)` against query range `[s, e)`.
    #[inline(always)]
    pub fn classify(a: u64, b: u64, s: u64, e: u64) -> Overlap {
        if b <= s || e <= a || a == b || s == e {
            Overlap::Disjoint
        } else if s <= a && b <= e {
            Overlap::Covered
        } else {
            Overlap::Other
        }
    }
}

/// The entry pool is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorMapFull;

/// The tensor map of a runtime (orchestrator-owned view plus its allocation state).
#[derive(Debug)]
pub struct TensorMap {
    buckets: *mut u32,
    bucket_shift: u32,
    entries: *mut TensorMapEntry,
    capacity: u32,
    free: u32,
    fresh: u32,
    used: u32,
}

const HASH_MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

impl TensorMap {
    /// A view over `bucket_count` bucket heads and `capacity + 1` entries (entry 0 is the null
    /// sentinel), with an empty allocation state (see [`TensorMap::load_state`]).
    ///
    /// # Safety
    /// Both regions are valid for reads and writes for as long as the map is used, only this map
    /// touches them, `bucket_count` is a power of two of at least 2, and `capacity < 2^32 - 1`.
    pub unsafe fn from_raw(buckets: *mut u32, bucket_count: u64, entries: *mut TensorMapEntry, capacity: u64) -> Self {
        debug_assert!(bucket_count.is_power_of_two() && bucket_count >= 2);
        TensorMap {
            buckets,
            bucket_shift: 64 - bucket_count.trailing_zeros(),
            entries,
            capacity: capacity.min(u32::MAX as u64 - 1) as u32,
            free: 0,
            fresh: 0,
            used: 0,
        }
    }

    /// Empties the map: every bucket cleared, every entry free. O(buckets).
    pub fn init(&mut self) {
        let count = self.bucket_count() as usize;
        // SAFETY: the bucket array holds `count` heads.
        unsafe { core::ptr::write_bytes(self.buckets, 0, count) };
        self.free = 0;
        self.fresh = 0;
        self.used = 0;
    }

    /// Resumes the allocation state persisted in `state`.
    pub fn load_state(&mut self, state: &OrchState) {
        self.free = state.tensor_map_free;
        self.fresh = state.tensor_map_fresh;
        self.used = state.tensor_map_used;
    }

    /// Persists the allocation state into `state`.
    pub fn store_state(&self, state: &mut OrchState) {
        state.tensor_map_free = self.free;
        state.tensor_map_fresh = self.fresh;
        state.tensor_map_used = self.used;
    }

    /// Usable entries.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Entries in use.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// True when an insert would fail.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.used >= self.capacity
    }

    #[inline(always)]
    fn bucket_of(&self, buffer: u64) -> u32 {
        (buffer.wrapping_mul(HASH_MULTIPLIER) >> self.bucket_shift) as u32
    }

    /// Entry `index`, or `None` for 0 (the end of a list) and for any index outside the pool.
    #[inline(always)]
    fn e(&self, index: u32) -> Option<*mut TensorMapEntry> {
        // One compare: index 0 wraps to u32::MAX.
        if index.wrapping_sub(1) >= self.capacity {
            return None;
        }
        // SAFETY: `1 <= index <= capacity`, inside the pool of `capacity + 1` entries.
        Some(unsafe { self.entries.add(index as usize) })
    }

    fn bucket_count(&self) -> u64 {
        1u64 << (64 - self.bucket_shift)
    }

    /// The head of `bucket`, or `None` for an index outside the bucket array.
    #[inline(always)]
    fn head(&self, bucket: u32) -> Option<*mut u32> {
        if bucket as u64 >= self.bucket_count() {
            return None;
        }
        // SAFETY: `bucket` is below the bucket count.
        Some(unsafe { self.buckets.add(bucket as usize) })
    }

    /// The first entry of `bucket`'s chain given its head word `head`: `head` when it names an
    /// entry handed out this run that is linked at the head of `bucket`, else 0 (an empty bucket).
    #[inline(always)]
    fn first(&self, bucket: u32, head: u32) -> u32 {
        let Some(p) = self.e(head) else { return 0 };
        // SAFETY: `p` is an entry of the pool (`e` bounds-checked `head`).
        let linked_at_head = unsafe { (*p).live != 0 && (*p).bucket == bucket && (*p).prev_in_bucket == 0 };
        if head <= self.fresh && linked_at_head {
            head
        } else {
            0
        }
    }

    /// The head word of the bucket of `buffer` (always in range; see [`TensorMap::first`]).
    #[inline(always)]
    fn head_of(&self, buffer: u64) -> *mut u32 {
        // SAFETY: `bucket_of` is below the bucket count (the hash keeps its top bits only).
        unsafe { self.buckets.add(self.bucket_of(buffer) as usize) }
    }

    /// Calls `visit(producer)` for every linked entry of `buffer` whose range overlaps
    /// `[start, end)`, newest first.
    #[inline]
    pub fn lookup(&self, buffer: u64, start: u64, end: u64, mut visit: impl FnMut(u64)) {
        // SAFETY: the head lies in the bucket array; `e` only yields entries inside the pool.
        unsafe {
            let mut i = self.first(self.bucket_of(buffer), *self.head_of(buffer));
            let mut steps = 0u32;
            while let Some(p) = self.e(i) {
                if steps >= self.capacity {
                    break;
                }
                steps += 1;
                let e = &*p;
                if e.buffer.0 == buffer
                    && Overlap::classify(e.range_start, e.range_end, start, end) != Overlap::Disjoint
                {
                    visit(e.producer_task);
                }
                i = e.next_in_bucket;
            }
        }
    }

    fn take_entry(&mut self) -> Result<u32, TensorMapFull> {
        if let Some(p) = self.e(self.free) {
            let i = self.free;
            // SAFETY: free entries link the free list through `next_in_bucket`; `p` is in the pool.
            self.free = unsafe { (*p).next_in_bucket };
            self.used += 1;
            Ok(i)
        } else if self.fresh < self.capacity {
            self.fresh += 1;
            self.used += 1;
            Ok(self.fresh)
        } else {
            Err(TensorMapFull)
        }
    }

    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let Some(p) = self.e(i) else { return };
        // SAFETY: every pointer comes from `e` or `head`, which only yield memory of the map.
        unsafe {
            let (prev, next, bucket) = ((*p).prev_in_bucket, (*p).next_in_bucket, (*p).bucket);
            if let Some(pp) = self.e(prev) {
                (*pp).next_in_bucket = next;
            } else if let Some(h) = self.head(bucket) {
                if *h == i {
                    *h = next;
                }
            }
            if let Some(np) = self.e(next) {
                (*np).prev_in_bucket = prev;
            }
            (*p).live = 0;
        }
    }

    /// Records `producer` as the newest writer of `[start, end)` of `buffer` and pushes the entry
    /// onto the task chain `chain`. Older entries of the buffer that the range covers leave their
    /// bucket.
    #[inline]
    pub fn insert(
        &mut self,
        buffer: u64,
        start: u64,
        end: u64,
        producer: u64,
        chain: &mut u32,
    ) -> Result<(), TensorMapFull> {
        let i = self.take_entry()?;
        let Some(fresh) = self.e(i) else { return Err(TensorMapFull) };
        // SAFETY: `fresh` is an entry of the pool. Unlinked until written below, so a stale head
        // naming it does not count (see `first`).
        unsafe { (*fresh).live = 0 };
        let bucket = self.bucket_of(buffer);
        let head_ptr = self.head_of(buffer);
        // SAFETY: `fresh` and `head_ptr` lie in the map; `e` checks every linked index.
        unsafe {
            let mut j = self.first(bucket, *head_ptr);
            let mut steps = 0u32;
            while let Some(p) = self.e(j) {
                if steps >= self.capacity {
                    break;
                }
                steps += 1;
                let old = &*p;
                let next = old.next_in_bucket;
                if old.buffer.0 == buffer
                    && Overlap::classify(old.range_start, old.range_end, start, end) == Overlap::Covered
                {
                    self.unlink(j);
                }
                j = next;
            }
            let head = self.first(bucket, *head_ptr);
            let e = &mut *fresh;
            e.buffer = pto_abi::DevAddr(buffer);
            e.range_start = start;
            e.range_end = end;
            e.producer_task = producer;
            e.next_in_bucket = head;
            e.prev_in_bucket = 0;
            e.bucket = bucket;
            e.live = 1;
            e.next_in_task = *chain;
            if let Some(hp) = self.e(head) {
                (*hp).prev_in_bucket = i;
            }
            *head_ptr = i;
        }
        *chain = i;
        Ok(())
    }

    /// Returns every entry of a task chain to the pool (unlinking those still in a bucket).
    #[inline]
    pub fn release_chain(&mut self, head: u32) {
        let mut i = head;
        let mut steps = 0u32;
        while let Some(p) = self.e(i) {
            if steps >= self.capacity || self.used == 0 {
                break;
            }
            steps += 1;
            // SAFETY: `p` is an entry of the pool.
            let (next, live) = unsafe { ((*p).next_in_task, (*p).live) };
            if live != 0 {
                self.unlink(i);
            }
            // SAFETY: as above; the entry now joins the free list.
            unsafe { (*p).next_in_bucket = self.free };
            self.free = i;
            self.used -= 1;
            i = next;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::hostmem::HostRegion;
    use std::vec::Vec;

    struct Fixture {
        _b: HostRegion,
        _e: HostRegion,
        map: TensorMap,
    }

    fn map(buckets: u64, capacity: u64) -> Fixture {
        let b = HostRegion::new(buckets * 4);
        let e = HostRegion::new((capacity + 1) * 64);
        // SAFETY: both regions are large enough and live as long as the fixture.
        let map = unsafe { TensorMap::from_raw(b.ptr().cast(), buckets, e.ptr().cast(), capacity) };
        Fixture { _b: b, _e: e, map }
    }

    fn producers(m: &TensorMap, buffer: u64, s: u64, e: u64) -> Vec<u64> {
        let mut v = Vec::new();
        m.lookup(buffer, s, e, |p| v.push(p));
        v
    }

    #[test]
    fn classification() {
        assert_eq!(Overlap::classify(0, 10, 10, 20), Overlap::Disjoint);
        assert_eq!(Overlap::classify(10, 20, 0, 10), Overlap::Disjoint);
        assert_eq!(Overlap::classify(5, 10, 0, 20), Overlap::Covered);
        assert_eq!(Overlap::classify(0, 20, 0, 20), Overlap::Covered);
        assert_eq!(Overlap::classify(0, 20, 5, 10), Overlap::Other);
        assert_eq!(Overlap::classify(0, 10, 5, 15), Overlap::Other);
        assert_eq!(Overlap::classify(0, 0, 0, 10), Overlap::Disjoint, "empty ranges overlap nothing");
    }

    #[test]
    fn lookup_finds_overlapping_writers_of_the_same_buffer_only() {
        let mut f = map(2, 16);
        let (mut c1, mut c2, mut c3) = (0, 0, 0);
        f.map.insert(0x1000, 0, 512, 1, &mut c1).unwrap();
        f.map.insert(0x1000, 512, 1024, 2, &mut c2).unwrap();
        f.map.insert(0x2000, 0, 1024, 3, &mut c3).unwrap();
        assert_eq!(producers(&f.map, 0x1000, 0, 1024), [2, 1], "newest first");
        assert_eq!(producers(&f.map, 0x1000, 0, 100), [1], "disjoint slices do not depend on each other");
        assert_eq!(producers(&f.map, 0x1000, 600, 700), [2]);
        assert_eq!(producers(&f.map, 0x2000, 10, 20), [3]);
        assert!(producers(&f.map, 0x3000, 0, 1024).is_empty());
        assert_eq!(f.map.used(), 3);
    }

    #[test]
    fn a_covering_writer_supersedes_older_entries() {
        let mut f = map(4, 16);
        let (mut c1, mut c2, mut c3) = (0, 0, 0);
        f.map.insert(0x1000, 0, 512, 1, &mut c1).unwrap();
        f.map.insert(0x1000, 256, 2048, 2, &mut c2).unwrap();
        // Task 3 covers task 1's range but only part of task 2's.
        f.map.insert(0x1000, 0, 1024, 3, &mut c3).unwrap();
        assert_eq!(producers(&f.map, 0x1000, 0, 4096), [3, 2]);
        assert_eq!(f.map.used(), 3, "superseded entries stay allocated until their task is reclaimed");
        f.map.release_chain(c1);
        assert_eq!(f.map.used(), 2);
        assert_eq!(producers(&f.map, 0x1000, 0, 4096), [3, 2]);
    }

    #[test]
    fn chains_release_all_entries_of_a_task_and_the_pool_reuses_them() {
        let mut f = map(2, 4);
        let (mut a, mut b) = (0, 0);
        for k in 0..3u64 {
            f.map.insert(0x1000 + k * 0x400, 0, 64, 7, &mut a).unwrap();
        }
        f.map.insert(0x9000, 0, 64, 8, &mut b).unwrap();
        assert!(f.map.is_full());
        assert_eq!(f.map.insert(0xA000, 0, 64, 9, &mut 0), Err(TensorMapFull));
        f.map.release_chain(a);
        assert_eq!(f.map.used(), 1);
        for k in 0..3u64 {
            assert!(producers(&f.map, 0x1000 + k * 0x400, 0, 64).is_empty());
        }
        assert_eq!(producers(&f.map, 0x9000, 0, 64), [8]);
        let mut c = 0;
        for k in 0..3u64 {
            f.map.insert(0xB000 + k * 0x400, 0, 64, 10, &mut c).unwrap();
        }
        assert!(f.map.is_full());
        f.map.release_chain(b);
        f.map.release_chain(c);
        assert_eq!(f.map.used(), 0);
    }

    #[test]
    fn stale_bucket_heads_read_as_empty_buckets() {
        let mut f = map(8, 8);
        // Whatever the heads hold before the first insert (entries of an earlier run, garbage),
        // a map with an empty allocation state finds nothing and links correctly.
        for b in 0..8u64 {
            // SAFETY: the bucket region holds 8 heads.
            unsafe { f._b.ptr().cast::<u32>().add(b as usize).write((b as u32 * 3) % 10) };
        }
        for i in 1..=8u64 {
            // SAFETY: the entry region holds 9 entries; mark each as a linked head of every bucket.
            unsafe {
                let e = f._e.ptr().cast::<TensorMapEntry>().add(i as usize);
                (*e).live = 1;
                (*e).bucket = (i % 8) as u32;
                (*e).buffer = pto_abi::DevAddr(0x1000);
                (*e).range_end = 1 << 20;
            }
        }
        assert!(producers(&f.map, 0x1000, 0, 64).is_empty(), "no producer from stale heads");
        let mut c = 0;
        f.map.insert(0x1000, 0, 64, 5, &mut c).unwrap();
        f.map.insert(0x2000, 0, 64, 6, &mut c).unwrap();
        assert_eq!(producers(&f.map, 0x1000, 0, 64), [5]);
        assert_eq!(producers(&f.map, 0x2000, 0, 64), [6]);
        f.map.release_chain(c);
        assert_eq!(f.map.used(), 0);
        assert!(producers(&f.map, 0x1000, 0, 64).is_empty());
    }

    #[test]
    fn state_round_trips_through_orch_state_and_init_empties_the_map() {
        let mut f = map(8, 8);
        let mut c = 0;
        f.map.insert(0x1000, 0, 64, 1, &mut c).unwrap();
        let mut st: OrchState = zerocopy::FromZeros::new_zeroed();
        f.map.store_state(&mut st);
        assert_eq!((st.tensor_map_used, st.tensor_map_fresh), (1, 1));
        let mut g = map(8, 8);
        g.map.load_state(&st);
        assert_eq!(g.map.used(), 1);
        f.map.init();
        assert_eq!(f.map.used(), 0);
        assert!(producers(&f.map, 0x1000, 0, 64).is_empty());
    }
}
