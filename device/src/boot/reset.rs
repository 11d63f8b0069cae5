//! Reset for reuse: make a resident runtime logically empty for the next run.
//!
//! Run-time links (class D) are made unreachable by bumping the epoch and resetting counters, not
//! by clearing memory. Per-slot state is cleared in full (O(window)) only when it cannot be told
//! apart by epoch: on the first boot of a freshly uploaded image (its epoch restarts at 0 while SM
//! may hold slots of an earlier image) and when the 32-bit slot epoch wraps.
//!
//! **Device memory is untrusted.** Validation proves that the image header and the layout are the
//! ones this firmware computes; it proves nothing about the rest of the arena. So every boot puts
//! every arena structure the runtime reads before writing it into a known state derived from the
//! layout alone, never from what the image holds:
//!
//! | structure | at every boot |
//! |---|---|
//! | SM header (ring metadata, flow-control counters, error words, stall record) | rewritten; the stall record names no task ([`NO_TASK`]) |
//! | orchestrator state, per-ring scheduler state, per-thread scheduler state | zeroed (first fault task [`NO_TASK`]) |
//! | ready queues: header, both cursors, the `written` mark | regenerated as an empty queue in O(1); cells are written ahead of their first use and never read before (see [`crate::queue::ReadyQueue`]) |
//! | tensor-map sentinel entry, free list, fresh cursor | sentinel zeroed; free list and fresh cursor restart empty with the orchestrator state; bucket heads are validated on every read, so none is cleared (see [`crate::tensormap`]) |
//! | dep-pool free state | restarts with the orchestrator and scheduler state (head, cursor, tail 0); nodes are written before they are read |
//! | scope stack | zeroed (512 bytes) |
//! | mailbox tickets | consumer ticket = producer ticket (an empty mailbox at any ticket) |
//! | AICore registers and handshakes | boot state, O(`MAX_CORES`) |
//!
//! Structures left as the image holds them are only ever read after this run wrote them: task
//! descriptors, payloads and slot states of the run's own tasks, tensor-map entries (handed out
//! fresh from index 1 and fully written on insert), dep-pool nodes (handed out from index 1 and
//! written before they are linked) and the scope task list (written at submit).

use core::ptr;

use pto_abi::consts::{MAX_SCOPE_DEPTH, READY_QUEUE_COUNT, RING_COUNT};
use pto_abi::runtime::{MailboxHeader, OrchState, RingSchedState, SchedThreadState, ScopeFrame, TensorMapEntry};
use pto_abi::sm::{SmHeader, SmRingHeader, SM_MAGIC};
use pto_abi::task::NO_TASK;
use pto_abi::ABI_FINGERPRINT;
use zerocopy::FromZeros;

use crate::queue::ReadyQueue;

use super::{dev_ptr, BootedRuntime};

/// How much a boot must reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    /// The resident image ran before in this epoch sequence: O(1) reset.
    Reuse,
    /// First boot of a freshly uploaded image, or the slot epoch wrapped: per-slot state is
    /// cleared too (O(window)).
    Full,
}

/// The epoch of the boot after one that left `epoch` and `boot_count`, and the reset it needs.
///
/// Epochs start at 1 (an image carries 0); the 32-bit slot epoch never takes the value 0, which
/// marks a cleared slot.
pub const fn next_epoch(epoch: u64, boot_count: u64) -> (u64, ResetKind) {
    let mut next = epoch.wrapping_add(1);
    let wrapped = next as u32 == 0;
    if wrapped {
        next = next.wrapping_add(1);
    }
    let kind = if boot_count == 0 || wrapped { ResetKind::Full } else { ResetKind::Reuse };
    (next, kind)
}

/// Resets the booted runtime for a new run.
///
/// # Safety
/// `rt` must describe a wired and rebound runtime in device memory that no other thread touches
/// until boot publishes "ready".
pub unsafe fn reset_for_reuse(rt: &BootedRuntime, kind: ResetKind) {
    // SAFETY: the caller guarantees exclusive access to the runtime's regions during boot.
    unsafe {
        init_sm_header(rt);
        if kind == ResetKind::Full {
            clear_slot_states(rt);
        }
        reset_orchestrator_and_scheduler_state(rt);
        reset_runtime_structures(rt, kind);
    }
}

/// Writes the SM header: per-ring metadata from the layout, flow-control counters and error
/// words zero. O(1) in the window.
///
/// # Safety
/// As for [`reset_for_reuse`].
pub unsafe fn init_sm_header(rt: &BootedRuntime) {
    let sm = rt.sm_layout();
    let heap = rt.heap_layout();
    let sizing = &rt.layout().sizing;
    let mut h = SmHeader::new_zeroed();
    h.magic = SM_MAGIC;
    h.abi_fingerprint = ABI_FINGERPRINT;
    h.total_size = sm.total_size;
    h.ring_count = RING_COUNT as u32;
    // A cleared stall record names no task (task id 0 is ring 0's first task).
    h.sched.stall_task = NO_TASK;
    for r in 0..RING_COUNT {
        let window = sizing.task_window_sizes[r];
        h.rings[r] = SmRingHeader {
            task_window: window,
            window_mask: window - 1,
            heap_size: heap.rings[r].size,
            heap_offset: heap.rings[r].offset,
            descriptors_offset: sm.rings[r].descriptors.offset,
            payloads_offset: sm.rings[r].payloads.offset,
            slot_states_offset: sm.rings[r].slot_states.offset,
            _pad: [0; 8],
        };
    }
    // SAFETY: SM holds an SmHeader at offset 0 (validated region size >= layout), 64-aligned base.
    unsafe { ptr::write(rt.sm_header(), h) };
}

