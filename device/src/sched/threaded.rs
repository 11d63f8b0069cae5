//! A scheduler thread of the threaded mode: owns whole clusters (cluster `c` belongs to scheduler
//! `c mod n`) and drives their cores through the AICore protocol's [`CoreChannels`].
//!
//! One round: poll every owned core's condition register and complete the blocks that finished
//! (a task completes on its `block_num × active lanes`-th FIN; the releases of its producers go
//! into the thread's [`ReleaseBatch`]); complete dependency-only tasks; hand ready work to the
//! owned cores — every payload prepared first, then one barrier and all tokens published
//! ([`CoreChannels::publish`]); advance the watermarks of the rings where tasks were consumed,
//! batched per round.
//!
//! **Pipelining.** A block goes to an idle core first. When none is idle, a core running a single
//! token gets the block as its second token (in its other payload buffer), so it starts the next
//! block the moment the running one ends instead of idling until this thread has seen the FIN —
//! but only while more blocks are ready than the other schedulers' cores can start, so work is
//! not queued behind a running block here while a core elsewhere idles. A round that finds nothing new to do applies the held releases, so the
//! batch is empty whenever the thread looks for a stall or for the end of the run. The thread
//! ends when orchestration is done and every submitted task has completed, or when an error is
//! latched; it then shuts its cores down in order (EXIT, wait for the acknowledgement with a
//! deadline). A round without progress waits through the clock (spin, then yield); no progress
//! for the scheduler budget while work is outstanding latches `SCHEDULER_TIMEOUT` with its stall
//! class. Nothing here waits without a deadline.

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use pto_abi::consts::{LANE_COUNT, MAX_AICPU_THREADS, MAX_CORES, MAX_KERNEL_ARGS, RING_COUNT};
use pto_abi::error::StallClass;
use pto_abi::runtime::{SchedThreadState, THREAD_EXITED, THREAD_RUNNING};
use pto_abi::task::{Lane, NO_TASK};

use crate::aicore::ownership::lane_of;
use crate::aicore::{cluster_cores, ChannelError, CoreChannels, CoreMask, CoreTables, Dispatch, TaskOutcome};
use crate::platform::Backoff;
use crate::queue::Shape;
use crate::runtime::{latch_lock_timeout, ReleaseBatch, RingSet, Runtime, SlotLockTimeout};
pub use crate::runtime::{latch_sched_error, total_completed};
use crate::sync::{atomic_u32, atomic_u64};

/// How a scheduler thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedExit {
    /// Every submitted task completed.
    Finished,
    /// A runtime error was latched (by this or another thread, or the orchestrator).
    Stopped,
}

/// One scheduler thread's state for a run.
pub struct SchedulerThread<'a, 'p> {
    rt: &'a Runtime<'p>,
    index: u32,
    threads: u32,
    ch: CoreChannels,
    owned: CoreMask,
    /// The owned cores of each lane.
    lanes: [CoreMask; LANE_COUNT],
    /// Per shape, how many blocks the other schedulers' cores can start at once: ready work up to
    /// that much is left in the queue for them rather than queued behind a running token here.
    others: [u64; 4],
    /// Per core, the tasks of its tokens in flight or prepared, oldest first (`NO_TASK` = none):
    /// the block running, then the block waiting in the other payload buffer.
    tokens: [[u64; 2]; MAX_CORES],
    /// Per core, the dispatch time of each token in `tokens` (traced runs only).
    dispatch_ns: [[u64; 2]; MAX_CORES],
    state: *mut SchedThreadState,
    completed: u64,
    dispatched: u64,
    faults: u64,
    first_fault: u64,
    /// Producer releases of the tasks this thread completed, not applied yet.
    releases: ReleaseBatch,
    /// End of the last scheduler-phase record, or the start of scheduling (level 3).
    phase_mark: u64,
}

/// Why a scheduler round stopped: a core broke the dispatch protocol, or a slot lock stayed held.
enum RoundError {
    Channel,
    Lock(SlotLockTimeout),
}

