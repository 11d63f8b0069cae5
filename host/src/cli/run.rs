//! `pto run --example vector`: registers an example's ChipCallable on a runner, runs it by callable
//! id on the simulated device, checks its result, and reports the task count, the bind time (cold
//! on the first run, cached on the next), the run time and the time per task.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pto_device::runtime::Budgets;

use super::sizing_args::SizingArgs;
use super::CliError;
use crate::backend::sim::SimBackend;
use crate::backend::DeviceBackend;
use crate::examples::{
    define_vector_symbols, vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG,
};
use crate::runner::{CallableRunConfig, CallableRunError, DeviceRunner, RunError, RunMode};

/// The callable id `pto run` registers its example under.
pub const EXAMPLE_CID: u32 = 0;

/// The examples `pto run` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Example {
    /// f = (a+b+1)·(a+b+2) + (a+b) over 16,384 f32, a = 2, b = 3: five tasks in two nested scopes.
    Vector,
}

/// Flags of `pto run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The example to run.
    #[arg(long, value_enum)]
    pub example: Example,
    /// AICPU threads of the threaded mode (the last orchestrates, the others schedule): 2..=4.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=pto_abi::consts::MAX_AICPU_THREADS as i64))]
    pub threads: u32,
    /// AICore clusters of the simulated device (3 cores each): 1..=24.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=pto_abi::consts::MAX_CLUSTERS as i64))]
    pub clusters: u32,
    /// Run the deterministic single-thread mode (virtual cores driven by the scheduler itself).
    #[arg(long)]
    pub deterministic: bool,
    /// Runs on the same runner: the first binds cold, the later ones reuse the resident image.
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Orchestrator no-progress budget, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub orch_timeout_ms: u64,
    /// Scheduler no-progress budget, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub sched_timeout_ms: u64,
    /// Arena sizing.
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Trace output.
    #[command(flatten)]
    pub trace: super::trace::TraceOutArgs,
}

fn human(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Runs `pto run`, writing to `out`.
pub fn run(args: &RunArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let sizing = args.sizing.to_key().map_err(CliError::bad_input)?;
    if args.runs == 0 {
        return Err(CliError::bad_input("--runs must be at least 1"));
    }
    let mode = if args.deterministic {
        RunMode::Deterministic { noop_cores: false }
    } else {
        RunMode::Threaded { threads: args.threads, clusters: args.clusters }
    };
    let budgets = Budgets { orch_ns: args.orch_timeout_ms * 1_000_000, sched_ns: args.sched_timeout_ms * 1_000_000 };
    let sim = Arc::new(SimBackend::new().map_err(|e| CliError::failed(format!("simulated device: {e}")))?);
    let Example::Vector = args.example;
    // The simulated device resolves the blob's names in its name tables.
    define_vector_symbols(&mut sim.symbols()).map_err(|e| CliError::failed(e.to_string()))?;
    let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
    runner.set_trace(args.trace.config());
    // The example ships as one ChipCallable blob, uploaded once and run by callable id.
    let blob = vector_example_callable().map_err(|e| CliError::failed(e.to_string()))?;
    runner.register_callable(EXAMPLE_CID, &blob).map_err(|e| CliError::failed(e.to_string()))?;
    let run_args = vector_args();
    let config = CallableRunConfig { sizing, mode, budgets };
    let how = match mode {
        RunMode::Threaded { threads, clusters } => {
            format!("threaded: {threads} AICPU threads, {clusters} cluster(s) = {} AICore cores", clusters * 3)
        }
        RunMode::Deterministic { .. } => "deterministic single-thread mode".to_string(),
    };
    writeln!(
        out,
        "example vector: f = (a+b+1)·(a+b+2) + (a+b) over {VECTOR_LEN} f32, a = 2, b = 3 ({how}); \
         callable id {EXAMPLE_CID}, {} bytes, content hash {:#018x}",
        blob.total_size(),
        blob.content_hash()
    )?;
    for i in 1..=args.runs {
        let report = runner.run_callable(EXAMPLE_CID, &run_args, &config).map_err(|e| match e {
            CallableRunError::Run(RunError::Request(m)) => CliError::bad_input(m),
            e => CliError::failed(format!("run {i}: {e}")),
        })?;
        let f = report.output_f32(VECTOR_RESULT_ARG);
        let wrong = f.iter().filter(|x| **x != VECTOR_EXPECTED).count();
        let check = if wrong == 0 && f.len() == VECTOR_LEN {
            format!("check OK: all {VECTOR_LEN} elements = {VECTOR_EXPECTED}")
        } else {
            format!("check FAILED: {wrong} of {} elements differ from {VECTOR_EXPECTED}", f.len())
        };
        writeln!(
            out,
            "run {i}: {check}; {} tasks; bind {} ({}); run {}; {} per task",
            report.tasks_completed,
            human(report.bind_time),
            if report.bind_cache_hit { "cached" } else { "cold" },
            human(report.run_time),
            human(report.per_task()),
        )?;
        if wrong != 0 || f.len() != VECTOR_LEN {
            return Err(CliError::failed(format!("run {i}: the result is wrong")));
        }
        if i == args.runs {
            for note in args.trace.write(report.trace.as_ref(), &crate::examples::vector_kernel_name)? {
                writeln!(out, "{note}")?;
            }
        }
    }
    Ok(())
}
