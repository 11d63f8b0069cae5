//! The runtime context shared by the orchestrator and the schedulers of one run, and the task
//! lifecycle operations both sides perform: routing a ready task, completing a task, releasing a
//! producer (through a per-thread [`ReleaseBatch`]), ending a scope's reference, and advancing a
//! ring's watermark (strictly in task order over consumed slots; the heap tail, dep-pool and
//! tensor-map entries are reclaimed behind it).

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use pto_abi::consts::{MAX_AICPU_THREADS, RING_COUNT};
use pto_abi::error::{RuntimeErrorCode, StallClass};
use pto_abi::task::{task_id_local, task_id_ring, TaskState, FANOUT_SCOPE_REF, NO_TASK, SLOT_FLAG_READY_CLAIMED};
use pto_abi::DevAddr;

use crate::deppool::{DepPoolCursor, NodeRef};
use crate::platform::{Backoff, Platform};
use crate::queue::Shape;
use crate::slot::SlotRef;
use crate::sync::{atomic_u32, atomic_u64, LockTimeout, WordLock};
use crate::view::RuntimeView;

/// A slot's fanout lock stayed held for the whole lock budget ([`Budgets::sched_ns`]): its holder
/// stopped while holding it, or device memory overwrote it. The operation that needed the lock
/// changed nothing in that slot (a lock is never taken half), and the run fails with
/// [`RuntimeErrorCode::SlotLockTimeout`] naming `task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLockTimeout {
    /// The task whose slot lock could not be taken.
    pub task: u64,
}

/// Kernel addresses by func id (the launch descriptor's table).
#[derive(Clone, Copy, Debug)]
pub struct FuncTable {
    entries: *const DevAddr,
    count: u32,
}

// SAFETY: the table is read-only during a run.
unsafe impl Send for FuncTable {}
// SAFETY: as above.
unsafe impl Sync for FuncTable {}

impl FuncTable {
    /// No kernels: every kernel id is accepted (virtual cores that never call code).
    pub const EMPTY: FuncTable = FuncTable { entries: core::ptr::null(), count: 0 };

    /// A table of `count` entries at `entries`.
    ///
    /// # Safety
    /// `entries` is valid for `count` reads for as long as the table is used.
    pub unsafe fn from_raw(entries: *const DevAddr, count: u32) -> Self {
        FuncTable { entries, count }
    }

    /// True when the table has entries (kernel ids are checked against it).
    pub fn is_checked(&self) -> bool {
        !self.entries.is_null()
    }

    /// The kernel address of `id`, if the table has a non-null entry for it.
    pub fn get(&self, id: i32) -> Option<DevAddr> {
        if id < 0 || id as u32 >= self.count || self.entries.is_null() {
            return None;
        }
        // SAFETY: `id < count`.
        let a = unsafe { *self.entries.add(id as usize) };
        (!a.is_null()).then_some(a)
    }
}

/// No-progress budgets of one run.
///
/// Every wait in device code ends within a budget, with an error code:
///
/// | wait | budget | ends with |
/// |---|---|---|
/// | orchestrator: task window, ring heap, dep pool, tensor-map room ([`orch`](crate::orch)) | `orch_ns` without a watermark moving (at once when the oldest task is pinned) | `FLOW_CONTROL_DEADLOCK` / `SCOPE_DEADLOCK`, `HEAP_RING_DEADLOCK`, `DEP_POOL_OVERFLOW`, `TENSORMAP_OVERFLOW` |
/// | a ready-queue push refused ([`Runtime::push_ready`]) | `sched_ns` | `SCHEDULER_TIMEOUT`, ready-but-idle |
/// | a slot's fanout lock ([`Runtime::lock_slot`]: completion, release, scope end, wiring) | `sched_ns` | `SLOT_LOCK_TIMEOUT` naming the task |
/// | a scheduler with outstanding work and no progress | `sched_ns` (twice that for a block on another scheduler's core) | `SCHEDULER_TIMEOUT` with its stall class |
/// | a scheduler waiting for its cores to come online | `sched_ns` | `SCHEDULER_TIMEOUT`, ready-but-idle |
/// | a scheduler shutting its cores down | `sched_ns` | the cores not exited, in its thread state |
/// | a scheduler waiting for boot | `max(sched_ns, 5 s)` | the thread exits without running |
/// | the orchestrator thread waiting for the schedulers to exit | `3 sched_ns + 1 s` | no reclaim after the run |
///
/// A ring's watermark advance lock is never waited for: a thread finding it held leaves a note for
/// the holder and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    /// How long the orchestrator may stay blocked without the runtime making progress.
    pub orch_ns: u64,
    /// How long a scheduler may see outstanding work without progress; also how long any thread
    /// waits for a slot's fanout lock (held for a few stores by a live holder).
    pub sched_ns: u64,
}

