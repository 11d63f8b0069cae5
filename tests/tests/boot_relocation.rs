//! Boot relocation: an image built for one set of device bases boots anywhere, and every pointer
//! then points into the regions of that launch.

mod image_support;

use pto_abi::consts::{READY_QUEUE_COUNT, RING_COUNT};
use pto_abi::layout::{heap_layout, sm_layout};
use pto_abi::runtime::{RuntimeHeader, SmHandle};
use pto_abi::sm::{SmHeader, SM_MAGIC};
use pto_abi::DevAddr;
use pto_device::boot::audit::{audit_pointers, pointer_fields, AUDITED_POINTER_COUNT};
use pto_device::boot::ResetKind;
use pto_host::{BoundImage, DeviceBackend, DeviceIo, LaunchParams};

use image_support::*;

fn header_and_handle(runner: &pto_host::DeviceRunner, bound: &BoundImage) -> (RuntimeHeader, SmHandle) {
    let base = bound.regions.arena.base.get();
    let rt: RuntimeHeader =
        runner.backend().read_obj(DevAddr(base + bound.layout.offsets.runtime_header.offset)).unwrap();
    let h: SmHandle = runner.backend().read_obj(DevAddr(base + bound.layout.offsets.sm_handle.offset)).unwrap();
    (rt, h)
}

/// Two runners on one device: `a` bound at window `window`, `b` holding a byte copy of `a`'s image
/// in regions of its own.
struct Relocated {
    a: pto_host::DeviceRunner,
    b: pto_host::DeviceRunner,
    bound_a: BoundImage,
    bound_b: BoundImage,
}

fn relocate(sim: &std::sync::Arc<pto_host::sim::SimBackend>, window: u64) -> Relocated {
    let mut a = runner(sim);
    let bound_a = a.bind(&sizing(window)).unwrap();
    let image = read_bytes(&a, bound_a.regions.arena.base, bound_a.image_size);
    let mut b = runner(sim);
    let regions_b =
        b.setup_static_arena(bound_a.regions.heap.size, bound_a.regions.sm.size, image.len() as u64).unwrap();
    assert_ne!(regions_b.arena.base, bound_a.regions.arena.base);
    sim.copy_to_device(regions_b.arena.base, &image).unwrap();
    let bound_b = BoundImage { regions: regions_b, cache_hit: false, ..bound_a };
    Relocated { a, b, bound_a, bound_b }
}

#[test]
fn image_copied_to_another_region_boots_there_with_every_pointer_rewired() {
    let sim = sim();
    let Relocated { a: _a, mut b, bound_a, bound_b } = relocate(&sim, 16);
    let (s, regions_b) = (bound_a.layout.sizing, bound_b.regions);
    assert_ne!(regions_b.sm.base, bound_a.regions.sm.base);

    let booted = boot_direct(&mut b, &bound_b).expect("relocated image boots");
    assert_eq!(booted.epoch(), 1);
    assert_eq!(booted.reset_kind(), ResetKind::Full);
    let (rt, handle) = header_and_handle(&b, &bound_b);
    audit_pointers(&rt, &handle, &regions_b).expect("audit passes in the new regions");

    let o = &bound_a.layout.offsets;
    let arena = regions_b.arena.base.get();
    assert_eq!(rt.arena_base.get(), arena);
    assert_eq!(rt.image_header.get(), arena + o.image_header.offset);
    assert_eq!(rt.sm_handle.get(), arena + o.sm_handle.offset);
    assert_eq!(rt.orch_state.get(), arena + o.orch_state.offset);
    assert_eq!(rt.scope_stack.get(), arena + o.scope_stack.offset);
    assert_eq!(rt.scope_tasks.get(), arena + o.scope_tasks.offset);
    assert_eq!(rt.ring_sched.get(), arena + o.ring_sched.offset);
    assert_eq!(rt.sched_threads.get(), arena + o.sched_threads.offset);
    for q in 0..READY_QUEUE_COUNT {
        assert_eq!(rt.ready_queues[q].get(), arena + o.ready_queues[q].offset);
    }
    assert_eq!(rt.tensor_map_buckets.get(), arena + o.tensor_map_buckets.offset);
    assert_eq!(rt.tensor_map_entries.get(), arena + o.tensor_map_entries.offset);
    for r in 0..RING_COUNT {
        assert_eq!(rt.dep_pools[r].get(), arena + o.dep_pools[r].offset);
    }
    assert_eq!(rt.mailbox.get(), arena + o.mailbox.offset);
    assert_eq!(rt.core_registers.get(), arena + o.core_registers.offset);
    assert_eq!(rt.handshakes.get(), arena + o.handshakes.offset);
    assert_eq!(rt.core_payloads.get(), arena + o.core_payloads.offset);

    let sm = sm_layout(&s).unwrap();
    let heap = heap_layout(&s).unwrap();
    let (smb, hb) = (regions_b.sm.base.get(), regions_b.heap.base.get());
    assert_eq!((rt.sm_base.get(), rt.heap_base.get()), (smb, hb));
    for r in 0..RING_COUNT {
        assert_eq!(rt.ring_descriptors[r].get(), smb + sm.rings[r].descriptors.offset);
        assert_eq!(rt.ring_payloads[r].get(), smb + sm.rings[r].payloads.offset);
        assert_eq!(rt.ring_slot_states[r].get(), smb + sm.rings[r].slot_states.offset);
        assert_eq!(rt.ring_heaps[r].get(), hb + heap.rings[r].offset);
    }
    assert_eq!((handle.sm_base.get(), handle.heap_base.get()), (smb, hb));
    assert_eq!((handle.sm_size, handle.heap_size), (sm.total_size, heap.total_size));
    assert_eq!((rt.ready, rt.boot_status, rt.boot_count), (1, 0, 1));

    // The device initialised the SM header from the layout.
    let smh: SmHeader = b.backend().read_obj(regions_b.sm.base).unwrap();
    assert_eq!(smh.magic, SM_MAGIC);
    assert_eq!(smh.total_size, sm.total_size);
    for r in 0..RING_COUNT {
        assert_eq!(smh.rings[r].task_window, 16);
        assert_eq!(smh.rings[r].window_mask, 15);
        assert_eq!(smh.rings[r].heap_offset, heap.rings[r].offset);
        assert_eq!(smh.rings[r].slot_states_offset, sm.rings[r].slot_states.offset);
    }
}

