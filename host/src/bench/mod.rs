//! The runtime's benchmarks (issue 4), measured in host memory without a backend:
//!
//! * [`graph`]: the whole task cycle of the deterministic mode (submit, dispatch, complete,
//!   release) with instant virtual cores and no-op kernels, on three graph shapes in two tensor
//!   modes, each in the exclusive and (on request) the shared synchronisation mode, beside the
//!   cache lines a task touches per structure ([`lines`]);
//! * [`tensor_map`]: the tensor map alone (2 lookups + 1 insert + periodic cleanup per task);
//! * [`ready_queue`]: the ready queue alone (push+pop pair, batches of 32, two threads);
//! * [`threaded`]: the threaded mode's throughput beside the deterministic mode's, both through
//!   `DeviceRunner::run` on the simulated device.
//!
//! Every figure is measured beside a baseline of the same run ([`baseline`]: plain loops doing the
//! equivalent memory traffic), so a figure can be read on a shared machine as a ratio. [`run`]
//! runs a [`Plan`] and returns a [`Report`]; `pto bench` prints it.

pub mod baseline;
pub mod graph;
pub mod lines;
pub mod ready_queue;
pub mod report;
pub mod tensor_map;
pub mod threaded;

pub use graph::GraphLine;
pub use report::{Line, Report};

use std::time::Instant;

use pto_abi::sizing::ArenaSizingKey;

use graph::{GraphBench, Shape, SyncMode, TensorMode};
use threaded::{ThreadedBench, ThreadedSetup};

/// What to measure, and how long.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Sizing of the runtime the graph benchmarks run on.
    pub sizing: ArenaSizingKey,
    /// Graph shapes to measure.
    pub shapes: Vec<Shape>,
    /// Tensor modes to measure.
    pub modes: Vec<TensorMode>,
    /// Synchronisation modes of every whole-cycle figure, in report order.
    pub syncs: Vec<SyncMode>,
    /// Tasks submitted before the timer starts, on the same live runtime.
    pub warmup: u64,
    /// Timed task counts; each (shape, mode) is measured at every count.
    pub task_counts: Vec<u64>,
    /// Runs per figure; the report gives the median.
    pub reps: u32,
    /// Tasks of the tensor-map figures and items of the ready-queue figures (0 skips both).
    pub structure_items: u64,
    /// The threaded setup to measure beside the deterministic mode (`None` skips it).
    pub threaded: Option<ThreadedSetup>,
    /// Tasks of each threaded-throughput run.
    pub threaded_tasks: u64,
}

impl Plan {
    /// The figures: 10k, 100k and 1M tasks after a 65,536-task warm-up, median of 3.
    pub fn full() -> Self {
        Plan {
            sizing: bench_sizing(),
            shapes: Shape::ALL.to_vec(),
            modes: TensorMode::ALL.to_vec(),
            syncs: vec![SyncMode::Exclusive],
            warmup: 65_536,
            task_counts: vec![10_000, 100_000, 1_000_000],
            reps: 3,
            structure_items: 2_000_000,
            threaded: Some(ThreadedSetup { threads: 2, clusters: 1 }),
            threaded_tasks: 100_000,
        }
    }

    /// A run of a few seconds: smaller counts, one run per figure.
    pub fn quick() -> Self {
        Plan {
            warmup: 16_384,
            task_counts: vec![10_000, 100_000],
            reps: 1,
            structure_items: 200_000,
            threaded_tasks: 20_000,
            ..Self::full()
        }
    }
}

/// The sizing of the graph benchmarks: default task windows and dep pools, 16 MiB ring heaps
/// (the benchmarks never touch output bytes; a scope needs 256 KiB of heap).
pub fn bench_sizing() -> ArenaSizingKey {
    ArenaSizingKey { heap_sizes: [16 << 20; 4], ..ArenaSizingKey::default() }
}

/// Median of `samples` (sorted in place); 0 for none.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// Nanoseconds per item of one timed closure call that processed `items` items.
pub fn ns_per_item(items: u64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / items.max(1) as f64
}

