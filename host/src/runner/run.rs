//! The run path of a runner: bind the sizing (image cache), stage the input tensors and the
//! argument records, have the backend make the run's code resolvable
//! ([`DeviceBackend::load_code`](crate::backend::DeviceBackend::load_code)), write the launch
//! block with the func-id table built from the answered addresses, launch the AICore program and
//! then the AICPU program through the backend (registered once per runner), wait for both with
//! deadlines, read the boot report, the SM error words and per-thread counters, copy the outputs
//! back, free what was staged. A failed run leaves the runner usable for the next one.

use std::time::{Duration, Instant};

use pto_abi::consts::{LANE_COUNT, MAX_AICPU_THREADS, MAX_CLUSTERS, MAX_FUNC_IDS};
use pto_abi::launch::{LAUNCH_FLAG_DETERMINISTIC, LAUNCH_FLAG_NOOP_CORES};
use pto_abi::runtime::SchedThreadState;
use pto_abi::sm::SmHeader;
use pto_abi::DevAddr;
use zerocopy::FromZeros;

use super::failure::DeviceFailure;
use super::kernels::LaunchShape;
use super::launch::{BootOutcome, LaunchParams};
use super::request::{RunArg, RunError, RunMode, RunReport, RunRequest, RunShape};
use super::staging::Staged;
use super::{BoundImage, DeviceRunner, RunnerError};
use crate::backend::{func_table, DeviceIo, RunCode};

/// Extra time the host gives the AICore kernel beyond the scheduler budget, after the AICPU
/// kernel ended, before aborting it.
const JOIN_MARGIN: Duration = Duration::from_secs(2);
/// How long the host waits for an aborted AICore kernel whose cores are idle.
const STOP_GRACE: Duration = Duration::from_millis(100);

fn check_request(req: &RunShape<'_>) -> Result<(u32, u32, u64), RunError> {
    let bad = |m: String| Err(RunError::Request(m));
    for (i, a) in req.args.iter().enumerate() {
        let empty = match a {
            RunArg::Input { data, .. } | RunArg::InOut { data, .. } => data.is_empty(),
            RunArg::Output { bytes, .. } => *bytes == 0,
            RunArg::Scalar(_) => false,
        };
        if empty {
            return bad(format!("argument {i} is a tensor of 0 bytes"));
        }
    }
    req.sizing.validate().map_err(|e| RunError::Request(format!("sizing: {e}")))?;
    match req.mode {
        RunMode::Threaded { threads, clusters } => {
            if !(2..=MAX_AICPU_THREADS as u32).contains(&threads) {
                return bad(format!(
                    "threads = {threads}: the threaded mode needs 2..={MAX_AICPU_THREADS} AICPU threads \
                     (one orchestrator plus schedulers)"
                ));
            }
            if !(1..=MAX_CLUSTERS as u32).contains(&clusters) {
                return bad(format!("clusters = {clusters}: must be in 1..={MAX_CLUSTERS}"));
            }
            Ok((threads, clusters, 0))
        }
        RunMode::Deterministic { noop_cores } => {
            let flags = LAUNCH_FLAG_DETERMINISTIC | if noop_cores { LAUNCH_FLAG_NOOP_CORES } else { 0 };
            Ok((1, 0, flags))
        }
    }
}

