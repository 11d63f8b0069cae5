//! Run traces: the vector example's blocks and dependency edges, full buffers, tracing off.

use std::collections::BTreeSet;
use std::sync::Arc;

use pto_abi::trace::{EDGE_REASON_CREATOR, TRACE_KIND_BLOCK};
use pto_host::examples::{vector_args, vector_orchestration, VECTOR_KERNELS};
use pto_host::sim::SimBackend;
use pto_host::{ArenaSizingKey, Budgets, DeviceBackend, DeviceRunner, RunMode, RunReport, RunTrace, TraceConfig};

const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };
const DETERMINISTIC: RunMode = RunMode::Deterministic { noop_cores: false };

fn run(mode: RunMode, trace: TraceConfig) -> RunReport {
    let sim = Arc::new(SimBackend::with_capacity(256 << 20).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
    runner.set_trace(trace);
    let args = vector_args();
    let req = pto_host::RunRequest {
        orchestration: vector_orchestration,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
        mode,
        budgets: Budgets::DEFAULT,
    };
    runner.run(&req).unwrap_or_else(|e| panic!("{e}"))
}

/// Edges as (producer, consumer) submit indices.
fn edges(t: &RunTrace) -> BTreeSet<(usize, usize)> {
    let index = |id: u64| t.submits.iter().position(|s| s.task_id == id).expect("edge of a submitted task");
    t.edges.iter().map(|e| (index(e.producer), index(e.consumer))).collect()
}

fn check_vector_trace(t: &RunTrace) {
    assert_eq!(t.total_dropped(), 0);
    assert_eq!(t.submits.len(), 5);
    let tasks: BTreeSet<u64> = t.blocks.iter().map(|b| b.task_id).collect();
    assert_eq!(tasks.len(), 5, "{:?}", t.blocks);
    assert_eq!(t.blocks.len(), 5);
    for b in &t.blocks {
        assert!(b.dispatch_ns <= b.start_ns && b.start_ns <= b.end_ns && b.end_ns <= b.finish_ns, "{b:?}");
        assert!(b.dispatch_ns >= t.epoch_ns, "{b:?} before the epoch {}", t.epoch_ns);
    }
    // Every edge a submit reports was wired: its count agrees with the submit record, and every
    // edge is one of the example's possible six, in submit order (c=0 d=1 e=2 g=3 f=4).
    let all: BTreeSet<_> = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (0, 4)].into();
    let found = edges(t);
    assert!(found.is_subset(&all), "{found:?}");
    for must in [(0, 1), (0, 2), (1, 3), (2, 3)] {
        assert!(found.contains(&must), "{must:?} missing from {found:?}");
    }
    for (i, s) in t.submits.iter().enumerate() {
        assert_eq!(s.producers as usize, found.iter().filter(|e| e.1 == i).count(), "submit {i}");
        assert!(s.start_ns <= s.end_ns);
    }
    assert!(t.edges.iter().all(|e| e.reason == EDGE_REASON_CREATOR || e.reason == pto_abi::trace::EDGE_REASON_OVERLAP));
}

#[test]
fn vector_trace_deterministic_has_five_ordered_blocks_and_its_edges() {
    let r = run(DETERMINISTIC, TraceConfig::level(4).unwrap());
    check_vector_trace(r.trace.as_deref().unwrap());
}

#[test]
fn vector_trace_threaded_has_five_ordered_blocks_and_its_edges() {
    let r = run(THREADED, TraceConfig::level(4).unwrap());
    let t = r.trace.as_deref().unwrap();
    check_vector_trace(t);
    assert!(t.blocks.iter().all(|b| b.core != pto_abi::trace::VIRTUAL_CORE && b.thread < 2));
}

#[test]
fn a_tiny_buffer_drops_records_and_counts_them() {
    for mode in [DETERMINISTIC, THREADED] {
        let r = run(mode, TraceConfig::level(4).unwrap().with_capacity(2));
        let t = r.trace.unwrap();
        assert_eq!(t.blocks.len(), 2);
        assert_eq!(t.dropped[TRACE_KIND_BLOCK as usize], 3);
        assert_eq!(t.submits.len(), 2);
        assert_eq!(t.dropped[pto_abi::trace::TRACE_KIND_SUBMIT as usize], 3);
        assert_eq!(r.tasks_completed, 5, "a full trace buffer does not stop the run");
    }
}

#[test]
fn level_one_records_blocks_only() {
    let r = run(DETERMINISTIC, TraceConfig::level(1).unwrap());
    let t = r.trace.unwrap();
    assert_eq!(t.blocks.len(), 5);
    assert!(t.submits.is_empty() && t.edges.is_empty());
    assert!(t.blocks.iter().all(|b| b.dispatch_ns == 0 && b.finish_ns == 0 && b.start_ns <= b.end_ns));
}

#[test]
fn tracing_off_stages_no_trace() {
    for mode in [DETERMINISTIC, THREADED] {
        let r = run(mode, TraceConfig::OFF);
        assert!(r.trace.is_none());
        assert_eq!(r.tasks_completed, 5);
    }
}

#[test]
fn an_out_of_range_level_is_refused() {
    assert!(TraceConfig::level(5).is_err());
}

/// Level-4 cost per task against level 0 on a 16,384-task chain (deterministic, instant cores).
/// A measurement, not a check: `cargo test --release -p pto-tests --test run_trace -- --ignored
/// --nocapture trace_cost`.
#[test]
#[ignore]
fn trace_cost_per_task() {
    use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, TaskSpec};
    fn chain(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        for _ in 0..64 {
            o.scope(pto_abi::runtime::ScopeKind::Auto, |o| {
                for _ in 0..256 {
                    o.submit(&TaskSpec::aiv(0, &[Arg::InOut(buf)]))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
    let args = [pto_host::RunArg::InOut { data: vec![0; 64], dtype: pto_abi::task::DType::I32 }];
    let req = pto_host::RunRequest {
        orchestration: chain,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: ArenaSizingKey::uniform(1024, 1 << 20, 1024),
        mode: RunMode::Deterministic { noop_cores: true },
        budgets: Budgets::DEFAULT,
    };
    let mut best = [f64::MAX; 2];
    for _ in 0..7 {
        for (i, level) in [0, 4].into_iter().enumerate() {
            runner.set_trace(TraceConfig::level(level).unwrap());
            let r = runner.run(&req).unwrap();
            assert_eq!(r.tasks_completed, 16384);
            best[i] = best[i].min(r.run_time.as_nanos() as f64 / 16384.0);
        }
    }
    println!(
        "trace cost: level 0 {:.1} ns/task, level 4 {:.1} ns/task, ratio {:.2}",
        best[0],
        best[1],
        best[1] / best[0]
    );
}
