//! Preparing a resident runtime for a run: the structures the device generates itself.
//!
//! A freshly built image holds zeros in every region below; the first boot initialises them
//! (`init_device_state`) and marks the arena. Every later boot resets in O(1): the per-ring
//! counters are monotonic across runs, so declaring every earlier task consumed
//! (`last_task_alive = current_task_index`, tails = heads) makes a previous run's leftovers
//! unreachable; their tensor-map entries are reclaimed lazily by the orchestrator's cleanup, and
//! only queue entries a failed run left behind are drained.

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use pto_abi::consts::{MAX_AICPU_THREADS, MAX_SCOPE_DEPTH, RING_COUNT};
use pto_abi::runtime::DEVICE_INIT_MAGIC;

use crate::sync::{atomic_u32, atomic_u64};
use crate::tensormap::TensorMap;
use crate::view::RuntimeView;

/// Generates every device-side initial pattern: empty queues, an empty tensor map, zeroed
/// orchestrator and scheduler state and flow control. O(arena); first boot only.
pub fn init_device_state(view: &RuntimeView) {
    for q in &view.queues {
        q.init();
    }
    let o = &view.layout.offsets;
    // SAFETY: the view's regions are valid and no other thread runs during boot.
    unsafe {
        TensorMap::from_raw(
            view.tensor_map_buckets,
            o.tensor_map_bucket_count,
            view.tensor_map_entries,
            o.tensor_map_entry_count,
        )
        .init();
        core::ptr::write_bytes(view.orch_state, 0, 1);
        core::ptr::write_bytes(view.scope_stack, 0, MAX_SCOPE_DEPTH);
        for r in 0..RING_COUNT {
            core::ptr::write_bytes(view.rings[r].sched, 0, 1);
            let flow = view.rings[r].flow;
            (*flow).current_task_index = 0;
            (*flow).last_task_alive = 0;
            (*flow).heap_tail = 0;
        }
        (*view.orch_state).device_init = DEVICE_INIT_MAGIC;
    }
    clear_run_words(view);
}

/// Resets the runtime for the next run in O(1) (plus draining queue entries a failed run left).
/// Runs [`init_device_state`] instead when the arena has never been initialised.
pub fn reset_for_reuse(view: &RuntimeView) {
    // SAFETY: boot runs before any other thread touches the runtime.
    let st = unsafe { &mut *view.orch_state };
    if st.device_init != DEVICE_INIT_MAGIC {
        init_device_state(view);
        return;
    }
    for r in 0..RING_COUNT {
        let rv = &view.rings[r];
        // SAFETY: flow control and ring scheduler state are valid; no other thread runs.
        unsafe {
            let current = atomic_u64(addr_of_mut!((*rv.flow).current_task_index)).load(Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*rv.flow).last_task_alive)).store(current, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*rv.flow).heap_tail)).store(st.rings[r].heap_head, Ordering::Relaxed);
            atomic_u64(addr_of_mut!((*rv.sched).dep_pool_tail)).store(st.rings[r].dep_pool_head, Ordering::Relaxed);
            atomic_u32(addr_of_mut!((*rv.sched).advance_lock)).store(0, Ordering::Relaxed);
            atomic_u32(addr_of_mut!((*rv.sched).advance_pending)).store(0, Ordering::Relaxed);
        }
    }
    for q in &view.queues {
        q.drain();
    }
    st.scope_depth = 0;
    st.scope_tasks_top = 0;
    clear_run_words(view);
}

/// Clears the SM error words and per-thread counters of the previous run.
fn clear_run_words(view: &RuntimeView) {
    // SAFETY: the SM header and thread states are valid; no other thread runs during boot.
    unsafe {
        core::ptr::write_bytes(addr_of_mut!((*view.sm).orch), 0, 1);
        core::ptr::write_bytes(addr_of_mut!((*view.sm).sched), 0, 1);
        (*view.sm).orch.ring = u32::MAX;
        core::ptr::write_bytes(view.sched_threads, 0, MAX_AICPU_THREADS);
    }
    core::sync::atomic::fence(Ordering::Release);
}
