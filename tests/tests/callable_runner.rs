//! A runner's callables as one unit: counters, binding a cid to a run, launches, teardown.

mod callable_support;

use callable_support::MemBackend;
use pto_abi::launch::{KernelArgs, LaunchDescriptor};
use pto_abi::task::TensorDirection::{Input, OutputExisting};
use pto_abi::DevAddr;
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_host::backend::DeviceBackend;
use pto_host::callable::example::{
    vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION,
};
use pto_host::callable::{BindError, CallableCounters, LaunchShape, PrepareRunError, RunnerCallables, Symbols};
use zerocopy::FromZeros;

fn k(_: &KernelInvocation<'_>) {}

fn callables() -> RunnerCallables<fn()> {
    let mut symbols: Symbols<fn()> = Symbols::default();
    for name in [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL] {
        symbols.kernels.define(name, k as SimKernelFn).unwrap();
    }
    symbols.orchestrations.define(VECTOR_ORCHESTRATION, || {}).unwrap();
    RunnerCallables::new(symbols, b"aicore".to_vec(), b"aicpu".to_vec())
}

const VECTOR_ARGS: [pto_abi::task::TensorDirection; 3] = [Input, Input, OutputExisting];
const AICORE: LaunchShape = LaunchShape { block_dim: 24 };
const AICPU: LaunchShape = LaunchShape { block_dim: 4 };

/// What a run does with callables: bind the cid, then launch.
fn run(c: &mut RunnerCallables<fn()>, backend: &MemBackend, cid: u32, desc: &mut LaunchDescriptor) {
    let stream = backend.stream_create().unwrap();
    c.prepare_run(cid, &VECTOR_ARGS, desc).unwrap();
    c.launch(backend, stream, &KernelArgs::new_zeroed(), AICORE, AICPU).unwrap();
}

#[test]
fn n_runs_of_one_cid_upload_once_and_register_aicore_once() {
    let backend = MemBackend::new();
    let mut c = callables();
    c.register_callable(&backend, 0, &vector_example_callable().unwrap()).unwrap();
    let mut desc = LaunchDescriptor::new_zeroed();
    for _ in 0..8 {
        run(&mut c, &backend, 0, &mut desc);
    }
    assert_eq!(
        c.counters(),
        CallableCounters {
            uploads: 1,
            dedup_hits: 0,
            frees: 0,
            aicore_registrations: 1,
            orchestration_registrations: 1
        }
    );
    assert_eq!(c.launcher().counters().aicore_launches, 8);
    assert_eq!(backend.calls().registrations, 2, "AICore and AICPU binaries, once each");
}

#[test]
fn shared_blob_register_unregister_register() {
    let backend = MemBackend::new();
    let mut c = callables();
    let blob = vector_example_callable().unwrap();
    let mut desc = LaunchDescriptor::new_zeroed();
    c.register_callable(&backend, 1, &blob).unwrap();
    c.register_callable(&backend, 2, &blob).unwrap();
    run(&mut c, &backend, 1, &mut desc);
    c.unregister_callable(&backend, 1).unwrap();
    run(&mut c, &backend, 2, &mut desc);
    c.unregister_callable(&backend, 2).unwrap();
    c.register_callable(&backend, 1, &blob).unwrap();
    run(&mut c, &backend, 1, &mut desc);
    assert_eq!(
        c.counters(),
        CallableCounters {
            uploads: 2,
            dedup_hits: 1,
            frees: 1,
            aicore_registrations: 1,
            orchestration_registrations: 2
        }
    );
}

#[test]
fn prepare_run_checks_before_touching_the_descriptor() {
    let backend = MemBackend::new();
    let mut c = callables();
    let mut desc = LaunchDescriptor::new_zeroed();
    desc.func_table.fill(DevAddr(0xbad));
    assert_eq!(c.prepare_run(9, &VECTOR_ARGS, &mut desc).map(|_| ()), Err(PrepareRunError::NotRegistered { cid: 9 }));
    c.register_callable(&backend, 9, &vector_example_callable().unwrap()).unwrap();
    let err = c.prepare_run(9, &[Input, OutputExisting, OutputExisting], &mut desc).map(|_| ()).unwrap_err();
    assert_eq!(
        err,
        PrepareRunError::Bind(BindError::Direction { cid: 9, index: 1, expected: Input, got: OutputExisting })
    );
    assert!(desc.func_table.iter().all(|&a| a == DevAddr(0xbad)), "a refused run leaves the descriptor alone");

    let art = c.prepare_run(9, &VECTOR_ARGS, &mut desc).unwrap().clone();
    assert_eq!(desc.func_count, 3);
    assert_eq!(desc.orchestration, art.orchestration_addr);
    assert_eq!(&desc.func_table[..3], &art.child_addrs().map(|(_, a)| a).collect::<Vec<_>>()[..]);
    assert!(desc.func_table[3..].iter().all(|a| a.is_null()));
}

#[test]
fn release_frees_every_device_copy() {
    let backend = MemBackend::new();
    let mut c = callables();
    let mut desc = LaunchDescriptor::new_zeroed();
    c.register_callable(&backend, 0, &vector_example_callable().unwrap()).unwrap();
    run(&mut c, &backend, 0, &mut desc);
    assert_eq!(backend.live_allocations(), 2, "the blob and the KernelArgs copy");
    c.release(&backend).unwrap();
    assert_eq!(backend.live_allocations(), 0);
    assert!(c.registry().artifacts(0).is_none());
}
