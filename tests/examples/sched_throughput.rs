//! Per-task wall time of whole runs through `DeviceRunner::run` on the simulated device, for
//! graphs of no-op kernels: the benchmark graph programs of `pto bench`
//! (`pto_host::bench::graph`: chain, fan-out-32 and diamond, runtime-allocated 1 KiB outputs,
//! scopes of up to 256 tasks). A measuring tool (not a test): per shape and mode it prints the median and best
//! wall time per task of several runs, and the CPU time per task that all threads of the process
//! used over those runs (robust to other load on the machine; a thread that waits by spinning or
//! yielding costs CPU time, one that sleeps does not).
//!
//! ```text
//! cargo run --release -p pto-tests --example sched_throughput -- [TASKS] [RUNS] [MODE...]
//! ```
//!
//! `MODE` is `det` (deterministic mode, kernels called), `noop` (deterministic mode, virtual cores
//! complete at once) or `T:C` (threaded mode with `T` AICPU threads and `C` clusters); the default
//! is `det 3:1 3:2 2:1 4:2`. `SHAPES=chain,diamond` limits the shapes (`chain`, `fanout32`, `diamond`); `WINDOW=n` sets the task
//! window of every ring (default 4096).

use std::sync::Arc;
use std::time::Duration;

use pto_abi::sizing::ArenaSizingKey;
use pto_device::kernel::KernelInvocation;
use pto_device::runtime::Budgets;
use pto_host::bench::graph::{graph_program, graph_run_args, Shape, TensorMode};
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, KernelFn, RunMode, RunRequest};

fn nop(_: &KernelInvocation<'_>) {}

const KERNELS: [KernelFn; 1] = [nop];

fn parse_mode(s: &str) -> RunMode {
    match s {
        "det" => RunMode::Deterministic { noop_cores: false },
        "noop" => RunMode::Deterministic { noop_cores: true },
        _ => {
            let (t, c) = s.split_once(':').expect("mode: det, noop or T:C");
            RunMode::Threaded { threads: t.parse().expect("threads"), clusters: c.parse().expect("clusters") }
        }
    }
}

/// CPU time (user + system) the whole process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let tasks: u64 = argv.first().map(|s| s.parse().expect("TASKS")).unwrap_or(20_000);
    let runs: usize = argv.get(1).map(|s| s.parse().expect("RUNS")).unwrap_or(5);
    let modes: Vec<RunMode> = if argv.len() > 2 {
        argv[2..].iter().map(|s| parse_mode(s)).collect()
    } else {
        ["det", "3:1", "3:2", "2:1", "4:2"].iter().map(|s| parse_mode(s)).collect()
    };
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
    let window: u64 = std::env::var("WINDOW").ok().map(|w| w.parse().expect("WINDOW")).unwrap_or(4096);
    let sizing = ArenaSizingKey::uniform(window, (window * 4096).max(16 << 20), (window * 4) as u32);
    let only = std::env::var("SHAPES").unwrap_or_default();
    println!("{tasks} tasks per run, {runs} runs; ns per task: wall median / wall best / CPU (all threads)");
    for mode in modes {
        for shape in Shape::ALL {
            let name = shape.name();
            if !only.is_empty() && !only.split(',').any(|s| s == name) {
                continue;
            }
            let args = graph_run_args(shape, TensorMode::Rt, 0, tasks);
            let req = RunRequest {
                orchestration: graph_program,
                kernels: &KERNELS,
                args: &args,
                sizing,
                mode,
                budgets: Budgets::DEFAULT,
            };
            let cpu_before = cpu_time();
            let mut times: Vec<(Duration, u64)> = (0..runs)
                .map(|_| {
                    let r = runner.run(&req).unwrap_or_else(|e| panic!("{name} {mode:?}: {e}"));
                    (r.run_time, r.tasks_completed)
                })
                .collect();
            let cpu = (cpu_time() - cpu_before).as_nanos() as f64 / (tasks * runs as u64) as f64;
            times.sort();
            let per = |(d, n): (Duration, u64)| d.as_nanos() as f64 / n.max(1) as f64;
            println!(
                "{:<38} {:<11} {:>8.0} / {:>8.0} / {:>8.0}",
                format!("{mode:?}"),
                name,
                per(times[times.len() / 2]),
                per(times[0]),
                cpu
            );
        }
    }
}
