//! A runner's callables as one unit: counters, binding a cid to a run, launches, teardown.

mod callable_support;

use std::sync::Arc;

use callable_support::{sim, tracker, vector_symbols, TestOrch};
use pto_abi::launch::{KernelArgs, LaunchDescriptor};
use pto_abi::task::TensorDirection::{Input, OutputExisting};
use pto_abi::DevAddr;
use pto_host::backend::sim::SimLaunch;
use pto_host::backend::SimBackend;
use pto_host::callable::example::vector_example_callable;
use pto_host::callable::{BindError, CallableCounters, LaunchShape, PrepareRunError, RunnerCallables};
use pto_host::runner::TrackingAllocator;
use zerocopy::FromZeros;

fn noop_entry(_: &SimLaunch) -> Result<(), String> {
    Ok(())
}

fn device() -> (Arc<SimBackend>, TrackingAllocator, RunnerCallables<TestOrch>) {
    let sim = sim();
    sim.register_entry("noop_aicore", noop_entry);
    sim.register_entry("noop_aicpu", noop_entry);
    let mem = tracker(&sim);
    (sim, mem, RunnerCallables::new(vector_symbols(), b"noop_aicore".to_vec(), b"noop_aicpu".to_vec()))
}

const VECTOR_ARGS: [pto_abi::task::TensorDirection; 3] = [Input, Input, OutputExisting];
const AICORE: LaunchShape = LaunchShape { block_dim: 2 };
const AICPU: LaunchShape = LaunchShape { block_dim: 1 };

/// What a run does with callables: bind the cid, then launch with a KernelArgs copy.
fn run(c: &mut RunnerCallables<TestOrch>, mem: &mut TrackingAllocator, cid: u32, desc: &mut LaunchDescriptor) {
    c.prepare_run(cid, &VECTOR_ARGS, desc).unwrap();
    let args = mem.alloc(size_of::<KernelArgs>() as u64).unwrap();
    c.launch(mem.backend().as_ref(), args, AICORE, AICPU).unwrap();
    c.synchronize(mem.backend().as_ref()).unwrap();
    mem.free(args).unwrap();
}

#[test]
fn n_runs_of_one_cid_upload_once_and_register_aicore_once() {
    let (sim, mut mem, mut c) = device();
    c.register_callable(&mut mem, 0, &vector_example_callable().unwrap()).unwrap();
    let mut desc = LaunchDescriptor::new_zeroed();
    for _ in 0..8 {
        run(&mut c, &mut mem, 0, &mut desc);
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
    assert_eq!(sim.counters().launches, 16, "AICore and AICPU per run");
}

#[test]
fn shared_blob_register_unregister_register() {
    let (_sim, mut mem, mut c) = device();
    let blob = vector_example_callable().unwrap();
    let mut desc = LaunchDescriptor::new_zeroed();
    c.register_callable(&mut mem, 1, &blob).unwrap();
    c.register_callable(&mut mem, 2, &blob).unwrap();
    run(&mut c, &mut mem, 1, &mut desc);
    c.unregister_callable(&mut mem, 1).unwrap();
    run(&mut c, &mut mem, 2, &mut desc);
    c.unregister_callable(&mut mem, 2).unwrap();
    c.register_callable(&mut mem, 1, &blob).unwrap();
    run(&mut c, &mut mem, 1, &mut desc);
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
    let (_sim, mut mem, mut c) = device();
    let mut desc = LaunchDescriptor::new_zeroed();
    desc.func_table.fill(DevAddr(0xbad));
    assert_eq!(c.prepare_run(9, &VECTOR_ARGS, &mut desc).map(|_| ()), Err(PrepareRunError::NotRegistered { cid: 9 }));
    c.register_callable(&mut mem, 9, &vector_example_callable().unwrap()).unwrap();
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
    let (sim, mut mem, mut c) = device();
    let mut desc = LaunchDescriptor::new_zeroed();
    c.register_callable(&mut mem, 0, &vector_example_callable().unwrap()).unwrap();
    run(&mut c, &mut mem, 0, &mut desc);
    assert_eq!(sim.live_allocations(), 1, "the blob");
    c.release(&mut mem).unwrap();
    assert_eq!(sim.live_allocations(), 0);
    assert_eq!(mem.committed_bytes(), 0);
    assert!(c.registry().artifacts(0).is_none());
}
