//! The deterministic single-thread mode: the orchestrator's thread also schedules, and virtual
//! cores finish a task the moment it is dispatched. Runs are reproducible, and the cost measured
//! is pure runtime overhead.

use core::sync::atomic::Ordering;

use pto_abi::consts::{LANE_COUNT, MAX_KERNEL_ARGS};
use pto_abi::error::{RuntimeErrorCode, StallClass};
use pto_abi::launch::OrchArg;
use pto_abi::task::NO_TASK;

use crate::aicore::KernelResolver;
use crate::kernel::KernelInvocation;
use crate::orch::{run_orchestration, Drain, OrchError, OrchestrationFn};
use crate::queue::Shape;
use crate::runtime::{latch_lock_timeout, ReleaseBatch, RingSet, Runtime, SlotLockTimeout};
use crate::sync::{atomic_u32, atomic_u64};

/// What a virtual core does with a dispatched task.
#[derive(Clone, Copy)]
pub enum VirtualCores<'k> {
    /// Completes it at once without calling any code (scheduling-cost benchmarks).
    Instant,
    /// Runs the task's kernels (every block, every active lane, kernel addresses from the
    /// launch's func table resolved like the AICore cores do), then completes it.
    RunKernels(&'k dyn KernelResolver),
}

impl core::fmt::Debug for VirtualCores<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            VirtualCores::Instant => "Instant",
            VirtualCores::RunKernels(_) => "RunKernels",
        })
    }
}

/// The scheduler of the deterministic mode.
#[derive(Debug)]
pub struct DeterministicScheduler<'k> {
    cores: VirtualCores<'k>,
    /// When set, each round runs the ready tasks in an order drawn from this xorshift state
    /// (still reproducible; any order of ready tasks is a valid schedule).
    shuffle: Option<u64>,
    /// Tasks dispatched to virtual cores (dependency-only tasks included).
    pub dispatched: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Blocks whose kernel could not be resolved or failed (each still counts as done).
    pub kernel_faults: u64,
    /// The task of the first faulted block.
    pub first_fault_task: u64,
    /// Producer releases of completed tasks, applied at the end of every pass over the ready
    /// queues (and whenever the batch fills up).
    releases: ReleaseBatch,
    /// Keeps the runtime in its shared (atomic) mode, as the threaded mode runs it: locks, atomic
    /// refcounts and the MPMC queue paths, although one thread does all the work.
    shared: bool,
    /// Set once a slot lock stayed held (shared mode only): the run is over, nothing more runs.
    stopped: bool,
    /// End of the last scheduler-phase record, or the start of the run (level 3).
    phase_mark: u64,
    /// Nanoseconds spent completing tasks in the current pass (level 3).
    phase_complete_ns: u64,
}

impl<'k> DeterministicScheduler<'k> {
    /// A scheduler whose virtual cores behave as `cores` says.
    pub fn new(cores: VirtualCores<'k>) -> Self {
        DeterministicScheduler {
            cores,
            shuffle: None,
            dispatched: 0,
            completed: 0,
            kernel_faults: 0,
            first_fault_task: pto_abi::task::NO_TASK,
            releases: ReleaseBatch::new(),
            shared: false,
            stopped: false,
            phase_mark: 0,
            phase_complete_ns: 0,
        }
    }

    /// Runs in the runtime's shared (atomic) mode instead of the exclusive one: the same
    /// schedule, with every lock, atomic read-modify-write and MPMC queue operation the threaded
    /// mode pays (for like-for-like cost measurements).
    pub fn with_shared_mode(mut self) -> Self {
        self.shared = true;
        self
    }

    /// Applies releases whenever `limit` distinct producers are held (instead of
    /// [`RELEASE_BATCH`](crate::runtime::RELEASE_BATCH)): small limits exercise the full-batch
    /// path on every few completions.
    pub fn with_release_limit(mut self, limit: usize) -> Self {
        self.releases = ReleaseBatch::with_limit(limit);
        self
    }

    /// Runs each round's ready tasks in a seeded pseudo-random order instead of queue order.
    pub fn with_shuffle(mut self, seed: u64) -> Self {
        self.shuffle = Some(seed | 1);
        self
    }

