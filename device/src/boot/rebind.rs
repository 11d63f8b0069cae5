//! Class B: arena pointers into SM and the GM heap, rebound at every boot from this launch's bases.

use pto_abi::consts::RING_COUNT;
use pto_abi::layout::{HeapLayout, SmLayout};
use pto_abi::runtime::{RuntimeHeader, SmHandle};
use pto_abi::DevAddr;

use super::regions::DeviceRegions;

fn at(base: DevAddr, offset: u64) -> DevAddr {
    // Validation checked that each region does not overflow and is at least as large as its layout.
    DevAddr(base.get().wrapping_add(offset))
}

/// Writes every class-B field of `rt` and the SM-handle wrapper from the SM and heap bases of
/// `regions` and the SM and heap layouts of the image's sizing.
///
/// O(1). The host builder calls it with the bases it builds for; the device calls it at every boot
/// with the bases of the launch, so an image stays valid when SM or the heap move.
pub fn rebind_device_pointers_from_layout(
    rt: &mut RuntimeHeader,
    sm_handle: &mut SmHandle,
    regions: &DeviceRegions,
    sm: &SmLayout,
    heap: &HeapLayout,
) {
    let sm_base = regions.sm.base;
    let heap_base = regions.heap.base;
    rt.sm_base = sm_base;
    rt.heap_base = heap_base;
    for r in 0..RING_COUNT {
        rt.ring_descriptors[r] = at(sm_base, sm.rings[r].descriptors.offset);
        rt.ring_payloads[r] = at(sm_base, sm.rings[r].payloads.offset);
        rt.ring_slot_states[r] = at(sm_base, sm.rings[r].slot_states.offset);
        rt.ring_heaps[r] = at(heap_base, heap.rings[r].offset);
    }
    sm_handle.sm_base = sm_base;
    sm_handle.sm_size = sm.total_size;
    sm_handle.heap_base = heap_base;
    sm_handle.heap_size = heap.total_size;
}
