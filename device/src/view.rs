//! Typed access to every structure of a booted runtime: the arena regions named by the runtime
//! header and the per-ring arrays in SM and the GM heap.
//!
//! A [`RuntimeView`] holds raw pointers taken from a wired [`RuntimeHeader`] (every class-A and
//! class-B field already points at this boot's memory); building one is the only unsafe step.

use core::mem::size_of;

use pto_abi::consts::{CACHE_LINE, MAX_CORES, READY_QUEUE_COUNT, RING_COUNT};
use pto_abi::image::ImageHeader;
use pto_abi::launch::{AicorePayload, CoreRegisters, HandshakeRecord};
use pto_abi::layout::RuntimeArenaLayout;
use pto_abi::runtime::{OrchState, RingSchedState, RuntimeHeader, SchedThreadState, ScopeFrame};
use pto_abi::sm::{RingFlowControl, SmHeader};
use pto_abi::task::{task_id_local, task_id_ring, SlotState, TaskDescriptor, TaskPayload};
use pto_abi::{reserve_layout, DevAddr};

use crate::deppool::{DepPool, DepPools};
use crate::queue::ReadyQueue;
use crate::ring::TaskWindow;

/// One ring's arrays and counters.
#[derive(Clone, Copy, Debug)]
pub struct RingView {
    /// `window` task descriptors (SM).
    pub descriptors: *mut TaskDescriptor,
    /// `window` task payloads (SM).
    pub payloads: *mut TaskPayload,
    /// `window` slot states (SM).
    pub slots: *mut SlotState,
    /// The task window.
    pub window: TaskWindow,
    /// Device address of the ring heap.
    pub heap_base: u64,
    /// Bytes of the ring heap.
    pub heap_size: u64,
    /// Flow-control counters of the ring (SM).
    pub flow: *mut RingFlowControl,
    /// Scheduler state of the ring (arena).
    pub sched: *mut RingSchedState,
}

impl RingView {
    /// The slot state of task `local`.
    #[inline(always)]
    pub fn slot(&self, local: u32) -> *mut SlotState {
        // SAFETY: the slot index is below the window, the length of the slot array.
        unsafe { self.slots.add(self.window.slot(local)) }
    }

    /// The descriptor of task `local`.
    #[inline(always)]
    pub fn descriptor(&self, local: u32) -> *mut TaskDescriptor {
        // SAFETY: as in `slot`.
        unsafe { self.descriptors.add(self.window.slot(local)) }
    }

    /// The payload of task `local`.
    #[inline(always)]
    pub fn payload(&self, local: u32) -> *mut TaskPayload {
        // SAFETY: as in `slot`.
        unsafe { self.payloads.add(self.window.slot(local)) }
    }
}

/// Why a runtime header cannot be viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    /// A pointer the view needs is null.
    NullPointer(&'static str),
    /// The layout stored in the image does not match the one computed from its sizing.
    LayoutMismatch,
    /// The launch's trace region no longer passes the checks boot made (this field or rule).
    TraceRegion(&'static str),
}

/// Every structure of a booted runtime.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeView {
    /// The runtime header.
    pub header: *mut RuntimeHeader,
    /// The layout stored in the image.
    pub layout: RuntimeArenaLayout,
    /// The SM header.
    pub sm: *mut SmHeader,
    /// Orchestrator state.
    pub orch_state: *mut OrchState,
    /// Scope stack frames.
    pub scope_stack: *mut ScopeFrame,
    /// Task ids of the open scopes.
    pub scope_tasks: *mut u64,
    /// Per-thread scheduler state.
    pub sched_threads: *mut SchedThreadState,
    /// Per-ring arrays.
    pub rings: [RingView; RING_COUNT],
    /// Ready queues by [`crate::queue::Shape`].
    pub queues: [ReadyQueue; READY_QUEUE_COUNT],
    /// Per-ring dep-list pools.
    pub dep_pools: DepPools,
    /// Tensor-map bucket heads.
    pub tensor_map_buckets: *mut u32,
    /// Tensor-map entry pool (entry 0 is the sentinel).
    pub tensor_map_entries: *mut pto_abi::runtime::TensorMapEntry,
    /// AICore registers, one per core.
    pub core_registers: *mut CoreRegisters,
    /// AICore handshake records, one per core.
    pub handshakes: *mut HandshakeRecord,
    /// AICore payloads, two per core.
    pub core_payloads: *mut AicorePayload,
}

// SAFETY: the view is a set of addresses; shared access goes through atomics or single owners.
unsafe impl Send for RuntimeView {}
// SAFETY: as above.
unsafe impl Sync for RuntimeView {}

fn ptr<T>(addr: DevAddr, name: &'static str) -> Result<*mut T, ViewError> {
    if addr.is_null() {
        Err(ViewError::NullPointer(name))
    } else {
        Ok(addr.0 as usize as *mut T)
    }
}

