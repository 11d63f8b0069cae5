//! Run-trace output of `pto run` (`--trace run.json`, `--deps deps.json|deps.dot`) and
//! `pto trace summary run.json [--json]`.
//!
//! The trace file is Chrome Trace Event JSON (it loads in Perfetto and `chrome://tracing`): one
//! track per AICPU thread and per AICore core, a complete (`X`) slice per task block named by its
//! kernel, dispatch and finish instants on the scheduler's track, scheduler-phase slices (idle,
//! complete, dispatch, release of each productive iteration, end to end) on the AICPU thread
//! tracks, flow arrows (`s`/`f`) from each producer's last block to its consumer's first, times in
//! µs of the device clock from the start of orchestration. `otherData` carries the dependency
//! edges (retired producers flagged), scope stats and drop counts the summary reads.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use pto_abi::task::task_id_ring;
use pto_abi::trace::{EdgeRecord, EDGE_FLAG_RETIRED, EDGE_REASON_CREATOR, EDGE_REASON_EXPLICIT, VIRTUAL_CORE};
use serde_json::{json, Value};

use super::CliError;
use crate::runner::{RunTrace, TraceConfig, TRACE_KIND_NAMES};

/// Trace flags of `pto run`.
#[derive(Args, Debug, Clone, Default)]
pub struct TraceOutArgs {
    /// Write the last run's trace as Chrome Trace Event JSON (Perfetto, chrome://tracing).
    #[arg(long, value_name = "run.json")]
    pub trace: Option<PathBuf>,
    /// Write the last run's dependency graph: JSON, or Graphviz when the name ends in `.dot`.
    #[arg(long, value_name = "deps.json|deps.dot")]
    pub deps: Option<PathBuf>,
    /// Trace level 0..=4 (default 4 with --trace or --deps, else 0).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=4))]
    pub trace_level: Option<u32>,
}

impl TraceOutArgs {
    /// The trace configuration these flags ask for.
    pub fn config(&self) -> TraceConfig {
        let wanted = self.trace.is_some() || self.deps.is_some();
        let level = self.trace_level.unwrap_or(if wanted { 4 } else { 0 });
        TraceConfig::level(level).unwrap_or(TraceConfig::OFF)
    }

    /// Writes the requested files from `trace`; `names` gives kernel names by func id.
    pub fn write(&self, trace: Option<&RunTrace>, names: &dyn Fn(u32) -> String) -> Result<Vec<String>, CliError> {
        let mut notes = Vec::new();
        if self.trace.is_none() && self.deps.is_none() {
            return Ok(notes);
        }
        let Some(t) = trace else { return Err(CliError::bad_input("--trace/--deps need --trace-level of at least 1")) };
        if t.total_dropped() > 0 {
            let d: Vec<String> = t
                .dropped
                .iter()
                .zip(TRACE_KIND_NAMES)
                .filter(|(n, _)| **n > 0)
                .map(|(n, k)| format!("{n} {k}"))
                .collect();
            notes.push(format!("trace buffers were full: dropped {}", d.join(", ")));
        }
        if let Some(p) = &self.trace {
            write_file(
                p,
                &serde_json::to_string(&chrome_trace(t, names)).map_err(|e| CliError::failed(e.to_string()))?,
            )?;
            notes.push(format!("trace: {} ({} blocks, {} edges)", p.display(), t.blocks.len(), t.edges.len()));
        }
        if let Some(p) = &self.deps {
            if t.level < 4 {
                return Err(CliError::bad_input("--deps needs --trace-level 4 (edges are recorded at level 4)"));
            }
            let text = if p.extension().is_some_and(|e| e == "dot") {
                deps_dot(t, names)
            } else {
                serde_json::to_string_pretty(&deps_json(t, names)).map_err(|e| CliError::failed(e.to_string()))?
            };
            write_file(p, &text)?;
            notes.push(format!("deps: {} ({} edges)", p.display(), t.edges.len()));
        }
        Ok(notes)
    }
}

fn write_file(p: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(p, text).map_err(|e| CliError::failed(format!("{}: {e}", p.display())))
}

fn reason_name(r: u32) -> &'static str {
    match r {
        EDGE_REASON_CREATOR => "creator",
        EDGE_REASON_EXPLICIT => "explicit",
        _ => "overlap",
    }
}