    fn next_random(&mut self) -> u64 {
        let x = self.shuffle.as_mut().expect("shuffle enabled");
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Ends the run on a slot lock that stayed held: latches `SLOT_LOCK_TIMEOUT` (thread 0) and
    /// drops the held releases (applying them would wait on locks again).
    fn stop(&mut self, rt: &Runtime<'_>, e: SlotLockTimeout) {
        self.stopped = true;
        self.releases.discard();
        latch_lock_timeout(rt, 0, e);
    }

    /// Drains the ready queues in shuffled rounds; after a [`Self::stop`] it returns at once.
    fn drain_shuffled(&mut self, rt: &Runtime<'_>) -> bool {
        let mut any = false;
        loop {
            let mut round: heapless::Vec<u64, 256> = heapless::Vec::new();
            'fill: for shape in Shape::ALL {
                while !round.is_full() {
                    match rt.pop_ready(shape) {
                        Some(t) => {
                            let _ = round.push(t);
                        }
                        None => continue 'fill,
                    }
                }
            }
            if round.is_empty() {
                return any;
            }
            any = true;
            let t0 = if rt.trace.on(3) { rt.platform.now_ns() } else { 0 };
            for i in (1..round.len()).rev() {
                let j = (self.next_random() % (i as u64 + 1)) as usize;
                round.swap(i, j);
            }
            let mut rings = RingSet::default();
            for t in round {
                match self.run(rt, t) {
                    Ok(r) => rings.merge(r),
                    Err(e) => {
                        self.stop(rt, e);
                        return any;
                    }
                }
            }
            let t1 = if rt.trace.on(3) { rt.platform.now_ns() } else { 0 };
            if !self.end_pass(rt, rings) {
                return any;
            }
            if rt.trace.on(3) {
                self.trace_phase(rt, t0, t1);
            }
        }
    }

    fn run(&mut self, rt: &Runtime<'_>, task: u64) -> Result<RingSet, SlotLockTimeout> {
        self.dispatched += 1;
        if let VirtualCores::RunKernels(resolver) = self.cores {
            self.run_kernels(rt, task, resolver);
        }
        let t = if rt.trace.on(3) { rt.platform.now_ns() } else { 0 };
        let rings = rt.complete(task, &mut self.releases)?;
        if rt.trace.on(3) {
            self.phase_complete_ns += rt.platform.now_ns().saturating_sub(t);
        }
        self.completed += 1;
        Ok(rings)
    }

    /// Runs every block of `task`'s kernels on the virtual cores, counting the ones that could
    /// not run.
    #[inline(never)]
    fn run_kernels(&mut self, rt: &Runtime<'_>, task: u64, resolver: &dyn KernelResolver) {
        let d = rt.view.descriptor(task);
        // SAFETY: the descriptor belongs to a ready task held by this thread.
        let (kernels, blocks, mask) = unsafe { ((*d).kernel_ids, (*d).block_num, (*d).lane_mask) };
        if mask != 0 {
            let mut args = [0u64; MAX_KERNEL_ARGS];
            // SAFETY: the payload of a ready task held by this thread, published at submit.
            let n = super::kernel_args(unsafe { &*rt.view.payload(task) }, &mut args);
            let dispatch_ns = if rt.trace.on(1) { rt.platform.now_ns() } else { 0 };
            for block_idx in 0..blocks {
                let start_ns = if rt.trace.on(1) { rt.platform.now_ns() } else { 0 };
                for (lane, kernel) in kernels.iter().enumerate().take(LANE_COUNT) {
                    if mask & (1 << lane) == 0 {
                        continue;
                    }
                    let inv = KernelInvocation { args: &args[..n], block_idx, block_num: blocks };
                    let ran = rt
                        .funcs
                        .get(*kernel)
                        .and_then(|addr| resolver.resolve(addr))
                        .map(|f| resolver.invoke(f, &inv).is_ok())
                        .unwrap_or(false);
                    if !ran {
                        if self.kernel_faults == 0 {
                            self.first_fault_task = task;
                        }
                        self.kernel_faults += 1;
                    }
                }
                if rt.trace.on(1) {
                    record_virtual_block(rt, task, &kernels, mask, (block_idx, blocks), dispatch_ns, start_ns);
                }
            }
        }
    }

