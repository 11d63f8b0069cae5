//! The submit path: validate → scope admission → task slot and packed output block in
//! the ring of the current scope → tensor-map cleanup → explicit and automatic dependencies →
//! prepare and publish the task → wire fanin edges → register outputs → route when ready.
//!
//! Everything that can wait or fail (window, heap, tensor-map room, dep-pool room) happens before
//! the task is committed, so a failed submit leaves no task behind.

use core::sync::atomic::Ordering;

use heapless::Vec;
use pto_abi::consts::{HEAP_OUTPUT_ALIGN, INLINE_FANIN, LANE_COUNT, MAX_KERNEL_ARGS, MAX_SCALAR_ARGS, MAX_TENSOR_ARGS};
use pto_abi::error::RuntimeErrorCode;
use pto_abi::runtime::{ScopeFrame, ScopeKind};
use pto_abi::task::{
    make_task_id, TaskDescriptor, TaskPayload, TaskState, TensorDesc, TensorDim, TensorDirection, FANOUT_SCOPE_REF,
    INACTIVE_KERNEL, NO_TASK,
};
use pto_abi::DevAddr;

use super::wait::{Resource, Waiter};
use super::{Arg, InvalidArgs, OrchError, Orchestrator, Submitted, TaskId, TaskSpec, Tensor};
use crate::deppool::NodeRef;
use crate::ring::HeapAlloc;
use crate::sync::atomic_u64;

/// What validation learned about a spec.
struct Plan {
    lane_mask: u32,
    heap_bytes: u64,
    writes: u32,
}

/// Where a task being submitted lives.
struct NewTask {
    ring: usize,
    id: u64,
    payload: *mut TaskPayload,
    /// Device address of its packed output block.
    block_base: u64,
}

/// The producers a new task waits for: the first `INLINE_FANIN` in its payload, the rest in a
/// spill list of its ring's dep pool.
struct Fanin {
    count: u32,
    spill_head: NodeRef,
    /// Listed producers seen pending when listed (an upper bound of the fanout nodes wiring
    /// takes: a producer seen pending may complete before wiring, never the reverse).
    pending: u32,
}

impl Orchestrator<'_, '_> {
    /// Submits one task; returns its id and its runtime-allocated outputs.
    pub fn submit(&mut self, spec: &TaskSpec<'_>) -> Result<Submitted, OrchError> {
        self.check_running()?;
        let t0 = if self.rt.trace.on(4) { self.rt.platform.now_ns() } else { 0 };
        match self.submit_inner(spec) {
            Ok(s) if self.rt.trace.on(4) => {
                self.trace_submit(s.task.0, t0, self.traced_edges);
                Ok(s)
            }
            Ok(s) => Ok(s),
            Err(e) => Err(self.latch(e)),
        }
    }

    /// Allocates runtime tensors without running a kernel (a dependency-only task with outputs).
    /// Like every orchestrator API error, a rejected allocation is latched: the run fails with its
    /// code and later calls are refused.
    pub fn alloc(&mut self, outputs: &[super::OutputSpec]) -> Result<Submitted, OrchError> {
        self.check_running()?;
        if outputs.len() > MAX_TENSOR_ARGS {
            return Err(self.latch(OrchError::invalid(InvalidArgs::TooManyTensors, outputs.len() as u32)));
        }
        let mut args: Vec<Arg, MAX_TENSOR_ARGS> = Vec::new();
        for o in outputs {
            // Cannot fail: `outputs.len() <= MAX_TENSOR_ARGS`.
            let _ = args.push(Arg::Output(*o));
        }
        self.submit(&TaskSpec::dep_only(&args))
    }

