//! One scenario per fatal runtime code (scope, heap-ring, flow-control deadlock, dep-pool and
//! tensor-map overflow, invalid arguments, explicit fatal, scheduler timeout on a hung kernel):
//! the orchestration, the run shape that provokes the code, and the code itself. Device code, so
//! the simulated device and the firmware (which compiles every [`FATAL_SCENARIOS`] orchestration
//! and [`SLEEP_MS`] in, by these names) run the very same scenarios and must report the same code.

use pto_abi::error::RuntimeErrorCode;
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;

use crate::kernel::KernelInvocation;
use crate::orch::{Arg, OrchArgs, OrchError, OrchestrationFn, Orchestrator, OutputSpec, TaskId, TaskSpec};
use crate::runtime::Budgets;

/// Name of [`sleep_ms`], the scenarios' only kernel (func id [`SLEEP`]).
pub const SLEEP_MS: &str = "pto_sleep_ms";
/// Func id of [`sleep_ms`] in every scenario.
pub const SLEEP: i32 = 0;

/// Waits `args[last]` milliseconds (a kernel that takes its time, or hangs past a budget).
pub fn sleep_ms(inv: &KernelInvocation<'_>) {
    let ms = inv.args.last().copied().unwrap_or(0);
    wait_ms(ms);
}

#[cfg(any(test, feature = "std"))]
fn wait_ms(ms: u64) {
    extern crate std;
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

#[cfg(all(not(any(test, feature = "std")), target_arch = "aarch64"))]
fn wait_ms(ms: u64) {
    use crate::platform::aarch64::{cntfrq, cntvct, sleep_ns};
    let ticks = ms.saturating_mul(cntfrq() / 1000);
    let start = cntvct();
    while cntvct().wrapping_sub(start) < ticks {
        sleep_ns(100_000);
    }
}

#[cfg(not(any(test, feature = "std", target_arch = "aarch64")))]
fn wait_ms(ms: u64) {
    // No clock on this build: spin a number of rounds proportional to the request.
    for _ in 0..ms.saturating_mul(100_000) {
        core::hint::spin_loop();
    }
}

/// What argument a scenario's run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioArg {
    /// No argument.
    None,
    /// One zero-filled U8 input tensor of this many bytes (argument 0).
    InputBytes(u64),
}

/// One fatal scenario.
#[derive(Clone, Copy, Debug)]
pub struct FatalScenario {
    /// The orchestration's name (what a callable names; the firmware's name table lists it).
    pub name: &'static str,
    /// The orchestration.
    pub orchestration: OrchestrationFn,
    /// Arena sizing of the run.
    pub sizing: ArenaSizingKey,
    /// True: the deterministic single-thread mode; false: threaded, 3 AICPU threads, 2 clusters.
    pub deterministic: bool,
    /// No-progress budgets of the run.
    pub budgets: Budgets,
    /// The run's argument.
    pub arg: ScenarioArg,
    /// The code the run must end with.
    pub code: RuntimeErrorCode,
    /// The detail word the code must carry, where the scenario fixes one.
    pub detail: Option<u64>,
}

const FAST_ORCH: Budgets = Budgets { orch_ns: 50_000_000, sched_ns: 5_000_000_000 };
const FAST_SCHED: Budgets = Budgets { orch_ns: 5_000_000_000, sched_ns: 50_000_000 };

/// A scope holding more tasks than ring 1's window of 4 can ever release.
pub fn scope_deadlock(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.scope(ScopeKind::Auto, |o| {
        for _ in 0..5 {
            o.submit(&TaskSpec::dep_only(&[]))?;
        }
        Ok(())
    })
}

/// Five 1 KiB outputs pinned by one open scope in a 4 KiB ring heap.
pub fn heap_ring_pinned(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.scope(ScopeKind::Auto, |o| {
        for _ in 0..5 {
            o.alloc(&[OutputSpec { bytes: 1024, dtype: DType::U8 }])?;
        }
        Ok(())
    })
}

/// One output larger than its whole ring heap.
pub fn heap_ring_too_big(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.alloc(&[OutputSpec { bytes: 1 << 20, dtype: DType::U8 }])?;
    Ok(())
}