    /// Ends a pass over the ready tasks: applies the releases it held and advances the
    /// watermarks of `rings` and of the rings the flush consumed in. False when a lock stayed
    /// held (the scheduler has stopped; nothing is advanced).
    fn end_pass(&mut self, rt: &Runtime<'_>, mut rings: RingSet) -> bool {
        match rt.flush_releases(&mut self.releases) {
            Ok(r) => rings.merge(r),
            Err(e) => {
                self.stop(rt, e);
                return false;
            }
        }
        rt.advance(rings);
        true
    }

    /// Records one pass over the ready tasks that started at `t0` and finished running and
    /// completing them at `t1`, its releases ending now. The virtual cores run at dispatch, so
    /// the dispatch time includes the kernels; the time since the previous record (the thread
    /// orchestrating) is the idle time.
    #[cold]
    fn trace_phase(&mut self, rt: &Runtime<'_>, t0: u64, t1: u64) {
        let now = rt.platform.now_ns();
        let mark = if self.phase_mark == 0 { t0 } else { self.phase_mark };
        let complete_ns = core::mem::take(&mut self.phase_complete_ns);
        let rec = pto_abi::trace::PhaseRecord {
            thread: 0,
            _pad: [0; 4],
            start_ns: mark,
            complete_ns,
            dispatch_ns: t1.saturating_sub(t0).saturating_sub(complete_ns),
            release_ns: now.saturating_sub(t1),
            idle_ns: t0.saturating_sub(mark),
        };
        self.phase_mark = now;
        rt.trace.record(pto_abi::trace::TRACE_KIND_PHASE, &rec);
    }

    /// Releases recorded and not yet applied (zero whenever `drain` has returned).
    pub fn held_releases(&self) -> u64 {
        self.releases.held()
    }
}

impl Drain for DeterministicScheduler<'_> {
    fn drain(&mut self, rt: &Runtime<'_>) -> bool {
        if self.stopped {
            return false;
        }
        if self.shuffle.is_some() {
            return self.drain_shuffled(rt);
        }
        let mut any = false;
        loop {
            let mut progressed = false;
            let mut rings = RingSet::default();
            let t0 = if rt.trace.on(3) { rt.platform.now_ns() } else { 0 };
            for shape in Shape::ALL {
                while let Some(task) = rt.pop_ready(shape) {
                    match self.run(rt, task) {
                        Ok(r) => rings.merge(r),
                        Err(e) => {
                            self.stop(rt, e);
                            return any;
                        }
                    }
                    progressed = true;
                }
            }
            let t1 = if rt.trace.on(3) { rt.platform.now_ns() } else { 0 };
            // Nothing ready is left on this pass: apply the releases before the orchestrator
            // (which may be waiting for them) looks at the watermarks again.
            if !self.end_pass(rt, rings) {
                return any;
            }
            if !progressed {
                return any;
            }
            if rt.trace.on(3) {
                self.trace_phase(rt, t0, t1);
            }
            any = true;
        }
    }
}

/// True when a scheduler error is latched.
fn sched_error(rt: &Runtime<'_>) -> bool {
    // SAFETY: the SM header is valid; the word is read atomically.
    unsafe { atomic_u32(core::ptr::addr_of_mut!((*rt.view.sm).sched.code)) }.load(Ordering::Acquire) != 0
}

/// The result of a deterministic run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeterministicOutcome {
    /// Tasks submitted.
    pub tasks_submitted: u64,
    /// Tasks completed.
    pub tasks_completed: u64,
    /// The run's error, if any: the orchestrator's, or the latched scheduler error of a run that
    /// ended with work missing.
    pub error: Option<OrchError>,
    /// Blocks whose kernel could not be resolved or failed.
    pub kernel_faults: u64,
}

