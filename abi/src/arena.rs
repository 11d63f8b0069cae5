//! The arena's vocabulary: [`Region`], [`ArenaOffsets`] and [`RuntimeArenaLayout`].
//!
//! The runtime arena is one contiguous device region the host fills with an image and the device
//! boots from. It starts with the [`ImageHeader`](crate::image::ImageHeader) and holds, in this
//! order, every runtime structure that is not per task slot: the runtime header, the SM-handle
//! wrapper, orchestrator state and scope stack, per-ring and per-thread scheduler state, the four
//! ready queues, the tensor map, the per-ring dep-list pools, the completion mailbox and the AICore
//! register, handshake and payload tables. Per-slot task state lives in shared memory (SM), kernel
//! outputs in the GM heap.
//!
//! [`ArenaOffsets`] is the output of the layout engine ([`crate::layout::reserve_layout`]) for an
//! [`ArenaSizingKey`]; [`RuntimeArenaLayout`] pairs the two and is stored inside every image, so
//! the device recovers every offset from the image alone. All three are ABI structs (`repr(C)`,
//! fixed-width fields, no hidden padding) pinned by the golden layout assertions.

use crate::consts::{CACHE_LINE, READY_QUEUE_COUNT, RING_COUNT};
use crate::sizing::ArenaSizingKey;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A byte range `[offset, offset + size)` inside a region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Region {
    /// Start, in bytes from the region base.
    pub offset: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// End (exclusive) of the range; never overflows for ranges built by the layout engine.
    pub const fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }

    /// True when the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.size != 0 && other.size != 0 && self.offset < other.end() && other.offset < self.end()
    }
}

/// Offsets of every arena sub-region, the capacities derived from the sizing, and the arena size.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArenaOffsets {
    /// [`ImageHeader`](crate::image::ImageHeader) (always at offset 0).
    pub image_header: Region,
    /// [`RuntimeHeader`](crate::runtime::RuntimeHeader).
    pub runtime_header: Region,
    /// [`SmHandle`](crate::runtime::SmHandle).
    pub sm_handle: Region,
    /// [`OrchState`](crate::runtime::OrchState).
    pub orch_state: Region,
    /// `MAX_SCOPE_DEPTH` × [`ScopeFrame`](crate::runtime::ScopeFrame).
    pub scope_stack: Region,
    /// `scope_task_capacity` task ids (u64).
    pub scope_tasks: Region,
    /// `RING_COUNT` × [`RingSchedState`](crate::runtime::RingSchedState).
    pub ring_sched: Region,
    /// `MAX_AICPU_THREADS` × [`SchedThreadState`](crate::runtime::SchedThreadState).
    pub sched_threads: Region,
    /// Per queue: [`ReadyQueueHeader`](crate::runtime::ReadyQueueHeader) + `ready_queue_capacity` × [`ReadyQueueCell`](crate::runtime::ReadyQueueCell).
    pub ready_queues: [Region; READY_QUEUE_COUNT],
    /// `tensor_map_bucket_count` × u32 bucket heads.
    pub tensor_map_buckets: Region,
    /// (`tensor_map_entry_count` + 1) × [`TensorMapEntry`](crate::runtime::TensorMapEntry); entry 0 is the null sentinel.
    pub tensor_map_entries: Region,
    /// Per ring: (capacity + 1) × [`DepListEntry`](crate::task::DepListEntry); entry 0 is the null sentinel.
    pub dep_pools: [Region; RING_COUNT],
    /// [`MailboxHeader`](crate::runtime::MailboxHeader) + `mailbox_capacity` × [`MailboxMessage`](crate::runtime::MailboxMessage).
    pub mailbox: Region,
    /// `MAX_CORES` × [`CoreRegisters`](crate::launch::CoreRegisters).
    pub core_registers: Region,
    /// `MAX_CORES` × [`HandshakeRecord`](crate::launch::HandshakeRecord).
    pub handshakes: Region,
    /// `MAX_CORES` × 2 × [`AicorePayload`](crate::launch::AicorePayload).
    pub core_payloads: Region,
    /// Cells per ready queue (power of two).
    pub ready_queue_capacity: u64,
    /// Usable tensor-map entries (excluding the sentinel).
    pub tensor_map_entry_count: u64,
    /// Tensor-map buckets (power of two).
    pub tensor_map_bucket_count: u64,
    /// Task ids the open scopes can hold.
    pub scope_task_capacity: u64,
    /// Messages in the completion mailbox (power of two).
    pub mailbox_capacity: u64,
    /// Bytes of the whole arena (and of its image).
    pub arena_size: u64,
}

/// Number of regions listed by [`ArenaOffsets::regions`].
pub const ARENA_REGION_COUNT: usize = 8 + READY_QUEUE_COUNT + 2 + RING_COUNT + 4;

/// A region with its name, for listings and checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedRegion {
    /// Region name, e.g. `ready_queue[2]`.
    pub name: &'static str,
    /// Where it lies.
    pub region: Region,
    /// Alignment the layout guarantees for its offset.
    pub align: u64,
}

pub(crate) const READY_QUEUE_NAMES: [&str; READY_QUEUE_COUNT] =
    ["ready_queue[aic]", "ready_queue[aiv]", "ready_queue[mix]", "ready_queue[dep_only]"];
pub(crate) const DEP_POOL_NAMES: [&str; RING_COUNT] = ["dep_pool[0]", "dep_pool[1]", "dep_pool[2]", "dep_pool[3]"];

impl ArenaOffsets {
    /// Every region, in placement order.
    pub fn regions(&self) -> [NamedRegion; ARENA_REGION_COUNT] {
        let mut out = [NamedRegion { name: "", region: Region::default(), align: CACHE_LINE }; ARENA_REGION_COUNT];
        let mut i = 0;
        let mut push = |name: &'static str, region: Region| {
            out[i] = NamedRegion { name, region, align: CACHE_LINE };
            i += 1;
        };
        push("image_header", self.image_header);
        push("runtime_header", self.runtime_header);
        push("sm_handle", self.sm_handle);
        push("orch_state", self.orch_state);
        push("scope_stack", self.scope_stack);
        push("scope_tasks", self.scope_tasks);
        push("ring_sched", self.ring_sched);
        push("sched_threads", self.sched_threads);
        for (q, name) in READY_QUEUE_NAMES.iter().enumerate() {
            push(name, self.ready_queues[q]);
        }
        push("tensor_map_buckets", self.tensor_map_buckets);
        push("tensor_map_entries", self.tensor_map_entries);
        for (r, name) in DEP_POOL_NAMES.iter().enumerate() {
            push(name, self.dep_pools[r]);
        }
        push("mailbox", self.mailbox);
        push("core_registers", self.core_registers);
        push("handshakes", self.handshakes);
        push("core_payloads", self.core_payloads);
        out
    }
}

/// A sizing key together with the layout it produces; stored inside every image.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RuntimeArenaLayout {
    /// The input.
    pub sizing: ArenaSizingKey,
    /// The output.
    pub offsets: ArenaOffsets,
}