/// Zeroes every ring's slot-state array. O(window); only for [`ResetKind::Full`].
///
/// # Safety
/// As for [`reset_for_reuse`].
pub unsafe fn clear_slot_states(rt: &BootedRuntime) {
    for r in 0..RING_COUNT {
        let region = rt.sm_layout().rings[r].slot_states;
        // SAFETY: the slot-state array lies inside the validated SM region.
        unsafe { ptr::write_bytes(rt.sm_ptr::<u8>(region), 0, region.size as usize) };
    }
}

/// Resets orchestrator state, per-ring scheduler state and per-thread scheduler state. O(1).
///
/// # Safety
/// As for [`reset_for_reuse`].
pub unsafe fn reset_orchestrator_and_scheduler_state(rt: &BootedRuntime) {
    // SAFETY: the header is wired; each pointer is the validated base of its arena sub-region,
    // sized for the written count of elements.
    unsafe {
        let h = &*rt.header();
        ptr::write(dev_ptr::<OrchState>(h.orch_state), OrchState::new_zeroed());
        let rings = dev_ptr::<RingSchedState>(h.ring_sched);
        for r in 0..RING_COUNT {
            ptr::write(rings.add(r), RingSchedState::new_zeroed());
        }
        let threads = dev_ptr::<SchedThreadState>(h.sched_threads);
        for t in 0..pto_abi::consts::MAX_AICPU_THREADS {
            let mut st = SchedThreadState::new_zeroed();
            st.first_fault_task = NO_TASK;
            ptr::write(threads.add(t), st);
        }
    }
}

/// Regenerates the runtime's own arena structures from the layout, called last by
/// [`reset_for_reuse`] on every boot, in O(1) of the window: every ready queue (header, cursors
/// and `written` mark: an empty queue that never reads a cell it did not write), the tensor-map
/// sentinel entry, the scope stack, the mailbox tickets (consumer = producer), and every AICore's
/// registers and handshake ([`crate::aicore::reset_core_tables`], O(`MAX_CORES`)). No image
/// content in these structures survives or is read, so none beyond the header and the layout can
/// steer a run.
///
/// # Safety
/// As for [`reset_for_reuse`].
pub unsafe fn reset_runtime_structures(rt: &BootedRuntime, _kind: ResetKind) {
    let o = &rt.layout().offsets;
    // SAFETY: the header is wired; each pointer is the base of a validated arena sub-region of
    // the layout's size, and the booting thread owns the arena until it publishes ready.
    unsafe {
        let h = &*rt.header();
        for q in 0..READY_QUEUE_COUNT {
            // SAFETY: the region holds a queue header plus `ready_queue_capacity` cells (the
            // layout reserves exactly that), 64-aligned; nobody else uses it during boot.
            let queue = ReadyQueue::from_raw(dev_ptr::<u8>(h.ready_queues[q]), o.ready_queue_capacity);
            queue.init();
        }
        ptr::write(dev_ptr::<TensorMapEntry>(h.tensor_map_entries), TensorMapEntry::new_zeroed());
        ptr::write_bytes(dev_ptr::<ScopeFrame>(h.scope_stack), 0, MAX_SCOPE_DEPTH);
        let mb = dev_ptr::<MailboxHeader>(h.mailbox);
        (*mb).capacity = o.mailbox_capacity;
        (*mb).tail = (*mb).head;
        // AICore registers and handshakes start every run idle, so tokens restart at 1.
        crate::aicore::reset_core_tables(&crate::aicore::CoreTables::from_header(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_start_at_one_and_skip_zero_slot_epochs_with_a_full_reset_on_wrap() {
        assert_eq!(next_epoch(0, 0), (1, ResetKind::Full), "first boot of a fresh image");
        assert_eq!(next_epoch(1, 1), (2, ResetKind::Reuse));
        assert_eq!(next_epoch(7, 0), (8, ResetKind::Full), "a re-uploaded image restarts boot_count");
        let last = u32::MAX as u64;
        let (e, kind) = next_epoch(last, 5);
        assert_eq!(kind, ResetKind::Full, "the 32-bit slot epoch wrapped");
        assert_ne!(e as u32, 0, "slot epoch 0 marks a cleared slot and is never current");
        assert_eq!(e, last + 2);
        assert_eq!(next_epoch(e, 6), (e + 1, ResetKind::Reuse));
    }
}
