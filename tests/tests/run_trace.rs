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
    // The complete dependency graph, in submit order (c=0 d=1 e=2 g=3 f=4): exactly the
    // example's six data edges, each once, whether or not its producer had retired already.
    assert_eq!(t.edges.len(), 6, "{:?}", t.edges);
    assert_eq!(edges(t), VECTOR_EDGES.into());
    for (i, s) in t.submits.iter().enumerate() {
        assert_eq!(s.producers as usize, VECTOR_EDGES.iter().filter(|e| e.1 == i).count(), "submit {i}");
        assert!(s.start_ns <= s.end_ns);
        assert_ne!(s.scope_serial, 0, "submit {i} names its scope");
    }
    // Every edge of the example reads a tensor its producer created (f also overwrites an
    // existing buffer, which no earlier task wrote).
    assert!(t.edges.iter().all(|e| e.reason == EDGE_REASON_CREATOR && e.tensor != u32::MAX), "{:?}", t.edges);
    // Scheduler phases: at least one productive iteration, each inside the run.
    assert!(!t.phases.is_empty());
    for p in &t.phases {
        let end = p.start_ns + p.idle_ns + p.complete_ns + p.dispatch_ns + p.release_ns;
        assert!(p.complete_ns + p.dispatch_ns + p.release_ns > 0 || p.idle_ns > 0, "{p:?}");
        assert!(end >= p.start_ns, "{p:?}");
    }
    // Scope stats: the two user scopes (inner: d, e, g; outer: c, f) and the implicit outermost
    // one (no tasks of its own), each within its ring's limits.
    assert_eq!(t.scopes.len(), 3, "{:?}", t.scopes);
    let tasks: Vec<u64> = t.scopes.iter().map(|s| s.tasks).collect();
    assert_eq!(tasks, [3, 2, 0], "inner scope closes first");
    for s in &t.scopes {
        assert!(s.peak_ring_fill <= s.ring_window && s.peak_heap <= s.heap_size, "{s:?}");
        assert!(s.peak_dep_pool <= s.dep_pool_capacity, "{s:?}");
        assert!(s.tasks == 0 || (s.peak_ring_fill >= 1 && s.peak_heap > 0), "{s:?}");
    }
}

/// The vector example's data edges as (producer, consumer) submit indices, c=0 d=1 e=2 g=3 f=4:
/// c→d, c→e, d→g, e→g, g→f and c→f. The text counts 4 edges; the graph has 6, because
/// f reads both g and c (f = g + c), and g→f and c→f are data edges like the others. Both modes
/// record all 6: an edge whose producer already retired before the consumer was submitted is
/// recorded too, flagged `EDGE_FLAG_RETIRED`.
const VECTOR_EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (0, 4)];

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
    // The cores stamped start and end themselves (the AICPU's dispatch and finish bracket them).
    assert!(t.blocks.iter().all(|b| b.start_ns > 0 && b.end_ns > 0), "{:?}", t.blocks);
    assert!(t.phases.iter().all(|p| p.thread < 2), "{:?}", t.phases);
}

#[test]
fn both_modes_record_the_same_dependency_graph() {
    let d = run(DETERMINISTIC, TraceConfig::level(4).unwrap());
    let t = run(THREADED, TraceConfig::level(4).unwrap());
    let (d, t) = (d.trace.unwrap(), t.trace.unwrap());
    assert_eq!(edges(&d), edges(&t));
    let key = |t: &RunTrace| -> BTreeSet<(usize, usize, u32, u32)> {
        let index = |id: u64| t.submits.iter().position(|s| s.task_id == id).unwrap();
        t.edges.iter().map(|e| (index(e.producer), index(e.consumer), e.tensor, e.reason)).collect()
    };
    assert_eq!(key(&d), key(&t), "same tensors and reasons");
}

