//! The callable registry: register/unregister by cid, content-hash dedup with a refcount, name
//! resolution through the backend, failure cleanup, and the func-id table of a callable's run.

mod callable_support;

use callable_support::{read, sim_with_vector_symbols as sim, tracker};
use pto_abi::callable::{ChipCallableView, CHIP_HEADER_SIZE};
use pto_abi::task::TensorDirection::{InOut, Input, NoDep, Output, OutputExisting};
use pto_abi::DevAddr;
use pto_device::aicore::KernelResolver;
use pto_host::examples::{vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION};
use pto_host::{
    check_args_against_signature, compute_chip_callable_layout, BackendError, BackendOp, BindError, CallableRegistry,
    ChipCallable, CodeError, CodeKind, CoreCallable, DeviceBackend, Orchestration, RegistryCounters, RegistryError,
    UploadError,
};

fn other_callable() -> ChipCallable {
    ChipCallable::build(
        &[InOut],
        &Orchestration::named(VECTOR_ORCHESTRATION),
        &[CoreCallable::sim(7, VECTOR_MUL, &[InOut, Input])],
    )
    .unwrap()
}

fn counters(uploads: u64, dedup_hits: u64, frees: u64) -> RegistryCounters {
    RegistryCounters { uploads, dedup_hits, frees, orchestration_registrations: uploads }
}

#[test]
fn register_returns_the_artifacts_and_uploads_a_patched_copy() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let blob = vector_example_callable().unwrap();
    let layout = compute_chip_callable_layout(blob.as_bytes()).unwrap();
    let art = reg.register_callable(&mut mem, 3, &blob).unwrap();

    assert_eq!(art.cid, 3);
    assert_eq!(art.content_hash, layout.content_hash);
    assert_eq!(art.aicore_image_hash, layout.aicore_image_hash);
    assert_eq!(art.device_size, layout.total_size);
    assert_eq!(art.orchestration_addr, DevAddr(art.device_base.get() + CHIP_HEADER_SIZE));
    assert_eq!(art.orchestration_name, VECTOR_ORCHESTRATION);
    assert_eq!(art.config_name, "default");
    assert_eq!(art.signature, vec![Input, Input, OutputExisting, NoDep]);
    let expected: Vec<(u32, DevAddr)> =
        layout.children.iter().map(|c| (c.func_id, DevAddr(art.device_base.get() + c.code_offset))).collect();
    assert_eq!(art.child_addrs().collect::<Vec<_>>(), expected);
    for (child, view) in art.children.iter().zip(blob.view().children()) {
        assert_eq!((child.name.as_str(), child.binary.as_slice()), (view.name, view.code));
    }
    assert_eq!(art.children[1].signature, vec![Input, Output]);
    assert_eq!(art.func_table().unwrap(), expected.iter().map(|&(_, a)| a).collect::<Vec<_>>());
    // Loaded for a run, each child's code address resolves to the kernel its binary names.
    let loaded = sim.load_code(&art.code()).unwrap();
    assert_eq!(loaded.kernels, expected.iter().map(|&(_, a)| a).collect::<Vec<_>>());
    assert_eq!(loaded.orchestration, art.orchestration_addr);
    let table = sim.code().kernels();
    assert_eq!(table.len(), 3);
    // The very function the name table holds (identical empty kernels may share an address).
    let named = sim.symbols().kernels.get(VECTOR_ADD_SCALAR).unwrap();
    assert!(std::ptr::fn_addr_eq(table.resolve(expected[1].1).unwrap(), named));
    assert!(table.resolve(art.device_base).is_none(), "only code addresses resolve");
    drop(loaded);
    assert_eq!(sim.code().loaded_counts(), (0, 0));

    // One allocation, one copy; the device copy validates and carries the resolved addresses.
    let calls = sim.counters();
    assert_eq!((calls.mallocs, calls.copies_to_device), (1, 1));
    assert_eq!(
        mem.committed_bytes(),
        art.device_size.next_multiple_of(1024),
        "the device copy is tracked (whole granules)"
    );
    let device_bytes = read(sim.as_ref(), art.device_base, art.device_size);
    let device_view = ChipCallableView::parse(&device_bytes).unwrap();
    for (child, (_, addr)) in device_view.children().zip(&expected) {
        assert_eq!(child.resolved_addr, *addr);
    }
    assert_eq!(device_view.aicore_image_hash(), art.aicore_image_hash);
    assert_eq!(reg.counters(), counters(1, 0, 0));
    assert_eq!(reg.artifacts(3).unwrap().device_base, art.device_base);
}

