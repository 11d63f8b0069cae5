//! A bounded lock-free multi-producer multi-consumer queue of task ids, laid out in the arena.
//!
//! Every cell carries a sequence number that tells producers and consumers whose turn it is
//! (D. Vyukov's bounded MPMC queue). The number is stored relative to the cell index
//! (`position - index`, i.e. the "lap" of the position), so a zeroed cell is an empty cell of the
//! first lap and the device never needs a ramp of initial values. The producer and consumer
//! cursors live on separate cache lines of [`ReadyQueueHeader`].
//!
//! **The queue never trusts its memory.** [`ReadyQueue::init`] (what boot runs) is O(1): it writes
//! the header, both cursors and the `written` mark, and no cell. Cells below `written` hold values
//! this queue wrote since `init`; the first lap writes cells ahead of the producers, a chunk of
//! [`WRITE_AHEAD`] at a time (the thread that needs the next chunk sets bit 63 of `written`, zeroes
//! the chunk and publishes the new mark with release ordering), and a position of the first lap at
//! or above the mark is never read: producers write the chunk first, consumers report the queue
//! empty there (nothing can have been pushed there yet). So whatever an image holds in the cells,
//! a queue after `init` behaves like a zeroed one, and regeneration costs what a run uses instead
//! of the whole capacity at every boot. Cursors and the mark are never trusted either: a cell
//! whose sequence number says "another thread is ahead of you" while the cursor does not move is
//! retried at most [`STALE_RETRIES`] times, after which a push reports the queue full and a pop
//! reports it empty (the callers turn a queue that stays full, or work that stays queued, into an
//! error code), and every cell index is the position reduced by the mask, so no value read from
//! the queue can address memory outside it.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU64, Ordering};

use pto_abi::runtime::{ReadyQueueCell, ReadyQueueHeader};

use crate::sync::atomic_u64;

/// Times an operation re-reads an unchanged cursor whose cell claims another thread is ahead (or
/// waits for another thread writing the next chunk), before it gives up; a consistent queue never
/// needs more than a handful.
pub const STALE_RETRIES: u32 = 1 << 12;

/// Cells the first lap writes ahead of the producers at a time.
pub const WRITE_AHEAD: u64 = 64;

/// Bit of `written` set while a thread writes the next chunk.
const WRITING: u64 = 1 << 63;

/// A ready queue in the arena (a view: header plus `capacity` cells).
#[derive(Clone, Copy, Debug)]
pub struct ReadyQueue {
    header: *mut ReadyQueueHeader,
    cells: *mut ReadyQueueCell,
    mask: u64,
}

// SAFETY: every access to the shared memory goes through atomics.
unsafe impl Send for ReadyQueue {}
// SAFETY: as above.
unsafe impl Sync for ReadyQueue {}

