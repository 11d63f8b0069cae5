//! Atomic access to one task's slot state in SM.
//!
//! Fields guarded by the slot's fanout lock (fanout count, head and refcount, task state) are
//! written under it; the task state is also read without the lock (watermark scans), so it is
//! stored with release ordering.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, AtomicU64};

use pto_abi::task::SlotState;

use crate::sync::{atomic_u32, atomic_u64, WordLock};

/// A task's slot state, seen through atomics.
#[derive(Clone, Copy, Debug)]
pub struct SlotRef {
    s: *mut SlotState,
}

macro_rules! field32 {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("The `", stringify!($name), "` field.")]
        #[inline(always)]
        pub fn $name(&self) -> &AtomicU32 {
            // SAFETY: `s` points to a valid slot (see `SlotRef::new`); the field is 4-aligned.
            unsafe { atomic_u32(addr_of_mut!((*self.s).$name)) }
        }
    )*};
}

impl SlotRef {
    /// Wraps a slot pointer.
    ///
    /// # Safety
    /// `s` points to a slot state in SM that stays valid while the `SlotRef` is used.
    #[inline(always)]
    pub unsafe fn new(s: *mut SlotState) -> Self {
        SlotRef { s }
    }

    /// The occupant's task id.
    #[inline(always)]
    pub fn task_id(&self) -> &AtomicU64 {
        // SAFETY: as in the field accessors.
        unsafe { atomic_u64(addr_of_mut!((*self.s).task_id)) }
    }

    field32!(
        fanout_lock,
        fanout_count,
        fanout_head,
        task_state,
        fanin_count,
        fanin_refcount,
        fanout_refcount,
        lane_mask,
        flags,
        dep_pool_mark,
        subtask_total,
        subtask_done,
        next_block,
        tensormap_chain,
    );

    /// The fanout lock.
    #[inline(always)]
    pub fn lock(&self) -> WordLock<'_> {
        WordLock::new(self.fanout_lock())
    }
}
