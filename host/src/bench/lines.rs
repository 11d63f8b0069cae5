//! Where the memory traffic of a task goes: the cache lines one task of a whole-cycle figure
//! touches in each structure, written and read, by the orchestrator (submit) and by the scheduler
//! (dispatch, completion, release, reclaim).
//!
//! A static tally: the structure sizes and field offsets come from the ABI layouts, the events
//! (edges wired, dep-list nodes, tensor-map lookups and inserts, queue pushes and pops, releases)
//! from the shape of one scope, walked the way the runtime processes it. The event counts are
//! checked against a counting run of the runtime (dep-pool nodes handed out, ready-queue pushes).
//!
//! Rules of the tally:
//! * a line counts once per side (orchestrator or scheduler) and per task, however many of its
//!   fields that side touches; "written" includes read-modify-write, "read" is read-only;
//! * entries smaller than a line that are handed out in sequence (dep-list nodes, ready-queue
//!   cells, scope-list entries) count as their fraction of a line;
//! * a line another task's step touches (a producer's slot state when a consumer is wired, a
//!   consumer's slot state when its producer completes) counts for the task doing the step;
//! * queue cursors and ring state count once per operation (they stay in cache in a
//!   single-thread run, but are shared lines in a threaded one).

use core::mem::{offset_of, size_of};

use pto_abi::runtime::{ReadyQueueCell, TensorMapEntry};
use pto_abi::task::{DepListEntry, SlotState, TaskDescriptor, TaskPayload, TensorDesc, TensorDim};

use super::graph::{Shape, TensorMode};

/// Bytes of a cache line.
pub const LINE: usize = 64;

/// The structures of the tally, in report order.
pub const STRUCTURES: [&str; 7] =
    ["SM descriptor", "payload", "slot state", "dep pool", "tensor map", "ready queue", "arena state"];

/// Lines per task of one structure, by side.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Orchestrator: lines written (or read-modified-written).
    pub orch_written: f64,
    /// Orchestrator: lines only read.
    pub orch_read: f64,
    /// Scheduler: lines written (or read-modified-written).
    pub sched_written: f64,
    /// Scheduler: lines only read.
    pub sched_read: f64,
}

impl Traffic {
    /// Every line touched, both sides.
    pub fn total(&self) -> f64 {
        self.orch_written + self.orch_read + self.sched_written + self.sched_read
    }
}

/// The tally of one (shape, tensor mode): lines per task of each of [`STRUCTURES`].
#[derive(Clone, Debug, PartialEq)]
pub struct LineTally {
    /// Graph shape.
    pub shape: Shape,
    /// Tensor mode.
    pub mode: TensorMode,
    /// Per structure, in [`STRUCTURES`] order.
    pub lines: [Traffic; 7],
    /// Events of one scope the tally is built from.
    pub events: ScopeEvents,
}

impl LineTally {
    /// Lines touched per task, all structures.
    pub fn total(&self) -> f64 {
        self.lines.iter().map(Traffic::total).sum()
    }
}

/// What the runtime does for one scope of a shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeEvents {
    /// Tasks of the scope.
    pub tasks: u64,
    /// Fanin edges to a producer of the same scope (a dep-list node each: the producer is still
    /// pending when its consumer is wired).
    pub edges: u64,
    /// Ready-queue pushes (every task once).
    pub pushes: u64,
    /// Tensor-map inserts.
    pub inserts: u64,
    /// Tensor-map lookups (one per input tensor).
    pub lookups: u64,
    /// Lookups that find a live entry.
    pub hits: u64,
    /// Producer release updates after batching (one per distinct producer of a drain pass).
    pub releases: u64,
}

/// Distinct lines of the byte ranges `[start, end)` (empty ranges skipped).
fn lines_of(ranges: &[(usize, usize)]) -> f64 {
    let mut lines: Vec<usize> = Vec::new();
    for &(s, e) in ranges.iter().filter(|(s, e)| e > s) {
        for l in s / LINE..e.div_ceil(LINE) {
            if !lines.contains(&l) {
                lines.push(l);
            }
        }
    }
    lines.len() as f64
}

/// Lines one submit writes in a payload: the counts, `tensors` tensor descriptors, `fanin`
/// inline producer ids.
pub fn payload_written(tensors: usize, fanin: usize) -> f64 {
    let t0 = offset_of!(TaskPayload, tensors);
    let f0 = offset_of!(TaskPayload, fanin);
    let mut ranges = vec![(0, offset_of!(TaskPayload, fanin_spill_head) + 4), (f0, f0 + fanin * 8)];
    for i in 0..tensors {
        let t = t0 + i * size_of::<TensorDesc>();
        ranges.push((t, t + tensor_written()));
    }
    lines_of(&ranges)
}

