//! Benchmark results and their rendering as text tables or JSON.

use std::io::{self, Write};

use pto_abi::sizing::ArenaSizingKey;
use serde_json::{json, Value};

use super::graph::{GraphLine, Shape, SyncMode, TensorMode, BENCH_RING, SCOPE_TASKS};
use super::lines::{tally, Traffic, STRUCTURES};
use super::threaded::{ThreadedSetup, ThroughputLine};
use super::{Plan, Sampled};

/// One figure beside its baseline.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// What was measured.
    pub name: String,
    /// Items (tasks) timed per run.
    pub items: u64,
    /// Nanoseconds per item.
    pub ns: Sampled,
    /// What the baseline does.
    pub baseline: &'static str,
    /// Nanoseconds per item of the baseline, measured in the same run.
    pub baseline_ns: Sampled,
}

/// Everything one `pto bench` measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Runtime sizing of the graph figures.
    pub sizing: ArenaSizingKey,
    /// Warm-up tasks requested.
    pub warmup: u64,
    /// Runs per figure.
    pub reps: u32,
    /// Whole-cycle figures, by shape, mode, then task count.
    pub graphs: Vec<GraphLine>,
    /// Tensor map alone.
    pub tensor_map: Vec<Line>,
    /// Ready queue alone.
    pub ready_queue: Vec<Line>,
    /// The threaded setup measured, if any.
    pub threaded_setup: Option<ThreadedSetup>,
    /// Threaded throughput beside the deterministic mode's.
    pub threaded: Vec<ThroughputLine>,
}

const GRAPH_BASELINE: &str = "memcpy of the bytes a submit publishes (descriptor, payload, slot), same window";

