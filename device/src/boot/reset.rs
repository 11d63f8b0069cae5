//! Reset for reuse: make a resident runtime logically empty for the next run, in O(1).
//!
//! Run-time links (class D) are made unreachable by bumping the epoch and resetting counters, not
//! by clearing memory. Per-slot state is cleared in full (O(window)) only when it cannot be told
//! apart by epoch: on the first boot of a freshly uploaded image (its epoch restarts at 0 while SM
//! may hold slots of an earlier image) and when the 32-bit slot epoch wraps.
//!
//! Structures whose contents the device can generate (ready-queue cell sequence ramps, tensor-map
//! buckets and free list, dep-pool nodes) are left zero in the image and are not touched here
//! except for their O(1) headers; the runtime initialises them lazily or in
//! [`reset_runtime_structures`], the hook this module calls last.

use core::ptr;

use pto_abi::consts::{READY_QUEUE_COUNT, RING_COUNT};
use pto_abi::runtime::{MailboxHeader, OrchState, ReadyQueueHeader, RingSchedState, SchedThreadState};
use pto_abi::sm::{SmHeader, SmRingHeader, SM_MAGIC};
use pto_abi::ABI_FINGERPRINT;
use zerocopy::FromZeros;

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
            ptr::write(threads.add(t), SchedThreadState::new_zeroed());
        }
    }
}

/// Hook for the runtime's own structures, called last by [`reset_for_reuse`] on every boot.
///
/// Writes the O(1) headers whose values follow from the layout (ready-queue capacity and mask,
/// mailbox capacity), drops stale mailbox messages by moving the consumer ticket up to the producer
/// ticket (tickets are monotonic, so a stale message never matches a fresh ticket), puts every
/// AICore's registers and handshake in their boot state ([`crate::aicore::reset_core_tables`],
/// O(`MAX_CORES`)), then hands over to the runtime ([`crate::reset::reset_runtime_structures`]):
/// leftover ready-queue entries of a failed run are drained and the tensor-map buckets are cleared
/// only if the previous run left entries linked, so a boot after a clean run stays O(1).
///
/// # Safety
/// As for [`reset_for_reuse`].
pub unsafe fn reset_runtime_structures(rt: &BootedRuntime, _kind: ResetKind) {
    let o = &rt.layout().offsets;
    // SAFETY: the header is wired; each pointer is the base of a validated arena sub-region that
    // starts with the header type written.
    unsafe {
        let h = &*rt.header();
        for q in 0..READY_QUEUE_COUNT {
            let qh = dev_ptr::<ReadyQueueHeader>(h.ready_queues[q]);
            (*qh).capacity = o.ready_queue_capacity;
            (*qh).mask = o.ready_queue_capacity - 1;
        }
        let mb = dev_ptr::<MailboxHeader>(h.mailbox);
        (*mb).capacity = o.mailbox_capacity;
        (*mb).tail = (*mb).head;
        // AICore registers and handshakes start every run idle, so tokens restart at 1.
        crate::aicore::reset_core_tables(&crate::aicore::CoreTables::from_header(h));
    }
    // SAFETY: the header is wired and rebound (every pointer the view takes is this boot's).
    if let Ok(view) = unsafe { crate::view::RuntimeView::from_header(rt.header()) } {
        crate::reset::reset_runtime_structures(&view);
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
