//! The callable parser on arbitrary bytes: it returns an error or a view whose every part lies
//! inside the blob, and never panics. Inputs whose first byte is odd are byte patches (3-byte
//! offset, value) of the vector example's valid blob, so the fuzzer reaches the checks past the
//! magic (when the flag byte's bit 1 is set too, the patched blob is re-sealed with its checksum, so
//! the patches reach the checks past the checksum); the others are parsed as they are.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pto_abi::callable::{seal_callable, ChipCallableView};

fn example() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| {
        pto_host::examples::vector_example_callable().expect("the example blob builds").as_bytes().to_vec()
    })
}

fn check(data: &[u8]) {
    let Ok(view) = ChipCallableView::parse(data) else { return };
    assert_eq!(view.total_size(), data.len() as u64);
    assert!(view.directions().count() <= view.arg_count() as usize);
    let _ = (view.orchestration_name(), view.config_name(), view.content_hash(), view.aicore_image_hash());
    let orch = view.orchestration_bytes();
    assert!(view.orchestration_offset() + orch.len() as u64 <= data.len() as u64);
    let mut children = 0u32;
    for child in view.children() {
        assert_eq!(child.offset % 64, 0);
        assert!(child.code_offset + child.code.len() as u64 <= data.len() as u64);
        assert_eq!(child.directions().count(), child.signature.len());
        children += 1;
    }
    assert_eq!(children, view.child_count());
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((flag, patches)) if flag & 1 == 1 => {
            let mut blob = example().to_vec();
            for p in patches.chunks_exact(4) {
                let at = u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize;
                // Offsets past the end truncate the blob there instead.
                if at >= blob.len() {
                    blob.truncate(at % (blob.len() + 1));
                } else {
                    blob[at] = p[3];
                }
            }
            if flag & 2 == 2 {
                seal_callable(&mut blob);
            }
            check(&blob);
        }
        _ => check(data),
    }
});
