//! The layout engine: a pure, deterministic function from an [`ArenaSizingKey`] to the offset of
//! every arena sub-region ([`reserve_layout`]), plus the SM ([`sm_layout`]) and GM-heap
//! ([`heap_layout`]) layouts. Host and device call the same code.
//!
//! Rules every layout keeps, on every target:
//!
//! - the same key gives the same offsets on every call (no state, no target-dependent sizes: every
//!   element size is the `size_of` of a fixed-layout ABI struct);
//! - regions are placed in a fixed order by a bump cursor, each at a 64-byte (cache-line) aligned
//!   offset, so two structures written by different threads never share a line; a region base the
//!   host allocates is 1024-aligned ([`REGION_BASE_ALIGN`](crate::consts::REGION_BASE_ALIGN));
//! - regions never overlap and all lie inside `[0, arena_size)`;
//! - all arithmetic is checked: an overflow is [`LayoutError::Overflow`] naming the region, never a
//!   wrap;
//! - capacities that follow from the sizing (ready-queue cells, tensor-map entries and buckets, the
//!   mailbox, the scope task list) are derived here, so a small sizing gives a small arena.
//!
//! SM size = the [`SmHeader`] (rounded up to 64) plus, per ring, `window` task descriptors,
//! `window` task payloads and `window` slot states, each array rounded up to 64. The GM heap is the
//! four ring heaps back to back: ring r starts at the sum of the earlier rings' heap sizes.
//!
//! The engine's output types live in [`crate::arena`]; they are re-exported here because every
//! caller of the engine names them.

use core::fmt;
use core::mem::size_of;

use crate::addr::align_up;
use crate::addr::DevAddr;
pub use crate::arena::{ArenaOffsets, NamedRegion, Region, RuntimeArenaLayout, ARENA_REGION_COUNT};
use crate::arena::{DEP_POOL_NAMES, READY_QUEUE_NAMES};
use crate::consts::{
    CACHE_LINE, MAX_AICPU_THREADS, MAX_CORES, MAX_SCOPE_DEPTH, READY_QUEUE_COUNT, RING_COUNT,
    TENSORMAP_ENTRIES_PER_TASK, TENSORMAP_MIN_ENTRIES,
};
use crate::fingerprint::{ABI_FINGERPRINT, ABI_VERSION};
use crate::image::{ImageHeader, IMAGE_MAGIC};
use crate::launch::{AicorePayload, CoreRegisters, HandshakeRecord};
use crate::runtime::{
    MailboxHeader, MailboxMessage, OrchState, ReadyQueueCell, ReadyQueueHeader, RingSchedState, RuntimeHeader,
    SchedThreadState, ScopeFrame, SmHandle, TensorMapEntry,
};
use crate::sizing::{ArenaSizingKey, SizingError};
use crate::sm::SmHeader;
use crate::task::{DepListEntry, SlotState, TaskDescriptor, TaskPayload};

/// Why a layout could not be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The sizing key breaks a rule.
    Sizing(SizingError),
    /// A size or offset computation overflowed 64 bits while placing `region`.
    Overflow {
        /// The region being placed.
        region: &'static str,
    },
}

impl From<SizingError> for LayoutError {
    fn from(e: SizingError) -> Self {
        LayoutError::Sizing(e)
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Sizing(e) => write!(f, "invalid sizing: {e}"),
            LayoutError::Overflow { region } => write!(f, "layout overflows 64 bits while placing {region}"),
        }
    }
}

/// A bump cursor over a region; every placement is cache-line aligned and overflow-checked.
struct Cursor {
    at: u64,
}

impl Cursor {
    fn place(&mut self, region: &'static str, count: u64, elem_size: usize) -> Result<Region, LayoutError> {
        self.place_with_header(region, 0, count, elem_size)
    }

    fn place_with_header(
        &mut self,
        region: &'static str,
        header: usize,
        count: u64,
        elem_size: usize,
    ) -> Result<Region, LayoutError> {
        let overflow = LayoutError::Overflow { region };
        let offset = align_up(self.at, CACHE_LINE).ok_or(overflow)?;
        let size = count.checked_mul(elem_size as u64).and_then(|s| s.checked_add(header as u64)).ok_or(overflow)?;
        self.at = offset.checked_add(size).ok_or(overflow)?;
        Ok(Region { offset, size })
    }

    fn finish(self, region: &'static str) -> Result<u64, LayoutError> {
        align_up(self.at, CACHE_LINE).ok_or(LayoutError::Overflow { region })
    }
}

