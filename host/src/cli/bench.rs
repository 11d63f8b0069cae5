//! `pto bench`: the runtime's benchmarks (see [`crate::bench`]) as text tables or JSON.

use std::io::Write;

use clap::Args;

use super::device::BackendKind;
use super::input::count;
use super::sizing_args::SizingArgs;
use super::CliError;

/// `--heap` of `pto bench`: its default is the benchmark's, not the runtime's.
pub const BENCH_HEAP_HELP: &str =
    "Heap bytes per ring: one value or four; suffixes K, M, G (powers of 1024) allowed (default 16M: the benchmark's sizing)";
use crate::bench::graph::{Shape, SyncMode, TensorMode};
use crate::bench::{self, Plan};

/// Flags of `pto bench`.
#[derive(Args, Debug, Clone, Default)]
#[command(mut_arg("heap", |a| a.help(BENCH_HEAP_HELP)))]
pub struct BenchArgs {
    /// A run of a second or two: 16,384-task warm-up, 10k and 100k tasks, 20k threaded tasks, one
    /// run per figure.
    #[arg(long)]
    pub quick: bool,
    /// Print machine-readable JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Graph shapes (default: all).
    #[arg(long, value_delimiter = ',', value_enum, conflicts_with = "structures_only")]
    pub shape: Vec<Shape>,
    /// Tensor modes (default: both).
    #[arg(long, value_delimiter = ',', value_enum, conflicts_with = "structures_only")]
    pub mode: Vec<TensorMode>,
    /// Synchronisation modes of the whole-cycle figures, each measured beside the others
    /// (default exclusive): `exclusive` = no locks or atomic read-modify-writes (the deterministic
    /// mode's own), `shared` = the atomic mode threaded runs use.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub sync: Vec<SyncMode>,
    /// Timed task counts of the graph figures (default 10000,100000,1000000).
    #[arg(long, value_delimiter = ',', value_parser = count::<u64>(1, u64::MAX), conflicts_with = "structures_only")]
    pub tasks: Vec<u64>,
    /// Warm-up tasks before the timer starts (default 65536).
    #[arg(long, value_parser = count::<u64>(0, u64::MAX), conflicts_with = "structures_only")]
    pub warmup: Option<u64>,
    /// Runs per figure; the median is reported (default 3).
    #[arg(long, value_parser = count::<u32>(1, 1_000))]
    pub reps: Option<u32>,
    /// Tasks / items of the tensor-map and ready-queue figures (default 2000000).
    /// With `--graphs-only` it is ignored (with a warning on stderr).
    #[arg(long, value_parser = count::<u64>(2, u64::MAX))]
    pub items: Option<u64>,
    /// AICPU threads of the threaded-throughput figures (default 2: one orchestrator, one
    /// scheduler).
    #[arg(long, value_parser = count::<u32>(2, pto_abi::consts::MAX_AICPU_THREADS as u64),
          conflicts_with = "structures_only")]
    pub threads: Option<u32>,
    /// AICore clusters of the threaded-throughput figures (default 1 = 3 AICore threads).
    #[arg(long, value_parser = count::<u32>(1, pto_abi::consts::MAX_CLUSTERS as u64),
          conflicts_with = "structures_only")]
    pub clusters: Option<u32>,
    /// Tasks of each threaded-throughput run (default 100000; 0 skips the threaded figures).
    #[arg(long, value_parser = count::<u64>(0, u64::MAX), conflicts_with = "structures_only")]
    pub threaded_tasks: Option<u64>,
    /// Also measure each threaded-throughput figure (both modes) with the run traced at this
    /// level, beside the untraced one in the same run, and report the ratio (default 0: none).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=4), conflicts_with = "structures_only")]
    pub trace_level: Option<u32>,
    /// Only the graph figures (deterministic and threaded).
    #[arg(long, conflicts_with = "structures_only")]
    pub graphs_only: bool,
    /// Only the tensor-map and ready-queue figures.
    #[arg(long)]
    pub structures_only: bool,
    /// Runtime sizing of the graph figures (default: default windows and dep pools, 16 MiB heaps).
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// The device (parsed as by `pto run`): the benchmarks run in host memory and on the simulated
    /// device, so only `sim` is served.
    #[arg(long, value_enum, default_value_t = BackendKind::Sim)]
    pub backend: BackendKind,
}

