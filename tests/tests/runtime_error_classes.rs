//! Which code a failed run ends with, through `DeviceRunner::run` in both modes: a window pinned by
//! an ancestor scope is flow control, an orchestration API error is latched even when the
//! orchestration ignores it, a dep-pool overflow names every edge, and the stall record of a run
//! that failed without a stall names no task.

use std::sync::Arc;

use pto_abi::error::RuntimeErrorCode;
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::sm::SmHeader;
use pto_abi::task::{DType, NO_TASK};
use pto_device::kernel::SimKernelFn;
use pto_device::orch::{OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec};
use pto_device::runtime::Budgets;
use pto_host::sim::SimBackend;
use pto_host::DeviceBackend;
use pto_host::{DeviceFailure, RunError, RunMode, RunRequest};
use pto_host::{DeviceIo, DeviceRunner};

const MODES: [RunMode; 2] =
    [RunMode::Threaded { threads: 3, clusters: 1 }, RunMode::Deterministic { noop_cores: false }];
const NO_KERNELS: [SimKernelFn; 0] = [];

fn run(f: pto_device::orch::OrchestrationFn, sizing: ArenaSizingKey, mode: RunMode) -> (DeviceFailure, SmHeader) {
    let sim = Arc::new(SimBackend::with_capacity(256 << 20).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    let budgets = Budgets { orch_ns: 50_000_000, sched_ns: 2_000_000_000 };
    let req = RunRequest { orchestration: f, kernels: &NO_KERNELS, args: &[], sizing, mode, budgets };
    let failure = match runner.run(&req) {
        Err(RunError::Device(f)) => *f,
        other => panic!("{mode:?}: expected a device failure, got {other:?}"),
    };
    let bound = runner.bind(&sizing).expect("bind");
    let sm: SmHeader = runner.backend().read_obj(bound.regions.sm.base).expect("read SM");
    (failure, sm)
}

/// Window 4, eight nested scopes of three tasks each: from depth 3 on every scope shares ring 3,
/// where the depth-3 scope's three tasks and the depth-4 scope's first fill the window.
fn nested_scopes(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    fn level(o: &mut Orchestrator<'_, '_>, depth: u32) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..3 {
                o.submit(&TaskSpec::dep_only(&[]))?;
            }
            if depth < 8 {
                level(o, depth + 1)?;
            }
            Ok(())
        })
    }
    level(o, 1)
}

#[test]
fn a_window_pinned_by_an_ancestor_scope_is_a_flow_control_deadlock_in_both_modes() {
    for mode in MODES {
        let (f, sm) = run(nested_scopes, ArenaSizingKey::uniform(4, 64 << 10, 64), mode);
        assert_eq!(f.code, RuntimeErrorCode::FlowControlDeadlock as u32, "{mode:?}: {f}");
        assert_eq!(f.code, 3);
        assert_eq!(f.ring, Some(3), "{mode:?}");
        assert_eq!(sm.sched.stall_task, NO_TASK, "{mode:?}: a run that failed without a stall names no task");
    }
}

#[test]
fn a_scope_that_outgrows_the_window_is_still_a_scope_deadlock_in_both_modes() {
    fn many(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..5 {
                o.submit(&TaskSpec::dep_only(&[]))?;
            }
            Ok(())
        })
    }
    for mode in MODES {
        let (f, _) = run(many, ArenaSizingKey::uniform(4, 64 << 10, 64), mode);
        assert_eq!(f.code, RuntimeErrorCode::ScopeDeadlock as u32, "{mode:?}: {f}");
        assert_eq!(f.ring, Some(1));
    }
}

#[test]
fn an_ignored_alloc_error_still_fails_the_run_in_both_modes() {
    fn ignores(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let _ = o.alloc(&[OutputSpec { bytes: 64, dtype: DType::U8 }; 33]);
        let _ = o.submit(&TaskSpec::dep_only(&[]));
        Ok(())
    }
    for mode in MODES {
        let (f, sm) = run(ignores, ArenaSizingKey::uniform(16, 64 << 10, 64), mode);
        assert_eq!(f.code, RuntimeErrorCode::InvalidArgs as u32, "{mode:?}: {f}");
        assert_eq!(sm.orch.code, RuntimeErrorCode::InvalidArgs as u32);
        assert_eq!(sm.orch.tasks_submitted, 0, "{mode:?}: the submit after the error was refused");
        assert!(f.hint.contains("more than 32 tensor arguments"), "{f}");
    }
}

#[test]
fn a_dep_pool_overflow_hint_counts_every_producer_in_both_modes() {
    fn fan_in(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut ids = Vec::new();
        for _ in 0..128 {
            ids.push(o.submit(&TaskSpec::dep_only(&[]))?.task);
        }
        o.submit(&TaskSpec::dep_only(&[]).deps(&ids))?;
        Ok(())
    }
    for mode in MODES {
        let (f, _) = run(fan_in, ArenaSizingKey::uniform(256, 64 << 10, 4), mode);
        assert_eq!(f.code, RuntimeErrorCode::DepPoolOverflow as u32, "{mode:?}: {f}");
        assert_eq!(f.detail, 128, "{mode:?}: {f}");
        assert!(f.hint.contains("the 128 edge(s) needed"), "{f}");
    }
}
