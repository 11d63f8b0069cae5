//! The shared-memory (SM) header: per-ring metadata and flow control, completion and error words.
//! The host reads it back after a failed run, so it is a host-read ABI too.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::consts::RING_COUNT;

/// `SmHeader::magic`: "PTOSMHDR" little-endian.
pub const SM_MAGIC: u64 = u64::from_le_bytes(*b"PTOSMHDR");

/// Static description of one ring in SM (written once at build/boot).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SmRingHeader {
    /// Task window (slots); a power of two.
    pub task_window: u64,
    /// `task_window - 1`.
    pub window_mask: u64,
    /// Bytes of this ring's heap.
    pub heap_size: u64,
    /// Offset of this ring's heap inside the GM heap region.
    pub heap_offset: u64,
    /// Offset of the descriptor array inside SM.
    pub descriptors_offset: u64,
    /// Offset of the payload array inside SM.
    pub payloads_offset: u64,
    /// Offset of the slot-state array inside SM.
    pub slot_states_offset: u64,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 8],
}

/// Per-ring flow control: each writer owns its own cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingFlowControl {
    /// Next local task index to allocate; written by the orchestrator only.
    pub current_task_index: u64,
    /// Explicit padding: the orchestrator's line.
    pub _pad0: [u8; 56],
    /// Oldest local task index not yet consumed; written by schedulers only.
    pub last_task_alive: u64,
    /// Heap offset up to which consumed outputs were freed; written with `last_task_alive`.
    pub heap_tail: u64,
    /// Explicit padding: the schedulers' line.
    pub _pad1: [u8; 48],
}

/// Error words of the orchestrator (one line, one writer).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct OrchErrorWord {
    /// Nonzero once orchestration has finished (successfully or not).
    pub orchestrator_done: u32,
    /// First error code latched by the orchestrator (0 = none).
    pub code: u32,
    /// Ring the error concerns, or `u32::MAX`.
    pub ring: u32,
    /// Explicit padding.
    pub _pad0: [u8; 4],
    /// Code-specific detail (e.g. the offending task id or argument index).
    pub detail: u64,
    /// Tasks submitted by this run.
    pub tasks_submitted: u64,
    /// Explicit padding to one cache line.
    pub _pad1: [u8; 32],
}

/// Error words of the schedulers (first writer wins), plus stall diagnostics.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedErrorWord {
    /// First error code latched by a scheduler (0 = none).
    pub code: u32,
    /// The scheduler thread that latched it.
    pub thread: u32,
    /// A `StallClass` value for SCHEDULER_TIMEOUT.
    pub stall_class: u32,
    /// Explicit padding.
    pub _pad0: [u8; 4],
    /// Task involved in the stall, or `NO_TASK`.
    pub stall_task: u64,
    /// Tasks completed when the error was latched.
    pub tasks_completed: u64,
    /// Tasks ready but not dispatched when the error was latched.
    pub tasks_ready: u64,
    /// Explicit padding to one cache line.
    pub _pad1: [u8; 24],
}

/// The SM header at SM offset 0.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SmHeader {
    /// [`SM_MAGIC`].
    pub magic: u64,
    /// ABI fingerprint of the builder.
    pub abi_fingerprint: u64,
    /// Total SM bytes described by this header.
    pub total_size: u64,
    /// Number of rings in use.
    pub ring_count: u32,
    /// Explicit padding.
    pub _pad0: [u8; 36],
    /// Per-ring metadata.
    pub rings: [SmRingHeader; RING_COUNT],
    /// Per-ring flow control.
    pub flow: [RingFlowControl; RING_COUNT],
    /// Orchestrator completion and error words.
    pub orch: OrchErrorWord,
    /// Scheduler error words.
    pub sched: SchedErrorWord,
}
