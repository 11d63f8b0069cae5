//! `pto layout` end to end: table, JSON and error exit codes.

use std::process::Command;

fn pto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pto")).args(args).output().expect("run pto")
}

#[test]
fn json_output_matches_the_layout_engine() {
    let out = pto(&["layout", "--window", "4,8,16,32", "--heap", "1K", "--dep-pool", "4", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let key = pto_abi::ArenaSizingKey {
        task_window_sizes: [4, 8, 16, 32],
        heap_sizes: [1024; 4],
        dep_pool_capacities: [4; 4],
    };
    let layout = pto_abi::reserve_layout(&key).unwrap();
    assert_eq!(doc["arena_size"], layout.offsets.arena_size);
    assert_eq!(doc["sm_size"], pto_abi::sm_layout(&key).unwrap().total_size);
    assert_eq!(doc["heap_size"], 4096);
    assert_eq!(doc["abi_fingerprint"], format!("{:#018x}", pto_abi::ABI_FINGERPRINT));
    let regions = doc["regions"].as_array().unwrap();
    let expected = layout.offsets.regions();
    assert_eq!(regions.len(), expected.len());
    for (j, r) in regions.iter().zip(expected.iter()) {
        assert_eq!(j["name"], r.name);
        assert_eq!(j["offset"], r.region.offset);
        assert_eq!(j["size"], r.region.size);
    }
}

#[test]
fn table_output_lists_every_region_and_the_fingerprint() {
    let out = pto(&["layout"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for r in pto_abi::reserve_layout(&Default::default()).unwrap().offsets.regions() {
        assert!(text.contains(r.name), "missing region {}", r.name);
    }
    assert!(text.contains(&format!("{:#018x}", pto_abi::ABI_FINGERPRINT)));
}

#[test]
fn invalid_sizing_exits_2_with_the_specific_rule() {
    let out = pto(&["layout", "--heap", "1K,2K,1500,4K"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("heap_sizes[2] = 1500: must be a multiple of 1024"), "{err}");

    let out = pto(&["layout", "--window", "4,4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("one value or 4"));
}
