//! ChipCallable blobs: layout goldens, builder limits, hash stability, and patching that never
//! touches the caller's bytes.

use std::mem::offset_of;

use pto_abi::callable::{
    BlobPart, CallableError, CoreCallableHeader, CHIP_HEADER_SIZE, CORE_CODE_OFFSET, CORE_HEADER_SIZE, MAX_CHILDREN,
    MAX_CHIP_ARGS, MAX_CORE_ARGS,
};
use pto_abi::task::TensorDirection::{self, InOut, Input, NoDep, Output, OutputExisting};
use pto_abi::DevAddr;
use pto_host::examples::vector_example_callable;
use pto_host::sim::sim_kernel_binary;
use pto_host::{
    compute_chip_callable_layout, patch_chip_callable_scratch_for_device, BuildError, ChipCallable, CoreCallable,
    NameOwner, Orchestration, MAX_NAME_LEN,
};

/// FNV-1a 64 written out independently of `pto_abi::fingerprint`.
fn reference_fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn orch(bytes: &[u8]) -> Orchestration {
    Orchestration { name: "orch".into(), config_name: "cfg".into(), bytes: bytes.to_vec() }
}

fn kernels(n: u32) -> Vec<CoreCallable> {
    (0..n).map(|i| CoreCallable::sim(i * 3, &format!("k{i}"), &[Input, Output])).collect()
}

#[test]
fn header_sizes_and_code_offset_are_pinned() {
    assert_eq!(CHIP_HEADER_SIZE, 12_736);
    assert_eq!(CORE_HEADER_SIZE, 144);
    assert_eq!(CORE_CODE_OFFSET, 192);
    assert_eq!((MAX_CHIP_ARGS, MAX_CHILDREN, MAX_CORE_ARGS), (256, 1024, 32));
}

#[test]
fn vector_example_layout_golden() {
    let blob = vector_example_callable().unwrap();
    let layout = compute_chip_callable_layout(blob.as_bytes()).unwrap();
    assert_eq!(layout.header_size, 12_736);
    assert_eq!((layout.orchestration_offset, layout.orchestration_size), (12_736, 0));
    assert_eq!(layout.orchestration_name, "vector_example");
    assert_eq!(layout.config_name, "default");
    assert_eq!(layout.signature, vec![Input, Input, OutputExisting, NoDep]);
    let rows: Vec<_> =
        layout.children.iter().map(|c| (c.func_id, c.name.as_str(), c.offset, c.code_offset, c.code_size)).collect();
    assert_eq!(
        rows,
        vec![
            (0, "vector_add", 12_736, 12_928, 18),
            (1, "vector_add_scalar", 12_992, 13_184, 25),
            (2, "vector_mul", 13_248, 13_440, 18),
        ]
    );
    assert_eq!(layout.total_size, 13_504);
    assert_eq!(layout.children[1].signature, vec![Input, Output]);
    for c in &layout.children {
        assert_eq!(c.offset % 64, 0);
        assert_eq!(c.code_offset, c.offset + 192);
    }
}

#[test]
fn content_hash_is_fnv1a_over_the_whole_blob_and_stored_as_its_checksum() {
    let a = vector_example_callable().unwrap();
    let b = vector_example_callable().unwrap();
    assert_eq!(a.as_bytes(), b.as_bytes(), "the builder is deterministic");
    let layout = compute_chip_callable_layout(a.as_bytes()).unwrap();
    // The hash of the blob with its checksum field read as zero, and the value that field holds.
    let at = pto_abi::callable::CALLABLE_CHECKSUM_OFFSET;
    let mut zeroed = a.as_bytes().to_vec();
    zeroed[at..at + 8].fill(0);
    assert_eq!(layout.content_hash, reference_fnv1a64(&zeroed));
    assert_eq!(layout.content_hash.to_le_bytes(), a.as_bytes()[at..at + 8]);
    assert_eq!(layout.content_hash, a.content_hash());
    // Golden: moves only when the blob format or the example changes.
    assert_eq!(layout.content_hash, 0x434c_c05b_7cb7_7986, "got {:#x}", layout.content_hash);
}

#[test]
fn aicore_image_hash_ignores_orchestration_bytes_and_names() {
    let children = kernels(3);
    let base = ChipCallable::build(&[Input], &orch(b""), &children).unwrap();
    let other_orch = ChipCallable::build(&[Input], &orch(&[7u8; 1000]), &children).unwrap();
    let renamed = ChipCallable::build(
        &[Input, Output],
        &Orchestration { name: "other".into(), config_name: "x".into(), bytes: b"task program".to_vec() },
        &children,
    )
    .unwrap();
    assert_ne!(base.content_hash(), other_orch.content_hash());
    assert_ne!(base.content_hash(), renamed.content_hash());
    assert_eq!(base.aicore_image_hash(), other_orch.aicore_image_hash());
    assert_eq!(base.aicore_image_hash(), renamed.aicore_image_hash());

    let mut changed = children.clone();
    changed[1].binary = sim_kernel_binary("k1_v2");
    let kernel_changed = ChipCallable::build(&[Input], &orch(b""), &changed).unwrap();
    assert_ne!(base.aicore_image_hash(), kernel_changed.aicore_image_hash());
    let mut refunc = children.clone();
    refunc[2].func_id = 100;
    let func_changed = ChipCallable::build(&[Input], &orch(b""), &refunc).unwrap();
    assert_ne!(base.aicore_image_hash(), func_changed.aicore_image_hash());
}