impl Budgets {
    /// The reference budgets: 500 ms each.
    pub const DEFAULT: Budgets = Budgets { orch_ns: 500_000_000, sched_ns: 500_000_000 };
}

/// Everything one run's device threads share.
pub struct Runtime<'p> {
    /// The booted runtime's structures.
    pub view: RuntimeView,
    /// Clock and yield.
    pub platform: &'p dyn Platform,
    /// Kernel addresses by func id.
    pub funcs: FuncTable,
    /// No-progress budgets.
    pub budgets: Budgets,
    /// The run's trace collector ([`Tracer::OFF`](crate::trace::Tracer::OFF) unless the launch is traced).
    pub trace: crate::trace::Tracer,
    /// True when exactly one thread uses the runtime (the deterministic mode): slot locks and
    /// read-modify-writes become plain loads and stores with the same memory effects.
    exclusive: bool,
}

/// A set of rings whose watermark may advance (bit `r` = ring `r`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingSet(pub u32);

impl RingSet {
    /// Adds the ring of `task`.
    #[inline(always)]
    pub fn add_task(&mut self, task: u64) {
        self.0 |= 1 << (task_id_ring(task) & (RING_COUNT as u32 - 1));
    }

    /// Adds every ring of `other`.
    #[inline(always)]
    pub fn merge(&mut self, other: RingSet) {
        self.0 |= other.0;
    }
}

/// Releases one scheduler thread collects before applying them ([`ReleaseBatch`] capacity).
pub const RELEASE_BATCH: usize = 64;

/// Producers whose release a [`ReleaseBatch`] holds: `count` releases of `producer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingRelease {
    producer: u64,
    count: u32,
}

/// Producer releases one thread has recorded and not yet applied (batched deferred release).
///
/// Completing a task records the release of each of its producers here instead of releasing them
/// at once: the completion path only notifies consumers (what makes new work ready), and the
/// releases (a lock per producer, the CONSUMED check, then the watermark advance) run later in
/// one pass, with repeated releases of one producer (consumers of a fan-out completing together)
/// merged into one locked update. The owning thread applies the batch with
/// [`Runtime::flush_releases`] when it is full, when the thread finds nothing else to do, and
/// before it decides that the run stalled or ended, so a thread never stops holding releases.
///
/// Holding a release only delays its producer's CONSUMED state: the producer is retained by the
/// edge of the consumer that recorded it, so its slot cannot be reused meanwhile, and each edge is
/// recorded exactly once (when its consumer completes) and applied exactly once (by one flush).
#[derive(Debug)]
pub struct ReleaseBatch {
    pending: heapless::Vec<PendingRelease, RELEASE_BATCH>,
    /// Entries in use before the batch counts as full (`1..=RELEASE_BATCH`).
    limit: usize,
    /// Releases recorded and not applied yet (the sum of the pending counts).
    held: u64,
    /// Flushes that applied at least one release.
    flushes: u64,
    /// Releases applied so far.
    applied: u64,
}

impl Default for ReleaseBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ReleaseBatch {
    /// An empty batch of [`RELEASE_BATCH`] entries.
    pub const fn new() -> Self {
        Self::with_limit(RELEASE_BATCH)
    }

    /// An empty batch that counts as full at `limit` distinct entries (clamped to
    /// `1..=RELEASE_BATCH`; small limits make tests flush often).
    pub const fn with_limit(limit: usize) -> Self {
        let limit = if limit == 0 {
            1
        } else if limit > RELEASE_BATCH {
            RELEASE_BATCH
        } else {
            limit
        };
        ReleaseBatch { pending: heapless::Vec::new(), limit, held: 0, flushes: 0, applied: 0 }
    }