    fn validate(&self, spec: &TaskSpec<'_>, ring: usize) -> Result<Plan, OrchError> {
        let nt = spec.args.len();
        if nt > MAX_TENSOR_ARGS {
            return Err(OrchError::invalid(InvalidArgs::TooManyTensors, nt as u32));
        }
        if spec.scalars.len() > MAX_SCALAR_ARGS {
            return Err(OrchError::invalid(InvalidArgs::TooManyScalars, spec.scalars.len() as u32));
        }
        if nt + spec.scalars.len() > MAX_KERNEL_ARGS {
            return Err(OrchError::invalid(InvalidArgs::TooManyKernelArgs, (nt + spec.scalars.len()) as u32));
        }
        if spec.block_num == 0 {
            return Err(OrchError::invalid(InvalidArgs::ZeroBlocks, 0));
        }
        let lane_mask = spec.lane_mask();
        if self.rt.funcs.is_checked() {
            for (l, k) in spec.kernels.iter().enumerate() {
                if *k != INACTIVE_KERNEL && self.rt.funcs.get(*k).is_none() {
                    return Err(OrchError::invalid(InvalidArgs::UnknownKernel, l as u32));
                }
            }
        }
        let mut heap_bytes: u64 = 0;
        let mut writes = 0u32;
        for (i, a) in spec.args.iter().enumerate() {
            match a {
                Arg::Output(o) => {
                    if o.bytes == 0 {
                        return Err(OrchError::invalid(InvalidArgs::EmptyOutput, i as u32));
                    }
                    heap_bytes = o
                        .bytes
                        .checked_next_multiple_of(HEAP_OUTPUT_ALIGN)
                        .and_then(|b| heap_bytes.checked_add(b))
                        .ok_or(OrchError::new(RuntimeErrorCode::HeapRingDeadlock, ring as u32, u64::MAX))?;
                }
                Arg::Input(t) | Arg::InOut(t) | Arg::OutputExisting(t) | Arg::NoDep(t) => {
                    let end = t.offset.checked_add(t.bytes);
                    if t.buffer.is_null() || end.is_none_or(|e| e > t.buffer_bytes) {
                        return Err(OrchError::invalid(InvalidArgs::BadTensorView, i as u32));
                    }
                    if t.creator != TaskId::NONE && !self.was_submitted(t.creator.0) {
                        return Err(OrchError::invalid(InvalidArgs::UnknownCreator, i as u32));
                    }
                    if matches!(a, Arg::InOut(_) | Arg::OutputExisting(_)) {
                        writes += 1;
                    }
                }
            }
        }
        for (i, d) in spec.deps.iter().enumerate() {
            if !self.was_submitted(d.0) {
                return Err(OrchError::invalid(InvalidArgs::UnknownDependency, i as u32));
            }
        }
        if heap_bytes > self.rings[ring].heap.size {
            return Err(OrchError::new(RuntimeErrorCode::HeapRingDeadlock, ring as u32, heap_bytes));
        }
        if writes > self.tensor_map.capacity() {
            return Err(OrchError::new(RuntimeErrorCode::TensormapOverflow, u32::MAX, writes as u64));
        }
        if self.scope_top >= self.scope_task_capacity {
            return Err(OrchError::new(RuntimeErrorCode::ScopeTasksOverflow, ring as u32, self.scope_top as u64));
        }
        Ok(Plan { lane_mask, heap_bytes, writes })
    }

    /// True when `t` was created by a task of the current scope and that scope is MANUAL: such
    /// tensors get no automatic dependencies (the orchestration orders them explicitly).
    pub(super) fn manual_local(&self, frame: &ScopeFrame, t: &Tensor) -> bool {
        if frame.kind != ScopeKind::Manual as u32 || t.creator == TaskId::NONE {
            return false;
        }
        let d = self.rt.view.descriptor(t.creator.0);
        // SAFETY: descriptors are plain SM memory written by this orchestrator only.
        unsafe { (*d).task_id == t.creator.0 && (*d).scope_serial == frame.serial }
    }