/// T0 sleeps 300 ms; four tasks wait for it, each in its own ended scope: ring 1's window of 4
/// stays full without being pinned, longer than the 50 ms orchestrator budget.
pub fn flow_control(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let t0 = o.scope(ScopeKind::Auto, |o| Ok(o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[300]))?.task))?;
    for _ in 0..4 {
        o.scope(ScopeKind::Auto, |o| {
            o.submit(&TaskSpec::dep_only(&[]).deps(&[t0]))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Eight producers still pending when the ninth task wires to them: 8 nodes > a pool of 4.
pub fn dep_pool_overflow(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let mut ids = [TaskId::NONE; 8];
    for id in ids.iter_mut() {
        *id = o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[0]))?.task;
    }
    o.submit(&TaskSpec::dep_only(&[]).deps(&ids))?;
    Ok(())
}

/// A tensor view moved past the end of its 64-byte buffer.
pub fn invalid_args(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let mut t = args.tensor(0)?;
    t.offset = 8;
    o.submit(&TaskSpec::aiv(SLEEP, &[Arg::Input(t)]))?;
    Ok(())
}

/// The orchestration's own fatal error, detail 0x1234.
pub fn explicit_fatal(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.submit(&TaskSpec::dep_only(&[]))?;
    Err(o.fatal(0x1234))
}

/// 3 × 32 writers of a 1 KiB buffer held by one open scope; the smallest tensor map has 64
/// entries.
pub fn tensormap_overflow(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let buf = args.tensor(0)?;
    o.scope(ScopeKind::Auto, |o| {
        for t in 0..3u64 {
            let mut a = [Arg::OutputExisting(buf); 32];
            for (k, arg) in a.iter_mut().enumerate() {
                match buf.slice((t * 32 + k as u64) * 4, 4) {
                    Some(s) => *arg = Arg::OutputExisting(s),
                    None => return Err(o.fatal(0xbad)),
                }
            }
            o.submit(&TaskSpec::dep_only(&a))?;
        }
        Ok(())
    })
}

/// One task whose kernel runs 400 ms, past the 50 ms scheduler budget.
pub fn hung_kernel(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.submit(&TaskSpec::aiv(SLEEP, &[]).scalars(&[400]))?;
    Ok(())
}

/// Every scenario, in code order.
pub const FATAL_SCENARIOS: &[FatalScenario] = &[
    FatalScenario {
        name: "pto_fatal_scope_deadlock",
        orchestration: scope_deadlock,
        sizing: ArenaSizingKey::uniform(4, 64 << 10, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::ScopeDeadlock,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_heap_ring_pinned",
        orchestration: heap_ring_pinned,
        sizing: ArenaSizingKey::uniform(64, 4096, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::HeapRingDeadlock,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_heap_ring_too_big",
        orchestration: heap_ring_too_big,
        sizing: ArenaSizingKey::uniform(64, 4096, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::HeapRingDeadlock,
        detail: Some(1 << 20),
    },
    FatalScenario {
        name: "pto_fatal_flow_control",
        orchestration: flow_control,
        sizing: ArenaSizingKey::uniform(4, 64 << 10, 64),
        deterministic: false,
        budgets: FAST_ORCH,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::FlowControlDeadlock,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_dep_pool_overflow",
        orchestration: dep_pool_overflow,
        sizing: ArenaSizingKey::uniform(64, 64 << 10, 4),
        deterministic: true,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::DepPoolOverflow,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_invalid_args",
        orchestration: invalid_args,
        sizing: ArenaSizingKey::uniform(64, 64 << 10, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::InputBytes(64),
        code: RuntimeErrorCode::InvalidArgs,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_explicit",
        orchestration: explicit_fatal,
        sizing: ArenaSizingKey::uniform(64, 64 << 10, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::ExplicitOrchFatal,
        detail: Some(0x1234),
    },
    FatalScenario {
        name: "pto_fatal_tensormap_overflow",
        orchestration: tensormap_overflow,
        sizing: ArenaSizingKey::uniform(4, 64 << 10, 64),
        deterministic: false,
        budgets: Budgets::DEFAULT,
        arg: ScenarioArg::InputBytes(1024),
        code: RuntimeErrorCode::TensormapOverflow,
        detail: None,
    },
    FatalScenario {
        name: "pto_fatal_hung_kernel",
        orchestration: hung_kernel,
        sizing: ArenaSizingKey::uniform(64, 64 << 10, 64),
        deterministic: false,
        budgets: FAST_SCHED,
        arg: ScenarioArg::None,
        code: RuntimeErrorCode::SchedulerTimeout,
        detail: Some(0),
    },
];
