//! The orchestrator: builds the task graph from an orchestration (a Rust function) through
//! `submit` and scopes, as the single writer of its own state.
//!
//! An orchestration runs inside an implicit outermost scope (depth 0, ring 0); each user scope
//! opens one level deeper and places its tasks in ring `min(depth, 3)`. When a task window, ring
//! heap, dep pool or the tensor map is full the orchestrator waits for the schedulers; a wait that
//! can never end (the ring's oldest task is pinned by a scope only this orchestrator can close) or
//! that sees no progress within the budget latches a deadlock code and stops the run.

mod error;
mod spec;
mod submit;
mod trace_hooks;
mod wait;

#[cfg(test)]
mod tests;

pub use error::{InvalidArgs, OrchError};
pub use spec::{Arg, OrchArgs, OutputSpec, Submitted, TaskId, TaskSpec, Tensor};

use core::sync::atomic::Ordering;

use pto_abi::consts::{MAX_SCOPE_DEPTH, RING_COUNT};
use pto_abi::error::RuntimeErrorCode;
use pto_abi::runtime::{ScopeFrame, ScopeKind};
use pto_abi::task::task_id_ring;

use crate::deppool::DepPoolCursor;
use crate::ring::{HeapRing, TaskWindow};
use crate::runtime::{RingSet, Runtime, SlotLockTimeout};
use crate::sync::{atomic_u32, atomic_u64};
use crate::tensormap::TensorMap;

