//! Every runtime error code provoked through the public API (`DeviceRunner::run` on the
//! simulated device): the run returns that code with its name and a hint, and the next run on the
//! same runner succeeds and leaks nothing.

use std::sync::Arc;
use std::time::Duration;

use pto_abi::error::{RuntimeErrorCode, StallClass};
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskId, TaskSpec};
use pto_device::runtime::Budgets;
use pto_host::examples::{vector_args, vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, RunArg, RunError, RunMode, RunRequest};

/// Sleeps `args[0]` milliseconds.
fn sleep_kernel(inv: &KernelInvocation<'_>) {
    std::thread::sleep(Duration::from_millis(inv.args[inv.args.len() - 1]));
}

const SLEEP: i32 = 0;
const KERNELS: [SimKernelFn; 1] = [sleep_kernel];

const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };
const DETERMINISTIC: RunMode = RunMode::Deterministic { noop_cores: false };

struct Env {
    runner: DeviceRunner,
    baseline_allocations: Option<usize>,
}

impl Env {
    fn new() -> Env {
        let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
        let runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
        Env { runner, baseline_allocations: None }
    }

    fn run(
        &mut self,
        f: pto_device::orch::OrchestrationFn,
        args: &[RunArg],
        sizing: ArenaSizingKey,
        mode: RunMode,
        budgets: Budgets,
    ) -> Result<pto_host::RunReport, RunError> {
        let req = RunRequest { orchestration: f, kernels: &KERNELS, args, sizing, mode, budgets };
        self.runner.run(&req)
    }

    /// Runs `f`, expects `code`, then checks that the vector example succeeds on the same runner.
    fn expect(
        &mut self,
        f: pto_device::orch::OrchestrationFn,
        args: &[RunArg],
        sizing: ArenaSizingKey,
        mode: RunMode,
        budgets: Budgets,
        code: RuntimeErrorCode,
    ) -> pto_host::DeviceFailure {
        let failure = match self.run(f, args, sizing, mode, budgets) {
            Err(RunError::Device(f)) => *f,
            other => panic!("expected {code:?}, got {other:?}"),
        };
        assert_eq!(failure.code, code as u32, "{failure}");
        assert_eq!(failure.name, code.name());
        assert_eq!(failure.status(), -(code as i64));
        assert!(!failure.hint.is_empty(), "{failure}");
        // The next run on the same runner (same resident image) succeeds: the vector example on
        // 256 elements, which fits every sizing used here.
        let mut vargs = vector_args();
        vargs[0] = RunArg::input_f32(&[2.0; 256]);
        vargs[1] = RunArg::input_f32(&[3.0; 256]);
        vargs[2] = RunArg::output_f32(256);
        vargs[3] = RunArg::Scalar(256);
        let req = RunRequest {
            orchestration: vector_orchestration,
            kernels: &VECTOR_KERNELS,
            args: &vargs,
            sizing,
            mode: THREADED,
            budgets: Budgets::DEFAULT,
        };
        let report = self.runner.run(&req).unwrap_or_else(|e| panic!("run after {code:?}: {e}"));
        assert!(report.bind_cache_hit, "the failed run's resident image is reused");
        let f = report.output_f32(VECTOR_RESULT_ARG);
        assert!(f.len() == 256 && f.iter().all(|x| *x == VECTOR_EXPECTED));
        let live = self.runner.allocator().live_allocations();
        assert_eq!(*self.baseline_allocations.get_or_insert(live), live, "no allocation leaks across failed runs");
        failure
    }
}

fn sizing(window: u64, heap: u64, pool: u32) -> ArenaSizingKey {
    ArenaSizingKey::uniform(window, heap, pool)
}

fn fast_orch() -> Budgets {
    Budgets { orch_ns: 50_000_000, sched_ns: 5_000_000_000 }
}

#[test]
fn scope_deadlock() {
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..5 {
                o.submit(&TaskSpec::dep_only(&[]))?;
            }
            Ok(())
        })
    }
    let mut env = Env::new();
    let fail = env.expect(f, &[], sizing(4, 64 << 10, 64), THREADED, Budgets::DEFAULT, RuntimeErrorCode::ScopeDeadlock);
    assert_eq!(fail.ring, Some(1));
    assert!(fail.hint.contains("--window for ring 1"), "{fail}");
}

#[test]
fn heap_ring_deadlock() {
    fn pinned(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..5 {
                o.alloc(&[OutputSpec { bytes: 1024, dtype: DType::U8 }])?;
            }
            Ok(())
        })
    }
    fn too_big(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.alloc(&[OutputSpec { bytes: 1 << 20, dtype: DType::U8 }])?;
        Ok(())
    }
    let mut env = Env::new();
    let s = sizing(64, 4096, 64);
    let fail = env.expect(pinned, &[], s, THREADED, Budgets::DEFAULT, RuntimeErrorCode::HeapRingDeadlock);
    assert!(fail.hint.contains("--heap for ring 1"), "{fail}");
    let fail = env.expect(too_big, &[], s, THREADED, Budgets::DEFAULT, RuntimeErrorCode::HeapRingDeadlock);
    assert_eq!((fail.ring, fail.detail), (Some(0), 1 << 20));
}