#[test]
fn booting_twice_is_idempotent_except_for_the_epoch() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(4)).unwrap();
    let first = boot_direct(&mut r, &bound).unwrap();
    let (rt1, h1) = header_and_handle(&r, &bound);
    let sm1: SmHeader = r.backend().read_obj(bound.regions.sm.base).unwrap();
    let second = boot_direct(&mut r, &bound).unwrap();
    let (rt2, h2) = header_and_handle(&r, &bound);
    let sm2: SmHeader = r.backend().read_obj(bound.regions.sm.base).unwrap();

    assert_eq!((first.epoch(), second.epoch()), (1, 2));
    assert_eq!((first.boot_count(), second.boot_count()), (1, 2));
    assert_eq!(first.reset_kind(), ResetKind::Full, "first boot of a fresh upload clears slot state");
    assert_eq!(second.reset_kind(), ResetKind::Reuse, "a reboot of the resident image is O(1)");
    let p1: Vec<_> = pointer_fields(&rt1, &h1).iter().map(|f| (f.name, f.value)).collect();
    let p2: Vec<_> = pointer_fields(&rt2, &h2).iter().map(|f| (f.name, f.value)).collect();
    assert_eq!(p1.len(), AUDITED_POINTER_COUNT);
    assert_eq!(p1, p2);
    assert_eq!(zerocopy::IntoBytes::as_bytes(&sm1), zerocopy::IntoBytes::as_bytes(&sm2));
    assert_eq!((rt2.epoch, rt2.boot_count), (2, 2));
}

#[test]
fn boot_through_a_backend_launch_reports_ready() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(8)).unwrap();
    let s1 = r.boot_resident(&bound, &LaunchParams::default()).unwrap();
    let s2 = r.boot_resident(&bound, &LaunchParams::default()).unwrap();
    assert_eq!((s1.epoch, s1.boot_count), (1, 1));
    assert_eq!((s2.epoch, s2.boot_count), (2, 2));
    assert_eq!(sim.counters().launches, 2);
}

#[test]
fn a_relocated_image_reboots_at_its_new_bases_with_reuse() {
    let sim = sim();
    let Relocated { a: _a, mut b, bound_b, .. } = relocate(&sim, 8);
    let regions_b = bound_b.regions;

    // In debug and `pointer-audit` builds both boots run the pre-wire audit: the second one must
    // check the pointers against the bases the first one wired, not the image's build-time bases.
    let first = boot_direct(&mut b, &bound_b).expect("first boot at the new bases");
    let second = boot_direct(&mut b, &bound_b).expect("second boot at the new bases");
    assert_eq!((first.boot_count(), second.boot_count()), (1, 2));
    assert_eq!(second.reset_kind(), ResetKind::Reuse, "the resident image reboots with reuse");
    let (rt, handle) = header_and_handle(&b, &bound_b);
    audit_pointers(&rt, &handle, &regions_b).expect("every pointer points into the new regions");
}

#[test]
fn a_cleared_stall_record_names_no_task() {
    let sim = sim();
    let mut r = runner(&sim);
    let bound = r.bind(&sizing(4)).unwrap();
    for boot in 0..2 {
        boot_direct(&mut r, &bound).unwrap();
        let smh: SmHeader = r.backend().read_obj(bound.regions.sm.base).unwrap();
        assert_eq!(smh.sched.code, 0);
        assert_eq!(smh.sched.stall_task, pto_abi::task::NO_TASK, "boot {boot}: task 0 is a real task id");
    }
}
