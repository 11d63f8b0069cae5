//! A runtime laid out in host memory, for tests and host tools that exercise device code without
//! a backend: zeroed 1024-aligned regions for arena, SM and GM heap, an image header and a runtime
//! header wired the way boot wires them, then `reset_for_reuse`.

extern crate std;

use pto_abi::image::{ImageHeader, IMAGE_MAGIC};
use pto_abi::layout::RuntimeArenaLayout;
use pto_abi::runtime::{RuntimeHeader, RUNTIME_MAGIC};
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::sm::{SmHeader, SM_MAGIC};
use pto_abi::{heap_layout, reserve_layout, sm_layout, DevAddr, LayoutError, ABI_FINGERPRINT, ABI_VERSION};

use crate::hostmem::HostRegion;
use crate::view::RuntimeView;

/// A runtime in host memory.
pub struct HostRuntime {
    arena: HostRegion,
    _sm: HostRegion,
    _heap: HostRegion,
    layout: RuntimeArenaLayout,
}

impl HostRuntime {
    /// Lays out and wires a runtime for `sizing`, then resets it for a first run.
    pub fn new(sizing: &ArenaSizingKey) -> Result<Self, LayoutError> {
        let layout = reserve_layout(sizing)?;
        let sm_l = sm_layout(sizing)?;
        let heap_l = heap_layout(sizing)?;
        let o = layout.offsets;
        let arena = HostRegion::new(o.arena_size);
        let sm = HostRegion::new(sm_l.total_size);
        let heap = HostRegion::new(heap_l.total_size);
        let (a, s, h) = (arena.addr(), sm.addr(), heap.addr());
        let at = |base: DevAddr, off: u64| DevAddr(base.0 + off);
        // SAFETY: the regions are zeroed, aligned and large enough for the structures written.
        unsafe {
            let img = arena.ptr().cast::<ImageHeader>();
            (*img).magic = IMAGE_MAGIC;
            (*img).abi_version = ABI_VERSION;
            (*img).header_size = core::mem::size_of::<ImageHeader>() as u32;
            (*img).abi_fingerprint = ABI_FINGERPRINT;
            (*img).image_size = o.arena_size;
            (*img).built_arena_base = a;
            (*img).built_sm_base = s;
            (*img).built_heap_base = h;
            (*img).sm_size = sm_l.total_size;
            (*img).heap_size = heap_l.total_size;
            (*img).runtime_header_offset = o.runtime_header.offset;
            (*img).layout = layout;

            let rh = arena.ptr().add(o.runtime_header.offset as usize).cast::<RuntimeHeader>();
            let r = &mut *rh;
            r.magic = RUNTIME_MAGIC;
            r.abi_fingerprint = ABI_FINGERPRINT;
            r.arena_base = a;
            r.image_header = at(a, o.image_header.offset);
            r.sm_handle = at(a, o.sm_handle.offset);
            r.orch_state = at(a, o.orch_state.offset);
            r.scope_stack = at(a, o.scope_stack.offset);
            r.scope_tasks = at(a, o.scope_tasks.offset);
            r.ring_sched = at(a, o.ring_sched.offset);
            r.sched_threads = at(a, o.sched_threads.offset);
            for q in 0..o.ready_queues.len() {
                r.ready_queues[q] = at(a, o.ready_queues[q].offset);
            }
            r.tensor_map_buckets = at(a, o.tensor_map_buckets.offset);
            r.tensor_map_entries = at(a, o.tensor_map_entries.offset);
            for p in 0..o.dep_pools.len() {
                r.dep_pools[p] = at(a, o.dep_pools[p].offset);
            }
            r.mailbox = at(a, o.mailbox.offset);
            r.core_registers = at(a, o.core_registers.offset);
            r.handshakes = at(a, o.handshakes.offset);
            r.core_payloads = at(a, o.core_payloads.offset);
            r.sm_base = s;
            r.heap_base = h;
            for ring in 0..sm_l.rings.len() {
                r.ring_descriptors[ring] = at(s, sm_l.rings[ring].descriptors.offset);
                r.ring_payloads[ring] = at(s, sm_l.rings[ring].payloads.offset);
                r.ring_slot_states[ring] = at(s, sm_l.rings[ring].slot_states.offset);
                r.ring_heaps[ring] = at(h, heap_l.rings[ring].offset);
            }
            r.epoch = 1;
            r.ready = 1;

            let smh = sm.ptr().cast::<SmHeader>();
            (*smh).magic = SM_MAGIC;
            (*smh).abi_fingerprint = ABI_FINGERPRINT;
            (*smh).total_size = sm_l.total_size;
            (*smh).ring_count = sm_l.rings.len() as u32;
            for ring in 0..sm_l.rings.len() {
                let rr = &mut (*smh).rings[ring];
                rr.task_window = sizing.task_window_sizes[ring];
                rr.window_mask = sizing.task_window_sizes[ring] - 1;
                rr.heap_size = sizing.heap_sizes[ring];
                rr.heap_offset = heap_l.rings[ring].offset;
                rr.descriptors_offset = sm_l.rings[ring].descriptors.offset;
                rr.payloads_offset = sm_l.rings[ring].payloads.offset;
                rr.slot_states_offset = sm_l.rings[ring].slot_states.offset;
            }
        }
        let rt = HostRuntime { arena, _sm: sm, _heap: heap, layout };
        rt.reset();
        Ok(rt)
    }

    /// The runtime header.
    pub fn header(&self) -> *mut RuntimeHeader {
        // SAFETY: the offset lies inside the arena.
        unsafe { self.arena.ptr().add(self.layout.offsets.runtime_header.offset as usize).cast() }
    }

    /// A view of the runtime.
    pub fn view(&self) -> RuntimeView {
        // SAFETY: the header was wired in `new` and the regions live as long as `self`.
        unsafe { RuntimeView::from_header(self.header()) }.expect("a host runtime is always wired")
    }

    /// Resets for the next run the way boot does on a resident image: orchestrator, scheduler,
    /// per-thread and flow-control state and the SM error words zeroed, then the runtime's hook.
    pub fn reset(&self) {
        let v = self.view();
        // SAFETY: no other thread uses the runtime between runs; every pointer is valid.
        unsafe {
            core::ptr::write_bytes(v.orch_state, 0, 1);
            for r in 0..pto_abi::consts::RING_COUNT {
                core::ptr::write_bytes(v.rings[r].sched, 0, 1);
                core::ptr::write_bytes(v.rings[r].flow, 0, 1);
            }
            core::ptr::write_bytes(v.sched_threads, 0, pto_abi::consts::MAX_AICPU_THREADS);
            core::ptr::write_bytes(core::ptr::addr_of_mut!((*v.sm).orch), 0, 1);
            core::ptr::write_bytes(core::ptr::addr_of_mut!((*v.sm).sched), 0, 1);
            (*self.header()).epoch += 1;
        }
        // SAFETY: no other thread uses the runtime between runs.
        unsafe { crate::reset::reset_runtime_structures(&v) };
    }

    /// The layout.
    pub fn layout(&self) -> &RuntimeArenaLayout {
        &self.layout
    }
}