impl BenchArgs {
    /// The plan these flags describe.
    pub fn plan(&self) -> Result<Plan, CliError> {
        super::device::sim_only(
            self.backend,
            "pto bench",
            "its figures run host-function kernels in host memory and on the simulated device; time runs on \
             another device with `pto run --backend NAME --runs N`",
        )?;
        let mut plan = if self.quick { Plan::quick() } else { Plan::full() };
        let s = &self.sizing;
        if s.any() {
            // Absent flags keep the benchmark's own defaults, not the runtime's.
            plan.sizing = s.to_key_over(bench::bench_sizing()).map_err(CliError::bad_input)?;
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
        if let Some(l) = self.trace_level {
            plan.trace_level = l;
        }
        if self.graphs_only {
            if self.items.is_some() {
                eprintln!("pto bench: warning: --items is ignored with --graphs-only");
            }
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

/// Wall time per task above this many times the CPU time draws the busy-machine warning.
pub const BUSY_FACTOR: f64 = 2.0;

/// Runs `pto bench`, writing to `out`: in text mode each figure's line as soon as it is measured,
/// then the tables; a progress line on stderr when stderr is a terminal; a warning on stderr
/// when wall time is far above CPU time.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    use std::io::IsTerminal;
    let plan = args.plan()?;
    let progress = std::io::stderr().is_terminal();
    let mut write_err: Option<std::io::Error> = None;
    let mut observe = |e: bench::Event| match e {
        bench::Event::Start { index, total, what } if progress => {
            eprint!("\r\x1b[2K[{index}/{total}] measuring {what} …");
        }
        bench::Event::Start { .. } => {}
        bench::Event::Done { index, total, lines } => {
            if progress {
                eprint!("\r\x1b[2K");
            }
            if !args.json && write_err.is_none() {
                for l in lines {
                    if let Err(e) = writeln!(out, "[{index}/{total}] {l}").and_then(|()| out.flush()) {
                        write_err = Some(e);
                        break;
                    }
                }
            }
        }
    };
    let report =
        bench::run_observed(&plan, &mut observe).map_err(|e| CliError::failed(format!("benchmark failed: {e}")));
    if progress {
        eprint!("\r\x1b[2K");
    }
    let report = report?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    let busy = bench::busy_machine_lines(&report, BUSY_FACTOR);
    if let Some(worst) = busy.iter().map(|g| g.ns_per_task.median / g.cpu_ns_per_task).reduce(f64::max) {
        eprintln!(
            "pto bench: warning: wall time is above {BUSY_FACTOR}× the CPU time in {} figure(s) (up to {worst:.1}×): \
             the machine is busy and those figures are inflated; compare the cpu and best columns and the ratios \
             to the baselines",
            busy.len()
        );
    }
    if args.json {
        let mut doc = report.to_json();
        doc["busy_machine_figures"] = serde_json::json!(busy.len());
        super::json::write(out, "bench", doc)?;
    } else {
        writeln!(out)?;
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

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cmd = super::super::allow_negative_numbers(<T as clap::CommandFactory>::command());
        let m = cmd.try_get_matches_from(std::iter::once("bench").chain(args.iter().copied()))?;
        <T as clap::FromArgMatches>::from_arg_matches(&m).map(|t| t.bench)
    }

    #[test]
    fn help_states_the_benchmark_heap_default_not_the_runtime_one() {
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let help = <T as clap::CommandFactory>::command().render_long_help().to_string();
        assert!(help.contains("default 16M"), "{help}");
        assert!(!help.contains("default 256M"), "{help}");
        assert_eq!(bench::bench_sizing().heap_sizes, [16 << 20; 4], "the help text states this default");
    }

    #[test]
    fn negative_counts_and_flags_the_mode_ignores_are_refused() {
        assert!(parse(&["--reps", "-1"]).unwrap_err().to_string().contains("must not be negative"));
        assert!(parse(&["--tasks", "10,-3"]).unwrap_err().to_string().contains("must not be negative"));
        assert!(parse(&["--structures-only", "--threads", "2"])
            .unwrap_err()
            .to_string()
            .contains("cannot be used with"));
        assert_eq!(parse(&["--graphs-only", "--items", "9"]).unwrap().plan().unwrap().structure_items, 0);
        assert_eq!(parse(&["--tasks", "5,7"]).unwrap().tasks, [5, 7]);
    }

    #[test]
    fn backend_is_parsed_as_by_run_and_only_sim_is_served() {
        assert_eq!(parse(&[]).unwrap().backend, BackendKind::Sim);
        assert!(parse(&["--backend", "sim"]).unwrap().plan().is_ok());
        let e = parse(&["--backend", "gpu"]).unwrap_err().to_string();
        assert!(
            e.contains("invalid value 'gpu'") && e.contains("sim") && e.contains("emu") && e.contains("onboard"),
            "{e}"
        );
        for name in ["emu", "onboard"] {
            let e = parse(&["--backend", name]).unwrap().plan().unwrap_err();
            assert_eq!(e.exit_code, 2);
            assert!(
                e.message.contains(&format!("pto bench runs on the simulated device only, not --backend {name}")),
                "{e}"
            );
        }
    }
}