    fn submit_inner(&mut self, spec: &TaskSpec<'_>) -> Result<Submitted, OrchError> {
        let ring = self.current_ring();
        let plan = self.validate(spec, ring)?;

        // Task window: the slot to use must be free (its previous task consumed). A full window
        // is refilled in a burst once it is free again (see `wait_for_refill`).
        if !self.rings[ring].window_has_room(self.rt.last_alive(ring)) {
            self.wait_for_window(ring)?;
        }
        self.cleanup_ring(ring);

        // Tensor-map room for the writes of this task.
        if self.tensor_map.capacity() - self.tensor_map.used() < plan.writes {
            self.wait_for_tensor_map(ring, plan.writes)?;
        }

        // The packed output block.
        let (heap_offset, heap_end_pos) = self.alloc_heap(ring, plan.heap_bytes)?;

        let rv = self.rt.view.rings[ring];
        let local = self.rings[ring].current as u32;
        let id = make_task_id(ring as u32, local);
        let payload = rv.payload(local);
        prefetch_task_lines(&rv, local.wrapping_add(PREFETCH_AHEAD), spec.args.len());
        // SAFETY: the frame at the current depth was written by `push_frame`.
        let frame = unsafe { *self.frame(self.depth) };

        // Tensor descriptors and producers: explicit dependencies, creators, and earlier
        // overlapping writers. The payload is not visible to anyone before the task is
        // published, so a failure past this point leaves nothing behind.
        let block_base = rv.heap_base + heap_offset;
        let mut submitted = Submitted::new(TaskId(id), payload);
        let mut fanin = Fanin { count: 0, spill_head: NodeRef::NULL, pending: 0 };
        let task = NewTask { ring, id, payload, block_base };
        if let Err(e) = self.collect_producers(&task, &mut fanin, &mut submitted, spec, &frame) {
            return Err(self.collect_failed(e, spec, &frame));
        }

        // Room for one fanout node per producer still pending (wiring appends to those lists
        // only; a producer seen pending now may complete before wiring, never the reverse).
        let need = u64::from(fanin.pending);
        if need > self.rings[ring].pool.capacity as u64 {
            return Err(OrchError::new(RuntimeErrorCode::DepPoolOverflow, ring as u32, need));
        }
        if self.rings[ring].pool.free(self.dep_tail(ring)) < need {
            self.wait_for_fanout_nodes(ring, payload, &fanin)?;
        }

        // Commit: prepare the slot, then publish the new submit counter.
        let slot = self.rt.slot(id);
        let subtasks = if plan.lane_mask == 0 { 0 } else { spec.block_num * plan.lane_mask.count_ones() };
        slot.task_id().store(id, Ordering::Relaxed);
        slot.fanout_lock().store(0, Ordering::Relaxed);
        slot.fanout_count().store(FANOUT_SCOPE_REF, Ordering::Relaxed);
        slot.fanout_head().store(0, Ordering::Relaxed);
        slot.fanout_refcount().store(0, Ordering::Relaxed);
        slot.fanin_count().store(fanin.count + 1, Ordering::Relaxed);
        slot.fanin_refcount().store(0, Ordering::Relaxed);
        slot.lane_mask().store(plan.lane_mask, Ordering::Relaxed);
        slot.flags().store(0, Ordering::Relaxed);
        slot.subtask_total().store(subtasks, Ordering::Relaxed);
        slot.subtask_done().store(0, Ordering::Relaxed);
        slot.next_block().store(0, Ordering::Relaxed);
        slot.tensormap_chain().store(0, Ordering::Relaxed);
        slot.task_state().store(TaskState::Pending as u32, Ordering::Release);
        self.rings[ring].current += 1;
        // SAFETY: flow control is valid; the orchestrator is its only writer.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*rv.flow).current_task_index)) }
            .store(self.rings[ring].current, Ordering::Release);
        // SAFETY: `scope_top < capacity` was checked in `validate`.
        unsafe { *self.rt.view.scope_tasks.add(self.scope_top as usize) = id };
        self.scope_top += 1;

        // Descriptor and payload counts.
        let mut kernel_ids = [INACTIVE_KERNEL; LANE_COUNT];
        kernel_ids.copy_from_slice(&spec.kernels);
        // SAFETY: the slot's descriptor and payload belong to the new task, not yet visible to
        // any other thread.
        unsafe {
            let d: *mut TaskDescriptor = rv.descriptor(local);
            (*d).task_id = id;
            (*d).kernel_ids = kernel_ids;
            (*d).block_num = if plan.lane_mask == 0 { 1 } else { spec.block_num };
            (*d).lane_mask = plan.lane_mask;
            (*d).flags = 0;
            (*d).packed_buffer_base = DevAddr(block_base);
            (*d).packed_buffer_end = DevAddr(block_base + plan.heap_bytes);
            (*d).heap_end_pos = heap_end_pos;
            (*d).scope_serial = frame.serial;
            let p: &mut TaskPayload = &mut *payload;
            p.tensor_count = spec.args.len() as u32;
            p.scalar_count = spec.scalars.len() as u32;
            p.fanin_count = fanin.count;
            p.fanin_spill_count = fanin.count.saturating_sub(INLINE_FANIN as u32);
            p.fanin_spill_head = fanin.spill_head.0;
            p.scalars[..spec.scalars.len()].copy_from_slice(spec.scalars);
        }
        if self.rt.trace.on(4) {
            self.traced_edges = self.trace_edges(id, spec, &frame);
        }
        // Wire every producer: retain it, and either count it as done or join its fanout list.
        let observed = self.wire(ring, id, payload, &fanin)?;

        // Register this task as the newest writer of its INOUT / OUTPUT_EXISTING ranges.
        let mut chain = 0u32;
        for a in spec.args {
            if let Arg::InOut(t) | Arg::OutputExisting(t) = a {
                if self.manual_local(&frame, t) {
                    continue;
                }
                self.tensor_map
                    .insert(t.buffer.0, t.offset, t.offset + t.bytes, id, &mut chain)
                    .map_err(|_| OrchError::new(RuntimeErrorCode::TensormapOverflow, u32::MAX, 1))?;
            }
        }
        slot.tensormap_chain().store(chain, Ordering::Relaxed);
        slot.dep_pool_mark().store(self.rings[ring].pool.head as u32, Ordering::Relaxed);
        self.submitted += 1;

        // Drop the wiring guard: the task is routed here if every producer was already done.
        self.rt.add_fanin(id, observed + 1);
        Ok(submitted)
    }