/// The kernel name of a block: its lanes' kernels joined by `+`.
fn block_name(func_ids: &[u32], names: &dyn Fn(u32) -> String) -> String {
    let n: Vec<String> = func_ids.iter().filter(|f| **f != u32::MAX).map(|f| names(*f)).collect();
    if n.is_empty() {
        "dep-only".into()
    } else {
        n.join("+")
    }
}

/// A task's first start, last end, and the tracks of those blocks.
type TaskSpan = (u64, u64, (u32, u32), (u32, u32));

const PID_AICPU: u32 = 1;
const PID_AICORE: u32 = 2;
/// Track of the orchestrator's submits on the AICPU process.
const TID_ORCH: u32 = 100;

/// The Chrome Trace Event JSON of a run trace.
pub fn chrome_trace(t: &RunTrace, names: &dyn Fn(u32) -> String) -> Value {
    let us = |ns: u64| ns.saturating_sub(t.epoch_ns) as f64 / 1e3;
    let mut events: Vec<Value> = Vec::new();
    let mut tracks: BTreeMap<(u32, u32), String> = BTreeMap::new();
    tracks.insert((PID_AICPU, TID_ORCH), "orchestrator".into());
    // Per task: (first start, last end) for the flow arrows.
    let mut span: HashMap<u64, TaskSpan> = HashMap::new();
    for b in &t.blocks {
        let (pid, tid) = if b.core == VIRTUAL_CORE { (PID_AICORE, 0) } else { (PID_AICORE, b.core + 1) };
        tracks.entry((pid, tid)).or_insert_with(|| {
            if b.core == VIRTUAL_CORE {
                "virtual cores".into()
            } else {
                format!("core {}", b.core)
            }
        });
        tracks.entry((PID_AICPU, b.thread)).or_insert_with(|| format!("AICPU thread {}", b.thread));
        events.push(json!({
            "name": block_name(&b.func_ids, names), "cat": "block", "ph": "X", "pid": pid, "tid": tid,
            "ts": us(b.start_ns), "dur": us(b.end_ns) - us(b.start_ns),
            "args": {"task": format!("{:#x}", b.task_id), "task_id": b.task_id, "ring": task_id_ring(b.task_id), "block": b.block_idx,
                     "blocks": b.block_num, "core": b.core, "thread": b.thread,
                     "dispatch_us": if b.dispatch_ns > 0 { Value::from(us(b.dispatch_ns)) } else { Value::Null },
                     "finish_us": if b.finish_ns > 0 { Value::from(us(b.finish_ns)) } else { Value::Null }},
        }));
        if b.dispatch_ns > 0 {
            for (name, ns) in [("dispatch", b.dispatch_ns), ("finish", b.finish_ns)] {
                events
                    .push(json!({"name": name, "cat": "sched", "ph": "i", "s": "t", "pid": PID_AICPU, "tid": b.thread,
                    "ts": us(ns), "args": {"task_id": b.task_id, "block": b.block_idx}}));
            }
        }
        let e = span.entry(b.task_id).or_insert((b.start_ns, b.end_ns, (pid, tid), (pid, tid)));
        if b.start_ns < e.0 {
            (e.0, e.2) = (b.start_ns, (pid, tid));
        }
        if b.end_ns > e.1 {
            (e.1, e.3) = (b.end_ns, (pid, tid));
        }
    }
    for p in &t.phases {
        tracks.entry((PID_AICPU, p.thread)).or_insert_with(|| format!("AICPU thread {}", p.thread));
        let mut at = p.start_ns;
        for (name, ns) in
            [("idle", p.idle_ns), ("complete", p.complete_ns), ("dispatch", p.dispatch_ns), ("release", p.release_ns)]
        {
            if ns > 0 {
                events.push(json!({"name": name, "cat": "phase", "ph": "X", "pid": PID_AICPU, "tid": p.thread,
                    "ts": us(at), "dur": us(at + ns) - us(at)}));
            }
            at += ns;
        }
    }
    for s in &t.submits {
        events.push(json!({"name": "submit", "cat": "orch", "ph": "X", "pid": PID_AICPU, "tid": TID_ORCH,
            "ts": us(s.start_ns), "dur": us(s.end_ns) - us(s.start_ns),
            "args": {"task_id": s.task_id, "producers": s.producers}}));
    }
    for (i, e) in t.edges.iter().enumerate() {
        let (Some(p), Some(c)) = (span.get(&e.producer), span.get(&e.consumer)) else { continue };
        let common = |ph: &str, ts: f64, (pid, tid): (u32, u32)| json!({"name": "dep", "cat": "dep", "ph": ph, "id": i, "pid": pid, "tid": tid, "ts": ts, "bp": "e"});
        // The arrow leaves the producer's last block at its end and enters the consumer's first
        // block at its start (never before the producer's end on a valid trace).
        events.push(common("s", us(p.1), p.3));
        events.push(common("f", us(c.0).max(us(p.1)), c.2));
    }
    for ((pid, tid), name) in &tracks {
        events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "ts": 0, "args": {"name": name}}));
    }
    events.push(
        json!({"name": "process_name", "ph": "M", "pid": PID_AICPU, "tid": 0, "ts": 0, "args": {"name": "AICPU"}}),
    );
    events.push(
        json!({"name": "process_name", "ph": "M", "pid": PID_AICORE, "tid": 0, "ts": 0, "args": {"name": "AICore"}}),
    );
    // Per track in time order (metadata first).
    events.sort_by(|a, b| {
        let key = |v: &Value| (v["pid"].as_u64(), v["tid"].as_u64(), v["ph"] != "M", v["ts"].as_f64().unwrap_or(0.0));
        let (ka, kb) = (key(a), key(b));
        (ka.0, ka.1, ka.2).cmp(&(kb.0, kb.1, kb.2)).then(ka.3.total_cmp(&kb.3))
    });
    let dropped: serde_json::Map<String, Value> =
        TRACE_KIND_NAMES.iter().zip(t.dropped).map(|(k, n)| (k.to_string(), Value::from(n))).collect();
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "level": t.level,
            "dropped": dropped,
            "edges": t.edges.iter().map(|e| json!([e.producer, e.consumer])).collect::<Vec<_>>(),
            "retired_edges": t.edges.iter().filter(|e| retired(e)).count(),
            "phases": phase_totals(t),
            "scopes": t.scopes.iter().map(|s| json!({"serial": s.serial, "ring": s.ring, "tasks": s.tasks,
                "peak_ring_fill": s.peak_ring_fill, "ring_window": s.ring_window, "peak_heap": s.peak_heap,
                "heap_size": s.heap_size, "peak_dep_pool": s.peak_dep_pool, "dep_pool_capacity": s.dep_pool_capacity})).collect::<Vec<_>>(),
        },
    })
}