impl ReadyQueue {
    /// A view of the queue whose header starts at `base`, with `capacity` cells following it.
    ///
    /// # Safety
    /// `base` is 64-aligned and valid for reads and writes of
    /// `size_of::<ReadyQueueHeader>() + capacity * size_of::<ReadyQueueCell>()` bytes for as long
    /// as the view (or a copy) is used, and that memory is only accessed through queue views.
    /// `capacity` is a power of two, at least 2.
    pub unsafe fn from_raw(base: *mut u8, capacity: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= 2);
        let header = base.cast::<ReadyQueueHeader>();
        // SAFETY: the cells follow the header inside the caller's region.
        let cells = unsafe { base.add(core::mem::size_of::<ReadyQueueHeader>()) }.cast::<ReadyQueueCell>();
        ReadyQueue { header, cells, mask: capacity - 1 }
    }

    /// Number of cells.
    pub fn capacity(&self) -> u64 {
        self.mask + 1
    }

    fn enqueue_pos(&self) -> &AtomicU64 {
        // SAFETY: the header lies in the region promised to `from_raw`.
        unsafe { atomic_u64(addr_of_mut!((*self.header).enqueue_pos)) }
    }

    fn dequeue_pos(&self) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { atomic_u64(addr_of_mut!((*self.header).dequeue_pos)) }
    }

    fn written_word(&self) -> &AtomicU64 {
        // SAFETY: as above.
        unsafe { atomic_u64(addr_of_mut!((*self.header).written)) }
    }

    #[inline(always)]
    fn cell(&self, pos: u64) -> (&AtomicU64, &AtomicU64) {
        // SAFETY: `pos & mask` is below the capacity promised to `from_raw`.
        unsafe {
            let c = self.cells.add((pos & self.mask) as usize);
            (atomic_u64(addr_of_mut!((*c).sequence)), atomic_u64(addr_of_mut!((*c).task_id)))
        }
    }

    /// True when the cell of `pos` may be read: every position after the first lap, and first-lap
    /// positions below the `written` mark.
    #[inline(always)]
    fn readable(&self, pos: u64) -> bool {
        pos > self.mask || pos < self.written_word().load(Ordering::Acquire) & !WRITING
    }

    /// Makes the cell of `pos` readable, writing the chunk that holds it (and the cells before it)
    /// if needed; false when another thread kept writing for [`STALE_RETRIES`] rounds.
    #[cold]
    fn write_ahead(&self, pos: u64) -> bool {
        let w = self.written_word();
        for _ in 0..STALE_RETRIES {
            let cur = w.load(Ordering::Acquire);
            if cur & WRITING != 0 {
                core::hint::spin_loop();
                continue;
            }
            if pos > self.mask || pos < cur {
                return true;
            }
            if w.compare_exchange(cur, cur | WRITING, Ordering::Acquire, Ordering::Relaxed).is_err() {
                continue;
            }
            let end = cur.saturating_add(WRITE_AHEAD).max(pos + 1).min(self.capacity());
            for i in cur..end {
                let (seq, task) = self.cell(i);
                seq.store(0, Ordering::Relaxed);
                task.store(0, Ordering::Relaxed);
            }
            w.store(end, Ordering::Release);
            return true;
        }
        false
    }

    /// Resets the queue to empty in O(1): capacity and mask, both cursors and the `written` mark
    /// (no cell is read before the queue writes it again).
    ///
    /// # Safety
    /// No other thread uses the queue (through any view) during the call.
    pub unsafe fn init(&self) {
        // SAFETY: exclusive use is the caller's contract; the memory lies in the region.
        unsafe {
            (*self.header).capacity = self.capacity();
            (*self.header).mask = self.mask;
        }
        self.enqueue_pos().store(0, Ordering::Relaxed);
        self.dequeue_pos().store(0, Ordering::Relaxed);
        self.written_word().store(0, Ordering::Release);
    }

    /// Appends `task`; `Err(task)` when the queue is full.
    #[inline]
    pub fn push(&self, task: u64) -> Result<(), u64> {
        let enq = self.enqueue_pos();
        let mut pos = enq.load(Ordering::Relaxed);
        let mut stale = 0u32;
        loop {
            if !self.readable(pos) && !self.write_ahead(pos) {
                return Err(task);
            }
            let (seq, slot) = self.cell(pos);
            let lap = pos & !self.mask;
            let s = seq.load(Ordering::Acquire);
            let diff = s.wrapping_sub(lap) as i64;
            if diff == 0 {
                match enq.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        slot.store(task, Ordering::Relaxed);
                        seq.store(lap.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                return Err(task);
            } else {
                let now = enq.load(Ordering::Relaxed);
                if now == pos {
                    stale += 1;
                    if stale > STALE_RETRIES {
                        return Err(task);
                    }
                }
                pos = now;
            }
        }
    }

    /// Removes the oldest task, or `None` when the queue is empty.
    #[inline]
    pub fn pop(&self) -> Option<u64> {
        let deq = self.dequeue_pos();
        let mut pos = deq.load(Ordering::Relaxed);
        let mut stale = 0u32;
        loop {
            if !self.readable(pos) {
                return None; // nothing was pushed at this first-lap position yet
            }
            let (seq, slot) = self.cell(pos);
            let lap = pos & !self.mask;
            let s = seq.load(Ordering::Acquire);
            let diff = s.wrapping_sub(lap.wrapping_add(1)) as i64;
            if diff == 0 {
                match deq.compare_exchange_weak(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        let task = slot.load(Ordering::Relaxed);
                        seq.store(lap.wrapping_add(self.mask).wrapping_add(1), Ordering::Release);
                        return Some(task);
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                return None;
            } else {
                let now = deq.load(Ordering::Relaxed);
                if now == pos {
                    stale += 1;
                    if stale > STALE_RETRIES {
                        return None;
                    }
                }
                pos = now;
            }
        }
    }

    /// [`ReadyQueue::push`] for a queue only the calling thread uses (same memory effects, no
    /// read-modify-write instructions on the cursor).
    #[inline]
    pub fn push_exclusive(&self, task: u64) -> Result<(), u64> {
        let enq = self.enqueue_pos();
        let pos = enq.load(Ordering::Relaxed);
        if !self.readable(pos) && !self.write_ahead(pos) {
            return Err(task);
        }
        let (seq, slot) = self.cell(pos);
        let lap = pos & !self.mask;
        if seq.load(Ordering::Relaxed) != lap {
            return Err(task);
        }
        slot.store(task, Ordering::Relaxed);
        seq.store(lap.wrapping_add(1), Ordering::Relaxed);
        enq.store(pos.wrapping_add(1), Ordering::Relaxed);
        Ok(())
    }

    /// [`ReadyQueue::pop`] for a queue only the calling thread uses.
    #[inline]
    pub fn pop_exclusive(&self) -> Option<u64> {
        let deq = self.dequeue_pos();
        let pos = deq.load(Ordering::Relaxed);
        if !self.readable(pos) {
            return None;
        }
        let (seq, slot) = self.cell(pos);
        let lap = pos & !self.mask;
        if seq.load(Ordering::Relaxed) != lap.wrapping_add(1) {
            return None;
        }
        let task = slot.load(Ordering::Relaxed);
        seq.store(lap.wrapping_add(self.mask).wrapping_add(1), Ordering::Relaxed);
        deq.store(pos.wrapping_add(1), Ordering::Relaxed);
        Some(task)
    }

    /// Appends as many of `tasks` as fit, claiming them with one cursor update; returns how many.
    pub fn push_batch(&self, tasks: &[u64]) -> usize {
        let enq = self.enqueue_pos();
        let mut pos = enq.load(Ordering::Relaxed);
        let mut stale = 0u32;
        loop {
            if tasks.is_empty() || (!self.readable(pos) && !self.write_ahead(pos)) {
                return 0;
            }
            let mut n = 0u64;
            while (n as usize) < tasks.len() {
                let p = pos.wrapping_add(n);
                if !self.readable(p) || self.cell(p).0.load(Ordering::Acquire) != p & !self.mask {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                let (seq, _) = self.cell(pos);
                let diff = seq.load(Ordering::Acquire).wrapping_sub(pos & !self.mask) as i64;
                if diff < 0 || stale > STALE_RETRIES {
                    return 0;
                }
                let now = enq.load(Ordering::Relaxed);
                stale += u32::from(now == pos);
                pos = now;
                continue;
            }
            match enq.compare_exchange_weak(pos, pos.wrapping_add(n), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    for (i, &task) in tasks[..n as usize].iter().enumerate() {
                        let p = pos.wrapping_add(i as u64);
                        let (seq, slot) = self.cell(p);
                        slot.store(task, Ordering::Relaxed);
                        seq.store((p & !self.mask).wrapping_add(1), Ordering::Release);
                    }
                    return n as usize;
                }
                Err(now) => pos = now,
            }
        }
    }

    /// Removes up to `out.len()` of the oldest tasks with one cursor update; returns how many.
    pub fn pop_batch(&self, out: &mut [u64]) -> usize {
        let deq = self.dequeue_pos();
        let mut pos = deq.load(Ordering::Relaxed);
        let mut stale = 0u32;
        loop {
            if out.is_empty() || !self.readable(pos) {
                return 0;
            }
            let mut n = 0u64;
            while (n as usize) < out.len() {
                let p = pos.wrapping_add(n);
                if !self.readable(p) || self.cell(p).0.load(Ordering::Acquire) != (p & !self.mask).wrapping_add(1) {
                    break;
                }
                n += 1;
            }
            if n == 0 {
                let (seq, _) = self.cell(pos);
                let diff = seq.load(Ordering::Acquire).wrapping_sub((pos & !self.mask).wrapping_add(1)) as i64;
                if diff < 0 || stale > STALE_RETRIES {
                    return 0;
                }
                let now = deq.load(Ordering::Relaxed);
                stale += u32::from(now == pos);
                pos = now;
                continue;
            }
            match deq.compare_exchange_weak(pos, pos.wrapping_add(n), Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    for (i, o) in out[..n as usize].iter_mut().enumerate() {
                        let p = pos.wrapping_add(i as u64);
                        let (seq, slot) = self.cell(p);
                        *o = slot.load(Ordering::Relaxed);
                        seq.store((p & !self.mask).wrapping_add(self.mask).wrapping_add(1), Ordering::Release);
                    }
                    return n as usize;
                }
                Err(now) => pos = now,
            }
        }
    }

    /// Tasks queued, as seen by a racy read of both cursors (exact when no one else runs).
    pub fn len(&self) -> u64 {
        let tail = self.dequeue_pos().load(Ordering::Acquire);
        let head = self.enqueue_pos().load(Ordering::Acquire);
        head.saturating_sub(tail)
    }

    /// True when [`ReadyQueue::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops queued tasks, at most one capacity's worth; returns how many.
    pub fn drain(&self) -> u64 {
        let mut n = 0;
        while n < self.capacity() && self.pop().is_some() {
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::hostmem::HostRegion;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::vec;
    use std::vec::Vec;

    fn queue(capacity: u64) -> (HostRegion, ReadyQueue) {
        let bytes = core::mem::size_of::<ReadyQueueHeader>() as u64 + capacity * 16;
        let region = HostRegion::new(bytes);
        // SAFETY: the region is large enough, aligned and outlives the queue in every test.
        let q = unsafe { ReadyQueue::from_raw(region.ptr(), capacity) };
        (region, q)
    }

    #[test]
    fn zeroed_memory_is_an_empty_queue_and_fifo_order_holds_across_laps() {
        let (_r, q) = queue(4);
        assert_eq!(q.pop(), None);
        for lap in 0..5u64 {
            for i in 0..4 {
                q.push(lap * 10 + i).unwrap();
            }
            assert_eq!(q.push(99), Err(99), "a full queue refuses");
            assert_eq!(q.len(), 4);
            for i in 0..4 {
                assert_eq!(q.pop(), Some(lap * 10 + i));
            }
            assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn exclusive_operations_interoperate_with_the_shared_ones() {
        let (_r, q) = queue(4);
        for lap in 0..3u64 {
            q.push_exclusive(lap).unwrap();
            q.push(lap + 10).unwrap();
            q.push_exclusive(lap + 20).unwrap();
            q.push(lap + 30).unwrap();
            assert_eq!(q.push_exclusive(99), Err(99));
            assert_eq!(q.pop(), Some(lap));
            assert_eq!(q.pop_exclusive(), Some(lap + 10));
            assert_eq!(q.pop_exclusive(), Some(lap + 20));
            assert_eq!(q.pop(), Some(lap + 30));
            assert_eq!(q.pop_exclusive(), None);
        }
    }

    #[test]
    fn batches_claim_what_fits_and_keep_order() {
        let (_r, q) = queue(8);
        assert_eq!(q.push_batch(&[1, 2, 3]), 3);
        q.push(4).unwrap();
        assert_eq!(q.push_batch(&[5, 6, 7, 8, 9, 10]), 4, "only four cells were free");
        let mut out = [0u64; 5];
        assert_eq!(q.pop_batch(&mut out), 5);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert_eq!(q.pop_batch(&mut out), 3);
        assert_eq!(&out[..3], &[6, 7, 8]);
        assert_eq!(q.pop_batch(&mut out), 0);
        assert_eq!(q.push_batch(&[]), 0);
    }

    #[test]
    fn init_and_drain_empty_the_queue() {
        let (_r, q) = queue(4);
        q.push(1).unwrap();
        q.push(2).unwrap();
        assert_eq!(q.drain(), 2);
        assert!(q.is_empty());
        q.push(3).unwrap();
        // SAFETY: no other thread uses the queue.
        unsafe { q.init() };
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        q.push(4).unwrap();
        assert_eq!(q.pop(), Some(4));
    }

    fn fill_garbage(region: &HostRegion, capacity: u64, seed: u64) {
        let words = (core::mem::size_of::<ReadyQueueHeader>() as u64 + capacity * 16) / 8;
        let mut x = seed | 1;
        for i in 0..words {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every pattern a stale or corrupted image may hold: small laps, huge values, copies
            // of plausible sequence numbers.
            let v = match i % 4 {
                0 => x % 4,
                1 => x,
                2 => 1,
                _ => x % 64,
            };
            // SAFETY: `i` words lie inside the region.
            unsafe { region.ptr().cast::<u64>().add(i as usize).write(v) };
        }
    }

    #[test]
    fn after_init_a_queue_ignores_whatever_its_memory_held() {
        for seed in 1..50u64 {
            let (region, q) = queue(8);
            fill_garbage(&region, 8, seed);
            // SAFETY: no other thread uses the queue.
            unsafe { q.init() };
            assert_eq!(q.pop(), None, "seed {seed}: no work from the image");
            assert_eq!(q.pop_exclusive(), None);
            assert_eq!(q.pop_batch(&mut [0; 4]), 0);
            for lap in 0..3u64 {
                for i in 0..8 {
                    if i % 2 == 0 {
                        q.push(lap * 100 + i).unwrap();
                    } else {
                        q.push_exclusive(lap * 100 + i).unwrap();
                    }
                }
                assert_eq!(q.push(9), Err(9), "seed {seed}: full after 8");
                for i in 0..8 {
                    let got = if i % 2 == 0 { q.pop() } else { q.pop_exclusive() };
                    assert_eq!(got, Some(lap * 100 + i), "seed {seed}, lap {lap}");
                }
                assert_eq!(q.pop(), None);
            }
        }
    }

    #[test]
    fn batches_write_ahead_across_chunks() {
        let capacity = 4 * WRITE_AHEAD;
        let (region, q) = queue(capacity);
        fill_garbage(&region, capacity, 7);
        // SAFETY: no other thread uses the queue.
        unsafe { q.init() };
        let tasks: Vec<u64> = (0..capacity).collect();
        let mut pushed = 0;
        while pushed < tasks.len() {
            let n = q.push_batch(&tasks[pushed..]);
            assert!(n > 0);
            pushed += n;
        }
        let mut out = vec![0u64; capacity as usize];
        let mut popped = 0;
        while popped < out.len() {
            let n = q.pop_batch(&mut out[popped..]);
            assert!(n > 0);
            popped += n;
        }
        assert_eq!(out, tasks);
    }

    #[test]
    fn corrupted_cells_and_cursors_end_every_operation_and_init_repairs_them() {
        let (region, q) = queue(4);
        q.push(5).unwrap();
        assert_eq!(q.pop(), Some(5));
        // A written cell whose sequence number claims a later lap: pop and push give up instead
        // of spinning.
        // SAFETY: the second cell's sequence number lies after the header and the first cell.
        let seq1 = unsafe { &*region.ptr().add(core::mem::size_of::<ReadyQueueHeader>() + 16).cast::<AtomicU64>() };
        seq1.store(0x55, Ordering::Relaxed);
        assert_eq!(q.pop(), None);
        assert_eq!(q.pop_batch(&mut [0; 2]), 0);
        assert_eq!(q.push(7), Err(7));
        assert_eq!(q.push_batch(&[7]), 0);
        // A dequeue cursor beyond the enqueue cursor.
        q.dequeue_pos().store(1 << 40, Ordering::Relaxed);
        assert_eq!(q.pop(), None);
        assert_eq!(q.drain(), 0);
        // A `written` mark left in the writing state.
        q.written_word().store(WRITING | 1, Ordering::Relaxed);
        q.enqueue_pos().store(1, Ordering::Relaxed);
        assert_eq!(q.push(8), Err(8), "a writer that never finishes ends the wait");
        // SAFETY: no other thread uses the queue.
        unsafe { q.init() };
        q.push(1).unwrap();
        assert_eq!(q.pop(), Some(1));
    }

    #[test]
    fn concurrent_producers_and_consumers_deliver_every_item_once() {
        const PER_PRODUCER: u64 = if cfg!(miri) { 200 } else { 20_000 };
        let (region, q) = queue(64);
        let region = Arc::new(region);
        let done = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let _keep = region.clone();
                std::thread::spawn(move || {
                    let _keep = _keep;
                    for i in 0..PER_PRODUCER {
                        let mut v = (p << 32) | i;
                        let mut spins = 0;
                        while let Err(back) = q.push(v) {
                            v = back;
                            spins += 1;
                            if spins % 64 == 0 {
                                std::thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let (_keep, done) = (region.clone(), done.clone());
                std::thread::spawn(move || {
                    let _keep = _keep;
                    let mut seen = Vec::new();
                    let mut batch = [0u64; 8];
                    loop {
                        let n = if c == 0 {
                            q.pop()
                                .map(|v| {
                                    batch[0] = v;
                                    1
                                })
                                .unwrap_or(0)
                        } else {
                            q.pop_batch(&mut batch)
                        };
                        if n == 0 {
                            if done.load(Ordering::Acquire) && q.is_empty() {
                                return seen;
                            }
                            std::thread::yield_now();
                        }
                        seen.extend_from_slice(&batch[..n]);
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, Ordering::Release);
        let mut all: Vec<u64> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        assert_eq!(all.len() as u64, 2 * PER_PRODUCER);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len() as u64, 2 * PER_PRODUCER, "no item delivered twice");
    }
}
