//! The run-trace region: a header with one section per record kind, then the record arrays.
//!
//! The host allocates the region in device memory only when a run's trace level is above 0 and
//! names it in [`LaunchDescriptor::trace_base`](crate::launch::LaunchDescriptor::trace_base); at
//! level 0 nothing is allocated and no record is written. A writer claims a record index with one
//! atomic add on its section's `cursor`; an index at or past `capacity` is not written and counts
//! in `dropped` instead, so a full section stops recording that kind and says how many it lost.
//! Times are nanoseconds of the device clock the AICPU threads read.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::consts::LANE_COUNT;

/// `TraceHeader::magic`: "PTOTRACE" little-endian.
pub const TRACE_MAGIC: u64 = u64::from_le_bytes(*b"PTOTRACE");
/// Highest trace level: 1 core timing, 2 + AICPU dispatch/finish, 3 + scheduler phases,
/// 4 + orchestrator submits, dependency edges and scope stats.
pub const MAX_TRACE_LEVEL: u32 = 4;
/// Sections of a trace region, one per record kind (`TRACE_KIND_*`).
pub const TRACE_KIND_COUNT: usize = 5;
/// Section of [`BlockRecord`]s.
pub const TRACE_KIND_BLOCK: u32 = 0;
/// Section of [`PhaseRecord`]s.
pub const TRACE_KIND_PHASE: u32 = 1;
/// Section of [`SubmitRecord`]s.
pub const TRACE_KIND_SUBMIT: u32 = 2;
/// Section of [`EdgeRecord`]s.
pub const TRACE_KIND_EDGE: u32 = 3;
/// Section of [`ScopeRecord`]s.
pub const TRACE_KIND_SCOPE: u32 = 4;
/// `EdgeRecord::reason`: the consumer reads a tensor the producer created.
pub const EDGE_REASON_CREATOR: u32 = 0;
/// `EdgeRecord::reason`: the consumer's tensor view overlaps one the producer wrote.
pub const EDGE_REASON_OVERLAP: u32 = 1;
/// `EdgeRecord::reason`: the orchestration named the producer explicitly.
pub const EDGE_REASON_EXPLICIT: u32 = 2;
/// `EdgeRecord::flags`: the producer had already retired (completed and consumed) when the
/// consumer was submitted. The edge is part of the data dependency graph, but the runtime wired
/// nothing for it: there was nothing left to wait for.
pub const EDGE_FLAG_RETIRED: u32 = 1;
/// `BlockRecord::core` of a block run by a virtual core of the deterministic mode.
pub const VIRTUAL_CORE: u32 = u32::MAX;

/// One record array of the region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TraceSection {
    /// Offset of the first record from the region base (a multiple of 64).
    pub offset: u64,
    /// Records the section holds.
    pub capacity: u64,
    /// Records claimed so far (may exceed `capacity`; only the first `capacity` were written).
    pub cursor: u64,
    /// Records not written because the section was full.
    pub dropped: u64,
}

/// The header at offset 0 of a trace region; the host writes all of it but the cursors and drop
/// counts, which it zeroes.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TraceHeader {
    /// [`TRACE_MAGIC`].
    pub magic: u64,
    /// Bytes of the whole region.
    pub region_bytes: u64,
    /// The run's trace level, 1..=[`MAX_TRACE_LEVEL`].
    pub level: u32,
    /// Explicit padding.
    pub _pad0: [u8; 4],
    /// Device clock at the start of the run (the orchestrator writes it).
    pub epoch_ns: u64,
    /// Explicit padding to the end of the first line.
    pub _pad1: [u8; 32],
    /// Sections by `TRACE_KIND_*`.
    pub sections: [TraceSection; TRACE_KIND_COUNT],
    /// Explicit padding to a whole number of lines.
    pub _pad2: [u8; 32],
}

/// One block of one task on one core (or one virtual core).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct BlockRecord {
    /// Task id (ring in the top bits).
    pub task_id: u64,
    /// Func id per lane (`u32::MAX` for an inactive lane).
    pub func_ids: [u32; LANE_COUNT],
    /// Core index, or [`VIRTUAL_CORE`].
    pub core: u32,
    /// Block index.
    pub block_idx: u32,
    /// Blocks of the task.
    pub block_num: u32,
    /// AICPU thread that dispatched the block.
    pub thread: u32,
    /// Explicit padding.
    pub _pad: [u8; 4],
    /// AICPU time of the dispatch (0 below level 2).
    pub dispatch_ns: u64,
    /// Time the block's kernel started.
    pub start_ns: u64,
    /// Time the block's kernel ended.
    pub end_ns: u64,
    /// AICPU time the completion was seen (0 below level 2).
    pub finish_ns: u64,
}