fn retired(e: &EdgeRecord) -> bool {
    e.flags & EDGE_FLAG_RETIRED != 0
}

/// Per AICPU thread: scheduler iterations recorded and µs in each phase.
fn phase_totals(t: &RunTrace) -> Value {
    let mut per: BTreeMap<u32, [u64; 5]> = BTreeMap::new();
    for p in &t.phases {
        let e = per.entry(p.thread).or_default();
        e[0] += 1;
        e[1] += p.complete_ns;
        e[2] += p.dispatch_ns;
        e[3] += p.release_ns;
        e[4] += p.idle_ns;
    }
    per.iter()
        .map(|(th, v)| {
            json!({"thread": th, "iterations": v[0], "complete_us": v[1] as f64 / 1e3, "dispatch_us": v[2] as f64 / 1e3,
                   "release_us": v[3] as f64 / 1e3, "idle_us": v[4] as f64 / 1e3})
        })
        .collect::<Vec<_>>()
        .into()
}

fn task_names(t: &RunTrace, names: &dyn Fn(u32) -> String) -> HashMap<u64, String> {
    t.blocks.iter().map(|b| (b.task_id, block_name(&b.func_ids, names))).collect()
}

/// The dependency graph as JSON: tasks in submit order and every edge with tensor and reason.
pub fn deps_json(t: &RunTrace, names: &dyn Fn(u32) -> String) -> Value {
    let kn = task_names(t, names);
    json!({
        "tasks": t.submits.iter().map(|s| json!({"task_id": s.task_id, "ring": task_id_ring(s.task_id),
            "kernel": kn.get(&s.task_id).cloned().unwrap_or_else(|| "dep-only".into()), "producers": s.producers})).collect::<Vec<_>>(),
        "edges": t.edges.iter().map(|e| json!({"producer": e.producer, "consumer": e.consumer,
            "tensor": if e.tensor == u32::MAX { Value::Null } else { Value::from(e.tensor) }, "reason": reason_name(e.reason),
            "retired": retired(e)})).collect::<Vec<_>>(),
    })
}