fn ratio(ns: f64, of: f64) -> f64 {
    if of > 0.0 {
        ns / of
    } else {
        f64::NAN
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// An empty report for `plan`.
    pub fn new(plan: &Plan) -> Self {
        Report {
            sizing: plan.sizing,
            warmup: plan.warmup,
            reps: plan.reps,
            graphs: Vec::new(),
            tensor_map: Vec::new(),
            ready_queue: Vec::new(),
            threaded_setup: plan.threaded.filter(|_| plan.threaded_tasks > 0),
            threaded: Vec::new(),
        }
    }

    /// The headline figure of each (shape, mode, sync mode): the one with the most timed tasks.
    pub fn headline(&self) -> Vec<&GraphLine> {
        let mut out: Vec<&GraphLine> = Vec::new();
        for g in &self.graphs {
            match out.iter_mut().find(|h| h.shape == g.shape && h.mode == g.mode && h.sync == g.sync) {
                Some(h) if h.run.timed_tasks < g.run.timed_tasks => *h = g,
                Some(_) => {}
                None => out.push(g),
            }
        }
        out
    }

    /// Writes the text tables.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let s = &self.sizing;
        let r = BENCH_RING;
        writeln!(out, "pto bench: deterministic mode, instant virtual cores, no-op kernels")?;
        writeln!(
            out,
            "  ring {r}: window {}, heap {} KiB, dep pool {}; warm-up {} tasks on the same live runtime",
            s.task_window_sizes[r],
            s.heap_sizes[r] >> 10,
            s.dep_pool_capacities[r],
            thousands(self.warmup)
        )?;
        writeln!(
            out,
            "  scopes of up to {SCOPE_TASKS} whole groups' tasks (fanout32: {}), each submitted, ended, drained",
            Shape::Fanout32.scope_len()
        )?;
        writeln!(
            out,
            "  ns = wall time per task, median of {} run(s) (best = lowest run, cpu = the thread's CPU time);",
            self.reps
        )?;
        writeln!(out, "  every baseline is measured in the same run, interleaved with its figure")?;
        if !self.graphs.is_empty() {
            writeln!(out)?;
            writeln!(out, "whole cycle per task (submit, dispatch, complete, release)")?;
            writeln!(out, "  baseline: {GRAPH_BASELINE}")?;
            writeln!(
                out,
                "{:<9} {:<4} {:<9} {:>10} {:>8} {:>6} {:>6} {:>8} {:>6}",
                "shape", "mode", "sync", "tasks", "ns/task", "best", "cpu", "base ns", "×base"
            )?;
            for g in self.headline() {
                writeln!(
                    out,
                    "{:<9} {:<4} {:<9} {:>10} {:>8.1} {:>6.1} {:>6.1} {:>8.1} {:>6.1}",
                    g.shape.name(),
                    g.mode.name(),
                    g.sync.name(),
                    thousands(g.run.timed_tasks),
                    g.ns_per_task.median,
                    g.ns_per_task.best,
                    g.cpu_ns_per_task,
                    g.baseline_ns.median,
                    ratio(g.ns_per_task.median, g.baseline_ns.median)
                )?;
            }
            self.write_scaling(out)?;
            self.write_lines(out)?;
        }
        for (title, lines) in [
            (
                "tensor map alone (2 lookups + 1 insert per task, cleanup every 64 tasks, window 65,536)",
                &self.tensor_map,
            ),
            ("ready queue alone (default capacity)", &self.ready_queue),
        ] {
            if lines.is_empty() {
                continue;
            }
            writeln!(out)?;
            writeln!(out, "{title}")?;
            writeln!(out, "{:<31} {:>8} {:>6} {:>8} {:>6}  baseline", "case", "ns/item", "best", "base ns", "×base")?;
            for l in lines {
                writeln!(
                    out,
                    "{:<31} {:>8.1} {:>6.1} {:>8.1} {:>6.1}  {}",
                    l.name,
                    l.ns.median,
                    l.ns.best,
                    l.baseline_ns.median,
                    ratio(l.ns.median, l.baseline_ns.median),
                    l.baseline
                )?;
            }
        }
        self.write_threaded(out)
    }

    fn write_threaded(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(setup) = self.threaded_setup.filter(|_| !self.threaded.is_empty()) else {
            return Ok(());
        };
        writeln!(out)?;
        writeln!(
            out,
            "threaded mode beside the deterministic one, both through DeviceRunner::run on the sim \
             (run time per task, boot and thread start included)"
        )?;
        writeln!(
            out,
            "  threaded: {} AICPU threads, {} cluster(s) = {} AICore threads, no-op kernel; \
             baseline: deterministic, instant virtual cores",
            setup.threads,
            setup.clusters,
            3 * setup.clusters
        )?;
        writeln!(
            out,
            "{:<9} {:<4} {:>8} {:>10} {:>6} {:>10} {:>8} {:>7}",
            "shape", "mode", "tasks", "thr ns", "best", "Mtasks/s", "det ns", "×det"
        )?;
        for l in &self.threaded {
            writeln!(
                out,
                "{:<9} {:<4} {:>8} {:>10.1} {:>6.0} {:>10.2} {:>8.1} {:>7.1}",
                l.shape.name(),
                l.mode.name(),
                thousands(l.tasks),
                l.threaded_ns.median,
                l.threaded_ns.best,
                1e3 / l.threaded_ns.median,
                l.deterministic_ns.median,
                ratio(l.threaded_ns.median, l.deterministic_ns.median)
            )?;
        }
        self.write_traced(out)
    }

    fn write_traced(&self, out: &mut dyn Write) -> io::Result<()> {
        let traced: Vec<_> = self.threaded.iter().filter_map(|l| l.traced.as_ref().map(|t| (l, t))).collect();
        let Some((_, first)) = traced.first() else { return Ok(()) };
        writeln!(out)?;
        writeln!(
            out,
            "the same runs traced at level {} (each beside its untraced run; ratio = traced / untraced, \
             run time per task)",
            first.level
        )?;
        writeln!(
            out,
            "{:<9} {:<4} {:>10} {:>7} {:>10} {:>7} {:>8}",
            "shape", "mode", "thr ns", "×lvl0", "det ns", "×lvl0", "dropped"
        )?;
        for (l, t) in traced {
            writeln!(
                out,
                "{:<9} {:<4} {:>10.1} {:>7.2} {:>10.1} {:>7.2} {:>8}",
                l.shape.name(),
                l.mode.name(),
                t.threaded_ns.median,
                ratio(t.threaded_ns.median, l.threaded_ns.median),
                t.deterministic_ns.median,
                ratio(t.deterministic_ns.median, l.deterministic_ns.median),
                t.dropped
            )?;
        }
        Ok(())
    }

    /// The (shape, mode) pairs of the graph figures, in report order.
    fn shape_modes(&self) -> Vec<(Shape, TensorMode)> {
        let mut out = Vec::new();
        for g in &self.graphs {
            if !out.contains(&(g.shape, g.mode)) {
                out.push((g.shape, g.mode));
            }
        }
        out
    }

    fn write_lines(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out)?;
        writeln!(
            out,
            "cache lines a task touches, per structure: written/read (orchestrator + scheduler; static tally \
             from the ABI layouts, events checked against a counting run)"
        )?;
        write!(out, "{:<9} {:<4}", "shape", "mode")?;
        for name in STRUCTURES {
            write!(out, " {name:>13}")?;
        }
        writeln!(out, " {:>11} {:>8} {:>8}", "total", "cpu ns", "ns/line")?;
        for (shape, mode) in self.shape_modes() {
            let t = tally(shape, mode);
            write!(out, "{:<9} {:<4}", shape.name(), mode.name())?;
            for l in &t.lines {
                let cell = format!("{:.2}/{:.2}", l.orch_written + l.sched_written, l.orch_read + l.sched_read);
                write!(out, " {cell:>13}")?;
            }
            let cpu = self
                .headline()
                .into_iter()
                .find(|g| g.shape == shape && g.mode == mode && g.sync == SyncMode::Exclusive)
                .map(|g| g.cpu_ns_per_task);
            let (w, r): (f64, f64) = t
                .lines
                .iter()
                .fold((0.0, 0.0), |(w, r), l| (w + l.orch_written + l.sched_written, r + l.orch_read + l.sched_read));
            let total = format!("{w:.1}/{r:.1}");
            match cpu {
                Some(c) => writeln!(out, " {total:>11} {c:>8.1} {:>8.2}", c / t.total())?,
                None => writeln!(out, " {total:>11} {:>8} {:>8}", "-", "-")?,
            }
        }
        Ok(())
    }

    fn write_scaling(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut counts: Vec<u64> = Vec::new();
        for g in &self.graphs {
            if !counts.contains(&g.requested_tasks) {
                counts.push(g.requested_tasks);
            }
        }
        if counts.len() < 2 {
            return Ok(());
        }
        counts.sort_unstable();
        writeln!(out)?;
        writeln!(
            out,
            "per-task cost by graph size (tasks asked for; runs round up to whole scopes): ns/task [baseline ns]"
        )?;
        write!(out, "{:<9} {:<4} {:<9}", "shape", "mode", "sync")?;
        for c in &counts {
            write!(out, " {:>18}", thousands(*c))?;
        }
        writeln!(out)?;
        for h in self.headline() {
            write!(out, "{:<9} {:<4} {:<9}", h.shape.name(), h.mode.name(), h.sync.name())?;
            for c in &counts {
                let cell = self
                    .graphs
                    .iter()
                    .find(|g| g.shape == h.shape && g.mode == h.mode && g.sync == h.sync && g.requested_tasks == *c)
                    .map(|g| format!("{:.1} [{:.1}]", g.ns_per_task.median, g.baseline_ns.median))
                    .unwrap_or_else(|| "-".into());
                write!(out, " {cell:>18}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let line = |l: &Line| {
            json!({
                "name": l.name,
                "items": l.items,
                "ns_per_item": l.ns.median,
                "best_ns_per_item": l.ns.best,
                "baseline": l.baseline,
                "baseline_ns": l.baseline_ns.median,
                "ratio_to_baseline": ratio(l.ns.median, l.baseline_ns.median),
            })
        };
        let graphs: Vec<Value> = self
            .graphs
            .iter()
            .map(|g| {
                json!({
                    "shape": g.shape.name(),
                    "mode": g.mode.name(),
                    "sync": g.sync.name(),
                    "requested_tasks": g.requested_tasks,
                    "timed_tasks": g.run.timed_tasks,
                    "warmup_tasks": g.run.warmup_tasks,
                    "submitted": g.run.submitted,
                    "completed": g.run.completed,
                    "ns_per_task": g.ns_per_task.median,
                    "best_ns_per_task": g.ns_per_task.best,
                    "cpu_ns_per_task": g.cpu_ns_per_task,
                    "baseline": GRAPH_BASELINE,
                    "baseline_ns": g.baseline_ns.median,
                    "ratio_to_baseline": ratio(g.ns_per_task.median, g.baseline_ns.median),
                })
            })
            .collect();
        let traffic = |t: &Traffic| {
            json!({
                "orch_written": t.orch_written,
                "orch_read": t.orch_read,
                "sched_written": t.sched_written,
                "sched_read": t.sched_read,
            })
        };
        let lines: Vec<Value> = self
            .shape_modes()
            .into_iter()
            .map(|(shape, mode)| {
                let t = tally(shape, mode);
                let structures: serde_json::Map<String, Value> =
                    STRUCTURES.iter().zip(&t.lines).map(|(n, l)| (n.to_string(), traffic(l))).collect();
                json!({
                    "shape": shape.name(),
                    "mode": mode.name(),
                    "structures": structures,
                    "total": t.total(),
                })
            })
            .collect();
        json!({
            "lines_per_task": lines,
            "sizing": {
                "task_window_sizes": self.sizing.task_window_sizes,
                "heap_sizes": self.sizing.heap_sizes,
                "dep_pool_capacities": self.sizing.dep_pool_capacities,
            },
            "bench_ring": BENCH_RING,
            "warmup": self.warmup,
            "reps": self.reps,
            "graphs": graphs,
            "tensor_map": self.tensor_map.iter().map(line).collect::<Vec<_>>(),
            "ready_queue": self.ready_queue.iter().map(line).collect::<Vec<_>>(),
            "threaded_setup": self.threaded_setup.map(|t| json!({"threads": t.threads, "clusters": t.clusters})),
            "threaded": self.threaded.iter().map(|l| json!({
                "shape": l.shape.name(),
                "mode": l.mode.name(),
                "tasks": l.tasks,
                "threaded_ns_per_task": l.threaded_ns.median,
                "threaded_best_ns_per_task": l.threaded_ns.best,
                "threaded_tasks_per_second": 1e9 / l.threaded_ns.median,
                "baseline": "deterministic mode, instant virtual cores, same run path",
                "deterministic_ns_per_task": l.deterministic_ns.median,
                "ratio_to_deterministic": ratio(l.threaded_ns.median, l.deterministic_ns.median),
                "traced": l.traced.as_ref().map(|t| json!({
                    "level": t.level,
                    "threaded_ns_per_task": t.threaded_ns.median,
                    "threaded_ratio_to_level_0": ratio(t.threaded_ns.median, l.threaded_ns.median),
                    "deterministic_ns_per_task": t.deterministic_ns.median,
                    "deterministic_ratio_to_level_0": ratio(t.deterministic_ns.median, l.deterministic_ns.median),
                    "dropped": t.dropped,
                })),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::graph::GraphRun;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_048_576), "1,048,576");
    }

    fn line(shape: Shape, tasks: u64, ns: f64) -> GraphLine {
        let run = GraphRun {
            warmup_tasks: 0,
            timed_tasks: tasks,
            elapsed_ns: 0,
            cpu_ns: 0,
            submitted: tasks,
            completed: tasks,
            kernel_runs: 0,
            stamp_errors: 0,
            dep_nodes: 0,
            queue_pushes: 0,
        };
        let s = |v| Sampled { median: v, best: v };
        GraphLine {
            shape,
            mode: TensorMode::Ext,
            sync: SyncMode::Exclusive,
            requested_tasks: tasks,
            ns_per_task: s(ns),
            cpu_ns_per_task: ns,
            baseline_ns: s(10.0),
            run,
        }
    }

    #[test]
    fn the_headline_is_the_largest_run_and_the_tables_show_ratios() {
        let mut r = Report::new(&Plan::quick());
        r.graphs = vec![line(Shape::Chain, 10, 50.0), line(Shape::Chain, 100, 107.0), line(Shape::Diamond, 10, 1.0)];
        let h = r.headline();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].run.timed_tasks, h[1].shape), (100, Shape::Diamond));
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let chain = text.lines().find(|l| l.starts_with("chain")).unwrap();
        assert!(chain.contains("107.0") && chain.contains("10.7") && !chain.contains("214"), "{chain}");
        assert!(text.contains("50.0 [10.0]"), "scaling table:\n{text}");
        assert!(text.contains("cache lines a task touches"), "{text}");
        let tally_row = text.lines().rfind(|l| l.starts_with("chain")).unwrap();
        assert!(tally_row.contains("107.0"), "the tally sits beside the cpu time: {tally_row}");
        let mut shared = line(Shape::Chain, 100, 150.0);
        shared.sync = SyncMode::Shared;
        r.graphs.push(shared);
        assert_eq!(r.headline().len(), 3, "one headline per sync mode");
        let j = r.to_json();
        assert_eq!(j["graphs"][3]["sync"], "shared");
        assert_eq!(j["lines_per_task"].as_array().unwrap().len(), 2);
        assert!(j["lines_per_task"][0]["structures"]["payload"]["orch_written"].as_f64().unwrap() >= 3.0);
        assert!(j["graphs"][1].get("ratio_to_reference").is_none());
        assert_eq!(j["graphs"][1]["ratio_to_baseline"], 10.7);
    }
}
