//! Ring allocators of the orchestrator: the task window of a ring and its packed output heap.
//!
//! Both count in monotonic 64-bit positions that never wrap in practice; a slot or heap offset is
//! the position reduced by the ring size. The orchestrator advances the heads, the schedulers
//! publish the tails (`last_task_alive`, `heap_tail`) as the watermark advances.

mod heap;

pub use heap::{HeapAlloc, HeapRing};

/// The task window of one ring: `window` slots, task `local` lives in slot `local & mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskWindow {
    /// Slots (a power of two).
    pub window: u64,
}

impl TaskWindow {
    /// Slot index of the task with local index `local`.
    #[inline(always)]
    pub fn slot(&self, local: u32) -> usize {
        (local as u64 & (self.window - 1)) as usize
    }

    /// True when another task fits: fewer than `window` tasks in `[alive, current)`.
    #[inline(always)]
    pub fn has_room(&self, current: u64, alive: u64) -> bool {
        current.wrapping_sub(alive) < self.window
    }

    /// The monotonic index of a task whose low 32 bits are `local`, given the ring's watermark
    /// `alive` (live and recent tasks lie within 2^31 of it).
    #[inline(always)]
    pub fn widen(local: u32, alive: u64) -> u64 {
        alive.wrapping_add((local.wrapping_sub(alive as u32) as i32) as i64 as u64)
    }

    /// True when task `local` is live: submitted (`< current`) and not yet consumed (`>= alive`).
    #[inline(always)]
    pub fn is_live(local: u32, alive: u64, current: u64) -> bool {
        (local.wrapping_sub(alive as u32) as u64) < current.wrapping_sub(alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_room_slots_and_liveness() {
        let w = TaskWindow { window: 4 };
        assert!(w.has_room(3, 0));
        assert!(!w.has_room(4, 0));
        assert!(w.has_room(5, 2));
        assert_eq!(w.slot(5), 1);
        assert!(TaskWindow::is_live(3, 2, 5));
        assert!(!TaskWindow::is_live(1, 2, 5), "consumed");
        assert!(!TaskWindow::is_live(5, 2, 5), "not yet submitted");
        // Across the 32-bit boundary of the local index.
        let alive = (1u64 << 32) - 2;
        let current = alive + 4;
        assert!(TaskWindow::is_live(0, alive, current));
        assert!(TaskWindow::is_live(u32::MAX - 1, alive, current));
        assert!(!TaskWindow::is_live(u32::MAX - 2, alive, current));
        assert_eq!(TaskWindow::widen(1, alive), (1u64 << 32) + 1);
        assert_eq!(TaskWindow::widen(u32::MAX, (1u64 << 32) + 3), (1u64 << 32) - 1);
    }
}