impl From<ChannelError> for RoundError {
    fn from(_: ChannelError) -> Self {
        RoundError::Channel
    }
}

impl From<SlotLockTimeout> for RoundError {
    fn from(e: SlotLockTimeout) -> Self {
        RoundError::Lock(e)
    }
}

/// The latched error words, read atomically.
fn error_latched(rt: &Runtime<'_>) -> bool {
    let sm = rt.view.sm;
    // SAFETY: the SM header is valid for the run; error words are read atomically.
    unsafe {
        atomic_u32(addr_of_mut!((*sm).orch.code)).load(Ordering::Acquire) != 0
            || atomic_u32(addr_of_mut!((*sm).sched.code)).load(Ordering::Acquire) != 0
    }
}

/// Tasks submitted so far (the per-ring submit counters).
pub fn total_submitted(rt: &Runtime<'_>) -> u64 {
    (0..RING_COUNT).map(|r| rt.current(r)).sum()
}

/// True once the orchestrator published `orchestrator_done`.
pub fn orchestrator_done(rt: &Runtime<'_>) -> bool {
    // SAFETY: the SM header is valid; the word is read atomically.
    unsafe { atomic_u32(addr_of_mut!((*rt.view.sm).orch.orchestrator_done)) }.load(Ordering::Acquire) != 0
}

impl<'a, 'p> SchedulerThread<'a, 'p> {
    /// Scheduler `index` of `threads` scheduler threads, driving `clusters` clusters.
    ///
    /// # Safety
    /// `tables` are this boot's core tables; no other thread drives the cores this scheduler owns.
    pub unsafe fn new(
        rt: &'a Runtime<'p>,
        tables: CoreTables,
        index: u32,
        threads: u32,
        clusters: u32,
    ) -> Result<Self, ChannelError> {
        // SAFETY: forwarded from the caller.
        let mut ch = unsafe { CoreChannels::for_scheduler(tables, index, threads, clusters)? };
        // Traced runs: the cores stamp each block's kernel start and end on their own clock.
        ch.set_stamping(rt.trace.on(1));
        let owned = ch.owned();
        let mut lanes = [CoreMask::EMPTY; LANE_COUNT];
        for core in owned {
            lanes[lane_of(core) as usize].insert(core);
        }
        let other_clusters = u64::from(clusters).saturating_sub(u64::from(owned.len()) / LANE_COUNT as u64);
        let mut others = [0u64; 4];
        others[Shape::Aic.index()] = other_clusters;
        others[Shape::Aiv.index()] = 2 * other_clusters;
        others[Shape::Mix.index()] = other_clusters;
        // SAFETY: `index < threads <= MAX_AICPU_THREADS - 1` (checked by `for_scheduler`'s caller).
        let state = unsafe { rt.view.sched_threads.add(index as usize % MAX_AICPU_THREADS) };
        Ok(SchedulerThread {
            rt,
            index,
            threads,
            ch,
            owned,
            lanes,
            others,
            tokens: [[NO_TASK; 2]; MAX_CORES],
            dispatch_ns: [[0; 2]; MAX_CORES],
            state,
            completed: 0,
            dispatched: 0,
            faults: 0,
            first_fault: NO_TASK,
            releases: ReleaseBatch::new(),
            phase_mark: 0,
        })
    }

    /// Applies releases whenever `limit` distinct producers are held (instead of
    /// [`RELEASE_BATCH`](crate::runtime::RELEASE_BATCH)).
    pub fn with_release_limit(mut self, limit: usize) -> Self {
        self.releases = ReleaseBatch::with_limit(limit);
        self
    }

    /// Releases recorded and not yet applied (zero once [`SchedulerThread::run`] returned).
    pub fn held_releases(&self) -> u64 {
        self.releases.held()
    }

    /// Releases this thread applied so far, and the flushes that applied them.
    pub fn applied_releases(&self) -> (u64, u64) {
        (self.releases.applied(), self.releases.flushes())
    }