    /// Waits until the slot of the next task of `ring` is free, then for the refill burst.
    #[cold]
    #[inline(never)]
    fn wait_for_window(&mut self, ring: usize) -> Result<(), OrchError> {
        let mut w = Waiter::new();
        while !self.rings[ring].window_has_room(self.rt.last_alive(ring)) {
            self.wait_step(ring, Resource::Window, 1, &mut w)?;
        }
        self.wait_for_refill(ring, &mut w);
        Ok(())
    }

    /// Waits until the tensor map has room for `writes` entries.
    #[cold]
    #[inline(never)]
    fn wait_for_tensor_map(&mut self, ring: usize, writes: u32) -> Result<(), OrchError> {
        let mut w = Waiter::new();
        while self.tensor_map.capacity() - self.tensor_map.used() < writes {
            self.wait_step(ring, Resource::TensorMap, writes as u64, &mut w)?;
        }
        Ok(())
    }

    /// Waits until `ring`'s dep pool has a fanout node for every listed producer still pending.
    #[cold]
    #[inline(never)]
    fn wait_for_fanout_nodes(
        &mut self,
        ring: usize,
        payload: *mut TaskPayload,
        fanin: &Fanin,
    ) -> Result<(), OrchError> {
        let mut w = Waiter::new();
        let mut need = self.pending_producers(payload, fanin);
        while self.rings[ring].pool.free(self.dep_tail(ring)) < need {
            self.wait_step(ring, Resource::DepPool, need, &mut w)?;
            need = self.pending_producers(payload, fanin);
        }
        Ok(())
    }

    /// The error of a failed [`Orchestrator::collect_producers`]: a dep pool that ran out
    /// part-way reports every edge the task needs, not the one that did not fit.
    #[cold]
    #[inline(never)]
    fn collect_failed(&self, mut e: OrchError, spec: &TaskSpec<'_>, frame: &ScopeFrame) -> OrchError {
        if e.code == RuntimeErrorCode::DepPoolOverflow {
            e.detail = self.count_producers(spec, frame);
        }
        e
    }