    /// True when no release is held.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Distinct producers the batch holds before it counts as full.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Releases recorded and not yet applied.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Distinct producers among the held releases (entries in use).
    pub fn producers(&self) -> usize {
        self.pending.len()
    }

    /// Flushes that applied at least one release.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Releases applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Drops every held release without applying it (a thread stopping because a slot lock stayed
    /// held: the run is over, and applying them would wait on locks again); returns how many.
    pub fn discard(&mut self) -> u64 {
        let dropped = self.held;
        self.pending.clear();
        self.held = 0;
        dropped
    }

    /// Records one release of `producer`, merged into the newest entry when that is the same
    /// producer (consumers of one producer tend to complete one after another); false when the
    /// batch is full (nothing recorded).
    #[inline(always)]
    fn record(&mut self, producer: u64) -> bool {
        if let Some(last) = self.pending.last_mut() {
            if last.producer == producer {
                last.count += 1;
                self.held += 1;
                return true;
            }
        }
        if self.pending.len() >= self.limit || self.pending.push(PendingRelease { producer, count: 1 }).is_err() {
            return false;
        }
        self.held += 1;
        true
    }
}

impl<'p> Runtime<'p> {
    /// A context over a booted runtime.
    pub fn new(view: RuntimeView, platform: &'p dyn Platform, funcs: FuncTable, budgets: Budgets) -> Self {
        Runtime { view, platform, funcs, budgets, trace: crate::trace::Tracer::OFF, exclusive: false }
    }

    /// Declares that only the calling thread uses the runtime from now on (or lifts that).
    ///
    /// # Safety
    /// While set, no other thread may touch the runtime's arena, SM or heap.
    pub unsafe fn set_exclusive(&mut self, exclusive: bool) {
        self.exclusive = exclusive;
    }

    /// True in the single-thread mode.
    #[inline(always)]
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// The slot state of a task.
    #[inline(always)]
    pub fn slot(&self, task: u64) -> SlotRef {
        // SAFETY: the view's slot arrays are valid for the runtime's lifetime.
        unsafe { SlotRef::new(self.view.slot(task)) }
    }

    /// Takes the fanout lock of `task`'s slot `slot` (nothing to take in the single-thread mode),
    /// waiting at most the scheduler budget; [`SlotLockTimeout`] when it stayed held that long
    /// (nothing taken: the caller writes nothing in the slot and must not unlock it).
    #[inline(always)]
    pub fn lock_slot(&self, task: u64, slot: &SlotRef) -> Result<(), SlotLockTimeout> {
        if !self.exclusive {
            slot.lock().lock(self.platform, self.budgets.sched_ns).map_err(|LockTimeout| SlotLockTimeout { task })?;
        }
        Ok(())
    }

    /// Releases a slot's fanout lock.
    #[inline(always)]
    pub fn unlock_slot(&self, slot: &SlotRef) {
        if !self.exclusive {
            slot.lock().unlock();
        }
    }

    /// `a += v`, returning the old value (atomically unless single-threaded).
    #[inline(always)]
    pub fn add_u32(&self, a: &AtomicU32, v: u32) -> u32 {
        if self.exclusive {
            let old = a.load(Ordering::Relaxed);
            a.store(old.wrapping_add(v), Ordering::Relaxed);
            old
        } else {
            a.fetch_add(v, Ordering::AcqRel)
        }
    }

    /// Pushes a ready task onto the queue of its shape, exactly once per readiness: only the
    /// thread that brought the task's fanin refcount to its count routes it.
    #[inline]
    pub fn route(&self, task: u64) {
        let slot = self.slot(task);
        let flags = slot.flags().load(Ordering::Relaxed);
        debug_assert!(flags & SLOT_FLAG_READY_CLAIMED == 0, "task {task:#x} routed twice");
        slot.flags().store(flags | SLOT_FLAG_READY_CLAIMED, Ordering::Relaxed);
        let shape = Shape::of_lane_mask(slot.lane_mask().load(Ordering::Relaxed));
        self.push_ready(shape, task);
    }

