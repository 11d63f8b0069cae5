//! Structures inside the runtime arena: the runtime header, orchestrator and scheduler state,
//! ready queues, tensor map and completion mailbox.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::consts::{MAX_SCOPE_DEPTH, READY_QUEUE_COUNT, RING_COUNT};

/// `RuntimeHeader::magic`: "PTORTHDR" little-endian.
pub const RUNTIME_MAGIC: u64 = u64::from_le_bytes(*b"PTORTHDR");

/// The runtime header: the device reads it first after validating the image header.
///
/// It holds every pointer of the runtime. Other arena structures refer to each other by index,
/// so this header is the only place the boot code wires (class A) and rebinds (class B).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RuntimeHeader {
    /// [`RUNTIME_MAGIC`].
    pub magic: u64,
    /// ABI fingerprint of the builder.
    pub abi_fingerprint: u64,
    /// Boot epoch, bumped at every boot; slots prepared in an older epoch are stale.
    pub epoch: u64,
    /// Number of successful boots of this resident image.
    pub boot_count: u64,
    /// Nonzero once boot has published "runtime ready".
    pub ready: u32,
    /// Boot status: 0 = ok, otherwise a boot error code.
    pub boot_status: u32,
    /// Explicit padding to the end of the first line.
    pub _pad0: [u8; 16],

    // Class A: arena-internal, wired by the device at every boot (base + layout offset).
    /// Base of the arena itself.
    pub arena_base: DevAddr,
    /// The image header (arena offset 0).
    pub image_header: DevAddr,
    /// The SM-handle wrapper.
    pub sm_handle: DevAddr,
    /// Orchestrator state.
    pub orch_state: DevAddr,
    /// Scope stack frames.
    pub scope_stack: DevAddr,
    /// Task list of the open scopes.
    pub scope_tasks: DevAddr,
    /// Per-ring scheduler state.
    pub ring_sched: DevAddr,
    /// Per-thread scheduler state.
    pub sched_threads: DevAddr,
    /// Ready queues: AIC, AIV, MIX, dependency-only.
    pub ready_queues: [DevAddr; READY_QUEUE_COUNT],
    /// Tensor-map bucket heads.
    pub tensor_map_buckets: DevAddr,
    /// Tensor-map entry pool.
    pub tensor_map_entries: DevAddr,
    /// Per-ring dep-list pools.
    pub dep_pools: [DevAddr; RING_COUNT],
    /// Completion mailbox.
    pub mailbox: DevAddr,
    /// AICore dispatch/condition registers (simulated device).
    pub core_registers: DevAddr,
    /// AICore handshake records.
    pub handshakes: DevAddr,
    /// AICore double-buffered payloads.
    pub core_payloads: DevAddr,

    // Class B: device addresses of SM and GM heap; baked by the host, rebound at every boot.
    /// SM base.
    pub sm_base: DevAddr,
    /// GM heap base.
    pub heap_base: DevAddr,
    /// Per-ring descriptor arrays in SM.
    pub ring_descriptors: [DevAddr; RING_COUNT],
    /// Per-ring payload arrays in SM.
    pub ring_payloads: [DevAddr; RING_COUNT],
    /// Per-ring slot-state arrays in SM.
    pub ring_slot_states: [DevAddr; RING_COUNT],
    /// Per-ring heaps in the GM heap.
    pub ring_heaps: [DevAddr; RING_COUNT],

    // Class C: device-only values, written at boot.
    /// AICore clusters driven by this boot.
    pub cluster_count: u32,
    /// AICore cores driven by this boot.
    pub core_count: u32,
    /// Scheduler threads of this boot.
    pub sched_thread_count: u32,
    /// Explicit padding.
    pub _pad1: [u8; 4],
    /// Explicit padding to a whole number of lines.
    pub _pad2: [u8; 56],
}

/// The SM-handle wrapper: where SM and the GM heap are for this boot (class B).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SmHandle {
    /// SM base.
    pub sm_base: DevAddr,
    /// SM bytes.
    pub sm_size: u64,
    /// GM heap base.
    pub heap_base: DevAddr,
    /// GM heap bytes.
    pub heap_size: u64,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 32],
}

/// Orchestrator view of one ring (single writer: the orchestrator). Positions are monotonic across
/// runs, so resetting for reuse needs no clearing.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct OrchRingState {
    /// Monotonic heap position of the next free byte (offset = position mod heap size).
    pub heap_head: u64,
    /// Positions below this are free by definition (raised when the ring is rebased while empty).
    pub heap_floor: u64,
    /// Times an allocation skipped the end of the ring heap to start again at offset 0.
    pub heap_wraps: u64,
    /// Monotonic count of dep-list nodes handed out.
    pub dep_pool_head: u64,
    /// Index (1-based, wrapping) of the next dep-list node to hand out; 0 means 1.
    pub dep_pool_cursor: u32,
    /// Local index up to which the tensor-map chains of this ring's tasks were reclaimed.
    pub tensormap_cleaned: u32,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 24],
}

/// Orchestrator state.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct OrchState {
    /// Current scope depth (0 = the implicit outermost scope).
    pub scope_depth: u32,
    /// Used entries of the scope task list.
    pub scope_tasks_top: u32,
    /// Head of the tensor-map free list (0 = empty).
    pub tensor_map_free: u32,
    /// Tensor-map entries ever taken from the never-used tail of the pool.
    pub tensor_map_fresh: u32,
    /// Tensor-map entries in use.
    pub tensor_map_used: u32,
    /// Serial number of the last scope opened.
    pub scope_serial: u32,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 40],
    /// Per-ring allocators.
    pub rings: [OrchRingState; RING_COUNT],
}

