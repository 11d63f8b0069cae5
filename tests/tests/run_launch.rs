//! The run path's kernel launches on the simulated device: every run goes through
//! `DeviceBackend::launch_kernel`, the AICore kernel before the AICPU kernel, both binaries
//! registered once per runner, both reading the launch block's `KernelArgs` device copy (which names
//! the per-core tables boot wires); failed registrations and launches fail the run with the step
//! that failed, are not cached, leave nothing running, and the next run succeeds; an AICore kernel
//! stuck in a kernel is left behind without hanging the host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pto_abi::image::ImageHeader;
use pto_abi::launch::KernelArgs;
use pto_abi::runtime::RuntimeHeader;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::DevAddr;
use pto_device::aicore::CoreTables;
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_device::orch::{OrchArgs, OrchError, Orchestrator, TaskSpec};
use pto_device::runtime::Budgets;
use pto_host::examples::{
    define_vector_symbols, vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG,
};
use pto_host::sim::{SimBackend, SimLaunchRecord, SIM_AICORE_ENTRY, SIM_AICPU_ENTRY};
use pto_host::{
    BackendError, BackendOp, CallableRunConfig, CallableRunError, DeviceBackend, DeviceIo, DeviceRunner,
    LaunchCounters, LaunchError, LaunchStep, RunError, RunMode, RunReport, RunRequest, StreamId,
};

const CID: u32 = 3;
const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };
/// Budget for anything a test waits on; only a hang guard, never a speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn sizing() -> ArenaSizingKey {
    ArenaSizingKey::uniform(64, 1 << 20, 256)
}

fn config(mode: RunMode) -> CallableRunConfig {
    CallableRunConfig { sizing: sizing(), mode, budgets: Budgets::DEFAULT }
}

/// A runner with the vector example registered as [`CID`].
fn setup() -> (Arc<SimBackend>, DeviceRunner) {
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    define_vector_symbols(&mut sim.symbols()).unwrap();
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    runner.register_callable(CID, &vector_example_callable().unwrap()).unwrap();
    (sim, runner)
}

fn run(_sim: &Arc<SimBackend>, runner: &mut DeviceRunner, mode: RunMode) -> Result<RunReport, CallableRunError> {
    runner.run_callable(CID, &vector_args(), &config(mode))
}

fn assert_vector(report: &RunReport) {
    let f = report.output_f32(VECTOR_RESULT_ARG);
    assert_eq!(f.len(), VECTOR_LEN);
    assert!(f.iter().all(|x| *x == VECTOR_EXPECTED), "f[0] = {}", f[0]);
}

/// A launch: stream, block_dim, `KernelArgs` address.
type Launch = (StreamId, u32, DevAddr);

/// The launch log as (`"register"`, entry, None) and (`"launch"`, entry, Some(launch)).
fn log(sim: &SimBackend) -> Vec<(&'static str, String, Option<Launch>)> {
    sim.launch_log()
        .into_iter()
        .map(|r| match r {
            SimLaunchRecord::Register { entry, .. } => ("register", entry, None),
            SimLaunchRecord::Launch { entry, stream, block_dim, args } => {
                ("launch", entry, Some((stream, block_dim, args)))
            }
        })
        .collect()
}

/// The stream of every AICore launch, in launch order.
fn aicore_streams(sim: &SimBackend) -> Vec<StreamId> {
    log(sim).into_iter().filter(|(_, e, _)| e == SIM_AICORE_ENTRY).filter_map(|(_, _, l)| l.map(|l| l.0)).collect()
}

#[test]
fn n_runs_of_one_cid_register_each_binary_once_and_upload_once() {
    let (sim, mut runner) = setup();
    const RUNS: u64 = 6;
    for _ in 0..RUNS {
        assert_vector(&run(&sim, &mut runner, THREADED).unwrap());
    }
    let c = runner.callable_counters();
    assert_eq!((c.uploads, c.aicore_registrations, c.orchestration_registrations), (1, 1, 1));
    assert_eq!(
        runner.kernel_launcher().counters(),
        LaunchCounters { aicore_registrations: 1, aicpu_registrations: 1, aicore_launches: RUNS, aicpu_launches: RUNS }
    );
    let b = sim.counters();
    assert_eq!((b.registrations, b.launches), (2, 2 * RUNS), "the backend saw every launch and two registrations");
    assert_eq!(sim.code().loaded_counts(), (0, 0), "a finished run leaves no code loaded");
    assert_eq!(sim.running_streams(), 0);
}