/// The dependency graph in Graphviz.
pub fn deps_dot(t: &RunTrace, names: &dyn Fn(u32) -> String) -> String {
    let kn = task_names(t, names);
    let mut s = String::from("digraph deps {\n  rankdir=LR;\n  node [shape=box];\n");
    for sub in &t.submits {
        let k = kn.get(&sub.task_id).map(String::as_str).unwrap_or("dep-only");
        s += &format!("  t{:x} [label=\"{k}\\n{:#x}\"];\n", sub.task_id, sub.task_id);
    }
    for e in &t.edges {
        let tensor = if e.tensor == u32::MAX { String::new() } else { format!(" arg {}", e.tensor) };
        // An edge to a producer that had already retired is dashed: nothing was left to wait for.
        let style = if retired(e) { ", style=dashed" } else { "" };
        s += &format!(
            "  t{:x} -> t{:x} [label=\"{}{tensor}\"{style}];\n",
            e.producer,
            e.consumer,
            reason_name(e.reason)
        );
    }
    s + "}\n"
}

/// `pto trace` subcommands.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TraceCommand,
}

/// `pto trace` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum TraceCommand {
    /// Per-kernel durations, scheduler overhead, critical path vs makespan, core busy/idle.
    Summary {
        /// A trace written by `pto run --trace`.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Draw the trace's tracks and block slices as an SVG picture.
    Svg {
        /// A trace written by `pto run --trace`.
        file: PathBuf,
        /// The SVG file to write.
        out: PathBuf,
    },
}