    /// Writes the new task's tensor descriptors (placing its runtime-allocated outputs in its
    /// packed block and recording them in `submitted`) and lists every producer in its fanin
    /// (explicit dependencies, creators, and earlier overlapping writers), taking spill nodes from
    /// the ring's dep pool as needed.
    fn collect_producers(
        &mut self,
        task: &NewTask,
        fanin: &mut Fanin,
        submitted: &mut Submitted,
        spec: &TaskSpec<'_>,
        frame: &ScopeFrame,
    ) -> Result<(), OrchError> {
        let (ring, payload) = (task.ring, task.payload);
        for d in spec.deps {
            self.add_producer(ring, payload, fanin, d.0)?;
        }
        let mut out_at = task.block_base;
        for (i, a) in spec.args.iter().enumerate() {
            let (t, dir, lookup) = match a {
                Arg::Input(t) => (t, TensorDirection::Input, true),
                Arg::InOut(t) => (t, TensorDirection::InOut, true),
                Arg::OutputExisting(t) => (t, TensorDirection::OutputExisting, false),
                Arg::NoDep(t) => (t, TensorDirection::NoDep, false),
                Arg::Output(o) => {
                    let t = Tensor {
                        buffer: DevAddr(out_at),
                        buffer_bytes: o.bytes,
                        offset: 0,
                        bytes: o.bytes,
                        creator: TaskId(task.id),
                        dtype: o.dtype,
                    };
                    out_at += o.bytes.next_multiple_of(HEAP_OUTPUT_ALIGN);
                    submitted.push_output(i, t);
                    // SAFETY: `i < MAX_TENSOR_ARGS` (validated); the payload is the new task's.
                    unsafe { write_tensor(&mut (*payload).tensors[i], &t, TensorDirection::Output) };
                    continue;
                }
            };
            // SAFETY: as above.
            unsafe { write_tensor(&mut (*payload).tensors[i], t, dir) };
            if self.manual_local(frame, t) {
                continue;
            }
            self.add_producer(ring, payload, fanin, t.creator.0)?;
            if lookup {
                let (s, e) = (t.offset, t.offset + t.bytes);
                let mut found: Vec<u64, 16> = Vec::new();
                let mut more = false;
                self.tensor_map.lookup(t.buffer.0, s, e, |p| {
                    if found.push(p).is_err() {
                        more = true;
                    }
                });
                for p in found.iter() {
                    self.add_producer(ring, payload, fanin, *p)?;
                }
                if more {
                    self.add_overflowing_lookup(ring, payload, fanin, (t.buffer.0, s, e), found.len())?;
                }
            }
        }
        Ok(())
    }

    /// Calls `visit` with every candidate producer of `spec`, in the order
    /// [`Orchestrator::collect_producers`] considers them (duplicates and finished tasks included).
    fn for_each_producer(&self, spec: &TaskSpec<'_>, frame: &ScopeFrame, visit: &mut dyn FnMut(u64)) {
        for d in spec.deps {
            visit(d.0);
        }
        for a in spec.args {
            let (t, lookup) = match a {
                Arg::Input(t) | Arg::InOut(t) => (t, true),
                Arg::OutputExisting(t) | Arg::NoDep(t) => (t, false),
                Arg::Output(_) => continue,
            };
            if self.manual_local(frame, t) {
                continue;
            }
            visit(t.creator.0);
            if lookup {
                self.tensor_map.lookup(t.buffer.0, t.offset, t.offset + t.bytes, &mut *visit);
            }
        }
    }

    /// The number of distinct live producers of `spec`: the fanin edges it needs. Quadratic in
    /// the candidates and allocation-free; only error reports use it.
    fn count_producers(&self, spec: &TaskSpec<'_>, frame: &ScopeFrame) -> u64 {
        let mut distinct = 0u64;
        let mut k = 0u64;
        self.for_each_producer(spec, frame, &mut |p| {
            if p != NO_TASK && self.rt.is_live(p) {
                let mut j = 0u64;
                let mut seen = false;
                self.for_each_producer(spec, frame, &mut |q| {
                    seen |= j < k && q == p;
                    j += 1;
                });
                distinct += u64::from(!seen);
            }
            k += 1;
        });
        distinct
    }

    fn alloc_heap(&mut self, ring: usize, bytes: u64) -> Result<(u64, u64), OrchError> {
        // The wait state is built only once the heap is full (the common submit never waits).
        let mut w: Option<Waiter> = None;
        loop {
            let tail = self.heap_tail(ring);
            match self.rings[ring].heap.try_alloc(bytes, tail) {
                HeapAlloc::Fits { offset, end_pos } => return Ok((offset, end_pos)),
                HeapAlloc::TooLarge => {
                    return Err(OrchError::new(RuntimeErrorCode::HeapRingDeadlock, ring as u32, bytes))
                }
                HeapAlloc::Wait => self.wait_step(ring, Resource::Heap, bytes, w.get_or_insert_with(Waiter::new))?,
            }
        }
    }

    pub(super) fn heap_tail(&self, ring: usize) -> u64 {
        // SAFETY: flow control is valid for the run.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*self.rt.view.rings[ring].flow).heap_tail)) }
            .load(Ordering::Acquire)
    }

