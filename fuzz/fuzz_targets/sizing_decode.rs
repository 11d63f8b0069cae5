//! The sizing decode on arbitrary key bytes: a key either fails validation with a named field, or
//! lays out an arena whose regions are aligned, in bounds and disjoint, and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pto_abi::sizing::{ArenaSizingKey, SIZING_KEY_BYTES};
use pto_abi::{heap_layout, reserve_layout, sm_layout};

fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = <[u8; SIZING_KEY_BYTES]>::try_from(data.get(..SIZING_KEY_BYTES).unwrap_or(&[])) else { return };
    let key = ArenaSizingKey::from_key_bytes(&bytes);
    assert_eq!(key.to_key_bytes(), bytes, "the key bytes round-trip");
    let valid = key.validate().is_ok();
    let Ok(layout) = reserve_layout(&key) else {
        assert!(!valid, "a valid key always lays out");
        return;
    };
    assert_eq!(reserve_layout(&key).ok(), Some(layout), "the layout is deterministic");
    let o = &layout.offsets;
    let mut regions: Vec<_> = o.regions().iter().map(|r| (r.region.offset, r.region.end(), r.align)).collect();
    for (start, end, align) in &regions {
        assert_eq!(start % align, 0);
        assert!(start <= end && *end <= o.arena_size);
    }
    regions.sort();
    for w in regions.windows(2) {
        assert!(w[0].1 <= w[1].0, "regions never overlap");
    }
    if let (Ok(sm), Ok(heap)) = (sm_layout(&key), heap_layout(&key)) {
        for r in &sm.rings {
            assert!(r.slot_states.end() <= sm.total_size);
        }
        for r in &heap.rings {
            assert!(r.offset + r.size <= heap.total_size);
        }
    }
});
