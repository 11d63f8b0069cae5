//! Per-task wall time of whole runs through `DeviceRunner::run` on the simulated device, for
//! graphs of no-op kernels: chain, fan-out-32 and diamond, runtime-allocated 1 KiB outputs, scopes
//! of 256 tasks. A measuring tool (not a test): per shape and mode it prints the median and best
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
//! is `det 3:1 3:2 2:1 4:2`. `SHAPES=chain,diamond` limits the shapes; `WINDOW=n` sets the task
//! window of every ring (default 4096).

use std::sync::Arc;
use std::time::Duration;

use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec, Tensor};
use pto_device::runtime::Budgets;
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, RunArg, RunMode, RunRequest};

fn nop(_: &KernelInvocation<'_>) {}

const NOP: i32 = 0;
const KERNELS: [SimKernelFn; 1] = [nop];
const SCOPE: u64 = 256;
const OUT: OutputSpec = OutputSpec { bytes: 1024, dtype: DType::U8 };

/// Submits one task reading `inputs` and creating one 1 KiB output.
fn task(o: &mut Orchestrator<'_, '_>, inputs: &[Tensor]) -> Result<Tensor, OrchError> {
    let mut args = [Arg::Output(OUT); 3];
    for (a, t) in args.iter_mut().zip(inputs) {
        *a = Arg::Input(*t);
    }
    args[inputs.len()] = Arg::Output(OUT);
    Ok(o.submit(&TaskSpec::aiv(NOP, &args[..=inputs.len()]))?.output(0))
}

/// `[tasks]`: task i reads task i-1's output.
fn chain(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let n = args.scalar(0)?;
    let mut prev: Option<Tensor> = None;
    let mut done = 0;
    while done < n {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..SCOPE.min(n - done) {
                let ins: &[Tensor] = match &prev {
                    Some(t) => core::slice::from_ref(t),
                    None => &[],
                };
                prev = Some(task(o, ins)?);
            }
            Ok(())
        })?;
        done += SCOPE;
    }
    Ok(())
}

/// `[tasks]`: groups of one root (reading the previous root) and 32 consumers of it.
fn fan_out(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let groups = args.scalar(0)? / 33;
    let mut root: Option<Tensor> = None;
    let per_scope = (SCOPE / 33).max(1);
    let mut g = 0;
    while g < groups {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..per_scope.min(groups - g) {
                let ins: &[Tensor] = match &root {
                    Some(t) => core::slice::from_ref(t),
                    None => &[],
                };
                let r = task(o, ins)?;
                for _ in 0..32 {
                    task(o, &[r])?;
                }
                root = Some(r);
            }
            Ok(())
        })?;
        g += per_scope;
    }
    Ok(())
}

/// `[tasks]`: A → {B, C} → D; A reads the previous D.
fn diamond(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let groups = args.scalar(0)? / 4;
    let mut d: Option<Tensor> = None;
    let per_scope = SCOPE / 4;
    let mut g = 0;
    while g < groups {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..per_scope.min(groups - g) {
                let ins: &[Tensor] = match &d {
                    Some(t) => core::slice::from_ref(t),
                    None => &[],
                };
                let a = task(o, ins)?;
                let b = task(o, &[a])?;
                let c = task(o, &[a])?;
                d = Some(task(o, &[b, c])?);
            }
            Ok(())
        })?;
        g += per_scope;
    }
    Ok(())
}

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
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    let window: u64 = std::env::var("WINDOW").ok().map(|w| w.parse().expect("WINDOW")).unwrap_or(4096);
    let sizing = ArenaSizingKey::uniform(window, (window * 4096).max(16 << 20), (window * 4) as u32);
    let shapes: [(&str, pto_device::orch::OrchestrationFn); 3] =
        [("chain", chain), ("fan-out-32", fan_out), ("diamond", diamond)];
    let only = std::env::var("SHAPES").unwrap_or_default();
    println!("{tasks} tasks per run, {runs} runs; ns per task: wall median / wall best / CPU (all threads)");
    for mode in modes {
        for (name, f) in shapes {
            if !only.is_empty() && !only.split(',').any(|s| s == name) {
                continue;
            }
            let args = [RunArg::Scalar(tasks)];
            let req = RunRequest {
                orchestration: f,
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
