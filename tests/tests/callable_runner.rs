//! A runner's callables: counters over runs, launches, registration through the runner.

mod callable_support;

use std::sync::Arc;

use callable_support::{sim_with_vector_symbols, Recording};
use pto_abi::sizing::ArenaSizingKey;
use pto_host::examples::vector_example_callable;
use pto_host::sim::{SimBackend, SimLaunch};
use pto_host::{CallableCounters, DeviceBackend, DeviceRunner, LaunchParams, LaunchShape};

fn noop_entry(_: &SimLaunch) -> Result<(), String> {
    Ok(())
}

/// A runner whose AICore and AICPU programs do nothing, on a device that knows the vector
/// example's names.
fn device() -> (Arc<SimBackend>, DeviceRunner) {
    let sim = sim_with_vector_symbols();
    sim.register_entry("noop_aicore", noop_entry);
    sim.register_entry("noop_aicpu", noop_entry);
    let rec = Arc::new(Recording::with_programs(sim.clone(), "noop_aicore", "noop_aicpu"));
    (sim, DeviceRunner::new(rec as Arc<dyn DeviceBackend>))
}

const SIZING: ArenaSizingKey = ArenaSizingKey::uniform(16, 64 << 10, 64);
const AICORE: LaunchShape = LaunchShape { block_dim: 2 };
const AICPU: LaunchShape = LaunchShape { block_dim: 1 };

/// What a run does with a callable: its func table and orchestration in the launch block, then
/// both launches.
fn run(r: &mut DeviceRunner, cid: u32) {
    let art = r.callable(cid).unwrap();
    let params = LaunchParams {
        orchestration: art.orchestration_addr,
        func_table: art.func_table().unwrap(),
        ..Default::default()
    };
    let bound = r.bind(&SIZING).unwrap();
    r.prepare_launch(&bound, &params).unwrap();
    r.launch_aicore_kernel(AICORE).unwrap();
    r.launch_aicpu_kernel(AICPU).unwrap();
}

#[test]
fn n_runs_of_one_cid_upload_once_and_register_aicore_once() {
    let (sim, mut r) = device();
    r.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    for _ in 0..8 {
        run(&mut r, 0);
    }
    assert_eq!(
        r.callable_counters(),
        CallableCounters {
            uploads: 1,
            dedup_hits: 0,
            frees: 0,
            aicore_registrations: 1,
            orchestration_registrations: 1
        }
    );
    assert_eq!(r.kernel_launcher().counters().aicore_launches, 8);
    assert_eq!(sim.counters().launches, 16, "AICore and AICPU per run");
}

#[test]
fn shared_blob_register_unregister_register() {
    let (_sim, mut r) = device();
    let blob = vector_example_callable().unwrap();
    r.register_callable(1, &blob).unwrap();
    r.register_callable(2, &blob).unwrap();
    run(&mut r, 1);
    r.unregister_callable(1).unwrap();
    run(&mut r, 2);
    r.unregister_callable(2).unwrap();
    r.register_callable(1, &blob).unwrap();
    run(&mut r, 1);
    assert_eq!(
        r.callable_counters(),
        CallableCounters {
            uploads: 2,
            dedup_hits: 1,
            frees: 1,
            aicore_registrations: 1,
            orchestration_registrations: 2
        }
    );
}

// ---- The registry attached to a DeviceRunner ----

mod on_runner {
    use std::sync::{Arc, Mutex};

    use pto_abi::launch::KernelArgs;
    use pto_abi::sizing::ArenaSizingKey;
    use pto_device::kernel::KernelInvocation;
    use pto_device::orch::{OrchArgs, OrchError, OrchestrationFn, Orchestrator};
    use pto_host::examples::{
        vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION,
    };
    use pto_host::sim::SimBackend;
    use pto_host::sim::SimLaunch;
    use pto_host::sim::SymbolError;
    use pto_host::sim::SIM_AICORE_ENTRY;
    use pto_host::DeviceBackend;
    use pto_host::{CallableCounters, LaunchShape, RegistryError};
    use pto_host::{CodeError, CodeKind, KernelFn, LaunchError};
    use pto_host::{DeviceRunner, LaunchParams};

    fn orch(_: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        Ok(())
    }
    fn k(_: &KernelInvocation<'_>) {}

    fn runner() -> (Arc<SimBackend>, DeviceRunner) {
        let sim = crate::callable_support::sim();
        {
            let mut symbols = sim.symbols();
            for name in [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL] {
                symbols.kernels.define(name, k as KernelFn).unwrap();
            }
            symbols.orchestrations.define(VECTOR_ORCHESTRATION, orch as OrchestrationFn).unwrap();
        }
        let runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
        (sim, runner)
    }

    #[test]
    fn register_dedups_on_the_runner_and_uploads_are_tracked() {
        let (sim, mut runner) = runner();
        let blob = vector_example_callable().unwrap();
        let a = runner.register_callable(0, &blob).unwrap();
        let b = runner.register_callable(1, &vector_example_callable().unwrap()).unwrap();
        assert_eq!(a.device_base, b.device_base);
        assert_eq!(a.orchestration_name, VECTOR_ORCHESTRATION);
        assert_eq!(
            runner.allocator().committed_bytes(),
            blob.total_size().next_multiple_of(1024),
            "one tracked device copy"
        );
        assert_eq!(runner.callable(1).unwrap().content_hash, blob.content_hash());

        runner.unregister_callable(0).unwrap();
        assert_eq!(runner.allocator().committed_bytes(), blob.total_size().next_multiple_of(1024));
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
        sim.symbols().orchestrations.define("other", orch as OrchestrationFn).unwrap();
        let err = sim.symbols().orchestrations.define("other", orch as OrchestrationFn).unwrap_err();
        assert!(matches!(err, SymbolError::Duplicate { .. }));
        let blob = pto_host::ChipCallable::build(&[], &pto_host::Orchestration::named("not_linked"), &[]).unwrap();
        let err = runner.register_callable(3, &blob).unwrap_err();
        assert!(
            matches!(
                &err,
                RegistryError::Code { cid: 3, source: CodeError::Unresolved { kind: CodeKind::Orchestration, available, .. } }
                    if available.len() == 2
            ) && err.to_string().contains("not_linked"),
            "{err}"
        );
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
        sim.register_entry(SIM_AICORE_ENTRY, aicore_entry);
        assert_eq!(runner.launch_aicore_kernel(LaunchShape { block_dim: 1 }), Err(LaunchError::NoLaunchBlock));

        let bound = runner.bind(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
        let block = runner.prepare_launch(&bound, &LaunchParams::default()).unwrap();
        for _ in 0..3 {
            let args = runner.launch_aicore_kernel(LaunchShape { block_dim: 2 }).unwrap();
            assert_eq!(args, block.kernel_args());
        }
        let launcher = runner.kernel_launcher();
        assert_eq!((launcher.counters().aicore_registrations, launcher.counters().aicore_launches), (1, 3));
        assert_eq!(runner.callable_counters().aicore_registrations, 1);
        // The entry returns at once: wait until the stream's launches have all ended.
        while sim.running_streams() > 0 {
            std::thread::yield_now();
        }
        let seen: Vec<_> = SEEN.lock().unwrap().iter().filter(|s| s.0 == block.kernel_args().get()).copied().collect();
        assert_eq!(seen.len(), 6, "3 launches × 2 blocks");
        assert!(
            seen.iter().all(|&(_, desc)| desc == block.descriptor().get()),
            "the kernel read the device KernelArgs"
        );
    }
}