/// The samples of one figure: their median and their best (lowest) value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampled {
    /// Median.
    pub median: f64,
    /// Lowest sample: the least disturbed run on a shared machine.
    pub best: f64,
}

impl Sampled {
    /// Median and best of `samples` (0 for none).
    pub fn of(samples: &mut [f64]) -> Self {
        let best = samples.iter().copied().fold(f64::INFINITY, f64::min);
        Sampled { median: median(samples), best: if best.is_finite() { best } else { 0.0 } }
    }
}

/// Runs `reps` rounds of (baseline, figure) back to back and returns the samples of each
/// `(figure, baseline)`: interleaving keeps both exposed to the same machine load.
pub fn interleaved(
    reps: u32,
    mut baseline: impl FnMut() -> f64,
    mut figure: impl FnMut() -> Result<f64, String>,
) -> Result<(Sampled, Sampled), String> {
    let mut fig = Vec::new();
    let mut base = Vec::new();
    for _ in 0..reps.max(1) {
        base.push(baseline());
        fig.push(figure()?);
    }
    Ok((Sampled::of(&mut fig), Sampled::of(&mut base)))
}

/// CPU time this thread has used, in nanoseconds (time spent descheduled does not count).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant libc knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs every benchmark of `plan`.
pub fn run(plan: &Plan) -> Result<Report, String> {
    let mut report = Report::new(plan);
    if !plan.shapes.is_empty() && !plan.modes.is_empty() && !plan.task_counts.is_empty() {
        let bench = GraphBench::new(&plan.sizing)?;
        let window = plan.sizing.task_window_sizes[graph::BENCH_RING];
        let mut traffic = baseline::DescriptorTraffic::new(window);
        for &shape in &plan.shapes {
            for &mode in &plan.modes {
                for &tasks in &plan.task_counts {
                    for &sync in &plan.syncs {
                        report.graphs.push(graph::measure(&bench, &mut traffic, (shape, mode, sync), plan, tasks)?);
                    }
                }
            }
        }
    }
    if plan.structure_items > 0 {
        for in_flight in tensor_map::IN_FLIGHT {
            report.tensor_map.push(tensor_map::measure(in_flight, plan.structure_items, plan.reps)?);
        }
        report.ready_queue = ready_queue::measure_all(plan.structure_items, plan.reps)?;
    }
    if let Some(setup) = plan.threaded.filter(|_| plan.threaded_tasks > 0) {
        let mut bench = ThreadedBench::new(plan.sizing, setup)?;
        for &shape in &plan.shapes {
            for &mode in &plan.modes {
                report.threaded.push(bench.measure(shape, mode, plan.threaded_tasks, plan.reps)?);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty_samples() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn best_is_the_lowest_sample_and_thread_cpu_time_advances() {
        assert_eq!(Sampled::of(&mut [3.0, 1.0, 2.0]), Sampled { median: 2.0, best: 1.0 });
        assert_eq!(Sampled::of(&mut []), Sampled { median: 0.0, best: 0.0 });
        let t = thread_cpu_ns();
        let mut x = 0u64;
        while thread_cpu_ns() == t {
            x = std::hint::black_box(x + 1);
        }
        assert!(thread_cpu_ns() > t);
    }

    #[test]
    fn interleaving_runs_both_sides_each_round_and_stops_at_the_first_error() {
        let mut calls = Vec::new();
        let (f, b) = interleaved(
            3,
            || {
                calls.push('b');
                1.0
            },
            || Ok(2.0),
        )
        .unwrap();
        assert_eq!((f.median, b.median, b.best), (2.0, 1.0, 1.0));
        assert_eq!(calls, ['b', 'b', 'b']);
        let mut n = 0;
        let err = interleaved(
            3,
            || 1.0,
            || {
                n += 1;
                Err(format!("run {n} failed"))
            },
        );
        assert_eq!(err, Err("run 1 failed".to_string()));
    }
}
