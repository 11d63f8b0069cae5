//! The threaded mode's throughput beside the deterministic mode's, both through
//! `DeviceRunner::run` on the simulated device with the same graph program ([`graph_program`]):
//! AICPU threads (one orchestrator, the others schedulers) and AICore worker threads running a
//! no-op kernel, against the single-thread deterministic mode with instant virtual cores. Each
//! figure is the run's wall time (launch to the end of every device thread) over its tasks, so it
//! includes boot and thread start; the deterministic run of the same path is the baseline.
//!
//! On a machine with fewer cores than device threads the threaded figure measures the simulated
//! device's thread hand-offs (spin, then yield) more than the runtime's own cost.

use std::sync::Arc;

use pto_abi::sizing::ArenaSizingKey;
use pto_device::kernel::KernelInvocation;
use pto_device::runtime::Budgets;

use super::graph::{graph_program, graph_run_args, Shape, TensorMode};
use super::Sampled;
use crate::backend::sim::SimBackend;
use crate::backend::{DeviceBackend, KernelFn};
use crate::runner::{DeviceRunner, RunMode, RunRequest};

/// The threaded configuration measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadedSetup {
    /// AICPU threads (one orchestrator plus schedulers), 2..=4.
    pub threads: u32,
    /// AICore clusters (3 cores each).
    pub clusters: u32,
}

/// One shape and mode in both modes.
#[derive(Clone, Debug, PartialEq)]
pub struct ThroughputLine {
    /// Graph shape.
    pub shape: Shape,
    /// Tensor mode.
    pub mode: TensorMode,
    /// Tasks of each run (whole scopes).
    pub tasks: u64,
    /// Threaded mode, nanoseconds of run time per task.
    pub threaded_ns: Sampled,
    /// Deterministic mode (instant virtual cores), same run path, nanoseconds per task.
    pub deterministic_ns: Sampled,
}

fn noop(_: &KernelInvocation<'_>) {}

const KERNELS: [KernelFn; 1] = [noop];

/// A runner on the simulated device.
pub struct ThreadedBench {
    runner: DeviceRunner,
    sizing: ArenaSizingKey,
    setup: ThreadedSetup,
}

impl ThreadedBench {
    /// A runner binding `sizing`, running threaded as `setup` says.
    pub fn new(sizing: ArenaSizingKey, setup: ThreadedSetup) -> Result<Self, String> {
        let sim = Arc::new(SimBackend::new().map_err(|e| format!("simulated device: {e}"))?);
        let runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
        Ok(ThreadedBench { runner, sizing, setup })
    }

    /// One run of `tasks` tasks (rounded up to whole scopes); returns nanoseconds per task after
    /// checking that every task was submitted and completed.
    pub fn run(&mut self, shape: Shape, mode: TensorMode, tasks: u64, threaded: bool) -> Result<f64, String> {
        let args = graph_run_args(shape, mode, 0, tasks);
        let run_mode = if threaded {
            RunMode::Threaded { threads: self.setup.threads, clusters: self.setup.clusters }
        } else {
            RunMode::Deterministic { noop_cores: true }
        };
        let req = RunRequest {
            orchestration: graph_program,
            kernels: &KERNELS,
            args: &args,
            sizing: self.sizing,
            mode: run_mode,
            budgets: Budgets::DEFAULT,
        };
        let what = format!("{} {} {}", shape.name(), mode.name(), if threaded { "threaded" } else { "deterministic" });
        let r = self.runner.run(&req).map_err(|e| format!("{what} run failed: {e}"))?;
        let expected = tasks.div_ceil(shape.scope_len()) * shape.scope_len();
        if r.tasks_submitted != expected || r.tasks_completed != expected {
            return Err(format!(
                "{what}: {} submitted and {} completed, expected {expected}",
                r.tasks_submitted, r.tasks_completed
            ));
        }
        Ok(r.run_time.as_nanos() as f64 / expected as f64)
    }

    /// Both modes for one shape and mode, interleaved, `reps` times each.
    pub fn measure(&mut self, shape: Shape, mode: TensorMode, tasks: u64, reps: u32) -> Result<ThroughputLine, String> {
        let mut det = Vec::new();
        let mut thr = Vec::new();
        for _ in 0..reps.max(1) {
            det.push(self.run(shape, mode, tasks, false)?);
            thr.push(self.run(shape, mode, tasks, true)?);
        }
        Ok(ThroughputLine {
            shape,
            mode,
            tasks: tasks.div_ceil(shape.scope_len()) * shape.scope_len(),
            threaded_ns: Sampled::of(&mut thr),
            deterministic_ns: Sampled::of(&mut det),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_run_every_task_of_every_shape_through_the_runner() {
        let sizing = ArenaSizingKey::uniform(1024, 1 << 20, 2048);
        let mut b = ThreadedBench::new(sizing, ThreadedSetup { threads: 2, clusters: 1 }).unwrap();
        for shape in Shape::ALL {
            for mode in TensorMode::ALL {
                let l = b.measure(shape, mode, 600, 1).unwrap();
                assert_eq!(l.tasks, 600u64.div_ceil(shape.scope_len()) * shape.scope_len());
                assert!(l.threaded_ns.median > 0.0 && l.deterministic_ns.median > 0.0);
            }
        }
    }

    #[test]
    fn a_bad_setup_is_refused_by_the_runner_with_the_rule() {
        let mut b =
            ThreadedBench::new(ArenaSizingKey::uniform(1024, 1 << 20, 2048), ThreadedSetup { threads: 1, clusters: 1 })
                .unwrap();
        let e = b.run(Shape::Chain, TensorMode::Ext, 256, true).unwrap_err();
        assert!(e.contains("threads = 1"), "{e}");
    }
}
