//! Back-pressure: waiting for the schedulers to retire work, and telling a wait that will end from
//! a deadlock.

use core::sync::atomic::Ordering;

use pto_abi::consts::RING_COUNT;
use pto_abi::error::RuntimeErrorCode;
use pto_abi::task::{make_task_id, FANOUT_SCOPE_REF};

use super::{OrchError, Orchestrator};
use crate::platform::Backoff;
use crate::sync::atomic_u32;

/// The resource a submit waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    /// A free slot in the ring's task window.
    Window,
    /// Room in the ring heap.
    Heap,
    /// Free nodes in the ring's dep-list pool.
    DepPool,
    /// Free tensor-map entries.
    TensorMap,
}

impl Resource {
    /// The code of a wait on this resource that can never end (or made no progress in time).
    fn deadlock_code(self, pinned: bool) -> RuntimeErrorCode {
        match self {
            Resource::Window if pinned => RuntimeErrorCode::ScopeDeadlock,
            Resource::Window => RuntimeErrorCode::FlowControlDeadlock,
            Resource::Heap => RuntimeErrorCode::HeapRingDeadlock,
            Resource::DepPool => RuntimeErrorCode::DepPoolOverflow,
            Resource::TensorMap => RuntimeErrorCode::TensormapOverflow,
        }
    }
}

/// The state of one blocking wait.
pub(super) struct Waiter {
    since_ns: u64,
    seen: [u64; RING_COUNT],
    backoff: Backoff,
}

impl Waiter {
    pub(super) fn new() -> Self {
        Waiter { since_ns: u64::MAX, seen: [u64::MAX; RING_COUNT], backoff: Backoff::new() }
    }
}

impl Orchestrator<'_, '_> {
    /// True when ring `ring`'s oldest live task (at watermark `alive`) still holds its scope
    /// reference: only this (blocked) orchestrator can drop it, so the ring cannot drain.
    pub(super) fn ring_pinned(&self, ring: usize, alive: u64) -> bool {
        if alive >= self.rings[ring].current {
            return false;
        }
        let slot = self.rt.view.rings[ring].slot(alive as u32);
        // SAFETY: the slot of a live task; its fanout count is read atomically.
        let count = unsafe { atomic_u32(core::ptr::addr_of_mut!((*slot).fanout_count)) }.load(Ordering::Acquire);
        count & FANOUT_SCOPE_REF != 0
    }

    /// True when the rings `what` depends on cannot drain, given the watermarks `alive`.
    fn pinned(&self, ring: usize, what: Resource, alive: &[u64; RING_COUNT]) -> bool {
        match what {
            Resource::TensorMap => {
                (0..RING_COUNT).all(|r| self.ring_pinned(r, alive[r]) || alive[r] >= self.rings[r].current)
            }
            _ => self.ring_pinned(ring, alive[ring]),
        }
    }

    /// True when ring `ring`'s oldest live task (at watermark `alive`) was submitted by the
    /// current (innermost open) scope, which therefore pins it.
    fn oldest_in_current_scope(&self, ring: usize, alive: u64) -> bool {
        if alive >= self.rings[ring].current {
            return false;
        }
        let oldest = make_task_id(ring as u32, alive as u32);
        // SAFETY: the frame at the current depth was written by `push_frame`.
        let first = unsafe { (*self.frame(self.depth)).first_task };
        // SAFETY: `first..scope_top` lies inside the scope task region (`scope_top <= capacity`).
        (first..self.scope_top).any(|i| unsafe { *self.rt.view.scope_tasks.add(i as usize) } == oldest)
    }

    /// The error of a wait for `what` in ring `ring` that can never end.
    ///
    /// A full task window is `SCOPE_DEADLOCK` only when the *current* scope pins it: the ring's
    /// oldest live task belongs to the innermost open scope, so that scope holds every task of
    /// the window it may still submit into (window − 1 of them besides the one it waits to add)
    /// and can never release them, because it cannot end while it waits. A full window pinned by
    /// an *ancestor* scope (nested scopes sharing ring 3, each smaller than the window) or not
    /// pinned at all is `FLOW_CONTROL_DEADLOCK`.
    fn deadlock(&mut self, ring: usize, what: Resource, amount: u64) -> OrchError {
        let alive: [u64; RING_COUNT] = core::array::from_fn(|r| self.rt.last_alive(r));
        let pinned = self.pinned(ring, what, &alive)
            && (what != Resource::Window || self.oldest_in_current_scope(ring, alive[ring]));
        let ring = if what == Resource::TensorMap { u32::MAX } else { ring as u32 };
        OrchError::new(what.deadlock_code(pinned), ring, amount)
    }

