//! The threaded mode's throughput beside the deterministic mode's, both through
//! `DeviceRunner::run` on the simulated device with the same graph program ([`graph_program`]):
//! AICPU threads (one orchestrator, the others schedulers) and AICore worker threads running a
//! no-op kernel, against the single-thread deterministic mode with instant virtual cores. Each
//! figure is the run's wall time (launch to the end of every device thread) over its tasks, so it
//! includes boot and thread start; the deterministic run of the same path is the baseline.
//!
//! On a machine with fewer cores than device threads the threaded figure measures the simulated
//! device's thread hand-offs (spin, then yield) more than the runtime's own cost.
//!
//! With a trace level above 0 each figure is measured a second time, interleaved with the
//! untraced runs, with the run traced at that level (buffers sized so nothing is dropped): the
//! ratio of the two is the cost of tracing per task on the same machine at the same moment.

use std::sync::Arc;

use pto_abi::sizing::ArenaSizingKey;
use pto_device::kernel::KernelInvocation;
use pto_device::runtime::Budgets;

use super::graph::{graph_program, graph_run_args, Shape, TensorMode};
use super::Sampled;
use crate::backend::sim::SimBackend;
use crate::backend::{DeviceBackend, KernelFn};
use crate::runner::{DeviceRunner, RunMode, RunRequest, TraceConfig};

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
    /// The same runs traced, when a trace level was asked for.
    pub traced: Option<TracedThroughput>,
}

/// One shape and mode in both modes with the runs traced.
#[derive(Clone, Debug, PartialEq)]
pub struct TracedThroughput {
    /// The trace level of the traced runs.
    pub level: u32,
    /// Threaded mode, traced, nanoseconds per task.
    pub threaded_ns: Sampled,
    /// Deterministic mode, traced, nanoseconds per task.
    pub deterministic_ns: Sampled,
    /// Records dropped over every traced run (0 when the buffers were large enough).
    pub dropped: u64,
}

/// A trace configuration at `level` with room for every record of a `tasks`-task run.
pub fn bench_trace(level: u32, tasks: u64) -> Result<TraceConfig, String> {
    let c = TraceConfig::level(level)?;
    let n = tasks + 1024;
    Ok(TraceConfig { capacities: [n, 4 * n, n, 4 * n, n / 16 + 1024], ..c })
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
        self.run_traced(shape, mode, tasks, threaded, TraceConfig::OFF).map(|(ns, _)| ns)
    }

    /// As [`ThreadedBench::run`] with the run traced as `trace` says; also returns the records
    /// dropped.
    pub fn run_traced(
        &mut self,
        shape: Shape,
        mode: TensorMode,
        tasks: u64,
        threaded: bool,
        trace: TraceConfig,
    ) -> Result<(f64, u64), String> {
        self.runner.set_trace(trace);
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
        let r = self.runner.run(&req).map_err(|e| format!("{what} run failed: {e}"));
        self.runner.set_trace(TraceConfig::OFF);
        let r = r?;
        let expected = tasks.div_ceil(shape.scope_len()) * shape.scope_len();
        if r.tasks_submitted != expected || r.tasks_completed != expected {
            return Err(format!(
                "{what}: {} submitted and {} completed, expected {expected}",
                r.tasks_submitted, r.tasks_completed
            ));
        }
        if trace.level > 0 && r.trace.is_none() {
            return Err(format!("{what}: traced at level {} but the report has no trace", trace.level));
        }
        let dropped = r.trace.as_ref().map_or(0, |t| t.total_dropped());
        Ok((r.run_time.as_nanos() as f64 / expected as f64, dropped))
    }

    /// Both modes for one shape and mode, interleaved, `reps` times each; with `trace_level`
    /// above 0 each run is followed by the same run traced at that level.
    pub fn measure(
        &mut self,
        shape: Shape,
        mode: TensorMode,
        tasks: u64,
        reps: u32,
        trace_level: u32,
    ) -> Result<ThroughputLine, String> {
        let trace = if trace_level > 0 { Some(bench_trace(trace_level, tasks + shape.scope_len())?) } else { None };
        let (mut det, mut thr, mut tdet, mut tthr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut dropped = 0;
        for _ in 0..reps.max(1) {
            det.push(self.run(shape, mode, tasks, false)?);
            if let Some(t) = trace {
                let (ns, d) = self.run_traced(shape, mode, tasks, false, t)?;
                tdet.push(ns);
                dropped += d;
            }
            thr.push(self.run(shape, mode, tasks, true)?);
            if let Some(t) = trace {
                let (ns, d) = self.run_traced(shape, mode, tasks, true, t)?;
                tthr.push(ns);
                dropped += d;
            }
        }
        Ok(ThroughputLine {
            shape,
            mode,
            tasks: tasks.div_ceil(shape.scope_len()) * shape.scope_len(),
            threaded_ns: Sampled::of(&mut thr),
            deterministic_ns: Sampled::of(&mut det),
            traced: trace.map(|t| TracedThroughput {
                level: t.level,
                threaded_ns: Sampled::of(&mut tthr),
                deterministic_ns: Sampled::of(&mut tdet),
                dropped,
            }),
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
                let l = b.measure(shape, mode, 600, 1, 0).unwrap();
                assert_eq!(l.tasks, 600u64.div_ceil(shape.scope_len()) * shape.scope_len());
                assert!(l.threaded_ns.median > 0.0 && l.deterministic_ns.median > 0.0);
                assert!(l.traced.is_none());
            }
        }
    }

    #[test]
    fn traced_figures_run_the_same_tasks_traced_without_drops() {
        let sizing = ArenaSizingKey::uniform(1024, 1 << 20, 2048);
        let mut b = ThreadedBench::new(sizing, ThreadedSetup { threads: 2, clusters: 1 }).unwrap();
        let l = b.measure(Shape::Diamond, TensorMode::Ext, 600, 1, 4).unwrap();
        let t = l.traced.expect("traced figures");
        assert_eq!((t.level, t.dropped), (4, 0));
        assert!(t.threaded_ns.median > 0.0 && t.deterministic_ns.median > 0.0);
        assert_eq!(b.runner.trace_config(), TraceConfig::OFF, "the runner is left untraced");
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