/// An orchestration: builds a task graph from the run's arguments.
pub type OrchestrationFn = fn(&mut Orchestrator<'_, '_>, &OrchArgs<'_>) -> Result<(), OrchError>;

/// Runs ready work on behalf of a blocked orchestrator (the deterministic single-thread mode).
pub trait Drain {
    /// Dispatches and completes ready tasks until none is left; true when at least one completed.
    fn drain(&mut self, rt: &Runtime<'_>) -> bool;
}

/// The orchestrator's error for a slot lock that stayed held: `SLOT_LOCK_TIMEOUT`, the task's ring,
/// the task as detail.
fn lock_error(e: SlotLockTimeout) -> OrchError {
    OrchError::new(RuntimeErrorCode::SlotLockTimeout, task_id_ring(e.task), e.task)
}

/// The ring that tasks of a scope at `depth` go to: one ring per depth, the deepest ring shared by
/// every deeper scope.
fn ring_at(depth: usize) -> usize {
    depth.min(RING_COUNT - 1)
}

/// The orchestrator's cursors over one ring.
#[derive(Clone, Copy, Debug)]
struct OrchRing {
    /// Next local index to allocate (monotonic across runs).
    current: u64,
    /// Slots of the ring's task window.
    window: u64,
    heap: HeapRing,
    pool: DepPoolCursor,
    /// Tasks below this index had their tensor-map chains reclaimed.
    tm_cleaned: u64,
}

/// Why orchestration stopped early.
#[derive(Clone, Copy, Debug)]
struct Stop {
    error: OrchError,
    /// True when a scheduler latched the error (the orchestrator's own word stays clear).
    from_scheduler: bool,
}

/// The orchestrator of one run.
pub struct Orchestrator<'a, 'p> {
    rt: &'a Runtime<'p>,
    rings: [OrchRing; RING_COUNT],
    tensor_map: TensorMap,
    depth: u32,
    scope_top: u32,
    scope_task_capacity: u32,
    scope_serial: u32,
    submitted: u64,
    stop: Option<Stop>,
    drain: Option<&'a mut dyn Drain>,
    /// Edges the last submit recorded in the trace (level 4).
    traced_edges: u32,
    /// Per open scope depth, what its submits saw of its ring (level 4).
    scope_stats: trace_hooks::ScopeStatsStack,
}

/// What an orchestration run left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrchSummary {
    /// Tasks submitted by this run.
    pub tasks_submitted: u64,
    /// The first error, if orchestration stopped early.
    pub error: Option<OrchError>,
}

impl<'a, 'p> Orchestrator<'a, 'p> {
    /// Starts orchestrating on a booted, reset runtime. With `drain`, blocking waits and scope ends
    /// run ready work on this thread (deterministic mode).
    pub fn begin(rt: &'a Runtime<'p>, drain: Option<&'a mut dyn Drain>) -> Self {
        let v = &rt.view;
        // SAFETY: the orchestrator is the single writer of its state for the run.
        let st = unsafe { &*v.orch_state };
        let rings = core::array::from_fn(|r| {
            let s = &st.rings[r];
            let alive = rt.last_alive(r);
            OrchRing {
                current: rt.current(r),
                window: v.rings[r].window.window,
                heap: HeapRing {
                    size: v.rings[r].heap_size,
                    head: s.heap_head,
                    floor: s.heap_floor,
                    wraps: s.heap_wraps,
                },
                pool: DepPoolCursor::resume(s.dep_pool_head, s.dep_pool_cursor, v.dep_pools.rings[r].capacity()),
                tm_cleaned: TaskWindow::widen(s.tensormap_cleaned, alive).min(alive),
            }
        });
        let o = &v.layout.offsets;
        // SAFETY: the orchestrator is the only user of the tensor map during the run.
        let tensor_map = unsafe { crate::reset::tensor_map(v) };
        crate::reset::mark_tensor_map_dirty(v);
        let mut orch = Orchestrator {
            rt,
            rings,
            tensor_map,
            depth: 0,
            scope_top: 0,
            scope_task_capacity: o.scope_task_capacity.min(u32::MAX as u64) as u32,
            scope_serial: st.scope_serial,
            submitted: 0,
            stop: None,
            drain,
            traced_edges: 0,
            scope_stats: Default::default(),
        };
        orch.push_frame(0, ScopeKind::Auto);
        rt.trace.set_epoch(rt.platform.now_ns());
        orch
    }

    /// The runtime this orchestrator builds on.
    pub fn runtime(&self) -> &Runtime<'p> {
        self.rt
    }

    /// Current scope depth (0 = the implicit outermost scope).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Tasks submitted so far.
    pub fn tasks_submitted(&self) -> u64 {
        self.submitted
    }

    /// The ring tasks submitted now go to.
    pub fn current_ring(&self) -> usize {
        ring_at(self.depth as usize)
    }

    fn frame(&self, depth: u32) -> *mut ScopeFrame {
        // SAFETY: depth < MAX_SCOPE_DEPTH, the scope stack's length.
        unsafe { self.rt.view.scope_stack.add(depth as usize) }
    }

    fn push_frame(&mut self, depth: u32, kind: ScopeKind) {
        self.scope_serial = self.scope_serial.wrapping_add(1).max(1);
        let f = ScopeFrame {
            first_task: self.scope_top,
            ring: ring_at(depth as usize) as u32,
            kind: kind as u32,
            serial: self.scope_serial,
        };
        // SAFETY: the frame lies in the scope stack region, written by this orchestrator only.
        unsafe { *self.frame(depth) = f };
        self.depth = depth;
        if self.rt.trace.on(4) {
            self.trace_scope_begin(depth);
        }
    }

    /// Stops with `e` unless already stopped; returns the error that stopped the run.
    fn latch(&mut self, e: OrchError) -> OrchError {
        if let Some(s) = self.stop {
            return s.error;
        }
        let sm = self.rt.view.sm;
        // SAFETY: the SM header is valid; error words are written through atomics.
        let (orch_code, sched_code) = unsafe {
            (
                atomic_u32(core::ptr::addr_of_mut!((*sm).orch.code)),
                atomic_u32(core::ptr::addr_of_mut!((*sm).sched.code)),
            )
        };
        let sched = sched_code.load(Ordering::Acquire);
        if sched != 0 {
            let code = RuntimeErrorCode::try_from(sched).unwrap_or(RuntimeErrorCode::SchedulerTimeout);
            let err = OrchError::new(code, u32::MAX, 0);
            self.stop = Some(Stop { error: err, from_scheduler: true });
            return err;
        }
        if orch_code.compare_exchange(0, e.code as u32, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            // SAFETY: this thread won the error word; ring and detail are its to write.
            unsafe {
                atomic_u32(core::ptr::addr_of_mut!((*sm).orch.ring)).store(e.ring, Ordering::Relaxed);
                atomic_u64(core::ptr::addr_of_mut!((*sm).orch.detail)).store(e.detail, Ordering::Relaxed);
            }
        }
        self.stop = Some(Stop { error: e, from_scheduler: false });
        e
    }

    /// Err when the run already stopped (own error, or a scheduler's).
    #[inline]
    fn check_running(&mut self) -> Result<(), OrchError> {
        if let Some(s) = self.stop {
            return Err(s.error);
        }
        Ok(())
    }

    /// Latches `EXPLICIT_ORCH_FATAL` with the orchestration's own `detail` and returns the error
    /// for the orchestration to return.
    pub fn fatal(&mut self, detail: u64) -> OrchError {
        self.latch(OrchError::new(RuntimeErrorCode::ExplicitOrchFatal, u32::MAX, detail))
    }

    /// Opens a nested scope; its tasks go to ring `min(depth, 3)`.
    pub fn scope_begin(&mut self, kind: ScopeKind) -> Result<(), OrchError> {
        self.check_running()?;
        if self.depth as usize + 1 >= MAX_SCOPE_DEPTH {
            return Err(self.latch(OrchError::invalid(InvalidArgs::ScopeTooDeep, self.depth + 1)));
        }
        self.push_frame(self.depth + 1, kind);
        Ok(())
    }

    /// Closes the innermost user scope: its tasks lose their scope reference and become
    /// consumable once completed and released.
    pub fn scope_end(&mut self) -> Result<(), OrchError> {
        if self.depth == 0 {
            return Err(self.latch(OrchError::invalid(InvalidArgs::NoOpenScope, 0)));
        }
        if let Some(s) = self.stop {
            self.pop_frame_quietly();
            return Err(s.error);
        }
        if let Err(e) = self.end_frame() {
            return Err(self.latch(e));
        }
        if let Some(d) = self.drain.as_deref_mut() {
            d.drain(self.rt);
        }
        Ok(())
    }

    /// Runs `body` inside a scope of `kind`.
    pub fn scope<R>(
        &mut self,
        kind: ScopeKind,
        body: impl FnOnce(&mut Self) -> Result<R, OrchError>,
    ) -> Result<R, OrchError> {
        self.scope_begin(kind)?;
        let depth = self.depth;
        let r = body(self);
        if self.depth != depth {
            // The body left inner scopes open: close them like their owners would have.
            while self.depth > depth {
                self.scope_end()?;
            }
        }
        match r {
            Ok(v) => {
                self.scope_end()?;
                Ok(v)
            }
            Err(e) => {
                if self.stop.is_none() {
                    self.latch(e);
                }
                self.pop_frame_quietly();
                Err(e)
            }
        }
    }

    /// Closes the innermost scope; the frame is popped even when a scope reference could not be
    /// dropped (the error then ends the run).
    fn end_frame(&mut self) -> Result<(), OrchError> {
        if self.rt.trace.on(4) {
            self.trace_scope_end();
        }
        // SAFETY: the frame at the current depth was written by `push_frame`.
        let first = unsafe { (*self.frame(self.depth)).first_task };
        let dropped = self.drop_scope_refs(first);
        self.scope_top = first;
        self.depth = self.depth.saturating_sub(1);
        dropped
    }

    fn pop_frame_quietly(&mut self) {
        if self.depth > 0 {
            if self.rt.trace.on(4) {
                self.trace_scope_end();
            }
            // SAFETY: as in `end_frame`.
            self.scope_top = unsafe { (*self.frame(self.depth)).first_task };
            self.depth -= 1;
        }
    }

    /// Ends orchestration: closes every open scope (the run's result is `result`), persists the
    /// orchestrator's cursors, and publishes `orchestrator_done`.
    pub fn finish(mut self, result: Result<(), OrchError>) -> OrchSummary {
        if let Err(e) = result {
            self.latch(e);
        }
        let mut closed = Ok(());
        if self.stop.is_none() {
            while self.depth > 0 && closed.is_ok() {
                closed = self.end_frame();
            }
            if closed.is_ok() {
                closed = self.end_frame_outermost();
            }
        }
        if let Err(e) = closed {
            self.latch(e);
        }
        if self.stop.is_some() {
            self.depth = 0;
            self.scope_top = 0;
        }
        self.persist();
        let sm = self.rt.view.sm;
        // SAFETY: the SM header is valid; these words are written by the orchestrator only.
        unsafe {
            atomic_u64(core::ptr::addr_of_mut!((*sm).orch.tasks_submitted)).store(self.submitted, Ordering::Relaxed);
            atomic_u32(core::ptr::addr_of_mut!((*sm).orch.orchestrator_done)).store(1, Ordering::Release);
        }
        OrchSummary { tasks_submitted: self.submitted, error: self.stop.filter(|s| !s.from_scheduler).map(|s| s.error) }
    }

    fn end_frame_outermost(&mut self) -> Result<(), OrchError> {
        debug_assert_eq!(self.depth, 0);
        if self.rt.trace.on(4) {
            self.trace_scope_end();
        }
        let dropped = self.drop_scope_refs(0);
        self.scope_top = 0;
        dropped
    }

    /// Drops the scope reference of the scope tasks `first..scope_top`, then advances the rings
    /// where tasks became consumed. A task whose slot lock stays held for the whole budget keeps
    /// its reference and stops the loop with `SLOT_LOCK_TIMEOUT` (the later tasks keep theirs).
    fn drop_scope_refs(&mut self, first: u32) -> Result<(), OrchError> {
        let mut rings = RingSet::default();
        let mut result = Ok(());
        for i in first..self.scope_top {
            // SAFETY: `i < scope_top <= scope_task_capacity`, inside the scope task region.
            let task = unsafe { *self.rt.view.scope_tasks.add(i as usize) };
            match self.rt.drop_scope_ref(task) {
                Ok(true) => rings.add_task(task),
                Ok(false) => {}
                Err(e) => {
                    result = Err(lock_error(e));
                    break;
                }
            }
        }
        self.rt.advance(rings);
        result
    }

    fn persist(&mut self) {
        // SAFETY: single writer of the orchestrator state.
        let st = unsafe { &mut *self.rt.view.orch_state };
        for (r, ring) in self.rings.iter().enumerate() {
            let s = &mut st.rings[r];
            s.heap_head = ring.heap.head;
            s.heap_floor = ring.heap.floor;
            s.heap_wraps = ring.heap.wraps;
            s.dep_pool_head = ring.pool.head;
            s.dep_pool_cursor = ring.pool.next_index;
            s.tensormap_cleaned = ring.tm_cleaned as u32;
        }
        self.tensor_map.store_state(st);
        st.scope_serial = self.scope_serial;
        st.scope_depth = 0;
        st.scope_tasks_top = 0;
    }

    /// Reclaims the tensor-map chains of ring `ring`'s tasks behind its watermark. Runs before a
    /// slot is reused, so a chain is always read from its own task's slot.
    #[inline(always)]
    fn cleanup_ring(&mut self, ring: usize) {
        if self.rings[ring].tm_cleaned < self.rt.last_alive(ring) {
            self.release_dead_chains(ring);
        }
    }

    /// The loop of [`Orchestrator::cleanup_ring`] once its watermark has moved (in bursts: a
    /// whole drained scope at a time).
    #[inline(never)]
    fn release_dead_chains(&mut self, ring: usize) {
        let alive = self.rt.last_alive(ring);
        let rv = &self.rt.view.rings[ring];
        let o = &mut self.rings[ring];
        while o.tm_cleaned < alive {
            // SAFETY: consumed slots stay untouched until this orchestrator reuses them.
            let chain = unsafe { (*rv.slot(o.tm_cleaned as u32)).tensormap_chain };
            if chain != 0 {
                self.tensor_map.release_chain(chain);
            }
            o.tm_cleaned += 1;
        }
    }

    fn cleanup_all(&mut self) {
        for r in 0..RING_COUNT {
            self.cleanup_ring(r);
        }
    }

    /// True when `task` (submitted earlier) names a task of this run's submit counters.
    fn was_submitted(&self, task: u64) -> bool {
        let r = task_id_ring(task) as usize;
        if r >= RING_COUNT {
            return false;
        }
        let cur = self.rings[r].current;
        let w = TaskWindow::widen(pto_abi::task::task_id_local(task), cur);
        w < cur
    }
}

/// Runs one orchestration from begin to finish.
pub fn run_orchestration<'a>(
    rt: &'a Runtime<'_>,
    f: OrchestrationFn,
    args: &[pto_abi::launch::OrchArg],
    drain: Option<&'a mut dyn Drain>,
) -> OrchSummary {
    let mut orch = Orchestrator::begin(rt, drain);
    let r = f(&mut orch, &OrchArgs::new(args));
    orch.finish(r)
}