impl RuntimeView {
    /// Views the runtime whose header is at `header`.
    ///
    /// # Safety
    /// `header` points to a runtime header whose class-A and class-B pointers were wired for this
    /// boot (each points at memory of at least the size its layout region or SM/heap layout
    /// gives), and that memory stays valid while the view or any copy of it is used.
    pub unsafe fn from_header(header: *mut RuntimeHeader) -> Result<Self, ViewError> {
        // SAFETY: the caller guarantees the header is valid.
        let h = unsafe { &*header };
        let image: *mut ImageHeader = ptr(h.image_header, "image_header")?;
        // SAFETY: a wired header's image pointer is the arena base holding the image header.
        let layout = unsafe { (*image).layout };
        if reserve_layout(&layout.sizing).ok() != Some(layout) {
            return Err(ViewError::LayoutMismatch);
        }
        let o = &layout.offsets;
        let sizing = &layout.sizing;
        let sched: *mut RingSchedState = ptr(h.ring_sched, "ring_sched")?;
        let sm: *mut SmHeader = ptr(h.sm_base, "sm_base")?;
        let mut rings = [RingView {
            descriptors: core::ptr::null_mut(),
            payloads: core::ptr::null_mut(),
            slots: core::ptr::null_mut(),
            window: TaskWindow { window: 4 },
            heap_base: 0,
            heap_size: 0,
            flow: core::ptr::null_mut(),
            sched: core::ptr::null_mut(),
        }; RING_COUNT];
        for (r, ring) in rings.iter_mut().enumerate() {
            *ring = RingView {
                descriptors: ptr(h.ring_descriptors[r], "ring_descriptors")?,
                payloads: ptr(h.ring_payloads[r], "ring_payloads")?,
                slots: ptr(h.ring_slot_states[r], "ring_slot_states")?,
                window: TaskWindow { window: sizing.task_window_sizes[r] },
                heap_base: h.ring_heaps[r].0,
                heap_size: sizing.heap_sizes[r],
                // SAFETY: the SM header is valid; `flow` has RING_COUNT entries.
                flow: unsafe { core::ptr::addr_of_mut!((*sm).flow[r]) },
                // SAFETY: the ring_sched region holds RING_COUNT entries.
                sched: unsafe { sched.add(r) },
            };
            if ring.heap_base == 0 {
                return Err(ViewError::NullPointer("ring_heaps"));
            }
        }
        let mut queues = [None; READY_QUEUE_COUNT];
        for (q, slot) in queues.iter_mut().enumerate() {
            let base: *mut u8 = ptr(h.ready_queues[q], "ready_queues")?;
            // SAFETY: the region holds a header plus `ready_queue_capacity` cells.
            *slot = Some(unsafe { ReadyQueue::from_raw(base, o.ready_queue_capacity) });
        }
        let mut pools = [None; RING_COUNT];
        for (r, slot) in pools.iter_mut().enumerate() {
            let base = ptr(h.dep_pools[r], "dep_pools")?;
            // SAFETY: the region holds capacity + 1 entries.
            *slot = Some(unsafe { DepPool::from_raw(base, sizing.dep_pool_capacities[r]) });
        }
        Ok(RuntimeView {
            header,
            layout,
            sm,
            orch_state: ptr(h.orch_state, "orch_state")?,
            scope_stack: ptr(h.scope_stack, "scope_stack")?,
            scope_tasks: ptr(h.scope_tasks, "scope_tasks")?,
            sched_threads: ptr(h.sched_threads, "sched_threads")?,
            rings,
            queues: queues.map(|q| q.expect("every queue set above")),
            dep_pools: DepPools { rings: pools.map(|p| p.expect("every pool set above")) },
            tensor_map_buckets: ptr(h.tensor_map_buckets, "tensor_map_buckets")?,
            tensor_map_entries: ptr(h.tensor_map_entries, "tensor_map_entries")?,
            core_registers: ptr(h.core_registers, "core_registers")?,
            handshakes: ptr(h.handshakes, "handshakes")?,
            core_payloads: ptr(h.core_payloads, "core_payloads")?,
        })
    }

    /// The ring view of a task id.
    #[inline(always)]
    pub fn ring_of(&self, task: u64) -> &RingView {
        &self.rings[task_id_ring(task) as usize & (RING_COUNT - 1)]
    }

    /// The slot state of a task id.
    #[inline(always)]
    pub fn slot(&self, task: u64) -> *mut SlotState {
        self.ring_of(task).slot(task_id_local(task))
    }

    /// The descriptor of a task id.
    #[inline(always)]
    pub fn descriptor(&self, task: u64) -> *mut TaskDescriptor {
        self.ring_of(task).descriptor(task_id_local(task))
    }

    /// The payload of a task id.
    #[inline(always)]
    pub fn payload(&self, task: u64) -> *mut TaskPayload {
        self.ring_of(task).payload(task_id_local(task))
    }

    /// Registers of core `core` (< `MAX_CORES`).
    pub fn registers(&self, core: usize) -> *mut CoreRegisters {
        debug_assert!(core < MAX_CORES);
        // SAFETY: the region holds MAX_CORES entries.
        unsafe { self.core_registers.add(core) }
    }

    /// Handshake record of core `core` (< `MAX_CORES`).
    pub fn handshake(&self, core: usize) -> *mut HandshakeRecord {
        debug_assert!(core < MAX_CORES);
        // SAFETY: the region holds MAX_CORES entries.
        unsafe { self.handshakes.add(core) }
    }

    /// Payload `parity` (0 or 1) of core `core`.
    pub fn core_payload(&self, core: usize, parity: usize) -> *mut AicorePayload {
        debug_assert!(core < MAX_CORES && parity < 2);
        // SAFETY: the region holds 2 × MAX_CORES entries.
        unsafe { self.core_payloads.add(core * 2 + parity) }
    }
}

const _: () = assert!(size_of::<SlotState>() as u64 == CACHE_LINE);
