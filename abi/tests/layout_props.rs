//! Property tests of the layout engine over random sizing keys.

use proptest::prelude::*;
use pto_abi::consts::{CACHE_LINE, RING_COUNT};
use pto_abi::sizing::{ArenaSizingKey, SizingField, SizingRule, MAX_TASK_WINDOW};
use pto_abi::{heap_layout, reserve_layout, sm_layout, LayoutError, Region};

/// A valid key: power-of-two windows whose sum stays legal, 1 KiB-multiple heaps, legal dep pools.
fn valid_key() -> impl Strategy<Value = ArenaSizingKey> {
    (prop::array::uniform4(2u32..=24), prop::array::uniform4(1u64..=(1 << 24)), prop::array::uniform4(4u32..=(1 << 22)))
        .prop_map(|(w, h, d)| ArenaSizingKey {
            task_window_sizes: w.map(|e| 1u64 << e),
            heap_sizes: h.map(|k| k * 1024),
            dep_pool_capacities: d,
        })
}

/// Any key at all, mostly invalid.
fn any_key() -> impl Strategy<Value = ArenaSizingKey> {
    (prop::array::uniform4(any::<u64>()), prop::array::uniform4(any::<u64>()), prop::array::uniform4(any::<u32>()))
        .prop_map(|(w, h, d)| ArenaSizingKey { task_window_sizes: w, heap_sizes: h, dep_pool_capacities: d })
}

fn check_regions(what: &str, regions: &[(&str, Region)], total: u64) {
    for (name, r) in regions {
        assert_eq!(r.offset % CACHE_LINE, 0, "{what}: {name} at {:#x} is not 64-aligned", r.offset);
        assert!(r.size > 0, "{what}: {name} is empty");
        assert!(r.end() <= total, "{what}: {name} ends at {:#x} past {total:#x}", r.end());
    }
    for (i, (a, ra)) in regions.iter().enumerate() {
        for (b, rb) in &regions[i + 1..] {
            assert!(!ra.overlaps(rb), "{what}: {a} {ra:?} overlaps {b} {rb:?}");
        }
    }
}

fn check_key(k: &ArenaSizingKey) {
    let layout = reserve_layout(k).expect("valid key must lay out");
    assert_eq!(layout, reserve_layout(k).unwrap(), "not deterministic");
    assert_eq!(layout.sizing, *k);
    let o = &layout.offsets;
    assert_eq!(o.image_header.offset, 0);
    assert_eq!(o.arena_size % CACHE_LINE, 0);
    let regions: Vec<_> = o.regions().iter().map(|r| (r.name, r.region)).collect();
    check_regions("arena", &regions, o.arena_size);
    assert!(o.ready_queue_capacity.is_power_of_two() && o.ready_queue_capacity >= k.total_task_window());
    assert!(o.tensor_map_bucket_count.is_power_of_two());

    let sm = sm_layout(k).unwrap();
    let mut sm_regions = vec![("header", sm.header)];
    for r in &sm.rings {
        sm_regions.extend([("descriptors", r.descriptors), ("payloads", r.payloads), ("slot_states", r.slot_states)]);
    }
    check_regions("sm", &sm_regions, sm.total_size);

    let heap = heap_layout(k).unwrap();
    let mut at = 0;
    for r in 0..RING_COUNT {
        assert_eq!(heap.rings[r].offset, at);
        assert_eq!(heap.rings[r].offset % 1024, 0);
        at += k.heap_sizes[r];
    }
    assert_eq!(heap.total_size, at);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 }))]

    #[test]
    fn valid_keys_give_aligned_disjoint_contained_deterministic_layouts(k in valid_key()) {
        check_key(&k);
    }

    #[test]
    fn a_larger_window_never_gives_a_smaller_arena(k in valid_key(), ring in 0usize..RING_COUNT) {
        let mut bigger = k;
        bigger.task_window_sizes[ring] *= 2;
        prop_assume!(bigger.validate().is_ok());
        let small = reserve_layout(&k).unwrap().offsets.arena_size;
        let large = reserve_layout(&bigger).unwrap().offsets.arena_size;
        prop_assert!(large >= small, "window x2 on ring {}: {} -> {}", ring, small, large);
        prop_assert!(sm_layout(&bigger).unwrap().total_size > sm_layout(&k).unwrap().total_size);
    }

    #[test]
    fn a_larger_dep_pool_never_gives_a_smaller_arena(k in valid_key(), ring in 0usize..RING_COUNT) {
        let mut bigger = k;
        bigger.dep_pool_capacities[ring] = bigger.dep_pool_capacities[ring].saturating_mul(2).min((1 << 31) - 1);
        let small = reserve_layout(&k).unwrap().offsets.arena_size;
        prop_assert!(reserve_layout(&bigger).unwrap().offsets.arena_size >= small);
    }

    #[test]
    fn arbitrary_keys_never_panic(k in any_key()) {
        match reserve_layout(&k) {
            Ok(_) => check_key(&k),
            Err(LayoutError::Sizing(e)) => prop_assert_eq!(Err(e), k.validate()),
            Err(LayoutError::Overflow { region }) => prop_assert!(!region.is_empty()),
        }
        prop_assert_eq!(sm_layout(&k).is_ok(), k.validate().is_ok());
        prop_assert_eq!(heap_layout(&k).is_ok(), k.validate().is_ok());
    }
}

#[test]
fn four_maximal_windows_are_rejected_not_wrapped() {
    let k = ArenaSizingKey::uniform(1 << 30, 1024, 4);
    let e = k.validate().unwrap_err();
    assert_eq!((e.field, e.ring), (SizingField::TaskWindow, None));
    assert_eq!(e.rule, SizingRule::SumAtMost { max: MAX_TASK_WINDOW });
    assert!(matches!(reserve_layout(&k), Err(LayoutError::Sizing(_))));
}

#[test]
fn heap_sums_near_u64_max_are_rejected() {
    let half = (u64::MAX / 2) & !1023;
    let mut k = ArenaSizingKey::uniform(4, 1024, 4);
    k.heap_sizes = [half, half, 2048, 1024];
    assert!(
        matches!(heap_layout(&k), Err(LayoutError::Sizing(e)) if e.field == SizingField::HeapSize && e.ring.is_none())
    );
    k.heap_sizes = [!1023, 1024, 1024, 1024];
    assert!(reserve_layout(&k).is_err());
    assert!(sm_layout(&k).is_err());
}

#[test]
fn the_largest_legal_windows_and_pools_lay_out_without_overflow() {
    let k = ArenaSizingKey {
        task_window_sizes: [1 << 30, 1 << 29, 1 << 28, 1 << 27],
        heap_sizes: [1 << 40; 4],
        dep_pool_capacities: [(1 << 31) - 1; 4],
    };
    check_key(&k);
}