/// Bytes of a tensor descriptor a submit writes: everything up to the first dimension (the
/// runtime's views are one-dimensional).
pub fn tensor_written() -> usize {
    offset_of!(TensorDesc, dims) + size_of::<TensorDim>()
}

/// Lines a completion reads in a payload: the fanin count and spill head, the inline fanin ids.
pub fn payload_read_at_completion(fanin: usize) -> f64 {
    let f0 = offset_of!(TaskPayload, fanin);
    lines_of(&[
        (offset_of!(TaskPayload, fanin_count), offset_of!(TaskPayload, fanin_spill_head) + 4),
        (f0, f0 + fanin * 8),
    ])
}

/// The producers (indices in the scope; `None` = the task the previous scope ended with) of each
/// task of one scope of `shape`.
pub fn scope_graph(shape: Shape) -> Vec<Vec<Option<usize>>> {
    let mut tasks: Vec<Vec<Option<usize>>> = Vec::new();
    let mut prev: Option<usize> = None;
    let groups = shape.scope_len() / shape.group_len();
    for _ in 0..groups {
        let mut add = |inputs: Vec<Option<usize>>| {
            tasks.push(inputs);
            Some(tasks.len() - 1)
        };
        prev = match shape {
            Shape::Chain => add(vec![prev]),
            Shape::Fanout32 => {
                let root = add(vec![prev]);
                for _ in 0..32 {
                    add(vec![root]);
                }
                root
            }
            Shape::Diamond => {
                let a = add(vec![prev]);
                let b = add(vec![a]);
                let c = add(vec![a]);
                add(vec![b, c])
            }
        };
    }
    tasks
}