    pub(super) fn dep_tail(&self, ring: usize) -> u64 {
        // SAFETY: the ring's scheduler state is valid for the run.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*self.rt.view.rings[ring].sched).dep_pool_tail)) }
            .load(Ordering::Acquire)
    }

    /// Adds producer `p` to the new task's fanin unless it is no task, already consumed, or
    /// already listed.
    #[inline(always)]
    fn add_producer(&mut self, ring: usize, payload: *mut TaskPayload, f: &mut Fanin, p: u64) -> Result<(), OrchError> {
        if p == NO_TASK || !self.rt.is_live(p) {
            return Ok(());
        }
        let inline = (f.count as usize).min(INLINE_FANIN);
        // SAFETY: the payload is the new task's (its slot is free); `inline <= INLINE_FANIN`.
        let listed = unsafe { (&(*payload).fanin)[..inline].contains(&p) };
        if listed {
            return Ok(());
        }
        if (f.count as usize) < INLINE_FANIN {
            // SAFETY: as above.
            unsafe { (*payload).fanin[f.count as usize] = p };
            f.count += 1;
            f.pending += u32::from(self.is_pending(p));
            Ok(())
        } else {
            self.add_spilled_producer(ring, f, p)
        }
    }

    /// True when live task `p` has not completed yet.
    #[inline(always)]
    fn is_pending(&self, p: u64) -> bool {
        self.rt.slot(p).task_state().load(Ordering::Acquire) == TaskState::Pending as u32
    }

    /// [`Orchestrator::add_producer`] past the inline fanin: the producer joins the spill list
    /// unless it is already there.
    #[inline(never)]
    fn add_spilled_producer(&mut self, ring: usize, f: &mut Fanin, p: u64) -> Result<(), OrchError> {
        let mut node = f.spill_head;
        let mut left = self.rt.view.dep_pools.max_list_len();
        while !node.is_null() && left > 0 {
            let (q, next) = self.rt.view.dep_pools.read(node);
            if q == p {
                return Ok(());
            }
            node = next;
            left -= 1;
        }
        // A spill node now, and room for the fanout nodes later.
        let mut w = Waiter::new();
        while self.rings[ring].pool.free(self.dep_tail(ring)) < 1 {
            if self.rings[ring].pool.capacity == 0 {
                return Err(OrchError::new(RuntimeErrorCode::DepPoolOverflow, ring as u32, f.count as u64));
            }
            self.wait_step(ring, Resource::DepPool, 1, &mut w)?;
        }
        let index = self.rings[ring].pool.take();
        let node = NodeRef::new(ring as u32, index);
        self.rt.view.dep_pools.write(node, p, f.spill_head);
        f.spill_head = node;
        f.count += 1;
        f.pending += u32::from(self.is_pending(p));
        Ok(())
    }

    /// A lookup that found more producers than fit in the scratch list: walk it again, adding
    /// all of them (the map does not change in between).
    fn add_overflowing_lookup(
        &mut self,
        ring: usize,
        payload: *mut TaskPayload,
        f: &mut Fanin,
        (buffer, s, e): (u64, u64, u64),
        already: usize,
    ) -> Result<(), OrchError> {
        let mut skip = already;
        loop {
            let mut batch: Vec<u64, 16> = Vec::new();
            let mut seen = 0usize;
            self.tensor_map.lookup(buffer, s, e, |p| {
                if seen >= skip {
                    let _ = batch.push(p);
                }
                seen += 1;
            });
            for p in batch.iter() {
                self.add_producer(ring, payload, f, *p)?;
            }
            skip += batch.len();
            if skip >= seen {
                return Ok(());
            }
        }
    }

    /// How many listed producers are still pending (each needs a fanout node when wired).
    fn pending_producers(&self, payload: *mut TaskPayload, f: &Fanin) -> u64 {
        let pending = |p: u64| p != NO_TASK && self.is_pending(p);
        let inline = (f.count as usize).min(INLINE_FANIN);
        // SAFETY: the payload is the new task's (its slot is free); `i < INLINE_FANIN`.
        let mut n = (0..inline).filter(|i| pending(unsafe { (*payload).fanin[*i] })).count() as u64;
        let mut node = f.spill_head;
        let mut left = self.rt.view.dep_pools.max_list_len();
        while !node.is_null() && left > 0 {
            let (p, next) = self.rt.view.dep_pools.read(node);
            n += pending(p) as u64;
            node = next;
            left -= 1;
        }
        n
    }