crate::abi_enum! {
    /// Kind of a scope frame.
    pub enum ScopeKind {
        /// Tasks are released when the scope ends.
        Auto = 0,
        /// Tasks are released explicitly by the orchestration.
        Manual = 1,
    }
}

/// One open scope.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ScopeFrame {
    /// Index in the scope task list of this scope's first task.
    pub first_task: u32,
    /// Ring used by the scope.
    pub ring: u32,
    /// A [`ScopeKind`] value.
    pub kind: u32,
    /// Serial number of the scope (unique per run).
    pub serial: u32,
}

/// Number of frames in the scope stack region.
pub const SCOPE_STACK_FRAMES: usize = MAX_SCOPE_DEPTH;

/// Scheduler view of one ring.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RingSchedState {
    /// Try-lock over watermark advance (0 free, 1 held).
    pub advance_lock: u32,
    /// Nonzero when a loser of the try-lock left work for the holder.
    pub advance_pending: u32,
    /// Dep-list pool nodes reclaimed so far (monotonic).
    pub dep_pool_tail: u64,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 48],
}

/// `SchedThreadState::running`: the thread has not started.
pub const THREAD_NOT_STARTED: u32 = 0;
/// `SchedThreadState::running`: the thread runs.
pub const THREAD_RUNNING: u32 = 1;
/// `SchedThreadState::running`: the thread finished (its cores are shut down).
pub const THREAD_EXITED: u32 = 2;

/// Per scheduler thread statistics and liveness (one writer: that thread).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SchedThreadState {
    /// Tasks this thread dispatched.
    pub tasks_dispatched: u64,
    /// Tasks this thread completed.
    pub tasks_completed: u64,
    /// Monotonic time of the last progress, in nanoseconds.
    pub last_progress_ns: u64,
    /// `THREAD_*`.
    pub running: u32,
    /// Cores that did not acknowledge exit within the shutdown deadline.
    pub cores_not_exited: u32,
    /// Blocks whose kernel faulted (unknown kernel, failed kernel); each still counts as done.
    pub kernel_faults: u64,
    /// Task of the first faulted block, or `NO_TASK`.
    pub first_fault_task: u64,
    /// Owned cores running a block, as of the thread's last round.
    pub cores_busy: u32,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 12],
}

/// Cursors of a bounded MPMC ready queue; cells follow the header.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ReadyQueueHeader {
    /// Number of cells; a power of two.
    pub capacity: u64,
    /// `capacity - 1`.
    pub mask: u64,
    /// Cells below this index hold values the device wrote since boot (boot sets 0 and the queue
    /// writes cells ahead of the producers, a chunk at a time); bit 63 is set while a thread writes
    /// the next chunk. Cells at and above it are never read, whatever the image holds there.
    pub written: u64,
    /// Explicit padding.
    pub _pad0: [u8; 40],
    /// Producer cursor (own line).
    pub enqueue_pos: u64,
    /// Explicit padding.
    pub _pad1: [u8; 56],
    /// Consumer cursor (own line).
    pub dequeue_pos: u64,
    /// Explicit padding.
    pub _pad2: [u8; 56],
}

/// One ready-queue cell; `sequence` orders producers and consumers per cell.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ReadyQueueCell {
    /// Cell sequence number, stored relative to the cell index (`position - index`), so a zeroed
    /// queue is a valid empty queue.
    pub sequence: u64,
    /// The queued task id.
    pub task_id: u64,
}

/// One tensor-map entry: a writer of a byte range of a buffer.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TensorMapEntry {
    /// Buffer base (the hash key).
    pub buffer: DevAddr,
    /// Start of the written range, bytes from `buffer`.
    pub range_start: u64,
    /// End (exclusive) of the written range.
    pub range_end: u64,
    /// The writer task.
    pub producer_task: u64,
    /// Next entry in the same bucket (0 = end).
    pub next_in_bucket: u32,
    /// Previous entry in the same bucket (0 = this entry is the bucket head).
    pub prev_in_bucket: u32,
    /// Next entry of the same producer task (0 = end).
    pub next_in_task: u32,
    /// Bucket index of this entry.
    pub bucket: u32,
    /// Nonzero while the entry is linked into its bucket. In the sentinel entry 0: nonzero while
    /// a run may have left entries linked (the next boot then clears the buckets).
    pub live: u32,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 12],
}

/// Cursors of the completion mailbox (MPSC); messages follow the header.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MailboxHeader {
    /// Number of messages; a power of two.
    pub capacity: u64,
    /// Explicit padding.
    pub _pad0: [u8; 56],
    /// Producer ticket (monotonic, own line).
    pub head: u64,
    /// Explicit padding.
    pub _pad1: [u8; 56],
    /// Consumer ticket (monotonic, own line).
    pub tail: u64,
    /// Explicit padding.
    pub _pad2: [u8; 56],
}

/// A deferred completion; `sequence` equals the ticket that wrote it, so stale entries never match.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MailboxMessage {
    /// Ticket + 1 of the writer (0 = never written).
    pub sequence: u64,
    /// Completed task.
    pub task_id: u64,
    /// Message kind.
    pub kind: u32,
    /// Sending thread.
    pub thread: u32,
    /// Explicit padding.
    pub _pad: [u8; 8],
}
