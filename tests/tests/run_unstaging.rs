//! What happens to a run's staged tensors when releasing them goes wrong: a failed free is retried
//! at the next run and stays accounted meanwhile; after a failed wait for the device, memory the
//! device may still touch is abandoned (never freed under a running kernel) unless an abort
//! confirmed the device idle; the runner's tracked bytes agree with the backend's at every point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_device::kernel::KernelInvocation;
use pto_device::orch::{OrchArgs, OrchError, Orchestrator};
use pto_device::runtime::Budgets;
use pto_host::examples::{vector_args, vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
use pto_host::sim::SimBackend;
use pto_host::{BackendOp, DeviceBackend, DeviceRunner, KernelFn, RunArg, RunError, RunMode, RunRequest};

const SIZING: ArenaSizingKey = ArenaSizingKey::uniform(64, 1 << 20, 256);
const DETERMINISTIC: RunMode = RunMode::Deterministic { noop_cores: false };
/// How long a test waits for a released device thread before it declares a hang.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn setup() -> (Arc<SimBackend>, DeviceRunner) {
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    let runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    (sim, runner)
}

fn vector_request(args: &[RunArg]) -> RunRequest<'_> {
    RunRequest {
        orchestration: vector_orchestration,
        kernels: &VECTOR_KERNELS,
        args,
        sizing: SIZING,
        mode: DETERMINISTIC,
        budgets: Budgets::DEFAULT,
    }
}

/// The runner's tracked bytes and the backend's committed bytes, and both allocation counts.
fn accounts(sim: &SimBackend, runner: &DeviceRunner) -> (u64, u64, usize, usize) {
    let a = runner.allocator();
    (a.committed_bytes(), sim.committed_bytes(), a.live_allocations(), sim.live_allocations())
}

#[test]
fn a_failed_free_of_a_staged_tensor_is_retried_at_the_next_run_and_stays_accounted() {
    let (sim, mut runner) = setup();
    let args = vector_args();
    runner.run(&vector_request(&args)).unwrap();
    let baseline = accounts(&sim, &runner);
    assert_eq!(baseline.0, baseline.1, "tracked and backend bytes agree");

    sim.fail_nth(BackendOp::Free, 1);
    let report = runner.run(&vector_request(&args)).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED), "the run itself succeeded");
    let (tracked, backend, tracked_n, backend_n) = accounts(&sim, &runner);
    assert_eq!(tracked, backend, "the block whose free failed is still counted");
    assert_eq!((tracked_n, backend_n), (baseline.2 + 1, baseline.3 + 1));
    assert_eq!(runner.deferred_frees(), 1);

    runner.run(&vector_request(&args)).unwrap();
    assert_eq!(accounts(&sim, &runner), baseline, "the next run freed the block");
    assert_eq!(runner.deferred_frees(), 0);
}

#[test]
fn tracked_and_backend_bytes_agree_after_a_failed_first_upload() {
    for nth in 1..=4 {
        let (sim, mut runner) = setup();
        sim.fail_nth(BackendOp::CopyToDevice, nth);
        let args = vector_args();
        assert!(runner.run(&vector_request(&args)).is_err(), "upload #{nth} fails");
        let (tracked, backend, tracked_n, backend_n) = accounts(&sim, &runner);
        assert_eq!((tracked, tracked_n), (backend, backend_n), "after failing upload #{nth}");
        runner.run(&vector_request(&args)).unwrap();
        let (tracked, backend, tracked_n, backend_n) = accounts(&sim, &runner);
        assert_eq!((tracked, tracked_n), (backend, backend_n), "after the retry of upload #{nth}");
        runner.finalize().unwrap();
        assert_eq!(accounts(&sim, &runner), (0, 0, 0, 0));
    }
}

static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static GATE_RETURNED: AtomicBool = AtomicBool::new(false);

/// An orchestration that waits for the test to open the gate (the AICPU thread keeps running).
fn gated(_: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let start = Instant::now();
    while !GATE_OPEN.load(Ordering::Acquire) && start.elapsed() < HANG_GUARD {
        std::thread::sleep(Duration::from_millis(1));
    }
    GATE_RETURNED.store(true, Ordering::Release);
    Ok(())
}

fn nop(_: &KernelInvocation<'_>) {}

#[test]
fn after_a_failed_aicpu_synchronize_the_staged_tensors_are_abandoned_not_freed_under_the_kernel() {
    const KERNELS: [KernelFn; 1] = [nop];
    let (sim, mut runner) = setup();
    let args = [RunArg::Input { data: vec![7; 4096], dtype: DType::U8 }, RunArg::Scalar(3)];
    let req = RunRequest { orchestration: gated, kernels: &KERNELS, ..vector_request(&args) };
    // Stream calls of a fresh runner's deterministic run: create the AICPU stream, synchronize it.
    sim.fail_nth(BackendOp::Stream, 2);
    let err = runner.run(&req).unwrap_err();
    let RunError::Abandoned { error, buffers, bytes } = &err else { panic!("the runner says it abandoned: {err}") };
    assert!(matches!(**error, RunError::Stuck(ref m) if m.contains("still running after an abort")), "{err}");
    assert_eq!((*buffers, *bytes), (2, 4096 + 1024), "the input and the records block");
    assert!(!GATE_RETURNED.load(Ordering::Acquire), "the orchestration is still running");
    let (tracked, backend, tracked_n, backend_n) = accounts(&sim, &runner);
    // Regions (3) and the launch block are tracked; the input and the argument records are
    // abandoned: still allocated on the device, no longer the runner's to free.
    assert_eq!((tracked_n, backend_n), (4, 6), "the staged buffers were not freed");
    assert_eq!(backend - tracked, 4096 + 1024, "abandoned: the input and the records block");
    assert_eq!(runner.allocator().abandoned_bytes(), 4096 + 1024);

    GATE_OPEN.store(true, Ordering::Release);
    let start = Instant::now();
    while sim.running_streams() > 0 {
        assert!(start.elapsed() < HANG_GUARD, "the released orchestration never returned");
        std::thread::sleep(Duration::from_millis(1));
    }
    let args = vector_args();
    let report = runner.run(&vector_request(&args)).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED));
}

/// A launch that ended with a failure (here every AICPU block returns an error) is collected by
/// the wait: the device no longer touches the run's memory, so the staged tensors are freed, not
/// abandoned, and the runner is not faulted.
#[test]
fn a_launch_that_ended_with_a_failure_frees_the_staged_tensors_and_leaves_the_runner_usable() {
    let (sim, mut runner) = setup();
    sim.register_entry(pto_host::sim::SIM_AICPU_ENTRY, |_| Err("the AICPU program failed".into()));
    let args = vector_args();
    let err = runner.run(&vector_request(&args)).unwrap_err();
    assert!(matches!(err, RunError::Stuck(ref m) if m.contains("the AICPU program failed")), "{err}");
    assert!(!runner.faulted(), "a launch that ended is no device fault");
    assert_eq!(runner.allocator().abandoned_bytes(), 0);
    let (tracked, backend, tracked_n, backend_n) = accounts(&sim, &runner);
    assert_eq!((tracked, tracked_n), (backend, backend_n), "tracked and backend agree");
    assert_eq!(tracked_n, 4, "regions (3) and the launch block: every staged buffer was freed");
    runner.finalize().unwrap();
    assert_eq!(sim.live_allocations(), 0, "finalize freed everything");
}