/// Runs `pto trace`.
pub fn run(args: &TraceArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (file, json, svg) = match &args.command {
        TraceCommand::Summary { file, json } => (file, *json, None),
        TraceCommand::Svg { file, out } => (file, false, Some(out)),
    };
    let text = std::fs::read_to_string(file).map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| CliError::bad_input(format!("{}: not JSON: {e}", file.display())))?;
    if let Some(out_path) = svg {
        let picture = draw_svg(&v).map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
        write_file(out_path, &picture)?;
        writeln!(out, "wrote {}", out_path.display())?;
        return Ok(());
    }
    let s = summarize(&v).map_err(|e| CliError::bad_input(format!("{}: {e}", file.display())))?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s).map_err(|e| CliError::failed(e.to_string()))?)?;
    } else {
        write_text(&s, out)?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The fraction of a ring's limit (task window, heap, dep pool) a scope's peak must reach for the
/// summary to name the sizing flag to raise.
pub const NEAR_LIMIT: f64 = 0.9;

/// The `pto run` sizing flags of the task window, the ring heap and the dep pool.
const SIZING_FLAGS: [&str; 3] = ["--window", "--heap", "--dep-pool"];

/// The summary of a Chrome trace written by [`chrome_trace`], as JSON.
pub fn summarize(v: &Value) -> Result<Value, String> {
    let events = v["traceEvents"].as_array().ok_or("no traceEvents array")?;
    let blocks: Vec<&Value> = events.iter().filter(|e| e["cat"] == "block" && e["ph"] == "X").collect();
    let num = |e: &Value, k: &str| e[k].as_f64().ok_or(format!("event without a numeric {k}: {e}"));
    let mut per_kernel: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut tasks: HashMap<u64, (f64, f64)> = HashMap::new();
    let mut cores: BTreeMap<u64, f64> = BTreeMap::new();
    let (mut first, mut last) = (f64::MAX, f64::MIN);
    let (mut to_start, mut to_finish) = (Vec::new(), Vec::new());
    for e in &blocks {
        let (ts, dur) = (num(e, "ts")?, num(e, "dur")?);
        per_kernel.entry(e["name"].as_str().unwrap_or("?").to_string()).or_default().push(dur);
        let id = e["args"]["task_id"].as_u64().ok_or("block without args.task_id")?;
        let t = tasks.entry(id).or_insert((ts, ts + dur));
        t.0 = t.0.min(ts);
        t.1 = t.1.max(ts + dur);
        *cores.entry(e["tid"].as_u64().unwrap_or(0)).or_default() += dur;
        let (d, f) = (e["args"]["dispatch_us"].as_f64(), e["args"]["finish_us"].as_f64());
        first = first.min(d.unwrap_or(ts));
        last = last.max(f.unwrap_or(ts + dur));
        if let (Some(d), Some(f)) = (d, f) {
            to_start.push(ts - d);
            to_finish.push(f - (ts + dur));
        }
    }
    let makespan = if blocks.is_empty() { 0.0 } else { last - first };
    let kernels: Vec<Value> = per_kernel
        .into_iter()
        .map(|(k, mut d)| {
            d.sort_by(f64::total_cmp);
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            json!({"kernel": k, "count": d.len(), "mean_us": mean, "p50_us": percentile(&d, 0.5), "p99_us": percentile(&d, 0.99)})
        })
        .collect();
    let mean = |v: &[f64]| if v.is_empty() { Value::Null } else { Value::from(v.iter().sum::<f64>() / v.len() as f64) };
    // Critical path: the heaviest chain of task durations along dependency edges.
    let edges: Vec<(u64, u64)> = v["otherData"]["edges"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| Some((e[0].as_u64()?, e[1].as_u64()?))).collect())
        .unwrap_or_default();
    let (length, path) = critical_path(&tasks, &edges);
    let core_rows: Vec<Value> = cores
        .iter()
        .map(|(c, busy)| json!({"track": c, "busy_us": busy, "idle_us": (makespan - busy).max(0.0)}))
        .collect();
    let mut scopes = Vec::new();
    for s in v["otherData"]["scopes"].as_array().into_iter().flatten() {
        let frac = |a: &str, b: &str| s[a].as_f64().unwrap_or(0.0) / s[b].as_f64().unwrap_or(1.0).max(1.0);
        let mut flags = Vec::new();
        let fills = [
            ("ring_fill", "peak_ring_fill", "ring_window"),
            ("heap", "peak_heap", "heap_size"),
            ("dep_pool", "peak_dep_pool", "dep_pool_capacity"),
        ];
        let mut used = serde_json::Map::new();
        for ((name, peak, limit), flag) in fills.iter().zip(SIZING_FLAGS) {
            let f = frac(peak, limit);
            used.insert(name.to_string(), Value::from(f));
            if f >= NEAR_LIMIT {
                flags.push(flag);
            }
        }
        scopes.push(json!({"scope": s, "used": used, "raise": flags}));
    }
    Ok(json!({
        "tasks": tasks.len(), "blocks": blocks.len(), "kernels": kernels,
        "dispatch_to_start_mean_us": mean(&to_start), "end_to_finish_mean_us": mean(&to_finish),
        "makespan_us": makespan, "critical_path_us": length, "critical_path": path,
        "cores": core_rows, "scopes": scopes, "dropped": v["otherData"]["dropped"].clone(),
        "phases": v["otherData"]["phases"].clone(), "retired_edges": v["otherData"]["retired_edges"].clone(),
    }))
}