    /// Wires the new task `id` to each listed producer under the producer's lock; returns the
    /// number of producers found already done (counted by this thread). A producer lock that stays
    /// held ends it with `SLOT_LOCK_TIMEOUT`: the task keeps its wiring guard, so it never runs.
    fn wire(&mut self, ring: usize, id: u64, payload: *mut TaskPayload, f: &Fanin) -> Result<u32, OrchError> {
        let mut observed = 0;
        let inline = (f.count as usize).min(INLINE_FANIN);
        for i in 0..inline {
            // SAFETY: the payload is the new task's; `i < INLINE_FANIN`.
            let p = unsafe { (*payload).fanin[i] };
            if !self.wire_one(ring, id, p, &mut observed)? {
                // SAFETY: as above.
                unsafe { (*payload).fanin[i] = NO_TASK };
            }
        }
        let mut node = f.spill_head;
        let mut left = self.rt.view.dep_pools.max_list_len();
        while !node.is_null() && left > 0 {
            let (p, next) = self.rt.view.dep_pools.read(node);
            if !self.wire_one(ring, id, p, &mut observed)? {
                self.rt.view.dep_pools.write(node, NO_TASK, next);
            }
            node = next;
            left -= 1;
        }
        Ok(observed)
    }

    /// Wires one edge; false when the producer turned out to be gone (no edge, nothing to release).
    #[inline]
    fn wire_one(&mut self, ring: usize, id: u64, p: u64, observed: &mut u32) -> Result<bool, OrchError> {
        let ps = self.rt.slot(p);
        self.rt.lock_slot(p, &ps).map_err(super::lock_error)?;
        let state = ps.task_state().load(Ordering::Relaxed);
        if ps.task_id().load(Ordering::Relaxed) != p || state == TaskState::Consumed as u32 {
            self.rt.unlock_slot(&ps);
            *observed += 1;
            return Ok(false);
        }
        let c = ps.fanout_count().load(Ordering::Relaxed);
        ps.fanout_count().store(c + 1, Ordering::Relaxed);
        if state == TaskState::Completed as u32 {
            *observed += 1;
        } else {
            let index = self.rings[ring].pool.take();
            let node = NodeRef::new(ring as u32, index);
            self.rt.view.dep_pools.write(node, id, NodeRef(ps.fanout_head().load(Ordering::Relaxed)));
            ps.fanout_head().store(node.0, Ordering::Relaxed);
        }
        self.rt.unlock_slot(&ps);
        Ok(true)
    }
}

impl super::OrchRing {
    #[inline(always)]
    fn window_has_room(&self, alive: u64) -> bool {
        self.current.wrapping_sub(alive) < self.window
    }
}

/// Submits ahead whose lines a submit prefetches: the slot after next (the next one's lines are
/// already on their way).
const PREFETCH_AHEAD: u32 = 2;

/// Prefetches the lines a submit of `local` with `tensors` tensor arguments writes: its slot
/// state, its descriptor, its payload's counts and first fanin ids (one line), and its tensor
/// descriptors. Every
/// task reuses a slot last touched a whole window earlier, so these lines usually come from memory.
#[inline(always)]
fn prefetch_task_lines(rv: &crate::view::RingView, local: u32, tensors: usize) {
    use crate::sync::prefetch_write;
    let p = rv.payload(local);
    prefetch_write(rv.slot(local));
    prefetch_write(rv.descriptor(local));
    prefetch_write(p);
    let first = p.cast::<u8>().wrapping_add(core::mem::offset_of!(TaskPayload, tensors));
    for i in 0..tensors.min(4) {
        // A one-dimensional tensor descriptor is written in its first line only.
        prefetch_write(first.wrapping_add(i * core::mem::size_of::<TensorDesc>()));
    }
}

#[inline(always)]
fn write_tensor(d: &mut TensorDesc, t: &Tensor, dir: TensorDirection) {
    d.buffer = t.buffer;
    d.buffer_bytes = t.buffer_bytes;
    d.view_offset = t.offset;
    d.view_bytes = t.bytes;
    d.creator_task = t.creator.0;
    d.dtype = t.dtype as u32;
    d.ndims = 1;
    d.direction = dir as u32;
    d.dims[0] = TensorDim { extent: t.elements().min(u32::MAX as u64) as u32, stride: 1 };
}