    /// Pushes onto a ready queue. The queues hold every live task, so a consistent queue refuses
    /// a push only for the moment another thread is between claiming a cell and releasing it;
    /// that refusal is waited out for at most the scheduler budget (not at all in the
    /// single-thread mode, where nobody else can free a cell). A queue that stays full is
    /// corrupted: the run fails with `SCHEDULER_TIMEOUT`, stall class ready-but-idle, naming the
    /// task, and the task is not queued.
    #[inline]
    pub fn push_ready(&self, shape: Shape, task: u64) {
        let q = &self.view.queues[shape.index()];
        if self.exclusive {
            if q.push_exclusive(task).is_ok() || q.push(task).is_ok() {
                return;
            }
        } else {
            if q.push(task).is_ok() {
                return;
            }
            let mut backoff = Backoff::new();
            let since = self.platform.now_ns();
            loop {
                backoff.snooze(self.platform);
                if q.push(task).is_ok() {
                    return;
                }
                if self.platform.now_ns().saturating_sub(since) > self.budgets.sched_ns {
                    break;
                }
            }
        }
        latch_sched_error(self, u32::MAX, StallClass::ReadyButIdle, task);
    }

    /// Pops the oldest ready task of `shape`.
    #[inline]
    pub fn pop_ready(&self, shape: Shape) -> Option<u64> {
        let q = &self.view.queues[shape.index()];
        if self.exclusive {
            q.pop_exclusive()
        } else {
            q.pop()
        }
    }

    /// Adds `n` completed-producer observations to `task`'s fanin refcount and routes it when the
    /// count is reached.
    #[inline(always)]
    pub fn add_fanin(&self, task: u64, n: u32) {
        let slot = self.slot(task);
        let before = self.add_u32(slot.fanin_refcount(), n);
        if before + n == slot.fanin_count().load(Ordering::Relaxed) {
            self.route(task);
        }
    }

    /// True when a slot may become CONSUMED: completed, every retaining consumer released, and the
    /// scope reference dropped (refcounts never reach bit 31, so equality implies it is clear).
    /// Call with the slot's lock held.
    #[inline(always)]
    fn consumable(slot: &SlotRef) -> bool {
        slot.task_state().load(Ordering::Relaxed) == TaskState::Completed as u32
            && slot.fanout_count().load(Ordering::Relaxed) == slot.fanout_refcount().load(Ordering::Relaxed)
    }

    /// Marks a consumable slot CONSUMED (lock held); true when it did.
    #[inline(always)]
    fn consume_if_done(slot: &SlotRef) -> bool {
        if Self::consumable(slot) {
            slot.task_state().store(TaskState::Consumed as u32, Ordering::Release);
            true
        } else {
            false
        }
    }

    /// Completes `task` (every FIN received, or a dependency-only task made ready): records the
    /// release of each of its producers in `batch` (applied later by
    /// [`Runtime::flush_releases`], or at once for the part that no longer fits), marks it
    /// COMPLETED, and notifies every consumer waiting for it. Returns the rings in which a task
    /// became CONSUMED (advance them with [`Runtime::advance`]).
    ///
    /// # Errors
    /// [`SlotLockTimeout`] when a slot lock (this task's, or a producer's while applying a full
    /// batch) stayed held for the whole budget: the task is not marked COMPLETED and no consumer
    /// is notified; the run is over (the caller latches the code and stops, discarding `batch`).
    #[inline]
    pub fn complete(&self, task: u64, batch: &mut ReleaseBatch) -> Result<RingSet, SlotLockTimeout> {
        // Read the producer list first: once COMPLETED the slot may be consumed and reused at once.
        // The producers themselves stay retained (by this task's edges) until the batch is applied.
        let mut rings = self.defer_producers(task, batch)?;
        let slot = self.slot(task);
        self.lock_slot(task, &slot)?;
        slot.task_state().store(TaskState::Completed as u32, Ordering::Release);
        let head = NodeRef(slot.fanout_head().load(Ordering::Relaxed));
        let consumed = Self::consume_if_done(&slot);
        self.unlock_slot(&slot);
        // Every node of the list belongs to a consumer still waiting for this task, so none is
        // reclaimed before it is read; each node is read before its consumer is notified.
        let mut node = head;
        let mut left = self.view.dep_pools.max_list_len();
        while !node.is_null() && left > 0 {
            let (consumer, next) = self.view.dep_pools.read(node);
            if consumer != NO_TASK {
                self.add_fanin(consumer, 1);
            }
            node = next;
            left -= 1;
        }
        if consumed {
            rings.add_task(task);
        }
        Ok(rings)
    }