/// A swimlane picture of a Chrome trace written by [`chrome_trace`]: one row per track with a
/// block slice per task block (labelled by kernel), arrows for the dependency flows.
pub fn draw_svg(v: &Value) -> Result<String, String> {
    let events = v["traceEvents"].as_array().ok_or("no traceEvents array")?;
    let mut names: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "M" && e["name"] == "thread_name") {
        let key = (e["pid"].as_u64().unwrap_or(0), e["tid"].as_u64().unwrap_or(0));
        names.insert(key, e["args"]["name"].as_str().unwrap_or("?").to_string());
    }
    let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let end =
        slices.iter().map(|e| e["ts"].as_f64().unwrap_or(0.0) + e["dur"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
    let rows: Vec<(u64, u64)> = names.keys().copied().collect();
    let (left, width, row_h) = (140.0, 860.0, 28.0);
    let x = |ts: f64| left + ts / end.max(1e-9) * width;
    let row = |k: (u64, u64)| rows.iter().position(|r| *r == k).unwrap_or(0) as f64 * row_h + 30.0;
    let height = rows.len() as f64 * row_h + 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"4\" y=\"16\" font-weight=\"bold\">run trace, 0 to {end:.1} µs</text>\n",
        left + width + 20.0
    );
    for (k, name) in &names {
        s += &format!("<text x=\"4\" y=\"{}\">{name}</text>\n", row(*k) + 16.0);
        s += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/>\n",
            left + width,
            y = row(*k) + row_h - 2.0
        );
    }
    let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"];
    let mut colour: BTreeMap<String, &str> = BTreeMap::new();
    for e in &slices {
        let key = (e["pid"].as_u64().unwrap_or(0), e["tid"].as_u64().unwrap_or(0));
        let name = e["name"].as_str().unwrap_or("?").to_string();
        let n = colour.len();
        let c = *colour.entry(name.clone()).or_insert(palette[n % palette.len()]);
        let (ts, dur) = (e["ts"].as_f64().unwrap_or(0.0), e["dur"].as_f64().unwrap_or(0.0));
        let w = (x(ts + dur) - x(ts)).max(1.0);
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{c}\"><title>{name} {ts:.2}+{dur:.2} µs</title></rect>\n",
            x(ts),
            row(key) + 4.0,
            row_h - 10.0
        );
        if w > 60.0 {
            s += &format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"white\">{name}</text>\n", x(ts) + 3.0, row(key) + 18.0);
        }
    }
    let mut starts: HashMap<u64, (f64, f64)> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "s" || e["ph"] == "f") {
        let key = (e["pid"].as_u64().unwrap_or(0), e["tid"].as_u64().unwrap_or(0));
        let (px, py) = (x(e["ts"].as_f64().unwrap_or(0.0)), row(key) + row_h / 2.0);
        let id = e["id"].as_u64().unwrap_or(0);
        if e["ph"] == "s" {
            starts.insert(id, (px, py));
        } else if let Some((sx, sy)) = starts.get(&id) {
            s += &format!("<line x1=\"{sx:.1}\" y1=\"{sy:.1}\" x2=\"{px:.1}\" y2=\"{py:.1}\" stroke=\"#333\" stroke-width=\"1\"/>\n");
            s += &format!("<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"#333\"/>\n");
        }
    }
    Ok(s + "</svg>\n")
}

/// The longest path through `tasks` (id → (start, end)) along `edges` by summed duration.
pub fn critical_path(tasks: &HashMap<u64, (f64, f64)>, edges: &[(u64, u64)]) -> (f64, Vec<u64>) {
    let mut preds: HashMap<u64, Vec<u64>> = HashMap::new();
    for &(p, c) in edges {
        if tasks.contains_key(&p) && tasks.contains_key(&c) {
            preds.entry(c).or_default().push(p);
        }
    }
    // Edges run from earlier to later submits, so task ids ordered by start form a topological
    // order only loosely; memoized recursion over predecessors needs none.
    fn best(
        t: u64,
        tasks: &HashMap<u64, (f64, f64)>,
        preds: &HashMap<u64, Vec<u64>>,
        memo: &mut HashMap<u64, (f64, Option<u64>)>,
        depth: usize,
    ) -> f64 {
        if let Some(m) = memo.get(&t) {
            return m.0;
        }
        let own = tasks[&t].1 - tasks[&t].0;
        let mut pick = (own, None);
        if depth < 100_000 {
            for &p in preds.get(&t).into_iter().flatten() {
                let l = best(p, tasks, preds, memo, depth + 1) + own;
                if l > pick.0 {
                    pick = (l, Some(p));
                }
            }
        }
        memo.insert(t, pick);
        pick.0
    }
    let mut memo = HashMap::new();
    let mut end = None;
    let mut length = 0.0;
    let mut ids: Vec<u64> = tasks.keys().copied().collect();
    ids.sort_unstable();
    for t in ids {
        let l = best(t, tasks, &preds, &mut memo, 0);
        if l > length {
            (length, end) = (l, Some(t));
        }
    }
    let mut path = Vec::new();
    while let Some(t) = end {
        path.push(t);
        end = memo[&t].1;
    }
    path.reverse();
    (length, path)
}

