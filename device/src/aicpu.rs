//! The AICPU threads of one launch (up to four; each scheduler owns whole clusters, cluster c
//! going to scheduler c mod n): the highest-index thread boots the
//! runtime and orchestrates; the others wait for the boot report and schedule. In the
//! deterministic mode the single thread does all of it with virtual cores.
//!
//! Every wait here has a deadline: a scheduler that never sees the boot finish, or an
//! orchestrator whose schedulers never exit, gives up and returns.

use crate::trace::Tracer;
use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use pto_abi::consts::MAX_AICPU_THREADS;
use pto_abi::image::ImageHeader;
use pto_abi::launch::{
    BootReport, LaunchDescriptor, OrchArg, BOOT_STATE_PENDING, BOOT_STATE_READY, LAUNCH_FLAG_DETERMINISTIC,
    LAUNCH_FLAG_NOOP_CORES,
};
use pto_abi::runtime::{RuntimeHeader, THREAD_EXITED};

use crate::aicore::{CoreTables, KernelResolver};
use crate::boot::{boot, dev_ptr, BootError};
use crate::orch::{run_orchestration, OrchSummary, OrchestrationFn};
use crate::platform::{Backoff, Platform};
use crate::runtime::{Budgets, FuncTable, Runtime};
use crate::sched::deterministic::{run_deterministic, DeterministicOutcome, VirtualCores};
use crate::sched::threaded::{SchedExit, SchedulerThread};
use crate::view::{RuntimeView, ViewError};

/// What the AICPU threads of a launch need from the platform.
pub struct AicpuEnv<'a> {
    /// Time and waiting.
    pub platform: &'a dyn Platform,
    /// Kernel addresses → code, for the deterministic mode's virtual cores.
    pub kernels: &'a dyn KernelResolver,
    /// The launch's orchestration (resolved from `LaunchDescriptor::orchestration` by the caller).
    pub orchestration: OrchestrationFn,
}

/// How one AICPU thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AicpuExit {
    /// Boot failed (the boot report says why).
    BootFailed(BootError),
    /// A scheduler thread saw no READY boot report within its deadline, or a failed boot.
    BootNotReady,
    /// The runtime header could not be viewed after boot.
    View(ViewError),
    /// The orchestrator thread of the threaded mode finished.
    Orchestrated(OrchSummary),
    /// The single thread of the deterministic mode finished.
    Deterministic(DeterministicOutcome),
    /// A scheduler thread finished.
    Scheduled(SchedExit),
    /// A scheduler thread could not open its core channels.
    NoCores,
    /// An extra thread of a deterministic launch, which has nothing to do.
    Idle,
}

fn budgets(d: &LaunchDescriptor) -> Budgets {
    Budgets { orch_ns: d.orch_timeout_ns, sched_ns: d.sched_timeout_ns }
}

/// Runs AICPU thread `thread` of the launch described at `desc`.
///
/// # Safety
/// `desc` is a launch descriptor in device memory whose regions hold a runtime image, every
/// thread of the launch runs this function with a distinct `thread < aicpu_thread_count`, and the
/// AICore side (when not deterministic) serves the cores of the launch's clusters.
pub unsafe fn run_aicpu_thread(desc: *const LaunchDescriptor, thread: u32, env: &AicpuEnv<'_>) -> AicpuExit {
    // SAFETY: the caller's contract.
    let d = unsafe { &*desc };
    let threads = d.aicpu_thread_count.clamp(1, MAX_AICPU_THREADS as u32);
    let deterministic = d.flags & LAUNCH_FLAG_DETERMINISTIC != 0;
    if thread + 1 == threads {
        // SAFETY: forwarded.
        unsafe { orchestrator_thread(desc, threads, deterministic, env) }
    } else if deterministic {
        AicpuExit::Idle
    } else {
        // SAFETY: forwarded.
        unsafe { scheduler_thread(d, thread, threads, env) }
    }
}