    /// Records a release of every producer of `task` in `batch`; returns the rings of the tasks a
    /// flush of a full batch consumed.
    #[inline(always)]
    fn defer_producers(&self, task: u64, batch: &mut ReleaseBatch) -> Result<RingSet, SlotLockTimeout> {
        let mut rings = RingSet::default();
        let payload = self.view.payload(task);
        // SAFETY: the payload belongs to a live task being completed by this thread.
        let (count, spill_head) = unsafe { ((*payload).fanin_count, (*payload).fanin_spill_head) };
        let inline = (count as usize).min(pto_abi::consts::INLINE_FANIN);
        for i in 0..inline {
            // SAFETY: `i < INLINE_FANIN`.
            let p = unsafe { (*payload).fanin[i] };
            if p != NO_TASK {
                rings.merge(self.defer_release(p, batch)?);
            }
        }
        let mut node = NodeRef(spill_head);
        let mut left = self.view.dep_pools.max_list_len();
        while !node.is_null() && left > 0 {
            let (p, next) = self.view.dep_pools.read(node);
            if p != NO_TASK {
                rings.merge(self.defer_release(p, batch)?);
            }
            node = next;
            left -= 1;
        }
        Ok(rings)
    }

    /// Records one release of `producer` in `batch`, applying the batch first when it is full;
    /// returns the rings of the tasks that flush consumed.
    ///
    /// # Errors
    /// [`SlotLockTimeout`] from applying the full batch (see [`Runtime::flush_releases`]); this
    /// release is then not recorded.
    #[inline(always)]
    pub fn defer_release(&self, producer: u64, batch: &mut ReleaseBatch) -> Result<RingSet, SlotLockTimeout> {
        if batch.record(producer) {
            return Ok(RingSet::default());
        }
        let mut rings = self.flush_releases(batch)?;
        let recorded = batch.record(producer);
        debug_assert!(recorded, "an empty batch takes a release");
        if !recorded && self.release(producer, 1)? {
            rings.add_task(producer);
        }
        Ok(rings)
    }