    /// One round of waiting for `what` in ring `ring`: Ok to re-check the resource, Err when the
    /// wait can never succeed, timed out, or the run stopped.
    pub(super) fn wait_step(
        &mut self,
        ring: usize,
        what: Resource,
        amount: u64,
        w: &mut Waiter,
    ) -> Result<(), OrchError> {
        if what == Resource::TensorMap {
            let before = self.tensor_map.used();
            self.cleanup_all();
            if self.tensor_map.used() < before {
                return Ok(());
            }
        }
        if let Some(d) = self.drain.as_deref_mut() {
            if d.drain(self.rt) {
                return Ok(());
            }
            // Nothing is left to run on this thread: the resource cannot free up.
            return Err(self.deadlock(ring, what, amount));
        }
        let sm = self.rt.view.sm;
        // SAFETY: the SM header is valid; the scheduler error word is read atomically.
        let sched = unsafe { atomic_u32(core::ptr::addr_of_mut!((*sm).sched.code)) }.load(Ordering::Acquire);
        if sched != 0 {
            let code = RuntimeErrorCode::try_from(sched).unwrap_or(RuntimeErrorCode::SchedulerTimeout);
            return Err(OrchError::new(code, u32::MAX, 0));
        }
        let now = self.rt.platform.now_ns();
        let seen: [u64; RING_COUNT] = core::array::from_fn(|r| self.rt.last_alive(r));
        if seen != w.seen {
            // Progress (or the first round): the caller re-checks the resource first.
            w.seen = seen;
            w.since_ns = now;
            w.backoff.reset();
            return Ok(());
        }
        // Nothing moved since the caller's last failed check: these watermarks are the ones the
        // check saw, so a pinned oldest task means the resource can never free up.
        if self.pinned(ring, what, &seen) {
            return Err(self.deadlock(ring, what, amount));
        }
        if now.saturating_sub(w.since_ns) > self.rt.budgets.orch_ns {
            return Err(self.deadlock(ring, what, amount));
        }
        w.backoff.snooze(self.rt.platform);
        Ok(())
    }

    /// After a wait for ring `ring`'s full task window ended (a slot is free), keeps waiting
    /// while the watermark moves, until a refill batch of slots is free (an eighth of the window,
    /// 1 to 64): a blocked orchestrator then submits in bursts instead of taking every slot the
    /// moment it frees and competing with the schedulers for the processor in between (with
    /// [`REFILL_SLEEP_DEPTH`] tasks or more in flight it idles rather than yields). Returns as
    /// soon as the watermark stands still for [`REFILL_STALL_NS`] or an error is latched, so it
    /// never waits for slots that may not come; the single-thread mode (which drained everything
    /// it could) never waits here.
    pub(super) fn wait_for_refill(&mut self, ring: usize, w: &mut Waiter) {
        if self.drain.is_some() {
            return;
        }
        let refill = (self.rings[ring].window / 8).clamp(1, 64);
        let mut alive = self.rt.last_alive(ring);
        let mut moved_at = self.rt.platform.now_ns();
        loop {
            let in_flight = self.rings[ring].current.wrapping_sub(alive);
            if self.rings[ring].window - in_flight >= refill {
                return;
            }
            if in_flight >= REFILL_SLEEP_DEPTH {
                // So much queued work cannot drain during one idle wait: give the processor away.
                self.rt.platform.idle();
            } else {
                w.backoff.snooze(self.rt.platform);
            }
            let now = self.rt.platform.now_ns();
            let a = self.rt.last_alive(ring);
            if a != alive {
                alive = a;
                moved_at = now;
            } else if now.saturating_sub(moved_at) > REFILL_STALL_NS || self.run_stopped() {
                return;
            }
        }
    }

    /// True when a scheduler or the orchestrator latched an error.
    fn run_stopped(&self) -> bool {
        let sm = self.rt.view.sm;
        // SAFETY: the SM header is valid; the error words are read atomically.
        unsafe {
            atomic_u32(core::ptr::addr_of_mut!((*sm).sched.code)).load(Ordering::Acquire) != 0
                || atomic_u32(core::ptr::addr_of_mut!((*sm).orch.code)).load(Ordering::Acquire) != 0
        }
    }
}

/// How long [`Orchestrator::wait_for_refill`] waits for the watermark to move again.
const REFILL_STALL_NS: u64 = 50_000;
/// Tasks in flight in the ring from which [`Orchestrator::wait_for_refill`] idles (sleeps on
/// the simulated device) instead of spinning and yielding: the schedulers cannot run out of work
/// while it waits.
const REFILL_SLEEP_DEPTH: u64 = 256;