unsafe fn runtime_for<'e>(
    d: &LaunchDescriptor,
    header: *mut RuntimeHeader,
    env: &AicpuEnv<'e>,
) -> Result<Runtime<'e>, ViewError> {
    // SAFETY: `header` was wired by this launch's boot.
    let view = unsafe { RuntimeView::from_header(header) }?;
    let count = d.func_count.min(d.func_table.len() as u32);
    // SAFETY: the func table lives in the launch descriptor for the whole launch.
    let funcs = unsafe { FuncTable::from_raw(d.func_table.as_ptr(), count) };
    let mut rt = Runtime::new(view, env.platform, funcs, budgets(d));
    // SAFETY: the host reserves `trace_bytes` of device memory at `trace_base` for this launch.
    // Boot refused a region that fails the checks; one that fails them now was changed under the
    // run, and the thread stops instead of running untraced.
    rt.trace = unsafe { Tracer::attach(dev_ptr(d.trace_base), d.trace_bytes, d.trace_level) }
        .map_err(|e| ViewError::TraceRegion(e.subject))?;
    Ok(rt)
}

unsafe fn orch_args(d: &LaunchDescriptor) -> &[OrchArg] {
    let p: *const OrchArg = dev_ptr(d.orch_args);
    if p.is_null() || d.orch_arg_count == 0 || !p.is_aligned() {
        return &[];
    }
    // SAFETY: the host wrote `orch_arg_count` records at `orch_args` for this launch.
    unsafe { core::slice::from_raw_parts(p, d.orch_arg_count as usize) }
}

unsafe fn orchestrator_thread(
    desc: *const LaunchDescriptor,
    threads: u32,
    deterministic: bool,
    env: &AicpuEnv<'_>,
) -> AicpuExit {
    // SAFETY: forwarded; boot validates the descriptor and reports its outcome.
    let booted = match unsafe { boot(desc) } {
        Ok(b) => b,
        Err(e) => return AicpuExit::BootFailed(e),
    };
    // SAFETY: the descriptor passed boot's validation.
    let d = unsafe { &*desc };
    // SAFETY: the header was wired by this boot.
    let mut rt = match unsafe { runtime_for(d, booted.header(), env) } {
        Ok(rt) => rt,
        Err(e) => return AicpuExit::View(e),
    };
    // SAFETY: the launch's argument records.
    let args = unsafe { orch_args(d) };
    if deterministic {
        let cores = if d.flags & LAUNCH_FLAG_NOOP_CORES != 0 {
            VirtualCores::Instant
        } else {
            VirtualCores::RunKernels(env.kernels)
        };
        // SAFETY: in the deterministic mode this is the only thread touching the runtime.
        return AicpuExit::Deterministic(unsafe { run_deterministic(&mut rt, env.orchestration, args, cores) });
    }
    let summary = run_orchestration(&rt, env.orchestration, args, None);
    // Wait for the schedulers to shut their cores down; then this thread alone reclaims.
    let deadline =
        env.platform.now_ns().saturating_add(rt.budgets.sched_ns.saturating_mul(3)).saturating_add(1_000_000_000);
    let mut backoff = Backoff::new();
    let all_exited = loop {
        let exited = (0..threads - 1).all(|t| {
            // SAFETY: thread states are valid; `running` is read atomically.
            unsafe { AtomicU32::from_ptr(addr_of_mut!((*rt.view.sched_threads.add(t as usize)).running)) }
                .load(Ordering::Acquire)
                == THREAD_EXITED
        });
        if exited {
            break true;
        }
        if env.platform.now_ns() > deadline {
            break false;
        }
        backoff.snooze(env.platform);
    };
    let sm = rt.view.sm;
    // SAFETY: the SM header is valid; the scheduler error word is read atomically.
    let sched_error = unsafe { AtomicU32::from_ptr(addr_of_mut!((*sm).sched.code)) }.load(Ordering::Acquire) != 0;
    if all_exited && summary.error.is_none() && !sched_error {
        rt.advance_all();
        // SAFETY: every scheduler exited; this thread is the only one left.
        unsafe { crate::reset::reclaim_after_run(&rt.view) };
    }
    AicpuExit::Orchestrated(summary)
}

