//! The image builder: deterministic bytes, a validating header, baked pointers, and rebasing that
//! equals a fresh build.

mod image_support;

use pto_abi::image::IMAGE_MAGIC;
use pto_abi::{reserve_layout, DevAddr, ABI_FINGERPRINT, ABI_VERSION};
use pto_device::boot::audit::audit_pointers;
use pto_device::boot::{DeviceRegions, RegionSpan};
use pto_host::{build_runtime_image, nominal_regions, ImageError};

use image_support::sizing;

fn regions_at(base: u64, layout: &pto_abi::RuntimeArenaLayout) -> DeviceRegions {
    let nominal = nominal_regions(layout).unwrap();
    DeviceRegions {
        arena: RegionSpan::new(DevAddr(base), nominal.arena.size),
        sm: RegionSpan::new(DevAddr(base + (1 << 30)), nominal.sm.size),
        heap: RegionSpan::new(DevAddr(base + (2 << 30)), nominal.heap.size),
    }
}

#[test]
fn same_layout_and_bases_give_the_same_bytes() {
    let layout = reserve_layout(&sizing(16)).unwrap();
    let regions = regions_at(1 << 40, &layout);
    let a = build_runtime_image(&layout, &regions).unwrap();
    let b = build_runtime_image(&layout, &regions).unwrap();
    assert_eq!(a.bytes(), b.bytes());
    assert_eq!(a.bytes().len() as u64, layout.offsets.arena_size);

    let h = a.header();
    assert_eq!((h.magic, h.abi_version, h.abi_fingerprint), (IMAGE_MAGIC, ABI_VERSION, ABI_FINGERPRINT));
    assert_eq!((h.image_size, h.layout), (layout.offsets.arena_size, layout));
    assert_eq!(
        (h.built_arena_base, h.built_sm_base, h.built_heap_base),
        (regions.arena.base, regions.sm.base, regions.heap.base)
    );
    let v = a.validate().unwrap();
    let handle = zerocopy::FromBytes::read_from_bytes(
        &a.bytes()[layout.offsets.sm_handle.offset as usize..][..core::mem::size_of::<pto_abi::runtime::SmHandle>()],
    )
    .unwrap();
    audit_pointers(&v.runtime_header, &handle, &regions).expect("baked pointers lie in the built regions");
}

#[test]
fn the_image_is_zero_outside_headers_and_shrinks_with_the_sizing() {
    let layout = reserve_layout(&sizing(4)).unwrap();
    let img = build_runtime_image(&layout, &regions_at(1 << 40, &layout)).unwrap();
    let o = &layout.offsets;
    // Patterns the device generates are not uploaded: cells, tensor map, dep pools are zero.
    for r in [o.tensor_map_buckets, o.tensor_map_entries, o.dep_pools[0], o.scope_tasks, o.core_registers] {
        assert!(img.bytes()[r.offset as usize..r.end() as usize].iter().all(|&b| b == 0));
    }
    let q = o.ready_queues[0];
    let cells = &img.bytes()[(q.offset + 192) as usize..q.end() as usize];
    assert!(cells.iter().all(|&b| b == 0), "ready-queue cells are not uploaded as a ramp");
    assert!(img.bytes().len() < 1 << 20);
}

#[test]
fn rebasing_equals_building_for_the_new_bases() {
    let layout = reserve_layout(&sizing(32)).unwrap();
    let (r1, r2) = (regions_at(1 << 40, &layout), regions_at(3 << 40, &layout));
    let mut img = build_runtime_image(&layout, &r1).unwrap();
    let fresh = build_runtime_image(&layout, &r2).unwrap();
    assert_ne!(img.bytes(), fresh.bytes());
    img.rebase(&r2).unwrap();
    assert_eq!(img, fresh);
}

#[test]
fn bad_bases_are_refused_with_the_region_named() {
    let layout = reserve_layout(&sizing(4)).unwrap();
    let mut r = regions_at(1 << 40, &layout);
    r.sm.base = DevAddr(r.sm.base.get() + 512);
    assert!(matches!(build_runtime_image(&layout, &r), Err(ImageError::BadBase { region: "sm", .. })));
    let mut r = regions_at(1 << 40, &layout);
    r.arena.size -= 64;
    let e = build_runtime_image(&layout, &r).unwrap_err();
    assert!(matches!(e, ImageError::RegionTooSmall { region: "arena", .. }), "{e}");
    let mut r = regions_at(1 << 40, &layout);
    r.heap.base = DevAddr::NULL;
    assert!(matches!(build_runtime_image(&layout, &r), Err(ImageError::BadBase { region: "heap", .. })));
}
