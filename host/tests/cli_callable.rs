//! `pto callable` end to end: write the example blob, inspect it (table and JSON), reject bad files
//! with exit code 2 and the specific error.

use std::path::PathBuf;
use std::process::Command;

use pto_host::compute_chip_callable_layout;

fn pto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pto")).args(args).output().expect("run pto")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pto-cli-callable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn example_then_inspect_prints_layout_children_and_hashes() {
    let file = scratch("vector.ptoc");
    let path = file.to_str().unwrap();
    stdout(&pto(&["callable", "example", "vector", "-o", path]));
    let layout = compute_chip_callable_layout(&std::fs::read(&file).unwrap()).unwrap();

    let text = stdout(&pto(&["callable", "inspect", path]));
    assert!(text.contains(&format!("{:#018x}", layout.content_hash)), "{text}");
    assert!(text.contains(&format!("{:#018x}", layout.aicore_image_hash)), "{text}");
    assert!(text.contains("\"vector_example\""), "{text}");
    for c in &layout.children {
        assert!(text.contains(&format!("sim:{}", c.name)), "{text}");
        assert!(text.contains(&format!("{:#x}", c.code_offset)), "{text}");
    }

    let doc: serde_json::Value = serde_json::from_str(&stdout(&pto(&["callable", "inspect", path, "--json"]))).unwrap();
    assert_eq!(doc["total_size"], layout.total_size);
    assert_eq!(doc["header_size"], 12_736);
    assert_eq!(doc["content_hash"], format!("{:#018x}", layout.content_hash));
    assert_eq!(doc["signature"], serde_json::json!(["in", "in", "out_existing", "nodep"]));
    let children = doc["children"].as_array().unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(children[2]["func_id"], 2);
    assert_eq!(children[2]["offset"], layout.children[2].offset);
    assert_eq!(children[1]["kernel"], "sim:vector_add_scalar");
}

#[test]
fn bad_files_exit_2_with_the_specific_error() {
    let file = scratch("bad.ptoc");
    let path = file.to_str().unwrap();
    stdout(&pto(&["callable", "example", "vector", "-o", path]));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(13_000);
    std::fs::write(&file, &bytes).unwrap();
    let out = pto(&["callable", "inspect", path]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated") && err.contains("13504") && err.contains("13000"), "{err}");

    let out = pto(&["callable", "inspect", scratch("missing.ptoc").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn pto_run_goes_through_a_registered_callable() {
    let out = pto(&["run", "--example", "vector", "--window", "64", "--heap", "1M", "--runs", "1"]);
    let text = stdout(&out);
    let blob = pto_host::examples::vector_example_callable().unwrap();
    assert!(
        text.contains(&format!(
            "callable id 0, {} bytes, content hash {:#018x}",
            blob.total_size(),
            blob.content_hash()
        )),
        "{text}"
    );
    assert!(text.contains("check OK"), "{text}");
}
