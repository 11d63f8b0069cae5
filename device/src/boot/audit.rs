//! The pointer audit: every class-A and class-B pointer of the runtime must land inside the region
//! it must point into; a violation names the field.
//!
//! Boot runs it twice in test and debug builds (or with the `pointer-audit` feature): on the image
//! as received, and after wiring and rebinding (into this launch's regions). An image as received
//! points into the regions it was built for until a boot rewires it; from then on (a resident
//! image, `boot_count > 0`) it points into the regions of the boot that last wired it, which may
//! lie elsewhere (an image copied to new bases and booted there), so the first audit uses
//! [`regions_before_wiring`]. A host address left in an image, or a pointer a wiring step forgot,
//! fails it.

use pto_abi::error::BootErrorCode;
use pto_abi::runtime::{RuntimeHeader, SmHandle};
use pto_abi::DevAddr;

use super::error::BootError;
use super::regions::{DeviceRegions, RegionSpan};
use super::validate::ValidatedImage;

/// The regions the pointers of `rt` (the runtime header of `image`, as received) must point into
/// before this boot wires them: the regions the image was built for on its first boot
/// (`boot_count == 0`), otherwise the regions the last boot wired it for (its own `arena_base`,
/// `sm_base` and `heap_base`, with the sizes of the layout).
pub fn regions_before_wiring(image: &ValidatedImage, rt: &RuntimeHeader) -> DeviceRegions {
    let built = image.built_regions();
    if rt.boot_count == 0 {
        return built;
    }
    DeviceRegions {
        arena: RegionSpan::new(rt.arena_base, built.arena.size),
        sm: RegionSpan::new(rt.sm_base, built.sm.size),
        heap: RegionSpan::new(rt.heap_base, built.heap.size),
    }
}

/// True when boot runs the audit automatically.
pub const AUDIT_AT_BOOT: bool = cfg!(any(debug_assertions, feature = "pointer-audit"));

/// Which region a pointer must point into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The runtime arena (class A).
    Arena,
    /// Shared memory (class B).
    Sm,
    /// The GM heap (class B).
    Heap,
}

/// One audited pointer: its field name, value and target region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerField {
    /// Field name as written in the struct, with an index for arrays (e.g. `ring_heaps[2]`).
    pub name: &'static str,
    /// The value found.
    pub value: DevAddr,
    /// Where it must point.
    pub target: Target,
}

/// Number of pointers [`pointer_fields`] lists.
pub const AUDITED_POINTER_COUNT: usize = 42;

const READY_QUEUES: [&str; 4] = ["ready_queues[0]", "ready_queues[1]", "ready_queues[2]", "ready_queues[3]"];
const DEP_POOLS: [&str; 4] = ["dep_pools[0]", "dep_pools[1]", "dep_pools[2]", "dep_pools[3]"];
const DESCRIPTORS: [&str; 4] =
    ["ring_descriptors[0]", "ring_descriptors[1]", "ring_descriptors[2]", "ring_descriptors[3]"];
const PAYLOADS: [&str; 4] = ["ring_payloads[0]", "ring_payloads[1]", "ring_payloads[2]", "ring_payloads[3]"];
const SLOT_STATES: [&str; 4] =
    ["ring_slot_states[0]", "ring_slot_states[1]", "ring_slot_states[2]", "ring_slot_states[3]"];
const HEAPS: [&str; 4] = ["ring_heaps[0]", "ring_heaps[1]", "ring_heaps[2]", "ring_heaps[3]"];

/// Every class-A and class-B pointer of the runtime header and the SM-handle wrapper.
pub fn pointer_fields(rt: &RuntimeHeader, sm_handle: &SmHandle) -> [PointerField; AUDITED_POINTER_COUNT] {
    let mut out = [PointerField { name: "", value: DevAddr::NULL, target: Target::Arena }; AUDITED_POINTER_COUNT];
    let mut i = 0;
    let mut push = |name: &'static str, value: DevAddr, target: Target| {
        out[i] = PointerField { name, value, target };
        i += 1;
    };
    push("arena_base", rt.arena_base, Target::Arena);
    push("image_header", rt.image_header, Target::Arena);
    push("sm_handle", rt.sm_handle, Target::Arena);
    push("orch_state", rt.orch_state, Target::Arena);
    push("scope_stack", rt.scope_stack, Target::Arena);
    push("scope_tasks", rt.scope_tasks, Target::Arena);
    push("ring_sched", rt.ring_sched, Target::Arena);
    push("sched_threads", rt.sched_threads, Target::Arena);
    for (q, name) in READY_QUEUES.iter().enumerate() {
        push(name, rt.ready_queues[q], Target::Arena);
    }
    push("tensor_map_buckets", rt.tensor_map_buckets, Target::Arena);
    push("tensor_map_entries", rt.tensor_map_entries, Target::Arena);
    for (r, name) in DEP_POOLS.iter().enumerate() {
        push(name, rt.dep_pools[r], Target::Arena);
    }
    push("mailbox", rt.mailbox, Target::Arena);
    push("core_registers", rt.core_registers, Target::Arena);
    push("handshakes", rt.handshakes, Target::Arena);
    push("core_payloads", rt.core_payloads, Target::Arena);
    push("sm_base", rt.sm_base, Target::Sm);
    push("heap_base", rt.heap_base, Target::Heap);
    for r in 0..4 {
        push(DESCRIPTORS[r], rt.ring_descriptors[r], Target::Sm);
        push(PAYLOADS[r], rt.ring_payloads[r], Target::Sm);
        push(SLOT_STATES[r], rt.ring_slot_states[r], Target::Sm);
        push(HEAPS[r], rt.ring_heaps[r], Target::Heap);
    }
    push("sm_handle.sm_base", sm_handle.sm_base, Target::Sm);
    push("sm_handle.heap_base", sm_handle.heap_base, Target::Heap);
    out
}

/// Checks every pointer of [`pointer_fields`] against `regions`; the first violation is a
/// `PointerAuditFailed` error naming the field, its value and the region's bounds.
pub fn audit_pointers(rt: &RuntimeHeader, sm_handle: &SmHandle, regions: &DeviceRegions) -> Result<(), BootError> {
    for field in pointer_fields(rt, sm_handle) {
        let region: RegionSpan = match field.target {
            Target::Arena => regions.arena,
            Target::Sm => regions.sm,
            Target::Heap => regions.heap,
        };
        if !region.contains(field.value) {
            return Err(BootError::out_of_range(
                BootErrorCode::PointerAuditFailed,
                field.name,
                region.base.get(),
                region.end(),
                field.value.get(),
            ));
        }
    }
    Ok(())
}