    /// Applies every release held in `batch` (one locked update per distinct producer) and empties
    /// it; returns the rings in which a producer became CONSUMED.
    ///
    /// # Errors
    /// [`SlotLockTimeout`] when a producer's lock stayed held for the whole budget: the releases
    /// before it are applied, that producer and the ones after it are left as they were, and the
    /// batch is emptied all the same (the run is over; nothing is held back for later).
    pub fn flush_releases(&self, batch: &mut ReleaseBatch) -> Result<RingSet, SlotLockTimeout> {
        let mut rings = RingSet::default();
        if batch.pending.is_empty() {
            return Ok(rings);
        }
        let mut result = Ok(());
        let mut applied = 0;
        for r in batch.pending.iter() {
            match self.release(r.producer, r.count) {
                Ok(consumed) => {
                    if consumed {
                        rings.add_task(r.producer);
                    }
                    applied += u64::from(r.count);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        batch.flushes += 1;
        batch.applied += applied;
        batch.held = 0;
        batch.pending.clear();
        result.map(|()| rings)
    }

    /// `count` consumers of `producer` are done with it; true when the producer became CONSUMED.
    ///
    /// # Errors
    /// [`SlotLockTimeout`] when the producer's lock stayed held for the whole budget (nothing
    /// released).
    #[inline]
    pub fn release(&self, producer: u64, count: u32) -> Result<bool, SlotLockTimeout> {
        let slot = self.slot(producer);
        self.lock_slot(producer, &slot)?;
        let r = slot.fanout_refcount().load(Ordering::Relaxed);
        slot.fanout_refcount().store(r + count, Ordering::Relaxed);
        let consumed = Self::consume_if_done(&slot);
        self.unlock_slot(&slot);
        Ok(consumed)
    }

    /// The scope holding `task` ended; true when the task became CONSUMED.
    ///
    /// # Errors
    /// [`SlotLockTimeout`] when the task's lock stayed held for the whole budget (the scope
    /// reference stays).
    #[inline]
    pub fn drop_scope_ref(&self, task: u64) -> Result<bool, SlotLockTimeout> {
        let slot = self.slot(task);
        self.lock_slot(task, &slot)?;
        let c = slot.fanout_count().load(Ordering::Relaxed);
        slot.fanout_count().store(c & !FANOUT_SCOPE_REF, Ordering::Relaxed);
        let consumed = Self::consume_if_done(&slot);
        self.unlock_slot(&slot);
        Ok(consumed)
    }

    /// Advances the watermark of every ring in `rings`.
    #[inline]
    pub fn advance(&self, rings: RingSet) {
        let mut bits = rings.0;
        while bits != 0 {
            let r = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            self.try_advance(r);
        }
    }

    /// Advances ring `ring`'s watermark over consecutive CONSUMED tasks, publishing the freed heap
    /// and dep-pool tails. A thread that finds the advance lock held leaves a note for the holder
    /// instead of waiting.
    pub fn try_advance(&self, ring: usize) {
        let rv = &self.view.rings[ring];
        // SAFETY: the ring's scheduler state and flow control are valid for the run.
        let (lock_word, pending, dep_tail, flow) = unsafe {
            (
                atomic_u32(core::ptr::addr_of_mut!((*rv.sched).advance_lock)),
                atomic_u32(core::ptr::addr_of_mut!((*rv.sched).advance_pending)),
                atomic_u64(core::ptr::addr_of_mut!((*rv.sched).dep_pool_tail)),
                rv.flow,
            )
        };
        // SAFETY: as above.
        let (alive_word, current_word, heap_tail) = unsafe {
            (
                atomic_u64(core::ptr::addr_of_mut!((*flow).last_task_alive)),
                atomic_u64(core::ptr::addr_of_mut!((*flow).current_task_index)),
                atomic_u64(core::ptr::addr_of_mut!((*flow).heap_tail)),
            )
        };
        let oldest_consumed = || {
            let alive = alive_word.load(Ordering::Acquire);
            alive < current_word.load(Ordering::Acquire)
                // SAFETY: the slot array is valid; the slot of `alive` holds task `alive`.
                && unsafe { SlotRef::new(rv.slot(alive as u32)) }.task_state().load(Ordering::Acquire)
                    == TaskState::Consumed as u32
        };
        // Whoever consumes the oldest task advances; nothing to do while it is live.
        if !oldest_consumed() {
            return;
        }
        let lock = WordLock::new(lock_word);
        loop {
            if self.exclusive {
                // Single thread: no other advancer can exist.
            } else if !lock.try_lock() {
                pending.store(1, Ordering::SeqCst);
                if lock_word.load(Ordering::SeqCst) != 0 {
                    return; // the holder will see the note
                }
                continue;
            }
            if !self.exclusive {
                pending.store(0, Ordering::SeqCst);
            }
            let start = alive_word.load(Ordering::Relaxed);
            let current = current_word.load(Ordering::Acquire);
            let mut alive = start;
            while alive < current {
                // SAFETY: the slot array is valid; the slot of `alive` holds task `alive`.
                let slot = unsafe { SlotRef::new(rv.slot(alive as u32)) };
                if slot.task_state().load(Ordering::Acquire) != TaskState::Consumed as u32 {
                    break;
                }
                alive += 1;
            }
            if alive != start {
                let last = (alive - 1) as u32;
                // SAFETY: the last consumed task's descriptor and slot stay intact until the
                // watermark published below lets the orchestrator reuse them.
                let (end_pos, mark) = unsafe {
                    (
                        (*rv.descriptor(last)).heap_end_pos,
                        SlotRef::new(rv.slot(last)).dep_pool_mark().load(Ordering::Relaxed),
                    )
                };
                heap_tail.store(end_pos, Ordering::Relaxed);
                let tail = dep_tail.load(Ordering::Relaxed);
                dep_tail.store(DepPoolCursor::widen_mark(mark, tail).max(tail), Ordering::Relaxed);
                alive_word.store(alive, Ordering::Release);
            }
            if self.exclusive {
                return;
            }
            lock_word.store(0, Ordering::SeqCst);
            if pending.load(Ordering::SeqCst) == 0 {
                return;
            }
        }
    }

    /// Advances every ring's watermark (end of run).
    pub fn advance_all(&self) {
        for r in 0..RING_COUNT {
            self.try_advance(r);
        }
    }

    /// The ring's published watermark (oldest live local index).
    #[inline(always)]
    pub fn last_alive(&self, ring: usize) -> u64 {
        // SAFETY: flow control is valid for the run.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*self.view.rings[ring].flow).last_task_alive)) }
            .load(Ordering::Acquire)
    }

    /// The ring's published submit counter.
    #[inline(always)]
    pub fn current(&self, ring: usize) -> u64 {
        // SAFETY: flow control is valid for the run.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*self.view.rings[ring].flow).current_task_index)) }
            .load(Ordering::Acquire)
    }

    /// True when `task` is live (submitted, not consumed) by the published counters.
    #[inline(always)]
    pub fn is_live(&self, task: u64) -> bool {
        let r = task_id_ring(task) as usize;
        if r >= RING_COUNT {
            return false;
        }
        crate::ring::TaskWindow::is_live(task_id_local(task), self.last_alive(r), self.current(r))
    }
}

/// Tasks completed by every scheduler thread so far.
pub fn total_completed(rt: &Runtime<'_>) -> u64 {
    (0..MAX_AICPU_THREADS)
        .map(|t| {
            // SAFETY: thread states are valid; each counter is read atomically.
            unsafe { atomic_u64(addr_of_mut!((*rt.view.sched_threads.add(t)).tasks_completed)) }.load(Ordering::Acquire)
        })
        .sum()
}

/// Latches a `SCHEDULER_TIMEOUT` scheduler error (first writer wins); true when this call won.
pub fn latch_sched_error(rt: &Runtime<'_>, thread: u32, class: StallClass, task: u64) -> bool {
    latch_sched_code(rt, RuntimeErrorCode::SchedulerTimeout, thread, class, task)
}

/// Latches the `SLOT_LOCK_TIMEOUT` of scheduler `thread` in the scheduler error words (first
/// writer wins; the stall task names the task whose lock stayed held); true when this call won.
pub fn latch_lock_timeout(rt: &Runtime<'_>, thread: u32, e: SlotLockTimeout) -> bool {
    latch_sched_code(rt, RuntimeErrorCode::SlotLockTimeout, thread, StallClass::None, e.task)
}

/// Latches scheduler error `code` (first writer wins) with the thread, stall class and task it
/// concerns; true when this call won.
fn latch_sched_code(rt: &Runtime<'_>, code: RuntimeErrorCode, thread: u32, class: StallClass, task: u64) -> bool {
    let sm = rt.view.sm;
    // SAFETY: the SM header is valid; the code word is the lock of the other fields.
    unsafe {
        let word = atomic_u32(addr_of_mut!((*sm).sched.code));
        if word.compare_exchange(0, code as u32, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        atomic_u32(addr_of_mut!((*sm).sched.thread)).store(thread, Ordering::Relaxed);
        atomic_u32(addr_of_mut!((*sm).sched.stall_class)).store(class as u32, Ordering::Relaxed);
        atomic_u64(addr_of_mut!((*sm).sched.stall_task)).store(task, Ordering::Relaxed);
        atomic_u64(addr_of_mut!((*sm).sched.tasks_completed)).store(total_completed(rt), Ordering::Relaxed);
        let ready: u64 = rt.view.queues.iter().map(|q| q.len()).sum();
        atomic_u64(addr_of_mut!((*sm).sched.tasks_ready)).store(ready, Ordering::Release);
    }
    true
}

#[cfg(test)]
mod tests;
