//! `pto run --example vector --chips N --runs R`: spreads R runs over pools of 1, 2, 4 … N chip
//! workers (one process per chip), checks every result, and prints runs per second per pool size.

use std::io::Write;
use std::time::{Duration, Instant};

use pto_abi::sizing::ArenaSizingKey;
use pto_device::runtime::Budgets;

use super::{RunArgs, EXAMPLE_CID};
use crate::cli::CliError;
use crate::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG};
use crate::pool::{ChipPool, PoolConfig, PoolEvent, PoolRun};
use crate::runner::CallableRunConfig;

/// Pool sizes measured for `--chips n`: 1, 2, 4 … below n, then n.
pub fn pool_sizes(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::iter::successors(Some(1u32), |&k| k.checked_mul(2)).take_while(|&k| k < n).collect();
    v.push(n);
    v
}

/// Checks one event: a finished run whose f is 47.0 everywhere; returns its chip.
fn check(event: PoolEvent) -> Result<usize, CliError> {
    match event {
        PoolEvent::Finished { chip, run_id, result } => {
            let report = result.map_err(|e| CliError::failed(format!("run {run_id} on chip {chip}: {e}")))?;
            let f = report.output_f32(VECTOR_RESULT_ARG);
            if f.len() != VECTOR_LEN || f.iter().any(|&x| x != VECTOR_EXPECTED) {
                return Err(CliError::failed(format!("run {run_id} on chip {chip}: the result is wrong")));
            }
            Ok(chip)
        }
        PoolEvent::WorkerLost { chip, run_id, status } => {
            let lost = run_id.map(|r| format!(", run {r} lost")).unwrap_or_default();
            Err(CliError::failed(format!("chip {chip}: the worker died ({status}){lost}")))
        }
    }
}

/// Runs the multi-chip form of `pto run`.
pub fn run(args: &RunArgs, chips: u32, sizing: ArenaSizingKey, out: &mut dyn Write) -> Result<(), CliError> {
    crate::cli::device::sim_only(
        args.device.backend,
        "--chips",
        "each chip worker opens its own simulated device (one process per chip)",
    )?;
    if args.example.is_none() {
        return Err(CliError::bad_input("--chips runs the vector example: give --example vector".to_string()));
    }
    let mode = super::run_mode(args);
    let budgets = Budgets { orch_ns: args.orch_timeout, sched_ns: args.sched_timeout };
    let blob = vector_example_callable().map_err(|e| CliError::failed(e.to_string()))?;
    let job = PoolRun { cid: EXAMPLE_CID, args: vector_args(), config: CallableRunConfig { sizing, mode, budgets } };
    writeln!(
        out,
        "example vector over chip workers: {} runs per pool size after one warm-up run per chip, \
         f = (a+b+1)·(a+b+2) + (a+b) over {VECTOR_LEN} f32",
        args.runs
    )?;
    for n in pool_sizes(chips) {
        let mut pool = ChipPool::start(&PoolConfig::sim(n as usize)).map_err(|e| CliError::failed(e.to_string()))?;
        pool.prepare(EXAMPLE_CID, &blob).map_err(|e| CliError::failed(e.to_string()))?;
        // One checked warm-up run per chip first: its cold bind builds the arena image.
        for chip in 0..n as usize {
            pool.submit_to(chip, &job).map_err(|e| CliError::failed(e.to_string()))?;
        }
        while let Some(event) = pool.next_event(Duration::from_secs(30)) {
            check(event)?;
        }
        let mut per_chip = vec![0u32; n as usize];
        let start = Instant::now();
        let mut submitted = 0;
        let mut checked = 0;
        while checked < args.runs {
            // Keep every chip busy: post while a chip is free, then take what finished.
            while submitted < args.runs && pool.in_flight() < n as usize {
                pool.submit(&job).map_err(|e| CliError::failed(e.to_string()))?;
                submitted += 1;
            }
            match pool.next_event(Duration::from_secs(30)) {
                Some(event) => {
                    per_chip[check(event)?] += 1;
                    checked += 1;
                }
                None => return Err(CliError::failed("no run finished within 30 s")),
            }
        }
        let elapsed = start.elapsed();
        pool.shutdown(Duration::from_secs(5));
        let spread: Vec<String> = per_chip.iter().map(u32::to_string).collect();
        writeln!(
            out,
            "{n} chip(s): {checked} runs checked OK (all {VECTOR_LEN} elements = {VECTOR_EXPECTED}) in {:.3} s = {:.1} \
             runs/s; runs per chip {}",
            elapsed.as_secs_f64(),
            f64::from(checked) / elapsed.as_secs_f64(),
            spread.join("/")
        )?;
    }
    Ok(())
}