unsafe fn scheduler_thread(d: &LaunchDescriptor, thread: u32, threads: u32, env: &AicpuEnv<'_>) -> AicpuExit {
    let report: *mut BootReport = dev_ptr(d.boot_report);
    if report.is_null() {
        return AicpuExit::BootNotReady;
    }
    // SAFETY: the launch's boot report, written by the orchestrator thread's boot.
    let state = unsafe { AtomicU32::from_ptr(addr_of_mut!((*report).state)) };
    let deadline = env.platform.now_ns().saturating_add(d.sched_timeout_ns.max(5_000_000_000));
    let mut backoff = Backoff::new();
    while state.load(Ordering::Acquire) == BOOT_STATE_PENDING {
        if env.platform.now_ns() > deadline {
            return AicpuExit::BootNotReady;
        }
        backoff.snooze(env.platform);
    }
    if state.load(Ordering::Acquire) != BOOT_STATE_READY {
        return AicpuExit::BootNotReady;
    }
    let image: *const ImageHeader = dev_ptr(d.arena_base);
    // SAFETY: boot validated the image at the arena base; its header offset is in bounds.
    let header: *mut RuntimeHeader =
        unsafe { dev_ptr(pto_abi::DevAddr(d.arena_base.get() + (*image).runtime_header_offset)) };
    // SAFETY: wired by this launch's boot.
    let rt = match unsafe { runtime_for(d, header, env) } {
        Ok(rt) => rt,
        Err(e) => return AicpuExit::View(e),
    };
    // SAFETY: the header is wired; the tables are this boot's.
    let tables = CoreTables::from_header(unsafe { &*header });
    // SAFETY: the scheduler owns its clusters' cores; the AICore side serves them.
    match unsafe { SchedulerThread::new(&rt, tables, thread, threads - 1, d.cluster_count) } {
        Ok(mut s) => AicpuExit::Scheduled(s.run()),
        Err(_) => {
            // SAFETY: this thread's state line; the orchestrator waits for it to read EXITED.
            unsafe { AtomicU32::from_ptr(addr_of_mut!((*rt.view.sched_threads.add(thread as usize)).running)) }
                .store(THREAD_EXITED, Ordering::Release);
            AicpuExit::NoCores
        }
    }
}

/// `OrchErrorWord::detail` of an orchestration that aborted (a panic on the simulated device, an
/// exception on the firmware) instead of returning.
pub const ORCH_ABORT_DETAIL: u64 = u64::MAX;

/// Reports that the orchestrator thread of the launch at `desc` aborted: latches
/// `EXPLICIT_ORCH_FATAL` with [`ORCH_ABORT_DETAIL`] (unless an error is already latched) and
/// publishes `orchestrator_done`, so the schedulers shut down at once. Does nothing when the
/// launch never booted.
///
/// # Safety
/// As for [`run_aicpu_thread`]; called on the orchestrator thread after it stopped running.
pub unsafe fn report_orchestrator_abort(desc: *const LaunchDescriptor) {
    // SAFETY: the caller's contract.
    let d = unsafe { &*desc };
    let report: *mut BootReport = dev_ptr(d.boot_report);
    if report.is_null() {
        return;
    }
    // SAFETY: the launch's boot report, whose state word is read atomically.
    if unsafe { AtomicU32::from_ptr(addr_of_mut!((*report).state)) }.load(Ordering::Acquire) != BOOT_STATE_READY {
        return;
    }
    let image: *const ImageHeader = dev_ptr(d.arena_base);
    // SAFETY: boot validated the image; the header it names was wired by this launch's boot.
    let header: *mut RuntimeHeader =
        unsafe { dev_ptr(pto_abi::DevAddr(d.arena_base.get() + (*image).runtime_header_offset)) };
    // SAFETY: as above.
    let sm: *mut pto_abi::sm::SmHeader = unsafe { dev_ptr((*header).sm_base) };
    // SAFETY: the SM header of this launch; error words are written atomically, code first.
    unsafe {
        let code = AtomicU32::from_ptr(addr_of_mut!((*sm).orch.code));
        let fatal = pto_abi::error::RuntimeErrorCode::ExplicitOrchFatal as u32;
        if code.compare_exchange(0, fatal, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            core::sync::atomic::AtomicU64::from_ptr(addr_of_mut!((*sm).orch.detail))
                .store(ORCH_ABORT_DETAIL, Ordering::Relaxed);
        }
        AtomicU32::from_ptr(addr_of_mut!((*sm).orch.orchestrator_done)).store(1, Ordering::Release);
    }
}