#[test]
fn identical_blobs_upload_once_and_unregister_independently() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    // Two separately built, byte-identical blobs.
    let a = reg.register_callable(&mut mem, 0, &vector_example_callable().unwrap()).unwrap();
    let b = reg.register_callable(&mut mem, 1, &vector_example_callable().unwrap()).unwrap();
    assert_eq!(a.device_base, b.device_base);
    assert_eq!(reg.counters(), counters(1, 1, 0));
    assert_eq!(sim.counters().copies_to_device, 1);
    assert_eq!(reg.resident_count(), 1);

    reg.unregister_callable(&mut mem, 0).unwrap();
    assert_eq!(sim.live_allocations(), 1, "cid 1 still uses the copy");
    assert!(reg.artifacts(0).is_none());
    assert_eq!(reg.artifacts(1).unwrap().device_base, b.device_base);
    reg.unregister_callable(&mut mem, 1).unwrap();
    assert_eq!(sim.live_allocations(), 0);
    assert_eq!(reg.counters(), counters(1, 1, 1));
    assert_eq!(reg.resident_count(), 0);
}

#[test]
fn register_unregister_register_uploads_twice() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let blob = vector_example_callable().unwrap();
    reg.register_callable(&mut mem, 5, &blob).unwrap();
    reg.unregister_callable(&mut mem, 5).unwrap();
    reg.register_callable(&mut mem, 5, &blob).unwrap();
    assert_eq!(reg.counters(), counters(2, 0, 1));
    assert_eq!(sim.live_allocations(), 1);
}

#[test]
fn different_blobs_get_their_own_copies() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let a = reg.register_callable(&mut mem, 0, &vector_example_callable().unwrap()).unwrap();
    let b = reg.register_callable(&mut mem, 1, &other_callable()).unwrap();
    assert_ne!(a.device_base, b.device_base);
    assert_ne!(a.content_hash, b.content_hash);
    assert_eq!(reg.counters(), counters(2, 0, 0));
    reg.release_all(&mut mem).unwrap();
    assert_eq!(sim.live_allocations(), 0);
    assert!(reg.artifacts(1).is_none());
}

#[test]
fn cid_range_and_occupancy_are_checked() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let blob = vector_example_callable().unwrap();
    let err = reg.register_callable(&mut mem, 64, &blob).unwrap_err();
    assert_eq!(err, RegistryError::CidOutOfRange { cid: 64, max: 64 });
    assert!(reg.register_callable(&mut mem, 63, &blob).is_ok());
    let err = reg.register_callable(&mut mem, 63, &other_callable()).unwrap_err();
    assert_eq!(err, RegistryError::CidInUse { cid: 63, content_hash: blob.content_hash() });
    assert_eq!(reg.counters().uploads, 1, "a refused registration uploads nothing");
    assert_eq!(reg.unregister_callable(&mut mem, 2), Err(RegistryError::NotRegistered { cid: 2 }));
    assert_eq!(reg.unregister_callable(&mut mem, 99), Err(RegistryError::CidOutOfRange { cid: 99, max: 64 }));
}