impl DeviceRunner {
    /// Runs a task graph whose orchestration and kernels are host functions (see
    /// [`RunRequest::kernels`]); a backend that cannot run host functions refuses with
    /// [`RunError::Code`]. The runner stays usable after every error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pto_host::examples::{vector_args, vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
    /// use pto_host::sim::SimBackend;
    /// use pto_host::{ArenaSizingKey, Budgets, DeviceBackend, DeviceRunner, RunMode, RunRequest};
    ///
    /// let mut runner = DeviceRunner::new(Arc::new(SimBackend::with_capacity(256 << 20)?) as Arc<dyn DeviceBackend>);
    /// let args = vector_args();
    /// let req = RunRequest {
    ///     orchestration: vector_orchestration,
    ///     kernels: &VECTOR_KERNELS,
    ///     args: &args,
    ///     sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
    ///     mode: RunMode::Deterministic { noop_cores: false },
    ///     budgets: Budgets::DEFAULT,
    /// };
    /// let report = runner.run(&req)?;
    /// assert_eq!(report.tasks_completed, 5);
    /// assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&mut self, req: &RunRequest<'_>) -> Result<RunReport, RunError> {
        if req.kernels.len() > MAX_FUNC_IDS {
            return Err(RunError::Request(format!("{} kernels; at most {MAX_FUNC_IDS} func ids", req.kernels.len())));
        }
        self.run_code(&req.shape(), &req.code())
    }

    /// Runs `shape` with `code`: the path of [`DeviceRunner::run`] and
    /// [`DeviceRunner::run_callable`].
    pub(super) fn run_code(&mut self, req: &RunShape<'_>, code: &RunCode<'_>) -> Result<RunReport, RunError> {
        let (threads, clusters, flags) = check_request(req)?;
        let t = Instant::now();
        let bound = self.bind(&req.sizing)?;
        let bind_time = t.elapsed();
        self.retry_deferred_frees();
        let staged = self.stage(req)?;
        let mut idle = true;
        let result = self.launch_and_collect(req, code, &bound, &staged, threads, clusters, flags, &mut idle);
        let result = self.release_staged(staged, idle, result);
        let mut report = result?;
        report.bind_time = bind_time;
        report.bind_cache_hit = bound.cache_hit;
        Ok(report)
    }

    /// Launches the run and reads back what it did. `idle` is cleared when the device may still
    /// touch the run's memory afterwards (a wait failed and no abort confirmed the device idle).
    #[allow(clippy::too_many_arguments)]
    fn launch_and_collect(
        &mut self,
        req: &RunShape<'_>,
        code: &RunCode<'_>,
        bound: &BoundImage,
        staged: &Staged,
        threads: u32,
        clusters: u32,
        flags: u64,
        idle: &mut bool,
    ) -> Result<RunReport, RunError> {
        // The run's code stays resolvable on the device until its launches are collected.
        let loaded = self.backend().load_code(code)?;
        let func_table = func_table(code.kernels.iter().map(|&(id, _)| id).zip(loaded.kernels.iter().copied()))?;
        let params = LaunchParams {
            aicpu_thread_count: threads,
            cluster_count: clusters,
            orchestration: loaded.orchestration,
            orch_args: staged.records.unwrap_or(DevAddr::NULL),
            orch_arg_count: req.args.len() as u32,
            orch_timeout_ns: req.budgets.orch_ns,
            sched_timeout_ns: req.budgets.sched_ns,
            flags,
            func_table,
            trace: staged.trace.map_or((DevAddr::NULL, 0, 0), |t| (t.base, t.bytes, t.level)),
        };
        self.prepare_launch(bound, &params)?;
        let backend = self.backend().clone();
        let backend = backend.as_ref();
        let started = self.launch_kernels(threads, clusters, idle)?;
        let launcher = &mut self.launcher;
        let aicpu = launcher.wait_aicpu(backend);
        let run_time = started.elapsed();
        // A failed wait says nothing about whether the kernel still runs: abort it and confirm.
        let aicpu = aicpu.map_err(|e| {
            let confirmed = launcher.quiesce_aicpu(backend, STOP_GRACE);
            *idle &= confirmed;
            let after = if confirmed { "aborted, the device is idle" } else { "still running after an abort" };
            format!("{e} ({after})")
        });
        let aicore = if clusters > 0 {
            let r = launcher.wait_aicore(backend, Duration::from_nanos(req.budgets.sched_ns) + JOIN_MARGIN, STOP_GRACE);
            r.map_err(|e| {
                let confirmed = launcher.quiesce_aicore(backend, STOP_GRACE);
                *idle &= confirmed;
                let after = if confirmed { "aborted, the device is idle" } else { "still running after an abort" };
                format!("{e} ({after})")
            })
        } else {
            Ok(())
        };

        // The outcome, most fundamental failure first.
        match self.read_boot_report()? {
            BootOutcome::Ready(_) => {}
            BootOutcome::Failed(f) => return Err(RunError::Runner(RunnerError::Boot(f))),
            BootOutcome::Pending => {
                return Err(match aicpu {
                    Err(e) => RunError::Stuck(format!("the AICPU kernel: {e}")),
                    Ok(()) => RunError::Runner(RunnerError::BootNotReported),
                })
            }
        }
        let r = self.backend().read_obj::<SmHeader>(bound.regions.sm.base);
        let sm = self.note(r)?;
        if let Some(f) = DeviceFailure::from_sm(&sm) {
            return Err(RunError::Device(Box::new(f)));
        }
        if let Err(e) = aicpu {
            return Err(RunError::Stuck(format!("the AICPU kernel: {e}")));
        }
        if let Err(e) = aicore {
            return Err(RunError::Stuck(format!("the AICore kernel: {e}")));
        }
        let states_at = DevAddr(bound.regions.arena.base.get() + bound.layout.offsets.sched_threads.offset);
        let mut states = [SchedThreadState::new_zeroed(); MAX_AICPU_THREADS];
        let r = self.backend().read_slice(states_at, &mut states);
        self.note(r)?;
        let completed: u64 = states.iter().map(|s| s.tasks_completed).sum();
        let faults: u64 = states.iter().map(|s| s.kernel_faults).sum();
        if faults > 0 {
            let first_task = states.iter().find(|s| s.kernel_faults > 0).map(|s| s.first_fault_task).unwrap_or(0);
            return Err(RunError::KernelFaults { faults, first_task });
        }
        if completed != sm.orch.tasks_submitted || sm.orch.orchestrator_done == 0 {
            return Err(RunError::Stuck(format!(
                "{completed} of {} tasks completed (orchestrator done: {})",
                sm.orch.tasks_submitted, sm.orch.orchestrator_done
            )));
        }
        let mut outputs = Vec::with_capacity(req.args.len());
        for (a, b) in req.args.iter().zip(&staged.buffers) {
            match (a, b) {
                (RunArg::Output { .. } | RunArg::InOut { .. }, Some((addr, bytes))) => {
                    let mut v = vec![0u8; *bytes as usize];
                    let r = self.backend().read_bytes(*addr, &mut v);
                    self.note(r)?;
                    outputs.push(Some(v));
                }
                _ => outputs.push(None),
            }
        }
        drop(loaded);
        let trace = match staged.trace {
            Some(t) => Some(Box::new(self.read_trace(&t)?)),
            None => None,
        };
        Ok(RunReport {
            outputs,
            tasks_submitted: sm.orch.tasks_submitted,
            tasks_completed: completed,
            bind_time: Duration::ZERO,
            bind_cache_hit: false,
            run_time,
            trace,
        })
    }

    /// Launches the AICore kernel (threaded mode only), then the AICPU kernel, both with the
    /// launch block's `KernelArgs`, and returns when the AICPU launch started (the start of the
    /// run's time). If the AICPU launch fails, the AICore kernel (whose cores wait for a boot that
    /// never comes) is aborted.
    fn launch_kernels(&mut self, threads: u32, clusters: u32, idle: &mut bool) -> Result<Instant, RunError> {
        if clusters > 0 {
            self.launch_aicore_kernel(LaunchShape { block_dim: clusters * LANE_COUNT as u32 })?;
        }
        let started = Instant::now();
        if let Err(e) = self.launch_aicpu_kernel(LaunchShape { block_dim: threads }) {
            if clusters > 0 {
                let backend = self.backend().clone();
                if self.launcher.wait_aicore(backend.as_ref(), Duration::ZERO, STOP_GRACE).is_err() {
                    *idle &= self.launcher.quiesce_aicore(backend.as_ref(), STOP_GRACE);
                }
            }
            return Err(e.into());
        }
        Ok(started)
    }
}