#[test]
fn the_aicore_kernel_is_launched_before_the_aicpu_kernel_on_its_own_stream() {
    let (sim, mut runner) = setup();
    run(&sim, &mut runner, THREADED).unwrap();
    let args = runner.launch_block().unwrap().kernel_args();
    let first = log(&sim);
    let [(r0, e0, None), (l0, e1, Some((core_stream, 6, a0))), (r1, e2, None), (l1, e3, Some((cpu_stream, 3, a1)))] =
        &first[..]
    else {
        panic!("unexpected launch sequence {first:?}")
    };
    assert_eq!((*r0, *l0, *r1, *l1), ("register", "launch", "register", "launch"));
    assert_eq!([e0, e1, e2, e3], [SIM_AICORE_ENTRY, SIM_AICORE_ENTRY, SIM_AICPU_ENTRY, SIM_AICPU_ENTRY]);
    assert_eq!((*a0, *a1), (args, args), "both kernels get the device address of the launch block's KernelArgs");
    assert_ne!(core_stream, cpu_stream);

    // The second run only launches, in the same order, on the same streams.
    run(&sim, &mut runner, THREADED).unwrap();
    let second = log(&sim);
    assert_eq!(
        second[4..],
        [
            ("launch", SIM_AICORE_ENTRY.to_owned(), Some((*core_stream, 6, args))),
            ("launch", SIM_AICPU_ENTRY.to_owned(), Some((*cpu_stream, 3, args))),
        ]
    );

    // The deterministic mode has no cores: the AICPU kernel alone, one block.
    run(&sim, &mut runner, RunMode::Deterministic { noop_cores: false }).unwrap();
    assert_eq!(log(&sim)[6..], [("launch", SIM_AICPU_ENTRY.to_owned(), Some((*cpu_stream, 1, args)))]);
}

#[test]
fn the_kernel_args_device_copy_names_the_core_tables_boot_wires() {
    let (sim, mut runner) = setup();
    run(&sim, &mut runner, RunMode::Threaded { threads: 2, clusters: 3 }).unwrap();
    let block = runner.launch_block().unwrap();
    let args: KernelArgs = runner.backend().read_obj(block.kernel_args()).unwrap();
    let bound = runner.bind(&sizing()).unwrap();
    assert!(bound.cache_hit);
    let arena = bound.regions.arena.base;
    let image: ImageHeader = runner.backend().read_obj(arena).unwrap();
    let header: RuntimeHeader = runner.backend().read_obj(DevAddr(arena.get() + image.runtime_header_offset)).unwrap();
    let wired = CoreTables::from_header(&header);
    let named =
        CoreTables { registers: args.register_table, handshakes: args.handshake_table, payloads: args.core_payloads };
    assert_eq!(named, wired, "the AICore kernel serves the tables the booted runtime uses");
    assert_eq!(named, CoreTables::from_arena(arena, &bound.layout.offsets));
    assert!(named.is_well_formed() && sim.is_device_address(named.payloads));
    assert_eq!(args.runtime_desc, block.descriptor());
    assert_eq!((args.core_count, args.block_dim), (9, 9), "3 clusters of 3 cores, one AICore block per core");

    run(&sim, &mut runner, RunMode::Deterministic { noop_cores: false }).unwrap();
    let args: KernelArgs = runner.backend().read_obj(block.kernel_args()).unwrap();
    assert_eq!((args.core_count, args.register_table), (0, named.registers), "no cores, same tables");
}

/// The error of a run that failed at `step` with the injected fault `nth` of `op`.
fn injected(step: LaunchStep, op: BackendOp, nth: u64) -> CallableRunError {
    CallableRunError::Run(RunError::Launch(LaunchError::Step { step, source: BackendError::InjectedFault { op, nth } }))
}

#[test]
fn a_failed_aicore_registration_fails_the_run_is_not_cached_and_the_next_run_registers() {
    let (sim, mut runner) = setup();
    sim.fail_nth(BackendOp::RegisterKernel, 1);
    let err = run(&sim, &mut runner, THREADED).unwrap_err();
    assert_eq!(err, injected(LaunchStep::RegisterAicore, BackendOp::RegisterKernel, 1));
    assert!(err.to_string().contains("RegisterAicore"), "{err}");
    assert_eq!(runner.kernel_launcher().aicore_handle(), None, "a failed registration is not cached");
    assert_eq!(runner.kernel_launcher().counters(), LaunchCounters::default());
    assert_eq!(sim.counters().launches, 0, "the AICPU is never launched without its AICore");
    assert_eq!(sim.code().loaded_counts(), (0, 0));
    assert!(!runner.faulted(), "an injected refusal is not a device fault");
    let live = runner.allocator().live_allocations();

    assert_vector(&run(&sim, &mut runner, THREADED).unwrap());
    let c = runner.kernel_launcher().counters();
    assert_eq!((c.aicore_registrations, c.aicpu_registrations, c.aicore_launches), (1, 1, 1));
    assert!(runner.kernel_launcher().aicore_handle().is_some());
    assert_eq!(runner.allocator().live_allocations(), live, "the failed run left nothing staged");
}

