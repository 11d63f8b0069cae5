//! `setup_static_arena`: grow-only reuse, 0 releases, 1024-aligned bases, and any
//! failing allocation releases all three regions; the tracking allocator frees or abandons.

mod image_support;

use pto_abi::consts::REGION_BASE_ALIGN;
use pto_host::{BackendError, BackendOp, LaunchParams, RunnerError};

use image_support::*;

const MIB: u64 = 1 << 20;

#[test]
fn a_failing_allocation_releases_all_three_regions() {
    for nth in 1..=3u64 {
        // From scratch: the nth of the three allocations fails.
        let sim = sim();
        let mut r = runner(&sim);
        sim.fail_nth(BackendOp::Malloc, nth);
        let e = r.setup_static_arena(MIB, 2 * MIB, 3 * MIB).unwrap_err();
        let RunnerError::StaticArena(e) = e else { panic!("{e}") };
        assert_eq!(e.region, ["heap", "sm", "arena"][nth as usize - 1]);
        assert!(matches!(e.source, BackendError::InjectedFault { op: BackendOp::Malloc, nth: n } if n == nth));
        assert_eq!(r.allocator().committed_bytes(), 0, "fail #{nth}");
        assert_eq!(sim.committed_bytes(), 0, "fail #{nth}");
        assert_eq!(r.regions(), Default::default(), "sizes cleared after fail #{nth}");
        assert!(r.cache().is_empty());

        // With regions committed by an earlier call (and an image resident): growing all three,
        // the nth re-allocation fails and even the earlier regions are released.
        let sim = image_support::sim();
        let mut r = runner(&sim);
        r.bind(&sizing(4)).unwrap();
        assert!(!r.cache().is_empty());
        let before = r.regions();
        sim.fail_nth(BackendOp::Malloc, nth);
        let big = (before.heap.size + MIB, before.sm.size + MIB, before.arena.size + MIB);
        r.setup_static_arena(big.0, big.1, big.2).unwrap_err();
        assert_eq!(r.allocator().committed_bytes(), 0, "grow, fail #{nth}");
        assert_eq!(sim.committed_bytes(), 0, "grow, fail #{nth}");
        assert_eq!(r.regions(), Default::default());
        assert!(r.cache().is_empty(), "setup failure invalidates the cache");

        // The runner recovers: the next setup allocates afresh.
        let again = r.setup_static_arena(big.0, big.1, big.2).unwrap();
        assert_eq!((again.heap.size, again.sm.size, again.arena.size), big);
    }
}

#[test]
fn regions_are_reused_while_large_enough_and_released_on_zero() {
    let sim = sim();
    let mut r = runner(&sim);
    let first = r.setup_static_arena(4 * MIB, 2 * MIB, MIB).unwrap();
    for span in [first.heap, first.sm, first.arena] {
        assert!(span.base.is_aligned(REGION_BASE_ALIGN) && !span.base.is_null());
    }
    let mallocs = sim.counters().mallocs;

    // Smaller or equal requests keep every region (grow-only, no shrink).
    let same = r.setup_static_arena(MIB, 2 * MIB, 1000).unwrap();
    assert_eq!(same, first);
    assert_eq!(sim.counters().mallocs, mallocs);

    // A larger SM request re-allocates only SM.
    let grown = r.setup_static_arena(MIB, 3 * MIB, MIB).unwrap();
    assert_eq!((grown.heap, grown.arena), (first.heap, first.arena));
    assert_eq!(grown.sm.size, 3 * MIB);
    assert_eq!(sim.counters().mallocs, mallocs + 1);
    assert_eq!(r.allocator().committed_bytes(), 4 * MIB + 3 * MIB + MIB);

    // 0 releases.
    let released = r.setup_static_arena(0, 3 * MIB, 0).unwrap();
    assert!(released.heap.base.is_null() && released.arena.base.is_null());
    assert_eq!(released.sm, grown.sm);
    assert_eq!(r.allocator().committed_bytes(), 3 * MIB);
    assert_eq!(sim.live_allocations(), 1);
}

#[test]
fn any_change_of_bases_invalidates_the_resident_image() {
    let sim = sim();
    let mut r = runner(&sim);
    let b = r.bind(&sizing(4)).unwrap();
    // Unchanged regions keep the image resident.
    r.setup_static_arena(b.regions.heap.size, b.regions.sm.size, b.regions.arena.size).unwrap();
    assert!(!r.cache().is_empty());
    // Growing one region moves its base: the resident image is stale.
    r.setup_static_arena(b.regions.heap.size * 2, b.regions.sm.size, b.regions.arena.size).unwrap();
    assert!(r.cache().is_empty());
    assert!(!r.bind(&sizing(4)).unwrap().cache_hit);
}

#[test]
fn finalize_frees_everything() {
    let sim = sim();
    let mut r = runner(&sim);
    let b = r.bind(&sizing(8)).unwrap();
    r.boot_resident(&b, &LaunchParams::default()).unwrap();
    let extra = r.alloc(5000).unwrap();
    assert!(extra.is_aligned(REGION_BASE_ALIGN));
    assert_eq!(sim.live_allocations(), 5, "three regions, the launch block and one buffer");
    r.finalize().unwrap();
    assert_eq!((sim.live_allocations(), sim.committed_bytes()), (0, 0));
    assert_eq!(r.allocator().committed_bytes(), 0);
    drop(r);
    assert_eq!(sim.counters().frees, 5);
}

fn failing_entry(_: &pto_host::sim::SimLaunch) -> Result<(), String> {
    Err("simulated AICPU exception".into())
}

#[test]
fn a_failing_launch_is_a_device_fault_of_its_stream() {
    use pto_host::DeviceBackend;
    let sim = sim();
    sim.register_entry("failing", failing_entry);
    let k = sim.register_kernel_binary(b"failing").unwrap();
    let s = sim.stream_create().unwrap();
    sim.launch_kernel(k, s, 2, pto_abi::DevAddr::NULL).unwrap();
    let e = sim.stream_synchronize(s).unwrap_err();
    assert!(matches!(&e, BackendError::DeviceFault { detail, .. } if detail.contains("simulated AICPU exception")));
    let e = sim.register_kernel_binary(b"no_such_entry").unwrap_err();
    assert!(e.to_string().contains("no_such_entry"), "{e}");
}

#[test]
fn a_device_fault_makes_the_runner_abandon_its_memory_instead_of_freeing_it() {
    let sim = sim();
    let mut r = runner(&sim);
    let b = r.bind(&sizing(4)).unwrap();
    // The AICPU entry the runner launches raises an exception.
    sim.register_entry(pto_host::sim::SIM_BOOT_ENTRY, failing_entry);
    let e = r.boot_resident(&b, &LaunchParams::default()).unwrap_err();
    assert!(matches!(e, RunnerError::Backend(BackendError::DeviceFault { .. })), "{e}");
    assert!(r.faulted());
    let held = sim.live_allocations();
    assert_eq!(held, 4, "three regions and the launch block");
    r.finalize().unwrap();
    assert_eq!(r.allocator().committed_bytes(), 0);
    drop(r);
    assert_eq!(sim.live_allocations(), held, "abandoned, not freed");
}
