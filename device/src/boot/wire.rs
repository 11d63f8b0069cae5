//! Class A: arena-internal pointers, wired at every boot as arena base + layout offset.

use pto_abi::consts::{READY_QUEUE_COUNT, RING_COUNT};
use pto_abi::layout::{ArenaOffsets, Region};
use pto_abi::runtime::RuntimeHeader;
use pto_abi::DevAddr;

fn at(base: DevAddr, region: Region) -> DevAddr {
    // The layout keeps every region inside [0, arena_size) and validation checked that the arena
    // region [base, base + size) does not overflow, so this addition cannot wrap.
    DevAddr(base.get().wrapping_add(region.offset))
}

/// Writes every class-A field of `rt`: the address of each arena sub-region for an arena at `arena_base`.
///
/// O(1): a fixed number of fields. The host builder calls it to bake the image; the device calls it
/// at every boot, because the arena may now live elsewhere.
pub fn wire_arena_pointers(rt: &mut RuntimeHeader, arena_base: DevAddr, offsets: &ArenaOffsets) {
    rt.arena_base = arena_base;
    rt.image_header = at(arena_base, offsets.image_header);
    rt.sm_handle = at(arena_base, offsets.sm_handle);
    rt.orch_state = at(arena_base, offsets.orch_state);
    rt.scope_stack = at(arena_base, offsets.scope_stack);
    rt.scope_tasks = at(arena_base, offsets.scope_tasks);
    rt.ring_sched = at(arena_base, offsets.ring_sched);
    rt.sched_threads = at(arena_base, offsets.sched_threads);
    for q in 0..READY_QUEUE_COUNT {
        rt.ready_queues[q] = at(arena_base, offsets.ready_queues[q]);
    }
    rt.tensor_map_buckets = at(arena_base, offsets.tensor_map_buckets);
    rt.tensor_map_entries = at(arena_base, offsets.tensor_map_entries);
    for r in 0..RING_COUNT {
        rt.dep_pools[r] = at(arena_base, offsets.dep_pools[r]);
    }
    rt.mailbox = at(arena_base, offsets.mailbox);
    rt.core_registers = at(arena_base, offsets.core_registers);
    rt.handshakes = at(arena_base, offsets.handshakes);
    rt.core_payloads = at(arena_base, offsets.core_payloads);
}