fn next_pow2(v: u64, region: &'static str) -> Result<u64, LayoutError> {
    v.checked_next_power_of_two().ok_or(LayoutError::Overflow { region })
}

/// Computes the arena layout for a sizing key.
///
/// Pure and deterministic: the same key gives the same layout on every call and every target.
/// Every region is 64-aligned, regions never overlap and all lie inside `[0, arena_size)`.
pub fn reserve_layout(sizing: &ArenaSizingKey) -> Result<RuntimeArenaLayout, LayoutError> {
    sizing.validate()?;
    let total_window = sizing.total_task_window();
    let ready_queue_capacity = next_pow2(total_window, "ready queues")?;
    let tensor_map_entry_count = total_window
        .checked_mul(TENSORMAP_ENTRIES_PER_TASK)
        .ok_or(LayoutError::Overflow { region: "tensor_map_entries" })?
        .max(TENSORMAP_MIN_ENTRIES);
    let tensor_map_bucket_count = next_pow2(total_window.max(TENSORMAP_MIN_ENTRIES), "tensor_map_buckets")?;
    let scope_task_capacity = total_window;
    let mailbox_capacity = next_pow2(total_window, "mailbox")?;

    let mut c = Cursor { at: 0 };
    let image_header = c.place("image_header", 1, size_of::<ImageHeader>())?;
    let runtime_header = c.place("runtime_header", 1, size_of::<RuntimeHeader>())?;
    let sm_handle = c.place("sm_handle", 1, size_of::<SmHandle>())?;
    let orch_state = c.place("orch_state", 1, size_of::<OrchState>())?;
    let scope_stack = c.place("scope_stack", MAX_SCOPE_DEPTH as u64, size_of::<ScopeFrame>())?;
    let scope_tasks = c.place("scope_tasks", scope_task_capacity, size_of::<u64>())?;
    let ring_sched = c.place("ring_sched", RING_COUNT as u64, size_of::<RingSchedState>())?;
    let sched_threads = c.place("sched_threads", MAX_AICPU_THREADS as u64, size_of::<SchedThreadState>())?;
    let mut ready_queues = [Region::default(); READY_QUEUE_COUNT];
    for (q, slot) in ready_queues.iter_mut().enumerate() {
        *slot = c.place_with_header(
            READY_QUEUE_NAMES[q],
            size_of::<ReadyQueueHeader>(),
            ready_queue_capacity,
            size_of::<ReadyQueueCell>(),
        )?;
    }
    let tensor_map_buckets = c.place("tensor_map_buckets", tensor_map_bucket_count, size_of::<u32>())?;
    let tensor_map_entries = c.place("tensor_map_entries", tensor_map_entry_count + 1, size_of::<TensorMapEntry>())?;
    let mut dep_pools = [Region::default(); RING_COUNT];
    for (r, slot) in dep_pools.iter_mut().enumerate() {
        *slot = c.place(DEP_POOL_NAMES[r], sizing.dep_pool_capacities[r] as u64 + 1, size_of::<DepListEntry>())?;
    }
    let mailbox =
        c.place_with_header("mailbox", size_of::<MailboxHeader>(), mailbox_capacity, size_of::<MailboxMessage>())?;
    let core_registers = c.place("core_registers", MAX_CORES as u64, size_of::<CoreRegisters>())?;
    let handshakes = c.place("handshakes", MAX_CORES as u64, size_of::<HandshakeRecord>())?;
    let core_payloads = c.place("core_payloads", 2 * MAX_CORES as u64, size_of::<AicorePayload>())?;
    let arena_size = c.finish("arena end")?;

    Ok(RuntimeArenaLayout {
        sizing: *sizing,
        offsets: ArenaOffsets {
            image_header,
            runtime_header,
            sm_handle,
            orch_state,
            scope_stack,
            scope_tasks,
            ring_sched,
            sched_threads,
            ready_queues,
            tensor_map_buckets,
            tensor_map_entries,
            dep_pools,
            mailbox,
            core_registers,
            handshakes,
            core_payloads,
            ready_queue_capacity,
            tensor_map_entry_count,
            tensor_map_bucket_count,
            scope_task_capacity,
            mailbox_capacity,
            arena_size,
        },
    })
}

