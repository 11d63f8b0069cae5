//! The runtime's part of preparing a resident arena for the next run.
//!
//! Boot (`boot::reset`) zeroes the orchestrator, scheduler and flow-control state and regenerates
//! the ready queues and the tensor-map bucket heads at every boot, from the layout alone, because
//! the arena's contents are untrusted. [`reset_runtime_structures`] does the same for a runtime
//! that was not booted from an image (host-memory runtimes of tests and tools). The tensor map's
//! sentinel entry carries a dirty mark that says whether a run ended with entries still linked;
//! it is informational only (nothing at boot trusts it).

use core::ptr::addr_of_mut;
use core::sync::atomic::Ordering;

use crate::tensormap::TensorMap;
use crate::view::RuntimeView;

fn dirty_mark(view: &RuntimeView) -> &core::sync::atomic::AtomicU32 {
    // SAFETY: entry 0 of the tensor-map pool is the sentinel, never handed out; its `live` word is
    // only accessed through this atomic.
    unsafe { crate::sync::atomic_u32(addr_of_mut!((*view.tensor_map_entries).live)) }
}

/// The tensor map of `view` (allocation state as persisted in the orchestrator state).
///
/// # Safety
/// Only one thread uses the returned map (the orchestrator during a run, or the thread finishing
/// or booting a run when no other thread runs).
pub unsafe fn tensor_map(view: &RuntimeView) -> TensorMap {
    let o = &view.layout.offsets;
    // SAFETY: the regions come from the wired header; exclusivity is the caller's contract.
    let mut map = unsafe {
        TensorMap::from_raw(
            view.tensor_map_buckets,
            o.tensor_map_bucket_count,
            view.tensor_map_entries,
            o.tensor_map_entry_count,
        )
    };
    // SAFETY: the orchestrator state is valid.
    map.load_state(unsafe { &*view.orch_state });
    map
}

/// Marks the tensor map as possibly holding linked entries (the orchestrator, before inserting).
pub fn mark_tensor_map_dirty(view: &RuntimeView) {
    dirty_mark(view).store(1, Ordering::Release);
}

/// Marks the tensor map empty (a run ended with every entry reclaimed).
pub fn mark_tensor_map_clean(view: &RuntimeView) {
    dirty_mark(view).store(0, Ordering::Release);
}

/// True when the last run may have left tensor-map entries linked (informational: boot trusts
/// no tensor-map memory, see [`crate::tensormap`]).
pub fn tensor_map_dirty(view: &RuntimeView) -> bool {
    dirty_mark(view).load(Ordering::Acquire) != 0
}

/// Regenerates the runtime's structures of `view` the way boot does: every ready queue empty
/// (header, cursors and cells), the tensor-map bucket heads cleared and the map marked clean.
/// Call after the orchestrator state was zeroed (the map's allocation state restarts empty).
///
/// # Safety
/// No other thread uses the runtime during the call, and `view` describes this runtime's memory.
pub unsafe fn reset_runtime_structures(view: &RuntimeView) {
    for q in &view.queues {
        // SAFETY: no other thread uses the queues (the caller's contract).
        unsafe { q.init() };
    }
    // SAFETY: as above.
    unsafe { tensor_map(view) }.init();
    mark_tensor_map_clean(view);
}

/// End of a run, once every task completed and the watermarks advanced: reclaims the tensor-map
/// chains of every consumed task (continuing from the cursors the orchestrator persisted) and marks
/// the map clean when nothing is left, so the next boot skips the bucket clear.
///
/// # Safety
/// No other thread uses the runtime (the orchestrator finished and every scheduler stopped).
pub unsafe fn reclaim_after_run(view: &RuntimeView) {
    use crate::ring::TaskWindow;
    use pto_abi::consts::RING_COUNT;
    // SAFETY: exclusive use is the caller's contract.
    let mut map = unsafe { tensor_map(view) };
    // SAFETY: as above.
    let st = unsafe { &mut *view.orch_state };
    for r in 0..RING_COUNT {
        let rv = &view.rings[r];
        // SAFETY: flow control is valid.
        let alive = unsafe { (*rv.flow).last_task_alive };
        let mut cleaned = TaskWindow::widen(st.rings[r].tensormap_cleaned, alive).min(alive);
        while cleaned < alive {
            // SAFETY: slots behind the watermark keep their chains until reused by a later run.
            let chain = unsafe { (*rv.slot(cleaned as u32)).tensormap_chain };
            if chain != 0 {
                map.release_chain(chain);
            }
            cleaned += 1;
        }
        st.rings[r].tensormap_cleaned = cleaned as u32;
    }
    map.store_state(st);
    if map.used() == 0 {
        mark_tensor_map_clean(view);
    }
}