#[test]
fn unknown_names_fail_with_the_name_before_touching_the_device() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let blob = ChipCallable::build(
        &[],
        &Orchestration::named(VECTOR_ORCHESTRATION),
        &[CoreCallable::sim(0, VECTOR_ADD, &[]), CoreCallable::sim(1, "softmax_fused", &[])],
    )
    .unwrap();
    let err = reg.register_callable(&mut mem, 0, &blob).unwrap_err();
    assert!(err.to_string().contains("softmax_fused"), "{err}");
    assert!(
        matches!(
            &err,
            RegistryError::Code { cid: 0, source: CodeError::Unresolved { kind: CodeKind::Kernel, name, available, .. } }
                if name == "softmax_fused" && available.len() == 3
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("vector_add_scalar"), "the error lists what the device carries: {err}");

    let blob = ChipCallable::build(&[], &Orchestration::named("flash_attention"), &[]).unwrap();
    let err = reg.register_callable(&mut mem, 0, &blob).unwrap_err();
    assert!(err.to_string().contains("flash_attention"), "{err}");
    assert!(matches!(
        err,
        RegistryError::Code { source: CodeError::Unresolved { kind: CodeKind::Orchestration, .. }, .. }
    ));

    let raw = CoreCallable { func_id: 0, name: "elf".into(), signature: vec![], binary: b"\x7fELF....".to_vec() };
    let blob = ChipCallable::build(&[], &Orchestration::named(VECTOR_ORCHESTRATION), &[raw]).unwrap();
    let err = reg.register_callable(&mut mem, 0, &blob).unwrap_err();
    assert!(
        matches!(err, RegistryError::Code { source: CodeError::BadBinary { kind: CodeKind::Kernel, .. }, .. }),
        "{err:?}"
    );

    assert_eq!(sim.counters().mallocs, 0);
    assert_eq!(reg.counters(), RegistryCounters::default());
    assert!(reg.artifacts(0).is_none());
}

#[test]
fn a_failed_upload_leaves_nothing_behind() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let blob = vector_example_callable().unwrap();

    sim.fail_nth(BackendOp::CopyToDevice, 1);
    let err = reg.register_callable(&mut mem, 0, &blob).unwrap_err();
    let RegistryError::Upload { cid: 0, source: UploadError::Backend { source, .. } } = err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(source, BackendError::InjectedFault { op: BackendOp::CopyToDevice, nth: 1 });
    assert_eq!(sim.live_allocations(), 0, "the allocation was released");
    assert_eq!(mem.live_allocations(), 0);
    assert_eq!(reg.resident_count(), 0);
    assert!(reg.artifacts(0).is_none());
    assert_eq!(reg.counters(), RegistryCounters::default());

    sim.fail_nth(BackendOp::Malloc, 1);
    assert!(matches!(reg.register_callable(&mut mem, 0, &blob), Err(RegistryError::Upload { .. })));
    assert_eq!(sim.live_allocations(), 0);

    // The cid is free and the same blob registers normally afterwards.
    reg.register_callable(&mut mem, 0, &blob).unwrap();
    assert_eq!(reg.counters(), counters(1, 0, 0));
    assert_eq!(sim.live_allocations(), 1);
}

#[test]
fn the_func_table_holds_each_child_at_its_func_id() {
    let sim = sim();
    let mut mem = tracker(&sim);
    let mut reg = CallableRegistry::new();
    let art = reg.register_callable(&mut mem, 0, &other_callable()).unwrap();
    let table = art.func_table().unwrap();
    assert_eq!(table.len(), 8);
    assert!(table[..7].iter().all(|a| a.is_null()) && table[7] == art.children[0].code_addr);
}

#[test]
fn run_args_are_checked_against_the_signature() {
    let sig = [Input, Input, OutputExisting];
    assert_eq!(check_args_against_signature(4, &sig, &[Input, Input, OutputExisting]), Ok(()));
    let err = check_args_against_signature(4, &sig, &[Input, Input]).unwrap_err();
    assert_eq!(err, BindError::ArgCount { cid: 4, expected: 3, got: 2 });
    assert!(err.to_string().contains("2 arguments given") && err.to_string().contains("takes 3"), "{err}");
    let err = check_args_against_signature(4, &sig, &[Input, InOut, OutputExisting]).unwrap_err();
    assert_eq!(err, BindError::Direction { cid: 4, index: 1, expected: Input, got: InOut });
}