    fn publish_counters(&self) {
        let busy = self.owned.iter().filter(|c| self.tokens[*c as usize][0] != NO_TASK).count() as u32;
        // SAFETY: this thread is the only writer of its state line.
        unsafe {
            atomic_u32(addr_of_mut!((*self.state).cores_busy)).store(busy, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*self.state).tasks_dispatched)).store(self.dispatched, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*self.state).kernel_faults)).store(self.faults, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*self.state).first_fault_task)).store(self.first_fault, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*self.state).tasks_completed)).store(self.completed, Ordering::Release);
        }
    }

    fn set_running(&self, v: u32) {
        // SAFETY: as above.
        unsafe { atomic_u32(addr_of_mut!((*self.state).running)).store(v, Ordering::Release) };
    }

    /// Runs the scheduler until the run ends; shuts the owned cores down before returning.
    pub fn run(&mut self) -> SchedExit {
        self.set_running(THREAD_RUNNING);
        let exit = self.schedule();
        if self.rt.trace.on(3) && self.phase_mark != 0 {
            // The time since the last productive round was idle.
            let now = self.rt.platform.now_ns();
            self.trace_phase(now, [now; 3]);
        }
        debug_assert!(self.releases.is_empty(), "a scheduler thread stopped holding releases");
        self.publish_counters();
        let budget = self.rt.budgets.sched_ns;
        if let Err(e) = self.ch.shutdown(self.rt.platform, budget) {
            // SAFETY: this thread's state line.
            unsafe {
                atomic_u32(addr_of_mut!((*self.state).cores_not_exited)).store(e.not_exited.len(), Ordering::Relaxed)
            };
        }
        self.set_running(THREAD_EXITED);
        exit
    }

    fn schedule(&mut self) -> SchedExit {
        let clock = self.rt.platform;
        if !self.owned.is_empty() && self.ch.wait_online(clock, self.rt.budgets.sched_ns).is_err() {
            latch_sched_error(self.rt, self.index, StallClass::ReadyButIdle, NO_TASK);
            return SchedExit::Stopped;
        }
        let mut backoff = Backoff::new();
        let mut seen = (u64::MAX, u64::MAX);
        let mut since = clock.now_ns();
        self.phase_mark = since;
        loop {
            let progress = match self.round() {
                Ok(p) => p,
                Err(RoundError::Channel) => {
                    // A lock timeout while applying them comes second: the protocol error is latched.
                    let _ = self.flush_releases();
                    latch_sched_error(self.rt, self.index, StallClass::RunningStalled, NO_TASK);
                    return SchedExit::Stopped;
                }
                Err(RoundError::Lock(e)) => {
                    // The run is over: the held releases are dropped, not applied (no more locks).
                    self.releases.discard();
                    latch_lock_timeout(self.rt, self.index, e);
                    return SchedExit::Stopped;
                }
            };
            if progress {
                self.publish_counters();
                backoff.reset();
                since = clock.now_ns();
                continue;
            }
            // A round without progress applied every held release, so the decisions below see
            // every CONSUMED state this thread can produce.
            debug_assert!(self.releases.is_empty());
            // `orchestrator_done` first (acquire), the error words after it: the orchestrator
            // latches its error before it publishes done (release), so a thread that sees done
            // also sees that error. The other order could read "no error", then the orchestrator
            // latches and finishes, then "done", and end a failed run as `Finished`.
            let done = orchestrator_done(self.rt);
            if error_latched(self.rt) {
                return SchedExit::Stopped;
            }
            let completed = total_completed(self.rt);
            let submitted = total_submitted(self.rt);
            if done && completed >= submitted {
                return SchedExit::Finished;
            }
            let now = clock.now_ns();
            if (completed, submitted) != seen {
                seen = (completed, submitted);
                since = now;
            } else if now.saturating_sub(since) > self.rt.budgets.sched_ns && (completed < submitted || !done) {
                // A block running on another scheduler's core is that scheduler's to report; it
                // gets one more budget before anyone else does.
                let overdue = now.saturating_sub(since) > self.rt.budgets.sched_ns.saturating_mul(2);
                if let Some((class, task)) = self.stall_class(done, overdue) {
                    latch_sched_error(self.rt, self.index, class, task);
                    return SchedExit::Stopped;
                }
            }
            backoff.snooze(clock);
        }
    }

    /// The stall class this thread can report, or `None` when another scheduler's running core is
    /// the likely culprit and that scheduler should report it (unless `overdue`).
    fn stall_class(&self, orch_done: bool, overdue: bool) -> Option<(StallClass, u64)> {
        if let Some(core) = self.owned.iter().find(|c| self.tokens[*c as usize][0] != NO_TASK) {
            return Some((StallClass::RunningStalled, self.tokens[core as usize][0]));
        }
        let others_busy = (0..MAX_AICPU_THREADS).any(|t| {
            // SAFETY: thread states are valid; the word is read atomically.
            unsafe { atomic_u32(addr_of_mut!((*self.rt.view.sched_threads.add(t)).cores_busy)) }.load(Ordering::Relaxed)
                != 0
        });
        if others_busy {
            return overdue.then_some((StallClass::RunningStalled, NO_TASK));
        }
        if self.rt.view.queues.iter().any(|q| !q.is_empty()) {
            return Some((StallClass::ReadyButIdle, NO_TASK));
        }
        if !orch_done {
            return Some((StallClass::OrchestratorStarvation, NO_TASK));
        }
        Some((StallClass::DependencyDeadlock, NO_TASK))
    }

    /// One round; true when anything completed or was dispatched. At level 3 a round with
    /// progress writes a scheduler-phase record.
    fn round(&mut self) -> Result<bool, RoundError> {
        let phases = self.rt.trace.on(3);
        let t0 = if phases { self.rt.platform.now_ns() } else { 0 };
        let mut progress = false;
        let mut rings = RingSet::default();
        for core in self.owned {
            if self.tokens[core as usize][0] == NO_TASK {
                continue; // nothing in flight: nothing can finish
            }
            let p = self.ch.poll(core)?;
            for c in p.completions() {
                progress = true;
                let t = &mut self.tokens[core as usize];
                *t = [t[1], NO_TASK];
                if self.rt.trace.on(1) {
                    self.trace_block(c.task_id, core, c.block_idx, c.token);
                }
                if !matches!(c.outcome, TaskOutcome::Finished) {
                    if self.faults == 0 {
                        self.first_fault = c.task_id;
                    }
                    self.faults += 1;
                }
                rings.merge(self.block_done(c.task_id)?);
            }
        }
        while let Some(t) = self.rt.pop_ready(Shape::DepOnly) {
            rings.merge(self.rt.complete(t, &mut self.releases)?);
            self.completed += 1;
            progress = true;
        }
        let t1 = if phases { self.rt.platform.now_ns() } else { 0 };
        for shape in [Shape::Mix, Shape::Aic, Shape::Aiv] {
            progress |= self.dispatch_shape(shape)?;
        }
        self.ch.publish();
        let t2 = if phases { self.rt.platform.now_ns() } else { 0 };
        if !progress && !self.releases.is_empty() {
            // Nothing new to do: apply the held releases now (this counts as progress, so the
            // stall and termination checks only ever run with an empty batch).
            rings.merge(self.rt.flush_releases(&mut self.releases)?);
            progress = true;
        }
        self.rt.advance(rings);
        if phases && progress {
            self.trace_phase(t0, [t1, t2, self.rt.platform.now_ns()]);
        }
        Ok(progress)
    }

    /// Records one productive round that started at `t0` and ended its complete, dispatch and
    /// release phases at `ends`; the time since the previous record (rounds without progress and
    /// the waits between them) is its idle time.
    #[cold]
    fn trace_phase(&mut self, t0: u64, ends: [u64; 3]) {
        let rec = pto_abi::trace::PhaseRecord {
            thread: self.index,
            _pad: [0; 4],
            start_ns: self.phase_mark,
            complete_ns: ends[0].saturating_sub(t0),
            dispatch_ns: ends[1].saturating_sub(ends[0]),
            release_ns: ends[2].saturating_sub(ends[1]),
            idle_ns: t0.saturating_sub(self.phase_mark),
        };
        self.phase_mark = ends[2];
        self.rt.trace.record(pto_abi::trace::TRACE_KIND_PHASE, &rec);
    }

    /// Applies every held release and advances the rings where tasks became consumed.
    fn flush_releases(&mut self) -> Result<(), SlotLockTimeout> {
        let rings = self.rt.flush_releases(&mut self.releases)?;
        self.rt.advance(rings);
        Ok(())
    }

    fn block_done(&mut self, task: u64) -> Result<RingSet, SlotLockTimeout> {
        let slot = self.rt.slot(task);
        let before = self.rt.add_u32(slot.subtask_done(), 1);
        if before + 1 == slot.subtask_total().load(Ordering::Relaxed) {
            let rings = self.rt.complete(task, &mut self.releases)?;
            self.completed += 1;
            Ok(rings)
        } else {
            Ok(RingSet::default())
        }
    }

    /// A core of one of `lanes` for the next block: an idle one first, else (with `second`) one
    /// running a single token: the block then waits in the core's other payload buffer and starts
    /// the moment the running one ends, so the core does not idle between tasks.
    fn lane_core(&self, lanes: &[Lane], second: bool) -> Option<u32> {
        let mut queued = None;
        for &lane in lanes {
            for core in self.lanes[lane as usize] {
                if self.ch.is_idle(core) {
                    return Some(core);
                }
                if second && queued.is_none() && self.ch.can_prepare(core) {
                    queued = Some(core);
                }
            }
        }
        queued
    }

    /// A cluster whose cores of every lane in `mask` can take a block: all idle if possible, else
    /// (with `second`) each idle or running a single token.
    fn cluster_for(&self, mask: u32, second: bool) -> Option<u32> {
        let mut queued = None;
        // Clusters are visited through their cores of the lowest active lane.
        let lead = (mask.trailing_zeros() as usize).min(LANE_COUNT - 1);
        for core in self.lanes[lead] {
            let cluster = core / LANE_COUNT as u32;
            let cores = cluster_cores(cluster);
            let active = (0..LANE_COUNT).filter(|l| mask & (1 << l) != 0);
            if active.clone().all(|l| self.ch.is_idle(cores[l])) {
                return Some(cluster);
            }
            if second && queued.is_none() && active.clone().all(|l| self.ch.can_prepare(cores[l])) {
                queued = Some(cluster);
            }
        }
        queued
    }

    /// True when a core of `shape` is idle, or (with `second`) can take a second token.
    fn has_room(&self, shape: Shape, second: bool) -> bool {
        let room = |m: CoreMask| m.iter().any(|c| if second { self.ch.can_prepare(c) } else { self.ch.is_idle(c) });
        match shape {
            Shape::Aic => room(self.lanes[Lane::Aic as usize]),
            Shape::Aiv => room(self.lanes[Lane::Aiv0 as usize]) || room(self.lanes[Lane::Aiv1 as usize]),
            Shape::Mix => room(self.owned),
            Shape::DepOnly => true,
        }
    }

    /// True when more blocks of `shape` are ready (`queued` in the queue plus `extra` held by this
    /// thread) than the other schedulers' cores can start: only then is a block queued behind a
    /// running token here instead of being left for an idle core elsewhere.
    fn may_pipeline(&self, shape: Shape, extra: u64) -> bool {
        let others = self.others[shape.index()];
        others == 0 || self.rt.view.queues[shape.index()].len() + extra > others
    }

    /// Hands ready tasks of `shape` to the owned cores until the cores or the tasks run out. A
    /// task with blocks left over goes back to its queue, so other schedulers can run them too.
    fn dispatch_shape(&mut self, shape: Shape) -> Result<bool, ChannelError> {
        let mut any = false;
        loop {
            let room = self.has_room(shape, false) || (self.has_room(shape, true) && self.may_pipeline(shape, 0));
            if !room {
                break;
            }
            let Some(task) = self.rt.pop_ready(shape) else { break };
            let d = self.rt.view.descriptor(task);
            // SAFETY: the descriptor of a ready task this thread holds (published before routing).
            let (kernels, block_num, mask) = unsafe { ((*d).kernel_ids, (*d).block_num, (*d).lane_mask) };
            let mut args = [0u64; MAX_KERNEL_ARGS];
            // SAFETY: as above, the payload.
            let n = crate::sched::kernel_args(unsafe { &*self.rt.view.payload(task) }, &mut args);
            let slot = self.rt.slot(task);
            let mut next = slot.next_block().load(Ordering::Relaxed);
            let mut placed = false;
            while next < block_num {
                // The cores of this block: one core, or one per active lane of a cluster.
                let mut targets = [(0u32, 0usize); LANE_COUNT];
                let mut count = 0;
                let second = self.may_pipeline(shape, u64::from(block_num - next));
                match shape {
                    Shape::Aic => {
                        if let Some(core) = self.lane_core(&[Lane::Aic], second) {
                            targets[0] = (core, Lane::Aic as usize);
                            count = 1;
                        }
                    }
                    Shape::Aiv => {
                        if let Some(core) = self.lane_core(&[Lane::Aiv0, Lane::Aiv1], second) {
                            targets[0] = (core, mask.trailing_zeros() as usize);
                            count = 1;
                        }
                    }
                    _ => {
                        if let Some(cluster) = self.cluster_for(mask, second) {
                            for (lane, core) in cluster_cores(cluster).iter().enumerate() {
                                if mask & (1 << lane) != 0 {
                                    targets[count] = (*core, lane);
                                    count += 1;
                                }
                            }
                        }
                    }
                }
                if count == 0 {
                    break;
                }
                for &(core, lane) in &targets[..count] {
                    let kernel = self.rt.funcs.get(kernels[lane]).unwrap_or_default();
                    let d = Dispatch { kernel, task_id: task, block_idx: next, block_num, args: &args[..n] };
                    self.ch.prepare(core, &d)?;
                    let t = &mut self.tokens[core as usize];
                    let i = usize::from(t[0] != NO_TASK);
                    t[i] = task;
                    if self.rt.trace.on(1) {
                        self.dispatch_ns[core as usize][i] = self.rt.platform.now_ns();
                    }
                }
                next += 1;
                placed = true;
            }
            slot.next_block().store(next, Ordering::Relaxed);
            any |= placed;
            if next < block_num {
                self.rt.push_ready(shape, task);
                if !placed {
                    break;
                }
            } else {
                self.dispatched += 1;
            }
        }
        Ok(any)
    }

    /// Records a finished block of `task` on `core` (token `token`, its oldest, just retired from
    /// `tokens`): the AICPU's dispatch and finish times, and the kernel start and end the core
    /// stamped on its own clock.
    #[cold]
    fn trace_block(&mut self, task: u64, core: u32, block_idx: u32, token: u64) {
        let stamps = &mut self.dispatch_ns[core as usize];
        let dispatch_ns = stamps[0];
        *stamps = [stamps[1], 0];
        let finish_ns = self.rt.platform.now_ns();
        let (start_ns, end_ns) = self.ch.stamps(core, token);
        let d = self.rt.view.descriptor(task);
        // SAFETY: the descriptor of a task with a block in flight on this thread's core.
        let (kernels, block_num, mask) = unsafe { ((*d).kernel_ids, (*d).block_num, (*d).lane_mask) };
        let rec = pto_abi::trace::BlockRecord {
            task_id: task,
            func_ids: crate::trace::lane_funcs(&kernels, mask),
            core,
            block_idx,
            block_num,
            thread: self.index,
            _pad: [0; 4],
            dispatch_ns: if self.rt.trace.on(2) { dispatch_ns } else { 0 },
            start_ns,
            end_ns,
            finish_ns: if self.rt.trace.on(2) { finish_ns } else { 0 },
        };
        self.rt.trace.record(pto_abi::trace::TRACE_KIND_BLOCK, &rec);
    }

    /// This scheduler's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Scheduler threads of the run.
    pub fn threads(&self) -> u32 {
        self.threads
    }
}