fn write_text(s: &Value, out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(out, "{} tasks, {} blocks", s["tasks"], s["blocks"])?;
    writeln!(out, "{:<28} {:>6} {:>10} {:>10} {:>10}", "kernel", "count", "mean µs", "p50 µs", "p99 µs")?;
    for k in s["kernels"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{:<28} {:>6} {:>10.2} {:>10.2} {:>10.2}",
            k["kernel"].as_str().unwrap_or("?"),
            k["count"],
            k["mean_us"].as_f64().unwrap_or(0.0),
            k["p50_us"].as_f64().unwrap_or(0.0),
            k["p99_us"].as_f64().unwrap_or(0.0)
        )?;
    }
    let f = |k: &str| s[k].as_f64().map_or("n/a (level < 2)".to_string(), |v| format!("{v:.2} µs"));
    writeln!(
        out,
        "scheduler overhead per block: dispatch→start {}, end→finish {}",
        f("dispatch_to_start_mean_us"),
        f("end_to_finish_mean_us")
    )?;
    writeln!(
        out,
        "critical path {:.2} µs over {} tasks; makespan {:.2} µs",
        s["critical_path_us"].as_f64().unwrap_or(0.0),
        s["critical_path"].as_array().map_or(0, Vec::len),
        s["makespan_us"].as_f64().unwrap_or(0.0)
    )?;
    for c in s["cores"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "track {:>3}: busy {:.2} µs, idle {:.2} µs",
            c["track"],
            c["busy_us"].as_f64().unwrap_or(0.0),
            c["idle_us"].as_f64().unwrap_or(0.0)
        )?;
    }
    for p in s["phases"].as_array().into_iter().flatten() {
        let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
        writeln!(
            out,
            "AICPU thread {}: {} iterations, complete {:.2} µs, dispatch {:.2} µs, release {:.2} µs, idle {:.2} µs",
            p["thread"],
            p["iterations"],
            f("complete_us"),
            f("dispatch_us"),
            f("release_us"),
            f("idle_us")
        )?;
    }
    let scopes = s["scopes"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !scopes.is_empty() {
        writeln!(
            out,
            "{:>6} {:>4} {:>7} {:>18} {:>24} {:>18}  sizing",
            "scope", "ring", "tasks", "peak ring fill", "peak heap bytes", "peak dep pool"
        )?;
    }
    for sc in scopes {
        let c = &sc["scope"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        let pct = |k: &str| sc["used"][k].as_f64().unwrap_or(0.0) * 100.0;
        let raise = sc["raise"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        writeln!(
            out,
            "{:>6} {:>4} {:>7} {:>18} {:>24} {:>18}  {}",
            n("serial"),
            n("ring"),
            n("tasks"),
            format!("{}/{} {:.0}%", n("peak_ring_fill"), n("ring_window"), pct("ring_fill")),
            format!("{}/{} {:.0}%", n("peak_heap"), n("heap_size"), pct("heap")),
            format!("{}/{} {:.0}%", n("peak_dep_pool"), n("dep_pool_capacity"), pct("dep_pool")),
            if raise.is_empty() { "ok".to_string() } else { format!("near the limit: raise {raise}") }
        )?;
    }
    if let Some(d) = s["dropped"].as_object() {
        let lost: Vec<String> =
            d.iter().filter(|(_, n)| n.as_u64().unwrap_or(0) > 0).map(|(k, n)| format!("{n} {k}")).collect();
        if !lost.is_empty() {
            writeln!(out, "DROPPED records (trace buffers full): {}", lost.join(", "))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pto_abi::trace::{BlockRecord, SubmitRecord};

    use super::*;
    use crate::backend::sim::SimBackend;
    use crate::backend::DeviceBackend;
    use crate::examples::{vector_args, vector_kernel_name, vector_orchestration, VECTOR_KERNELS};
    use crate::runner::{DeviceRunner, RunMode, RunRequest};
    use pto_device::runtime::Budgets;

    fn vector_trace(mode: RunMode) -> RunTrace {
        let sim = Arc::new(SimBackend::with_capacity(256 << 20).unwrap());
        let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
        runner.set_trace(TraceConfig::level(4).unwrap());
        let args = vector_args();
        let req = RunRequest {
            orchestration: vector_orchestration,
            kernels: &VECTOR_KERNELS,
            args: &args,
            sizing: pto_abi::sizing::ArenaSizingKey::uniform(64, 1 << 20, 256),
            mode,
            budgets: Budgets::DEFAULT,
        };
        *runner.run(&req).unwrap().trace.unwrap()
    }

    /// Checks the trace event format: required fields, phase values, per-track non-decreasing
    /// timestamps (metadata aside), each flow id one start and one finish, start not after finish.
    fn check_trace_event_format(v: &Value) {
        let events = v["traceEvents"].as_array().expect("traceEvents");
        let mut last: HashMap<(u64, u64), f64> = HashMap::new();
        let mut flows: HashMap<u64, (Vec<f64>, Vec<f64>)> = HashMap::new();
        for e in events {
            let ph = e["ph"].as_str().expect("ph");
            assert!(["X", "i", "s", "f", "M"].contains(&ph), "phase {ph}");
            assert!(e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
            let ts = e["ts"].as_f64().expect("ts");
            if ph == "M" {
                continue;
            }
            if ph == "X" {
                assert!(e["dur"].as_f64().expect("dur") >= 0.0, "{e}");
            }
            let track = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            let prev = last.insert(track, ts).unwrap_or(f64::MIN);
            assert!(ts >= prev, "track {track:?} goes back in time at {e}");
            if ph == "s" || ph == "f" {
                let f = flows.entry(e["id"].as_u64().expect("flow id")).or_default();
                if ph == "s" { &mut f.0 } else { &mut f.1 }.push(ts);
            }
        }
        for (id, (s, f)) in flows {
            assert!(s.len() == 1 && f.len() == 1, "flow {id}: {} starts, {} finishes", s.len(), f.len());
            assert!(s[0] <= f[0], "flow {id} ends before it starts");
        }
    }

    #[test]
    fn vector_traces_satisfy_the_trace_event_format_and_name_kernels() {
        for mode in [RunMode::Deterministic { noop_cores: false }, RunMode::Threaded { threads: 3, clusters: 2 }] {
            let t = vector_trace(mode);
            let v = chrome_trace(&t, &vector_kernel_name);
            check_trace_event_format(&v);
            let events = v["traceEvents"].as_array().unwrap();
            let names: Vec<&str> =
                events.iter().filter(|e| e["cat"] == "block").map(|e| e["name"].as_str().unwrap()).collect();
            assert_eq!(names.len(), 5);
            assert!(names.iter().all(|n| n.starts_with("vector_")), "{names:?}");
            let flows = events.iter().filter(|e| e["ph"] == "s").count();
            assert_eq!(flows, t.edges.len(), "one arrow per edge");
            let s = summarize(&v).unwrap();
            assert_eq!(s["tasks"], 5);
            assert!(s["critical_path_us"].as_f64().unwrap() <= s["makespan_us"].as_f64().unwrap() + 1e-6);
        }
    }

    fn block(task: u64, start: u64, end: u64) -> BlockRecord {
        BlockRecord {
            task_id: task,
            func_ids: [0, u32::MAX, u32::MAX],
            core: (task % 2) as u32,
            start_ns: start,
            end_ns: end,
            dispatch_ns: start,
            finish_ns: end,
            block_num: 1,
            ..BlockRecord::default()
        }
    }

    #[test]
    fn the_summary_finds_a_known_critical_path() {
        // 1 (10 µs) → 2 (5 µs) → 4 (10 µs) and 1 → 3 (30 µs) → 4: the path is 1, 3, 4 = 50 µs.
        let us = 1000;
        let t = RunTrace {
            level: 4,
            epoch_ns: 0,
            blocks: vec![
                block(1, 0, 10 * us),
                block(2, 10 * us, 15 * us),
                block(3, 10 * us, 40 * us),
                block(4, 40 * us, 50 * us),
            ],
            submits: (1..=4).map(|i| SubmitRecord { task_id: i, ..SubmitRecord::default() }).collect(),
            edges: [(1, 2), (1, 3), (2, 4), (3, 4)]
                .iter()
                .map(|&(p, c)| EdgeRecord {
                    producer: p,
                    consumer: c,
                    tensor: 0,
                    reason: EDGE_REASON_CREATOR,
                    ..EdgeRecord::default()
                })
                .collect(),
            ..RunTrace::default()
        };
        let v = chrome_trace(&t, &|f| format!("k{f}"));
        check_trace_event_format(&v);
        let s = summarize(&v).unwrap();
        assert_eq!(s["critical_path"], json!([1, 3, 4]));
        assert!((s["critical_path_us"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!((s["makespan_us"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        let dot = deps_dot(&t, &|f| format!("k{f}"));
        assert_eq!(dot.matches(" -> ").count(), 4);
    }
}