/// Runs an orchestration in the deterministic mode on a booted, reset runtime: orchestrates,
/// drains every ready task, and advances every watermark.
///
/// # Safety
/// No other thread may touch the runtime during the call (it runs in the single-thread mode).
pub unsafe fn run_deterministic(
    rt: &mut Runtime<'_>,
    f: OrchestrationFn,
    args: &[OrchArg],
    cores: VirtualCores<'_>,
) -> DeterministicOutcome {
    // SAFETY: forwarded from the caller.
    unsafe { run_with(rt, f, args, DeterministicScheduler::new(cores)) }
}

/// Runs an orchestration in the deterministic mode with a configured scheduler.
///
/// # Safety
/// As for [`run_deterministic`].
pub unsafe fn run_with(
    rt: &mut Runtime<'_>,
    f: OrchestrationFn,
    args: &[OrchArg],
    mut sched: DeterministicScheduler<'_>,
) -> DeterministicOutcome {
    // SAFETY: the caller guarantees no other thread uses the runtime.
    unsafe { rt.set_exclusive(true) };
    let shared = sched.shared;
    if shared {
        // SAFETY: lifting the exclusive mode only adds synchronisation.
        unsafe { rt.set_exclusive(!shared) };
    }
    let rt = &*rt;
    if rt.trace.on(3) {
        sched.phase_mark = rt.platform.now_ns();
    }
    let mut summary = run_orchestration(rt, f, args, Some(&mut sched));
    if summary.error.is_none() {
        sched.drain(rt);
        rt.advance_all();
        if sched.completed < summary.tasks_submitted || sched_error(rt) {
            // Work is missing (a task never became ready, or a queue refused it): the run fails
            // with a code instead of ending as if it had finished.
            super::threaded::latch_sched_error(rt, 0, StallClass::DependencyDeadlock, NO_TASK);
            // SAFETY: the SM header is valid; this thread is the only one using it.
            let code = unsafe { atomic_u32(core::ptr::addr_of_mut!((*rt.view.sm).sched.code)) }.load(Ordering::Acquire);
            let code = RuntimeErrorCode::try_from(code).unwrap_or(RuntimeErrorCode::SchedulerTimeout);
            summary.error = Some(OrchError::new(code, u32::MAX, 0));
        } else {
            // SAFETY: this thread is the only one using the runtime.
            unsafe { crate::reset::reclaim_after_run(&rt.view) };
        }
    }
    let t = rt.view.sched_threads;
    // SAFETY: thread state 0 is this thread's; the host reads it after the run.
    unsafe {
        atomic_u64(core::ptr::addr_of_mut!((*t).tasks_dispatched)).store(sched.dispatched, Ordering::Relaxed);
        (*t).kernel_faults = sched.kernel_faults;
        (*t).first_fault_task = sched.first_fault_task;
        atomic_u64(core::ptr::addr_of_mut!((*t).tasks_completed)).store(sched.completed, Ordering::Release);
    }
    DeterministicOutcome {
        tasks_submitted: summary.tasks_submitted,
        tasks_completed: sched.completed,
        error: summary.error,
        kernel_faults: sched.kernel_faults,
    }
}

/// Records one block run by a virtual core of the deterministic mode, which ends (and is seen
/// finished) now; `block` is (index, count).
#[cold]
fn record_virtual_block(
    rt: &Runtime<'_>,
    task: u64,
    kernels: &[i32],
    mask: u32,
    block: (u32, u32),
    dispatch_ns: u64,
    start_ns: u64,
) {
    let end_ns = rt.platform.now_ns();
    let lvl2 = rt.trace.on(2);
    let rec = pto_abi::trace::BlockRecord {
        task_id: task,
        func_ids: crate::trace::lane_funcs(kernels, mask),
        core: pto_abi::trace::VIRTUAL_CORE,
        block_idx: block.0,
        block_num: block.1,
        thread: 0,
        _pad: [0; 4],
        dispatch_ns: if lvl2 { dispatch_ns } else { 0 },
        start_ns,
        end_ns,
        finish_ns: if lvl2 { end_ns } else { 0 },
    };
    rt.trace.record(pto_abi::trace::TRACE_KIND_BLOCK, &rec);
}
