//! `pto bench`: the runtime's scheduling benchmarks (deterministic mode, no-op kernels), the
//! tensor map and the ready queue alone, each beside the published C++ runtime's figure measured
//! on this kind of machine.

use std::io::Write;

use clap::Args;

use super::CliError;
use crate::run::bench::{bench_graph, bench_ready_queue, bench_tensor_map, Shape, TensorMode};

/// Arguments of `pto bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Timed task counts of the graph benchmarks (after a 65,536-task warm-up).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000, 1_000_000])]
    pub tasks: Vec<u64>,
    /// Only these shapes (default: all).
    #[arg(long, value_delimiter = ',')]
    pub shape: Vec<Shape>,
    /// Skip the tensor-map and ready-queue benchmarks.
    #[arg(long)]
    pub graphs_only: bool,
}

/// C++ reference figures per task (ns), single-threaded: chain, fan-out-32, diamond.
fn cpp_reference(shape: Shape) -> f64 {
    match shape {
        Shape::Chain => 214.0,
        Shape::Fanout32 => 203.0,
        Shape::Diamond => 331.0,
    }
}

/// Runs `pto bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let shapes =
        if args.shape.is_empty() { vec![Shape::Chain, Shape::Fanout32, Shape::Diamond] } else { args.shape.clone() };
    writeln!(out, "deterministic mode, no-op virtual cores, scopes of ~256 tasks, 65,536-task warm-up")?;
    writeln!(out, "{:<12} {:<5} {:>10} {:>12} {:>10} {:>9}", "shape", "mode", "tasks", "ns/task", "C++ ns", "ratio")?;
    for shape in shapes {
        for mode in [TensorMode::Ext, TensorMode::Rt] {
            for &tasks in &args.tasks {
                let f = bench_graph(shape, mode, 65_536, tasks).map_err(CliError::failed)?;
                let cpp = cpp_reference(shape);
                writeln!(
                    out,
                    "{:<12} {:<5} {:>10} {:>12.1} {:>10.0} {:>9.2}",
                    format!("{shape:?}").to_lowercase(),
                    format!("{mode:?}").to_lowercase(),
                    f.tasks,
                    f.ns_per_task,
                    cpp,
                    f.ns_per_task / cpp
                )?;
            }
        }
    }
    if args.graphs_only {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "tensor map alone: 2 lookups + 1 insert per task, cleanup every 64 tasks, window 65,536")?;
    for (in_flight, cpp) in [(1024u64, 44.0), (16_384, 65.0)] {
        let ns = bench_tensor_map(in_flight, 1_000_000);
        writeln!(out, "  {in_flight:>6} in flight: {ns:>7.1} ns/task   (C++ {cpp} ns, ratio {:.2})", ns / cpp)?;
    }
    writeln!(out)?;
    writeln!(out, "ready queue alone (ns per item)")?;
    let [pair, batch, spsc] = bench_ready_queue(1_000_000);
    for (name, ns, cpp) in [
        ("push+pop pair, one thread", pair, 10.2),
        ("batches of 32, one thread", batch, 2.0),
        ("producer/consumer threads", spsc, 45.0),
    ] {
        writeln!(out, "  {name:<27} {ns:>7.1} ns   (C++ {cpp} ns, ratio {:.2})", ns / cpp)?;
    }
    Ok(())
}