#[test]
fn patching_writes_a_scratch_copy_and_never_the_callers_blob() {
    let blob = ChipCallable::build(&[Input, Output], &orch(b"abc"), &kernels(4)).unwrap();
    let before = blob.as_bytes().to_vec();
    let hash = blob.content_hash();
    let base = DevAddr(0x7_0000_0400);
    let scratch = patch_chip_callable_scratch_for_device(&blob, base).unwrap();
    assert_eq!(blob.as_bytes(), &before[..], "the caller's bytes are unchanged");
    assert_eq!(blob.content_hash(), hash);

    let resolved = offset_of!(CoreCallableHeader, resolved_addr);
    let layout = compute_chip_callable_layout(&before).unwrap();
    let mut expected = before.clone();
    for c in &layout.children {
        let at = c.offset as usize + resolved;
        assert_eq!(&before[at..at + 8], &[0u8; 8], "the caller's blob holds null addresses");
        expected[at..at + 8].copy_from_slice(&(base.get() + c.code_offset).to_le_bytes());
    }
    assert!(pto_abi::callable::seal_callable(&mut expected));
    assert_eq!(scratch, expected, "only the resolved addresses differ, and the copy is re-sealed");
    let patched = ChipCallable::from_bytes(scratch).unwrap();
    for (c, view) in layout.children.iter().zip(patched.view().children()) {
        assert_eq!(view.resolved_addr, DevAddr(base.get() + c.code_offset));
    }
    assert_eq!(patched.aicore_image_hash(), blob.aicore_image_hash());
    assert_ne!(patched.content_hash(), blob.content_hash());
}

#[test]
fn builder_accepts_every_limit_exactly() {
    let sig = vec![InOut; MAX_CHIP_ARGS];
    let children: Vec<_> = (0..MAX_CHILDREN as u32)
        .map(|i| CoreCallable {
            func_id: i,
            name: "k".repeat(MAX_NAME_LEN),
            signature: vec![NoDep; 32],
            binary: vec![],
        })
        .collect();
    let blob = ChipCallable::build(&sig, &orch(b""), &children).unwrap();
    let layout = compute_chip_callable_layout(blob.as_bytes()).unwrap();
    assert_eq!(layout.signature.len(), 256);
    assert_eq!(layout.children.len(), 1024);
    assert_eq!(layout.children[1023].func_id, 1023);
    assert_eq!(layout.children[1023].signature.len(), 32);
    assert_eq!(layout.children[5].name.len(), 63);
}

#[test]
fn builder_reports_requested_and_supported_counts() {
    let o = orch(b"");
    let err = ChipCallable::build(&vec![Input; 257], &o, &[]).unwrap_err();
    assert_eq!(err, BuildError::TooManyArgs { requested: 257, supported: 256 });
    assert!(err.to_string().contains("257") && err.to_string().contains("256"), "{err}");

    let many: Vec<_> = (0..1025).map(|i| CoreCallable::sim(i % 1024, "k", &[])).collect();
    let err = ChipCallable::build(&[], &o, &many).unwrap_err();
    assert_eq!(err, BuildError::TooManyChildren { requested: 1025, supported: 1024 });
    assert!(err.to_string().contains("1025") && err.to_string().contains("1024"), "{err}");

    let wide = CoreCallable::sim(0, "wide", &[Input; 33]);
    let err = ChipCallable::build(&[], &o, &[wide]).unwrap_err();
    assert_eq!(err, BuildError::TooManyKernelArgs { child: 0, name: "wide".into(), requested: 33, supported: 32 });
    assert!(err.to_string().contains("33") && err.to_string().contains("32"), "{err}");

    let err = ChipCallable::build(&[], &o, &[CoreCallable::sim(1024, "k", &[])]).unwrap_err();
    assert_eq!(err, BuildError::FuncIdOutOfRange { child: 0, func_id: 1024, supported: 1024 });

    let err =
        ChipCallable::build(&[], &o, &[CoreCallable::sim(5, "a", &[]), CoreCallable::sim(5, "b", &[])]).unwrap_err();
    assert_eq!(err, BuildError::DuplicateFuncId { func_id: 5, first: 0, second: 1 });

    let long = "x".repeat(64);
    let err = ChipCallable::build(&[], &Orchestration::named(long.clone()), &[]).unwrap_err();
    assert_eq!(err, BuildError::NameTooLong { owner: NameOwner::Orchestration, name: long, len: 64, supported: 63 });
    let err = ChipCallable::build(&[], &Orchestration::named("a\0b"), &[]).unwrap_err();
    assert!(matches!(err, BuildError::NameHasNul { owner: NameOwner::Orchestration, .. }), "{err:?}");
}

#[test]
fn blob_round_trips_through_bytes() {
    let blob = ChipCallable::build(&[Input, OutputExisting], &orch(&[1, 2, 3]), &kernels(2)).unwrap();
    let again = ChipCallable::from_bytes(blob.as_bytes().to_vec()).unwrap();
    assert_eq!(again, blob);
    let view = again.view();
    assert_eq!(view.orchestration_bytes(), &[1, 2, 3]);
    assert_eq!(view.directions().collect::<Vec<TensorDirection>>(), vec![Input, OutputExisting]);
    assert_eq!(view.child(1).unwrap().code, &sim_kernel_binary("k1")[..]);
    assert!(view.child(2).is_none());
    let mut short = blob.as_bytes().to_vec();
    short.pop();
    assert!(matches!(ChipCallable::from_bytes(short), Err(CallableError::Truncated { part: BlobPart::Blob, .. })));
}