#[test]
fn level_three_records_phases_in_both_modes_and_no_submits() {
    for mode in [DETERMINISTIC, THREADED] {
        let r = run(mode, TraceConfig::level(3).unwrap());
        let t = r.trace.unwrap();
        assert!(!t.phases.is_empty(), "{mode:?}");
        assert!(t.submits.is_empty() && t.edges.is_empty() && t.scopes.is_empty(), "{mode:?}");
        assert!(t.blocks.iter().all(|b| b.dispatch_ns > 0), "{mode:?}: level 3 includes level 2");
        // Records of one thread follow each other: each starts where the previous one ended.
        for th in 0..2 {
            let mine: Vec<_> = t.phases.iter().filter(|p| p.thread == th).collect();
            for w in mine.windows(2) {
                let end = w[0].start_ns + w[0].idle_ns + w[0].complete_ns + w[0].dispatch_ns + w[0].release_ns;
                assert!(w[1].start_ns >= end.saturating_sub(1_000), "{mode:?}: {:?} then {:?}", w[0], w[1]);
            }
        }
    }
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

/// Many scopes of a short chain, deterministic: one drain (at least one phase record) per scope.
fn scoped_chain(
    o: &mut pto_device::orch::Orchestrator<'_, '_>,
    args: &pto_device::orch::OrchArgs<'_>,
) -> Result<(), pto_device::orch::OrchError> {
    use pto_device::orch::{Arg, TaskSpec};
    let buf = args.tensor(0)?;
    for _ in 0..8 {
        o.scope(pto_abi::runtime::ScopeKind::Auto, |o| {
            for _ in 0..15 {
                o.submit(&TaskSpec::aiv(0, &[Arg::InOut(buf)]))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn run_chain(mode: RunMode, trace: TraceConfig, window: u64) -> RunReport {
    let sim = Arc::new(SimBackend::with_capacity(256 << 20).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
    runner.set_trace(trace);
    let args = [pto_host::RunArg::InOut { data: vec![0; 64], dtype: pto_abi::task::DType::I32 }];
    let req = pto_host::RunRequest {
        orchestration: scoped_chain,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: ArenaSizingKey::uniform(window, 1 << 20, 256),
        mode,
        budgets: Budgets::DEFAULT,
    };
    runner.run(&req).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_full_phase_buffer_counts_its_drops() {
    let mut cfg = TraceConfig::level(3).unwrap();
    cfg.capacities[pto_abi::trace::TRACE_KIND_PHASE as usize] = 2;
    let r = run_chain(RunMode::Deterministic { noop_cores: true }, cfg, 64);
    let t = r.trace.unwrap();
    assert_eq!(r.tasks_completed, 120);
    assert_eq!(t.phases.len(), 2);
    assert!(t.dropped[pto_abi::trace::TRACE_KIND_PHASE as usize] >= 6, "{:?}", t.dropped);
    assert_eq!(t.dropped[TRACE_KIND_BLOCK as usize], 0);
}

#[test]
fn scope_stats_show_a_ring_near_its_window_and_the_summary_names_the_flag() {
    // 15 tasks per scope in a 16-slot window: each scope's ring reaches 15/16 of its window.
    let r = run_chain(RunMode::Deterministic { noop_cores: true }, TraceConfig::level(4).unwrap(), 16);
    let t = r.trace.unwrap();
    let user: Vec<_> = t.scopes.iter().filter(|s| s.tasks > 0).collect();
    assert_eq!(user.len(), 8, "{:?}", t.scopes);
    for s in &user {
        assert_eq!((s.tasks, s.ring, s.ring_window), (15, 1, 16), "{s:?}");
        assert_eq!(s.peak_ring_fill, 15, "{s:?}");
    }
    let v = pto_host::cli::trace::chrome_trace(&t, &|f| format!("k{f}"));
    let summary = pto_host::cli::trace::summarize(&v).unwrap();
    let raised: Vec<_> = summary["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["raise"] == serde_json::json!(["--window"]))
        .collect();
    assert_eq!(raised.len(), 8, "{summary}");
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