/// The tally of one task of `shape` in `mode`, averaged over a scope.
pub fn tally(shape: Shape, mode: TensorMode) -> LineTally {
    let graph = scope_graph(shape);
    let n = graph.len();
    let mut consumers = vec![0u64; n];
    for inputs in &graph {
        for p in inputs.iter().flatten() {
            consumers[*p] += 1;
        }
    }
    let ext = mode == TensorMode::Ext;
    let mut ev = ScopeEvents { tasks: n as u64, pushes: n as u64, ..Default::default() };
    let mut sum = [Traffic::default(); 7];
    let [desc, payload, slot, dep, tmap, queue, arena] = &mut sum;
    let node = size_of::<DepListEntry>() as f64 / LINE as f64;
    let cell = size_of::<ReadyQueueCell>() as f64 / LINE as f64;
    let scope_entry = size_of::<u64>() as f64 / LINE as f64;
    let entry_lines = size_of::<TensorMapEntry>().div_ceil(LINE) as f64;
    for (i, inputs) in graph.iter().enumerate() {
        let live = inputs.iter().flatten().count();
        let outside = inputs.len() - live;
        ev.edges += live as u64;
        ev.lookups += inputs.len() as u64;
        // Orchestrator: submit.
        desc.orch_written += size_of::<TaskDescriptor>().div_ceil(LINE) as f64;
        payload.orch_written += payload_written(inputs.len() + 1, live);
        slot.orch_written += (size_of::<SlotState>().div_ceil(LINE) + live) as f64;
        dep.orch_written += live as f64 * node;
        // Each input: a bucket head, and the producer's entry when it is still live (ext).
        tmap.orch_read += inputs.len() as f64;
        if ext {
            ev.hits += live as u64;
            tmap.orch_read += live as f64 * entry_lines;
            // The insert: its entry and its bucket head.
            ev.inserts += 1;
            tmap.orch_written += entry_lines + 1.0;
        } else {
            // A creator edge to a task of an ended scope reads its slot to see it is gone.
            slot.orch_read += outside as f64;
        }
        // Flow control (task index), the ring allocators, the scope list entry.
        arena.orch_written += 2.0 + scope_entry;
        // The task is pushed by the orchestrator when nothing it waits for is pending, else by
        // the completion of its last producer; popped once.
        let push = cell + 1.0;
        if live == 0 {
            queue.orch_written += push;
        } else {
            queue.sched_written += push;
        }
        queue.sched_written += cell + 1.0;
        // Scheduler: completion walks the fanout list and counts down each consumer's fanin.
        slot.sched_written += 1.0 + consumers[i] as f64;
        dep.sched_read += consumers[i] as f64 * node;
        payload.sched_read += payload_read_at_completion(live);
        // Release: one update per distinct producer (this shape's consumers of one producer are
        // ready in the same drain pass); the scope end drops every task's scope reference.
        if consumers[i] > 0 {
            ev.releases += 1;
            slot.sched_written += 1.0;
        }
        // Reclaim: the ext task's tensor-map entry leaves its bucket; the watermark moves past it
        // (the descriptor's heap end is read for the last task of an advance).
        if ext {
            tmap.sched_written += entry_lines + 1.0;
        }
        arena.sched_read += scope_entry;
    }
    // Scope end: the scope reference of every task (its slot, again), one watermark advance per
    // drain pass: at most one per task, amortised as one per scope plus one per release.
    slot.sched_written += n as f64;
    let advances = 1 + ev.releases;
    arena.sched_written += advances as f64;
    desc.sched_read += advances as f64;
    let per_task = |t: Traffic| Traffic {
        orch_written: t.orch_written / n as f64,
        orch_read: t.orch_read / n as f64,
        sched_written: t.sched_written / n as f64,
        sched_read: t.sched_read / n as f64,
    };
    LineTally { shape, mode, lines: sum.map(per_task), events: ev }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::graph::GraphBench;
    use pto_abi::sizing::ArenaSizingKey;

    #[test]
    fn payload_lines_come_from_the_layout() {
        // The counts and the first five inline fanin ids share line 0; each tensor descriptor
        // starts on a line of its own, and a one-dimensional one is written in that line only.
        assert_eq!(offset_of!(TaskPayload, tensors) % LINE, 0);
        assert!(tensor_written() <= LINE);
        assert_eq!(payload_written(2, 1), 1.0 + 2.0);
        assert_eq!(payload_written(2, 0), 3.0);
        assert_eq!(payload_written(3, 2), 1.0 + 3.0);
        assert_eq!(payload_written(1, 6), 2.0 + 1.0, "a sixth fanin id starts line 1");
        assert_eq!(payload_read_at_completion(1), 1.0);
        assert_eq!(payload_read_at_completion(0), 1.0);
    }

    #[test]
    fn scope_events_match_the_shapes() {
        let chain = tally(Shape::Chain, TensorMode::Ext).events;
        assert_eq!((chain.tasks, chain.edges, chain.releases, chain.inserts, chain.hits), (256, 255, 255, 256, 255));
        let fan = tally(Shape::Fanout32, TensorMode::Rt).events;
        // 7 roots: 32 leaves each, and the next root.
        assert_eq!((fan.tasks, fan.edges, fan.releases, fan.inserts, fan.hits), (231, 7 * 32 + 6, 7, 0, 0));
        let dia = tally(Shape::Diamond, TensorMode::Ext).events;
        assert_eq!((dia.tasks, dia.edges, dia.releases, dia.lookups), (256, 64 * 4 + 63, 64 * 3 + 63, 64 * 5));
    }

    /// The counting run: the dep-list nodes the runtime handed out and the ready-queue pushes it
    /// made over whole scopes are the tally's events.
    #[test]
    fn the_tally_events_are_what_a_run_counts() {
        let bench = GraphBench::new(&ArenaSizingKey::uniform(1024, 1 << 20, 2048)).unwrap();
        for shape in Shape::ALL {
            for mode in TensorMode::ALL {
                let ev = tally(shape, mode).events;
                let r = bench.run(shape, mode, 0, 4 * shape.scope_len()).unwrap();
                let scopes = r.submitted / ev.tasks;
                let what = format!("{} {}", shape.name(), mode.name());
                assert_eq!(r.submitted % ev.tasks, 0, "{what}");
                assert_eq!(r.dep_nodes, scopes * ev.edges, "{what}: dep-list nodes");
                assert_eq!(r.queue_pushes, scopes * ev.pushes, "{what}: ready-queue pushes");
                if mode == TensorMode::Ext {
                    assert_eq!(ev.hits, ev.edges, "{what}: every in-scope edge is found in the tensor map");
                }
            }
        }
    }

    #[test]
    fn every_structure_is_touched_and_ext_costs_more_map_lines() {
        for shape in Shape::ALL {
            let ext = tally(shape, TensorMode::Ext);
            let rt = tally(shape, TensorMode::Rt);
            assert!(ext.lines.iter().all(|t| t.total() > 0.0), "{ext:?}");
            assert!(ext.lines[4].total() > rt.lines[4].total());
            assert!(ext.total() > 10.0 && ext.total() < 40.0, "{}", ext.total());
        }
    }
}
