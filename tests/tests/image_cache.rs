//! The prebuilt image cache: a hit writes nothing to the device, any sizing change
//! misses, a failed upload leaves no entry, and alternating sizings never rebuilds.

mod image_support;

use pto_abi::consts::RING_COUNT;
use pto_abi::sizing::ArenaSizingKey;
use pto_host::{BackendOp, CacheKey, LaunchParams, RunnerError};

use image_support::*;

#[test]
fn a_hit_performs_no_device_write_no_setup_and_no_build() {
    let sim = sim();
    let mut r = runner(&sim);
    let s = sizing(16);
    let miss = r.bind(&s).unwrap();
    assert!(!miss.cache_hit);
    let before = sim.counters();
    let stats = r.bind_stats();
    let hit = r.bind(&s).unwrap();
    assert!(hit.cache_hit);
    assert_eq!(sim.counters(), before, "a hit makes no backend call at all");
    assert_eq!(before.device_writes(), 1, "the miss wrote the image in one upload");
    assert_eq!(r.bind_stats().images_built, stats.images_built);
    assert_eq!(r.bind_stats().hits, stats.hits + 1);
    assert_eq!((hit.regions, hit.layout, hit.image_size), (miss.regions, miss.layout, miss.image_size));

    // And the resident image boots (O(1) reset) after the hit.
    r.boot_resident(&miss, &LaunchParams::default()).unwrap();
    let again = r.boot_resident(&hit, &LaunchParams::default()).unwrap();
    assert_eq!(again.boot_count, 2);
}

/// The 12 sizing values, each changed on its own to another valid value.
fn one_value_changed(base: &ArenaSizingKey) -> Vec<(String, ArenaSizingKey)> {
    let mut out = Vec::new();
    for r in 0..RING_COUNT {
        let mut k = *base;
        k.task_window_sizes[r] *= 2;
        out.push((format!("task_window_sizes[{r}]"), k));
        let mut k = *base;
        k.heap_sizes[r] += 1024;
        out.push((format!("heap_sizes[{r}]"), k));
        let mut k = *base;
        k.dep_pool_capacities[r] += 1;
        out.push((format!("dep_pool_capacities[{r}]"), k));
    }
    out
}

#[test]
fn changing_any_one_of_the_twelve_sizing_values_misses() {
    let sim = sim();
    let base = sizing(8);
    let variants = one_value_changed(&base);
    assert_eq!(variants.len(), 12);
    for (what, k) in variants {
        k.validate().unwrap();
        let mut r = runner(&sim);
        r.bind(&base).unwrap();
        assert!(r.cache().probe(&CacheKey::new(&k)).is_none(), "{what}: probe must miss");
        let writes = sim.counters().device_writes();
        let b = r.bind(&k).unwrap();
        assert!(!b.cache_hit, "{what} changed but the bind hit");
        assert_eq!(sim.counters().device_writes(), writes + 1, "{what}: one upload");
        assert_eq!(b.layout.sizing, k);
        assert!(r.bind(&k).unwrap().cache_hit, "{what}: the new sizing is now resident");
    }
}

#[test]
fn the_key_is_the_sizing_bytes_plus_the_fingerprint() {
    let k = sizing(8);
    let a = CacheKey::new(&k);
    assert_eq!(&a.bytes()[..80], &k.to_key_bytes());
    assert_eq!(a.bytes()[80..], pto_abi::ABI_FINGERPRINT.to_le_bytes());
    let other_firmware = CacheKey::with_fingerprint(&k, pto_abi::ABI_FINGERPRINT ^ 1);
    assert!(!a.matches(&other_firmware));
    assert!(a.matches(&CacheKey::new(&sizing(8))));
}

#[test]
fn a_failed_upload_leaves_no_entry_and_the_next_bind_uploads() {
    let sim = sim();
    let mut r = runner(&sim);
    let a = sizing(8);
    let b = sizing(16);
    r.bind(&a).unwrap();
    sim.fail_nth(BackendOp::CopyToDevice, 1);
    let e = r.bind(&b).unwrap_err();
    assert!(matches!(e, RunnerError::Backend(_)), "{e}");
    assert!(r.cache().is_empty(), "the old entry was invalidated before the upload, no new one marked");
    assert!(r.cache().probe(&CacheKey::new(&a)).is_none());
    assert!(r.cache().probe(&CacheKey::new(&b)).is_none());

    // The built image is kept host-side: the retry uploads without rebuilding.
    let built = r.bind_stats().images_built;
    let retry = r.bind(&b).unwrap();
    assert!(!retry.cache_hit);
    assert_eq!(r.bind_stats().images_built, built);
    assert!(r.bind(&b).unwrap().cache_hit);
}

#[test]
fn a_failed_static_setup_during_bind_leaves_no_entry() {
    let sim = sim();
    let mut r = runner(&sim);
    r.bind(&sizing(4)).unwrap();
    sim.fail_nth(BackendOp::Malloc, 1);
    assert!(matches!(r.bind(&sizing(64)), Err(RunnerError::StaticArena(_))));
    assert!(r.cache().is_empty());
    assert_eq!(sim.committed_bytes(), 0);
    assert!(!r.bind(&sizing(4)).unwrap().cache_hit);
}

#[test]
fn alternating_two_sizings_builds_each_image_once() {
    let sim = sim();
    let mut r = runner(&sim);
    let (a, b) = (sizing(8), sizing(64));
    for round in 0..6 {
        let s = if round % 2 == 0 { a } else { b };
        let bound = r.bind(&s).unwrap();
        assert!(!bound.cache_hit, "the arena holds one image, so each alternation uploads");
        r.boot_resident(&bound, &LaunchParams::default()).unwrap();
    }
    let st = r.bind_stats();
    assert_eq!(st.images_built, 2, "{st:?}");
    assert_eq!((st.uploads, st.misses, st.hits), (6, 6, 0));
}

#[test]
fn a_probe_never_mutates() {
    let sim = sim();
    let mut r = runner(&sim);
    r.bind(&sizing(8)).unwrap();
    let resident = *r.cache().resident().unwrap();
    let lru = r.image_lru().len();
    let stats = r.bind_stats();
    for w in [4, 8, 16] {
        let _ = r.cache().probe(&CacheKey::new(&sizing(w)));
        let _ = r.image_lru().contains(&CacheKey::new(&sizing(w)));
    }
    assert_eq!(*r.cache().resident().unwrap(), resident);
    assert_eq!((r.image_lru().len(), r.bind_stats()), (lru, stats));
}