/// One scheduler iteration: where its time went (level 3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct PhaseRecord {
    /// AICPU thread.
    pub thread: u32,
    /// Explicit padding.
    pub _pad: [u8; 4],
    /// Start of the iteration.
    pub start_ns: u64,
    /// Nanoseconds spent completing tasks.
    pub complete_ns: u64,
    /// Nanoseconds spent dispatching.
    pub dispatch_ns: u64,
    /// Nanoseconds spent releasing producers and advancing watermarks.
    pub release_ns: u64,
    /// Nanoseconds with nothing to do.
    pub idle_ns: u64,
}

/// One submit of the orchestrator (level 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SubmitRecord {
    /// The task submitted.
    pub task_id: u64,
    /// Submit start.
    pub start_ns: u64,
    /// Submit end.
    pub end_ns: u64,
    /// Producers found (edges recorded for this task).
    pub producers: u32,
    /// Scope serial of the task.
    pub scope_serial: u32,
}

/// One dependency edge found by a submit (level 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct EdgeRecord {
    /// The producer task.
    pub producer: u64,
    /// The consumer task (the one submitted).
    pub consumer: u64,
    /// Tensor argument index of the consumer (`u32::MAX` for an explicit edge).
    pub tensor: u32,
    /// `EDGE_REASON_*`.
    pub reason: u32,
    /// `EDGE_FLAG_*` bits.
    pub flags: u32,
    /// Explicit padding.
    pub _pad: [u8; 4],
}

/// One closed scope (level 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ScopeRecord {
    /// Scope serial.
    pub serial: u32,
    /// Ring of the scope.
    pub ring: u32,
    /// Tasks submitted in the scope.
    pub tasks: u64,
    /// Peak tasks in flight on the ring (allocated, not yet consumed).
    pub peak_ring_fill: u64,
    /// Ring task window.
    pub ring_window: u64,
    /// Peak heap bytes in use on the ring.
    pub peak_heap: u64,
    /// Ring heap bytes.
    pub heap_size: u64,
    /// Peak dep-pool entries in use on the ring.
    pub peak_dep_pool: u64,
    /// Ring dep-pool capacity.
    pub dep_pool_capacity: u64,
}

/// Byte size of one record of kind `kind` (`TRACE_KIND_*`), or 0 for an unknown kind.
pub const fn record_size(kind: u32) -> u64 {
    (match kind {
        TRACE_KIND_BLOCK => core::mem::size_of::<BlockRecord>(),
        TRACE_KIND_PHASE => core::mem::size_of::<PhaseRecord>(),
        TRACE_KIND_SUBMIT => core::mem::size_of::<SubmitRecord>(),
        TRACE_KIND_EDGE => core::mem::size_of::<EdgeRecord>(),
        TRACE_KIND_SCOPE => core::mem::size_of::<ScopeRecord>(),
        _ => 0,
    }) as u64
}

/// Lowest trace level that records kind `kind`.
pub const fn kind_level(kind: u32) -> u32 {
    match kind {
        TRACE_KIND_BLOCK => 1,
        TRACE_KIND_PHASE => 3,
        _ => 4,
    }
}

/// The header of a region holding `capacities[k]` records of kind `k` (0 for kinds the level
/// does not record), with sections laid out after the header in kind order, each 64-aligned.
pub fn layout(level: u32, capacities: [u64; TRACE_KIND_COUNT]) -> Option<TraceHeader> {
    if level == 0 || level > MAX_TRACE_LEVEL {
        return None;
    }
    let mut at = core::mem::size_of::<TraceHeader>() as u64;
    let mut sections = [TraceSection::default(); TRACE_KIND_COUNT];
    for (k, s) in sections.iter_mut().enumerate() {
        let cap = if kind_level(k as u32) <= level { capacities[k] } else { 0 };
        let bytes = cap.checked_mul(record_size(k as u32))?;
        *s = TraceSection { offset: at, capacity: cap, cursor: 0, dropped: 0 };
        at = at.checked_add(bytes)?.checked_add(63)? & !63;
    }
    Some(TraceHeader {
        magic: TRACE_MAGIC,
        region_bytes: at,
        level,
        _pad0: [0; 4],
        epoch_ns: 0,
        _pad1: [0; 32],
        sections,
        _pad2: [0; 32],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places_sections_in_order_and_skips_kinds_above_the_level() {
        let h = layout(1, [10, 10, 10, 10, 10]).unwrap();
        assert_eq!(h.sections[0].capacity, 10);
        assert!(h.sections[1..].iter().all(|s| s.capacity == 0));
        let h = layout(4, [3, 2, 2, 2, 2]).unwrap();
        let head = core::mem::size_of::<TraceHeader>() as u64;
        assert_eq!(h.sections[0].offset, head);
        assert_eq!(h.sections[1].offset, head + (3 * record_size(TRACE_KIND_BLOCK)).div_ceil(64) * 64);
        assert!(h.region_bytes % 64 == 0);
        assert!(layout(0, [1; 5]).is_none());
        assert!(layout(5, [1; 5]).is_none());
        assert!(layout(4, [u64::MAX; 5]).is_none());
    }
}