#[test]
fn flow_control_deadlock() {
    // T0 runs 300 ms; four tasks wait for it, each in its own (ended) scope: the window stays full
    // without being pinned, longer than the 50 ms orchestrator budget.
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let t0 = o.scope(ScopeKind::Auto, |o| Ok(o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[300]))?.task))?;
        for _ in 0..4 {
            o.scope(ScopeKind::Auto, |o| {
                o.submit(&TaskSpec::dep_only(&[]).deps(&[t0]))?;
                Ok(())
            })?;
        }
        Ok(())
    }
    let mut env = Env::new();
    let fail =
        env.expect(f, &[], sizing(4, 64 << 10, 64), THREADED, fast_orch(), RuntimeErrorCode::FlowControlDeadlock);
    assert_eq!(fail.ring, Some(1));
}

#[test]
fn dep_pool_overflow() {
    // Eight producers still pending when the ninth task wires to them: 8 nodes > a pool of 4.
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut ids: Vec<TaskId> = Vec::new();
        for _ in 0..8 {
            ids.push(o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[0]))?.task);
        }
        o.submit(&TaskSpec::dep_only(&[]).deps(&ids))?;
        Ok(())
    }
    let mut env = Env::new();
    let fail =
        env.expect(f, &[], sizing(64, 64 << 10, 4), DETERMINISTIC, Budgets::DEFAULT, RuntimeErrorCode::DepPoolOverflow);
    assert!(fail.hint.contains("--dep-pool for ring 0"), "{fail}");
}

#[test]
fn invalid_args() {
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut t = args.tensor(0)?;
        t.offset = 8;
        o.submit(&TaskSpec::aiv(SLEEP, &[Arg::Input(t)]))?;
        Ok(())
    }
    let mut env = Env::new();
    let args = [RunArg::Input { data: vec![0; 64], dtype: DType::U8 }];
    let fail =
        env.expect(f, &args, sizing(64, 64 << 10, 64), THREADED, Budgets::DEFAULT, RuntimeErrorCode::InvalidArgs);
    assert!(fail.hint.contains("tensor view outside its buffer (or null buffer) (argument 0)"), "{fail}");
}

#[test]
fn explicit_orch_fatal() {
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.submit(&TaskSpec::dep_only(&[]))?;
        Err(o.fatal(0x1234))
    }
    let mut env = Env::new();
    let fail =
        env.expect(f, &[], sizing(64, 64 << 10, 64), THREADED, Budgets::DEFAULT, RuntimeErrorCode::ExplicitOrchFatal);
    assert_eq!(fail.detail, 0x1234);
}

#[test]
fn tensormap_overflow() {
    // 3 × 32 writers held by one open scope; the smallest tensor map has 64 entries.
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        o.scope(ScopeKind::Auto, |o| {
            for t in 0..3u64 {
                let a: Vec<Arg> =
                    (0..32u64).map(|k| Arg::OutputExisting(buf.slice((t * 32 + k) * 4, 4).unwrap())).collect();
                o.submit(&TaskSpec::dep_only(&a))?;
            }
            Ok(())
        })
    }
    let mut env = Env::new();
    let args = [RunArg::Input { data: vec![0; 1024], dtype: DType::U8 }];
    env.expect(
        f,
        &args,
        ArenaSizingKey::uniform(4, 64 << 10, 64),
        THREADED,
        Budgets::DEFAULT,
        RuntimeErrorCode::TensormapOverflow,
    );
}

#[test]
fn scheduler_timeout_names_the_stalled_task() {
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[400]))?;
        Ok(())
    }
    let mut env = Env::new();
    let budgets = Budgets { orch_ns: 5_000_000_000, sched_ns: 50_000_000 };
    let fail = env.expect(f, &[], sizing(64, 64 << 10, 64), THREADED, budgets, RuntimeErrorCode::SchedulerTimeout);
    assert_eq!(fail.stall, Some(StallClass::RunningStalled));
    assert_eq!(fail.detail, 0, "the stalled task is task 0 of ring 0");
}

#[test]
fn a_panicking_orchestration_fails_the_run_at_once() {
    fn f(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[0]))?;
        panic!("orchestration bug");
    }
    let mut env = Env::new();
    // A scheduler budget far above the test's run time: the schedulers must stop because of the
    // abort report, not because they time out.
    let budgets = Budgets { orch_ns: 500_000_000, sched_ns: 60_000_000_000 };
    let fail = env.expect(f, &[], sizing(64, 64 << 10, 64), THREADED, budgets, RuntimeErrorCode::ExplicitOrchFatal);
    assert_eq!(fail.detail, pto_device::aicpu::ORCH_ABORT_DETAIL);
    assert!(fail.hint.contains("panicked"), "{fail}");
}
