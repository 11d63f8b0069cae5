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
    /// Trace level of the traced threaded-throughput figures, each measured beside the untraced
    /// one in the same run (0: none).
    pub trace_level: u32,
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
            trace_level: 0,
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
    figure: impl FnMut() -> Result<f64, String>,
) -> Result<(Sampled, Sampled), String> {
    interleaved_checked(reps, || Ok(baseline()), figure)
}

/// [`interleaved`] with a baseline that checks its own work too: the first error of either ends
/// the measurement.
pub fn interleaved_checked(
    reps: u32,
    mut baseline: impl FnMut() -> Result<f64, String>,
    mut figure: impl FnMut() -> Result<f64, String>,
) -> Result<(Sampled, Sampled), String> {
    let mut fig = Vec::new();
    let mut base = Vec::new();
    for _ in 0..reps.max(1) {
        base.push(baseline()?);
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

/// What [`run_observed`] reports while it measures.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Step `index` of `total` starts measuring `what`.
    Start {
        /// 1-based step.
        index: usize,
        /// Steps in the plan.
        total: usize,
        /// What is measured.
        what: String,
    },
    /// Step `index` of `total` is measured; `line` states its figures.
    Done {
        /// 1-based step.
        index: usize,
        /// Steps in the plan.
        total: usize,
        /// The figure(s) in one line each.
        lines: Vec<String>,
    },
}

fn graph_text(g: &GraphLine) -> String {
    format!(
        "{} {} {} {} tasks: {:.1} ns/task (best {:.1}, cpu {:.1}), baseline {:.1} ns",
        g.shape.name(),
        g.mode.name(),
        g.sync.name(),
        report::thousands(g.run.timed_tasks),
        g.ns_per_task.median,
        g.ns_per_task.best,
        g.cpu_ns_per_task,
        g.baseline_ns.median
    )
}

fn line_text(l: &Line) -> String {
    format!("{}: {:.1} ns/item (best {:.1}), baseline {:.1} ns", l.name, l.ns.median, l.ns.best, l.baseline_ns.median)
}

/// Runs every benchmark of `plan`.
pub fn run(plan: &Plan) -> Result<Report, String> {
    run_observed(plan, &mut |_| {})
}

/// Runs every benchmark of `plan`, telling `observe` when each step starts and what it measured.
pub fn run_observed(plan: &Plan, observe: &mut dyn FnMut(Event)) -> Result<Report, String> {
    let mut report = Report::new(plan);
    let graphs = if plan.modes.is_empty() || plan.task_counts.is_empty() { 0 } else { plan.shapes.len() };
    let graph_steps = graphs * plan.modes.len() * plan.syncs.len() * plan.task_counts.len();
    let structure_steps = if plan.structure_items > 0 { tensor_map::IN_FLIGHT.len() + 1 } else { 0 };
    let threaded = plan.threaded.filter(|_| plan.threaded_tasks > 0);
    let threaded_steps = if threaded.is_some() { plan.shapes.len() * plan.modes.len() } else { 0 };
    let total = graph_steps + structure_steps + threaded_steps;
    let mut index = 0;
    let mut step = |what: String, observe: &mut dyn FnMut(Event)| {
        index += 1;
        observe(Event::Start { index, total, what });
        index
    };
    if graph_steps > 0 {
        let bench = GraphBench::new(&plan.sizing)?;
        let window = plan.sizing.task_window_sizes[graph::BENCH_RING];
        let mut traffic = baseline::DescriptorTraffic::new(window);
        for &shape in &plan.shapes {
            for &mode in &plan.modes {
                for &tasks in &plan.task_counts {
                    for &sync in &plan.syncs {
                        let what = format!(
                            "{} {} {} {} tasks",
                            shape.name(),
                            mode.name(),
                            sync.name(),
                            report::thousands(tasks)
                        );
                        let index = step(what, observe);
                        let g = graph::measure(&bench, &mut traffic, (shape, mode, sync), plan, tasks)?;
                        observe(Event::Done { index, total, lines: vec![graph_text(&g)] });
                        report.graphs.push(g);
                    }
                }
            }
        }
    }
    if structure_steps > 0 {
        for in_flight in tensor_map::IN_FLIGHT {
            let index = step(format!("tensor map, {in_flight} in flight"), observe);
            let l = tensor_map::measure(in_flight, plan.structure_items, plan.reps)?;
            observe(Event::Done { index, total, lines: vec![line_text(&l)] });
            report.tensor_map.push(l);
        }
        let index = step("ready queue".to_string(), observe);
        report.ready_queue = ready_queue::measure_all(plan.structure_items, plan.reps)?;
        observe(Event::Done { index, total, lines: report.ready_queue.iter().map(line_text).collect() });
    }
    if let Some(setup) = threaded {
        let mut bench = ThreadedBench::new(plan.sizing, setup)?;
        for &shape in &plan.shapes {
            for &mode in &plan.modes {
                let index = step(format!("threaded {} {}", shape.name(), mode.name()), observe);
                let l = bench.measure(shape, mode, plan.threaded_tasks, plan.reps, plan.trace_level)?;
                let mut text = format!(
                    "threaded {} {} {} tasks: {:.1} ns/task, deterministic {:.1} ns/task",
                    shape.name(),
                    mode.name(),
                    report::thousands(l.tasks),
                    l.threaded_ns.median,
                    l.deterministic_ns.median
                );
                if let Some(t) = &l.traced {
                    text += &format!(
                        "; traced at level {}: {:.1} ns/task ({:.2}× untraced), deterministic {:.1} ns/task ({:.2}×)",
                        t.level,
                        t.threaded_ns.median,
                        t.threaded_ns.median / l.threaded_ns.median,
                        t.deterministic_ns.median,
                        t.deterministic_ns.median / l.deterministic_ns.median
                    );
                }
                observe(Event::Done { index, total, lines: vec![text] });
                report.threaded.push(l);
            }
        }
    }
    Ok(report)
}

/// Figures whose wall time per task is more than `factor` times their CPU time: a sign that the
/// machine was busy and the thread waited for a core.
pub fn busy_machine_lines(report: &Report, factor: f64) -> Vec<&GraphLine> {
    report
        .graphs
        .iter()
        .filter(|g| g.cpu_ns_per_task > 0.0 && g.ns_per_task.median > factor * g.cpu_ns_per_task)
        .collect()
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
