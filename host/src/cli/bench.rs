//! `pto bench`: the runtime's benchmarks (see [`crate::bench`]) as text tables or JSON.

use std::io::Write;

use clap::Args;

use super::sizing_args::SizingArgs;
use super::CliError;
use crate::bench::graph::{Shape, SyncMode, TensorMode};
use crate::bench::{self, Plan};

/// Flags of `pto bench`.
#[derive(Args, Debug, Clone, Default)]
pub struct BenchArgs {
    /// A run of a second or two: 16,384-task warm-up, 10k and 100k tasks, 20k threaded tasks, one
    /// run per figure.
    #[arg(long)]
    pub quick: bool,
    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Graph shapes (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub shape: Vec<Shape>,
    /// Tensor modes (default: both).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub mode: Vec<TensorMode>,
    /// Synchronisation modes of the whole-cycle figures, each measured beside the others
    /// (default exclusive): `exclusive` = no locks or atomic read-modify-writes (the deterministic
    /// mode's own), `shared` = the atomic mode threaded runs use.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub sync: Vec<SyncMode>,
    /// Timed task counts of the graph figures (default 10000,100000,1000000).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<u64>,
    /// Warm-up tasks before the timer starts (default 65536).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Runs per figure; the median is reported (default 3).
    #[arg(long)]
    pub reps: Option<u32>,
    /// Tasks / items of the tensor-map and ready-queue figures (default 2000000).
    #[arg(long)]
    pub items: Option<u64>,
    /// AICPU threads of the threaded-throughput figures (default 2: one orchestrator, one
    /// scheduler).
    #[arg(long)]
    pub threads: Option<u32>,
    /// AICore clusters of the threaded-throughput figures (default 1 = 3 AICore threads).
    #[arg(long)]
    pub clusters: Option<u32>,
    /// Tasks of each threaded-throughput run (default 100000; 0 skips the threaded figures).
    #[arg(long)]
    pub threaded_tasks: Option<u64>,
    /// Only the graph figures (deterministic and threaded).
    #[arg(long, conflicts_with = "structures_only")]
    pub graphs_only: bool,
    /// Only the tensor-map and ready-queue figures.
    #[arg(long)]
    pub structures_only: bool,
    /// Runtime sizing of the graph figures (default: default windows and dep pools, 16 MiB heaps).
    #[command(flatten)]
    pub sizing: SizingArgs,
}

impl BenchArgs {
    /// The plan these flags describe.
    pub fn plan(&self) -> Result<Plan, CliError> {
        let mut plan = if self.quick { Plan::quick() } else { Plan::full() };
        let s = &self.sizing;
        if s.window.is_some() || s.heap.is_some() || s.dep_pool.is_some() {
            let mut sized = s.clone();
            // Absent flags keep the benchmark's own defaults, not the runtime's.
            let b = bench::bench_sizing();
            sized.heap = sized.heap.or_else(|| Some(b.heap_sizes.map(|h| h.to_string()).join(",")));
            plan.sizing = sized.to_key().map_err(CliError::bad_input)?;
        }
        if !self.shape.is_empty() {
            plan.shapes = self.shape.clone();
        }
        if !self.mode.is_empty() {
            plan.modes = self.mode.clone();
        }
        if !self.sync.is_empty() {
            plan.syncs = self.sync.clone();
        }
        if !self.tasks.is_empty() {
            if let Some(i) = self.tasks.iter().position(|t| *t == 0) {
                return Err(CliError::bad_input(format!(
                    "--tasks: value {} is 0; every count must be at least 1",
                    i + 1
                )));
            }
            plan.task_counts = self.tasks.clone();
        }
        if let Some(w) = self.warmup {
            plan.warmup = w;
        }
        if let Some(r) = self.reps {
            if r == 0 {
                return Err(CliError::bad_input("--reps: 0; at least one run per figure"));
            }
            plan.reps = r;
        }
        if let Some(n) = self.items {
            if n < 2 {
                return Err(CliError::bad_input(format!("--items: {n}; at least 2")));
            }
            plan.structure_items = n;
        }
        if let (Some(setup), true) = (plan.threaded.as_mut(), self.threads.is_some() || self.clusters.is_some()) {
            setup.threads = self.threads.unwrap_or(setup.threads);
            setup.clusters = self.clusters.unwrap_or(setup.clusters);
            let max_threads = pto_abi::consts::MAX_AICPU_THREADS as u32;
            if !(2..=max_threads).contains(&setup.threads) {
                return Err(CliError::bad_input(format!(
                    "--threads: {}; the threaded mode needs 2..={max_threads} (one orchestrator plus schedulers)",
                    setup.threads
                )));
            }
            let max_clusters = pto_abi::consts::MAX_CLUSTERS as u32;
            if !(1..=max_clusters).contains(&setup.clusters) {
                return Err(CliError::bad_input(format!(
                    "--clusters: {}; must be in 1..={max_clusters}",
                    setup.clusters
                )));
            }
        }
        if let Some(n) = self.threaded_tasks {
            plan.threaded_tasks = n;
        }
        if self.graphs_only {
            plan.structure_items = 0;
        }
        if self.structures_only {
            plan.shapes.clear();
        }
        if !plan.shapes.is_empty() {
            crate::bench::graph::check_sizing(&plan.sizing).map_err(CliError::bad_input)?;
        }
        Ok(plan)
    }
}

/// Runs `pto bench`, writing to `out`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let plan = args.plan()?;
    let report = bench::run(&plan).map_err(|e| CliError::failed(format!("benchmark failed: {e}")))?;
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).map_err(|e| CliError::failed(e.to_string()))?;
        writeln!(out, "{text}")?;
    } else {
        report.write_text(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_plan_and_bad_counts_name_the_flag() {
        let a = BenchArgs { quick: true, tasks: vec![5, 7], reps: Some(2), graphs_only: true, ..Default::default() };
        let p = a.plan().unwrap();
        assert_eq!((p.task_counts.clone(), p.reps, p.structure_items), (vec![5, 7], 2, 0));
        assert_eq!(p.warmup, Plan::quick().warmup);
        assert_eq!(p.syncs, [SyncMode::Exclusive], "exclusive only unless asked");
        let both = BenchArgs { sync: vec![SyncMode::Exclusive, SyncMode::Shared], ..Default::default() };
        assert_eq!(both.plan().unwrap().syncs, SyncMode::ALL);
        let e = BenchArgs { tasks: vec![5, 0], ..Default::default() }.plan().unwrap_err();
        assert!(e.message.contains("--tasks: value 2 is 0"), "{}", e.message);
        assert_eq!(e.exit_code, 2);
        assert!(BenchArgs { reps: Some(0), ..Default::default() }.plan().is_err());
        let mut sized = BenchArgs::default();
        sized.sizing.window = Some("1024".into());
        let p = sized.plan().unwrap();
        assert_eq!(p.sizing.task_window_sizes, [1024; 4]);
        assert_eq!(p.sizing.heap_sizes, bench::bench_sizing().heap_sizes, "heap keeps the bench default");
        sized.sizing.window = Some("1000".into());
        assert!(sized.plan().unwrap_err().message.contains("power of two"));
        let t = BenchArgs { threads: Some(4), clusters: Some(2), threaded_tasks: Some(7), ..Default::default() };
        let p = t.plan().unwrap();
        let setup = p.threaded.unwrap();
        assert_eq!((setup.threads, setup.clusters, p.threaded_tasks), (4, 2, 7));
        let e = BenchArgs { threads: Some(1), ..Default::default() }.plan().unwrap_err();
        assert!(e.message.contains("--threads: 1"), "{}", e.message);
        assert!(BenchArgs { clusters: Some(0), ..Default::default() }.plan().is_err());
    }
}