#[test]
fn a_failed_aicpu_registration_or_launch_stops_the_aicore_kernel_already_running() {
    let (sim, mut runner) = setup();
    // Registration 1 (AICore) works, registration 2 (AICPU) fails: the AICore kernel is running.
    sim.fail_nth(BackendOp::RegisterKernel, 2);
    let err = run(&sim, &mut runner, THREADED).unwrap_err();
    assert_eq!(err, injected(LaunchStep::RegisterAicpu, BackendOp::RegisterKernel, 2));
    assert_eq!(sim.running_streams(), 0, "the waiting cores were aborted and collected");

    // The AICPU launch itself fails next.
    sim.fail_nth(BackendOp::Launch, 2);
    let err = run(&sim, &mut runner, THREADED).unwrap_err();
    assert_eq!(err, injected(LaunchStep::LaunchAicpu, BackendOp::Launch, 2));
    assert_eq!(sim.running_streams(), 0);

    // Then the AICore launch.
    sim.fail_nth(BackendOp::Launch, 1);
    let err = run(&sim, &mut runner, THREADED).unwrap_err();
    assert_eq!(err, injected(LaunchStep::LaunchAicore, BackendOp::Launch, 1));

    assert_vector(&run(&sim, &mut runner, THREADED).unwrap());
    assert_eq!(
        runner.kernel_launcher().counters(),
        LaunchCounters { aicore_registrations: 1, aicpu_registrations: 1, aicore_launches: 3, aicpu_launches: 1 },
        "the AICore handle was kept across the failures, the AICPU one registered once it worked"
    );
    assert_eq!(sim.code().loaded_counts(), (0, 0));
}

static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static GATE_RETURNED: AtomicBool = AtomicBool::new(false);

/// Blocks until the test opens the gate.
fn gate_kernel(_: &KernelInvocation<'_>) {
    while !GATE_OPEN.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
    GATE_RETURNED.store(true, Ordering::Release);
}

fn nop_kernel(_: &KernelInvocation<'_>) {}

fn gated(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.submit(&TaskSpec::aiv(0, &[]))?;
    Ok(())
}

fn nop(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.submit(&TaskSpec::aiv(1, &[]))?;
    Ok(())
}

#[test]
fn an_aicore_kernel_stuck_in_a_kernel_is_left_behind_and_the_next_run_gets_a_fresh_stream() {
    const KERNELS: [SimKernelFn; 2] = [gate_kernel, nop_kernel];
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    let request = |orchestration, budgets| RunRequest {
        orchestration,
        kernels: &KERNELS,
        args: &[],
        sizing: sizing(),
        mode: THREADED,
        budgets,
    };
    let budgets = Budgets { orch_ns: 5_000_000_000, sched_ns: 50_000_000 };
    let err = runner.run(&request(gated, budgets)).unwrap_err();
    assert!(matches!(err, RunError::Device(_)), "the scheduler reports the stalled task: {err}");
    assert_eq!(sim.running_streams(), 1, "the core inside the gate kernel is still running");
    let stuck_stream = aicore_streams(&sim);
    assert_eq!(stuck_stream.len(), 1);

    GATE_OPEN.store(true, Ordering::Release);
    let start = Instant::now();
    while sim.running_streams() > 0 {
        assert!(start.elapsed() < HANG_GUARD, "the released core never returned");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(GATE_RETURNED.load(Ordering::Acquire));

    let report = runner.run(&request(nop, Budgets::DEFAULT)).unwrap();
    assert_eq!(report.tasks_completed, 1);
    let streams = aicore_streams(&sim);
    assert_eq!(streams.len(), 2);
    assert_ne!(streams[1], stuck_stream[0], "the next AICore launch never queues behind the stuck one");
    assert_eq!(runner.kernel_launcher().counters().aicore_registrations, 1);
}