/// The [`ImageHeader`] of an image of `layout` built for the given region bases: this ABI's
/// magic, version, header size and fingerprint, the image size and runtime-header offset of the
/// layout, and the SM and heap sizes of the sizing ([`sm_layout`], [`heap_layout`] totals). Its
/// checksum is 0 until the image is sealed ([`crate::image::seal_image`]).
pub const fn image_header(
    layout: &RuntimeArenaLayout,
    built_arena_base: DevAddr,
    built_sm_base: DevAddr,
    built_heap_base: DevAddr,
    sm_size: u64,
    heap_size: u64,
) -> ImageHeader {
    ImageHeader {
        magic: IMAGE_MAGIC,
        abi_version: ABI_VERSION,
        header_size: size_of::<ImageHeader>() as u32,
        abi_fingerprint: ABI_FINGERPRINT,
        image_size: layout.offsets.arena_size,
        built_arena_base,
        built_sm_base,
        built_heap_base,
        sm_size,
        heap_size,
        runtime_header_offset: layout.offsets.runtime_header.offset,
        // Sealed by the image builder once every byte of the image is written.
        checksum: 0,
        _pad: [0; 40],
        layout: *layout,
        _pad_tail: [0; 32],
    }
}

/// Where one ring's arrays lie inside SM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SmRingLayout {
    /// `window` × [`TaskDescriptor`].
    pub descriptors: Region,
    /// `window` × [`TaskPayload`].
    pub payloads: Region,
    /// `window` × [`SlotState`].
    pub slot_states: Region,
}

/// The SM layout: header, then per ring descriptors, payloads and slot states (each 64-aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmLayout {
    /// [`SmHeader`] at offset 0.
    pub header: Region,
    /// Per-ring arrays.
    pub rings: [SmRingLayout; RING_COUNT],
    /// Bytes of SM.
    pub total_size: u64,
}

/// Computes the SM layout for a sizing key.
pub fn sm_layout(sizing: &ArenaSizingKey) -> Result<SmLayout, LayoutError> {
    sizing.validate()?;
    let mut c = Cursor { at: 0 };
    let header = c.place("sm_header", 1, size_of::<SmHeader>())?;
    let mut rings = [SmRingLayout::default(); RING_COUNT];
    for (r, ring) in rings.iter_mut().enumerate() {
        let w = sizing.task_window_sizes[r];
        ring.descriptors = c.place("sm descriptors", w, size_of::<TaskDescriptor>())?;
        ring.payloads = c.place("sm payloads", w, size_of::<TaskPayload>())?;
        ring.slot_states = c.place("sm slot states", w, size_of::<SlotState>())?;
    }
    Ok(SmLayout { header, rings, total_size: c.finish("sm end")? })
}

/// The GM heap layout: ring heaps back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapLayout {
    /// Ring r's heap.
    pub rings: [Region; RING_COUNT],
    /// Bytes of the GM heap.
    pub total_size: u64,
}

/// Computes the GM heap layout: ring r starts at the prefix sum of the earlier rings' heaps.
pub fn heap_layout(sizing: &ArenaSizingKey) -> Result<HeapLayout, LayoutError> {
    sizing.validate()?;
    let mut rings = [Region::default(); RING_COUNT];
    let mut at: u64 = 0;
    for (r, ring) in rings.iter_mut().enumerate() {
        let size = sizing.heap_sizes[r];
        *ring = Region { offset: at, size };
        at = at.checked_add(size).ok_or(LayoutError::Overflow { region: "gm heap" })?;
    }
    Ok(HeapLayout { rings, total_size: at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_arena_is_under_one_mib_and_default_under_reference() {
        let small = reserve_layout(&ArenaSizingKey::smallest()).unwrap();
        assert!(small.offsets.arena_size < 1 << 20, "smallest arena {}", small.offsets.arena_size);
        let def = reserve_layout(&ArenaSizingKey::default()).unwrap();
        assert!(def.offsets.arena_size <= 23_600_000, "default arena {}", def.offsets.arena_size);
    }

    #[test]
    fn heap_rings_are_prefix_sums() {
        let k = ArenaSizingKey { heap_sizes: [1024, 2048, 4096, 8192], ..Default::default() };
        let h = heap_layout(&k).unwrap();
        assert_eq!(h.rings.map(|r| r.offset), [0, 1024, 3072, 7168]);
        assert_eq!(h.total_size, 15360);
    }

    #[test]
    fn default_sm_is_close_to_reference() {
        let sm = sm_layout(&ArenaSizingKey::default()).unwrap();
        // The C++ reference runtime's SM is 325.6 MB at default sizing.
        assert!(sm.total_size > 300_000_000 && sm.total_size < 340_000_000, "{}", sm.total_size);
    }
}
