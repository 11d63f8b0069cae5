//! A runner's callables as one unit: counters, binding a cid to a run, launches, teardown.

mod callable_support;

use std::sync::Arc;

use callable_support::{sim, tracker, vector_symbols, TestOrch};
use pto_abi::launch::{KernelArgs, LaunchDescriptor};
use pto_abi::task::TensorDirection::{Input, NoDep, OutputExisting};
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

const VECTOR_ARGS: [pto_abi::task::TensorDirection; 4] = [Input, Input, OutputExisting, NoDep];
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
    let err = c.prepare_run(9, &[Input, OutputExisting, OutputExisting, NoDep], &mut desc).map(|_| ()).unwrap_err();
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

// ---- The registry attached to a DeviceRunner ----

mod on_runner {
    use std::sync::{Arc, Mutex};

    use pto_abi::launch::KernelArgs;
    use pto_abi::sizing::ArenaSizingKey;
    use pto_device::kernel::{KernelInvocation, SimKernelFn};
    use pto_device::orch::{OrchArgs, OrchError, OrchestrationFn, Orchestrator};
    use pto_host::backend::sim::SimLaunch;
    use pto_host::backend::{DeviceBackend, SimBackend};
    use pto_host::callable::example::{
        vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION,
    };
    use pto_host::callable::runner_ext::{KernelLaunchError, AICORE_KERNEL_BINARY};
    use pto_host::callable::{CallableCounters, LaunchShape, RegistryError, SymbolError};
    use pto_host::runner::{DeviceRunner, LaunchParams};

    fn orch(_: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        Ok(())
    }
    fn k(_: &KernelInvocation<'_>) {}

    fn runner() -> (Arc<SimBackend>, DeviceRunner) {
        let sim = super::sim();
        let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
        let symbols = runner.callable_symbols_mut();
        for name in [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL] {
            symbols.kernels.define(name, k as SimKernelFn).unwrap();
        }
        symbols.orchestrations.define(VECTOR_ORCHESTRATION, orch as OrchestrationFn).unwrap();
        (sim, runner)
    }

    #[test]
    fn register_dedups_on_the_runner_and_uploads_are_tracked() {
        let (sim, mut runner) = runner();
        let blob = vector_example_callable().unwrap();
        let a = runner.register_callable(0, &blob).unwrap();
        let b = runner.register_callable(1, &vector_example_callable().unwrap()).unwrap();
        assert_eq!(a.device_base, b.device_base);
        assert!(std::ptr::fn_addr_eq(a.orchestration, orch as OrchestrationFn));
        assert_eq!(runner.allocator().committed_bytes(), blob.total_size(), "one tracked device copy");
        assert_eq!(runner.callable(1).unwrap().content_hash, blob.content_hash());

        runner.unregister_callable(0).unwrap();
        assert_eq!(runner.allocator().committed_bytes(), blob.total_size());
        runner.unregister_callable(1).unwrap();
        assert_eq!(runner.allocator().committed_bytes(), 0);
        runner.register_callable(0, &blob).unwrap();
        assert_eq!(
            runner.callable_counters(),
            CallableCounters {
                uploads: 2,
                dedup_hits: 1,
                frees: 1,
                aicore_registrations: 0,
                orchestration_registrations: 2
            }
        );

        // Finalize frees the device copy and forgets the cid.
        runner.finalize().unwrap();
        assert_eq!(sim.live_allocations(), 0);
        assert!(runner.callable(0).is_none());
        runner.register_callable(0, &blob).unwrap();
        assert_eq!(runner.callable_counters().uploads, 3);
    }

    #[test]
    fn unknown_names_are_refused_by_the_runner() {
        let (sim, mut runner) = runner();
        runner.callable_symbols_mut().orchestrations.define("other", orch as OrchestrationFn).unwrap();
        let err = runner.callable_symbols_mut().orchestrations.define("other", orch as OrchestrationFn).unwrap_err();
        assert!(matches!(err, SymbolError::Duplicate { .. }));
        let blob =
            pto_host::callable::ChipCallable::build(&[], &pto_host::callable::Orchestration::named("not_linked"), &[])
                .unwrap();
        let err = runner.register_callable(3, &blob).unwrap_err();
        assert!(matches!(err, RegistryError::Orchestration { .. }) && err.to_string().contains("not_linked"), "{err}");
        assert_eq!(sim.counters().mallocs, 0);
    }

    static SEEN: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

    fn aicore_entry(launch: &SimLaunch) -> Result<(), String> {
        let ptr = launch.args.get() as usize as *const KernelArgs;
        if ptr.is_null() || !ptr.is_aligned() {
            return Err(format!("bad kernel args address {}", launch.args));
        }
        // SAFETY: on the simulated device a device address is the real address in the pool; the
        // runner wrote the launch block (KernelArgs first) before launching.
        let args = unsafe { ptr.read() };
        SEEN.lock().unwrap().push((launch.args.get(), args.runtime_desc.get()));
        Ok(())
    }

    #[test]
    fn launch_aicore_kernel_registers_once_and_passes_the_launch_blocks_kernel_args() {
        let (sim, mut runner) = runner();
        sim.register_entry(AICORE_KERNEL_BINARY, aicore_entry);
        assert_eq!(runner.launch_aicore_kernel(LaunchShape { block_dim: 1 }), Err(KernelLaunchError::NoLaunchBlock));

        let bound = runner.bind(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
        let block = runner.prepare_launch(&bound, &LaunchParams::default()).unwrap();
        for _ in 0..3 {
            let args = runner.launch_aicore_kernel(LaunchShape { block_dim: 2 }).unwrap();
            assert_eq!(args, block.kernel_args());
        }
        let launcher = runner.kernel_launcher();
        assert_eq!((launcher.counters().aicore_registrations, launcher.counters().aicore_launches), (1, 3));
        assert_eq!(runner.callable_counters().aicore_registrations, 1);
        runner.kernel_launcher().synchronize(sim.as_ref()).unwrap();
        let seen: Vec<_> = SEEN.lock().unwrap().iter().filter(|s| s.0 == block.kernel_args().get()).copied().collect();
        assert_eq!(seen.len(), 6, "3 launches × 2 blocks");
        assert!(
            seen.iter().all(|&(_, desc)| desc == block.descriptor().get()),
            "the kernel read the device KernelArgs"
        );
    }
}
