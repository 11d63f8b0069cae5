//! Level-4 trace records of the orchestrator: one submit record and the dependency edges of
//! every submit, with the reason each producer was found, and one record per closed scope with
//! the peaks its ring reached while the scope submitted.

use heapless::Vec;
use pto_abi::consts::MAX_SCOPE_DEPTH;
use pto_abi::runtime::ScopeFrame;
use pto_abi::task::NO_TASK;
use pto_abi::trace::{
    EdgeRecord, ScopeRecord, SubmitRecord, EDGE_FLAG_RETIRED, EDGE_REASON_CREATOR, EDGE_REASON_EXPLICIT,
    EDGE_REASON_OVERLAP, TRACE_KIND_EDGE, TRACE_KIND_SCOPE, TRACE_KIND_SUBMIT,
};

use super::{Arg, Orchestrator, TaskSpec};

/// What one open scope's submits saw of their ring (level 4).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ScopeStats {
    /// Tasks submitted directly in the scope (not in scopes nested inside it).
    tasks: u64,
    /// Peak tasks allocated and not yet consumed on the ring, seen after a submit.
    peak_fill: u64,
    /// Peak heap bytes in use on the ring (allocated and not yet freed).
    peak_heap: u64,
    /// Peak dep-pool entries in use on the ring.
    peak_pool: u64,
}

/// The scope statistics of every open depth.
pub(super) type ScopeStatsStack = [ScopeStats; MAX_SCOPE_DEPTH];

/// Distinct producers remembered per submit to record each edge once; further ones may repeat.
const EDGE_DEDUP: usize = 128;

impl Orchestrator<'_, '_> {
    /// Records every producer edge of the task `id` being submitted, in the order the submit
    /// considers them (explicit dependencies, creators, overlapping writers), each producer once:
    /// the complete dependency graph of the submit. A producer that already retired (no longer
    /// live, so nothing is wired for it) is recorded too, flagged [`EDGE_FLAG_RETIRED`].
    /// Returns the number of edges recorded.
    pub(super) fn trace_edges(&self, id: u64, spec: &TaskSpec<'_>, frame: &ScopeFrame) -> u32 {
        let mut seen: Vec<u64, EDGE_DEDUP> = Vec::new();
        let mut n = 0u32;
        let mut edge = |p: u64, tensor: u32, reason: u32| {
            if p == NO_TASK || p == id || seen.contains(&p) {
                return;
            }
            let _ = seen.push(p);
            n += 1;
            let flags = if self.rt.is_live(p) { 0 } else { EDGE_FLAG_RETIRED };
            let rec = EdgeRecord { producer: p, consumer: id, tensor, reason, flags, _pad: [0; 4] };
            self.rt.trace.record(TRACE_KIND_EDGE, &rec);
        };
        for d in spec.deps {
            edge(d.0, u32::MAX, EDGE_REASON_EXPLICIT);
        }
        for (i, a) in spec.args.iter().enumerate() {
            let (t, lookup) = match a {
                Arg::Input(t) | Arg::InOut(t) => (t, true),
                Arg::OutputExisting(t) | Arg::NoDep(t) => (t, false),
                Arg::Output(_) => continue,
            };
            if self.manual_local(frame, t) {
                continue;
            }
            edge(t.creator.0, i as u32, EDGE_REASON_CREATOR);
            if lookup {
                self.tensor_map
                    .lookup(t.buffer.0, t.offset, t.offset + t.bytes, |p| edge(p, i as u32, EDGE_REASON_OVERLAP));
            }
        }
        n
    }

    /// Records the submit envelope of task `id` and folds what its ring holds now into the
    /// current scope's peaks.
    pub(super) fn trace_submit(&mut self, id: u64, start_ns: u64, producers: u32) {
        let end_ns = self.rt.platform.now_ns();
        let ring = self.current_ring();
        let o = &self.rings[ring];
        let fill = o.current.saturating_sub(self.rt.last_alive(ring));
        let heap = o.heap.head.saturating_sub(self.heap_tail(ring).max(o.heap.floor)).min(o.heap.size);
        let pool = (o.pool.capacity as u64).saturating_sub(o.pool.free(self.dep_tail(ring)));
        let st = &mut self.scope_stats[(self.depth as usize).min(MAX_SCOPE_DEPTH - 1)];
        st.tasks += 1;
        st.peak_fill = st.peak_fill.max(fill);
        st.peak_heap = st.peak_heap.max(heap);
        st.peak_pool = st.peak_pool.max(pool);
        // SAFETY: the frame at the current depth was written by `push_frame`.
        let scope_serial = unsafe { (*self.frame(self.depth)).serial };
        let rec = SubmitRecord { task_id: id, start_ns, end_ns, producers, scope_serial };
        self.rt.trace.record(TRACE_KIND_SUBMIT, &rec);
    }
}

impl Orchestrator<'_, '_> {
    /// Starts the statistics of the scope opening at `depth`.
    pub(super) fn trace_scope_begin(&mut self, depth: u32) {
        self.scope_stats[(depth as usize).min(MAX_SCOPE_DEPTH - 1)] = ScopeStats::default();
    }

    /// Records the scope closing at the current depth, and folds its peaks into the enclosing
    /// scope when both place their tasks in the same ring.
    pub(super) fn trace_scope_end(&mut self) {
        let d = (self.depth as usize).min(MAX_SCOPE_DEPTH - 1);
        // SAFETY: the frame at the current depth was written by `push_frame`.
        let frame = unsafe { *self.frame(self.depth) };
        let ring = frame.ring as usize % pto_abi::consts::RING_COUNT;
        let st = self.scope_stats[d];
        let o = &self.rings[ring];
        let rec = ScopeRecord {
            serial: frame.serial,
            ring: ring as u32,
            tasks: st.tasks,
            peak_ring_fill: st.peak_fill,
            ring_window: o.window,
            peak_heap: st.peak_heap,
            heap_size: o.heap.size,
            peak_dep_pool: st.peak_pool,
            dep_pool_capacity: o.pool.capacity as u64,
        };
        self.rt.trace.record(TRACE_KIND_SCOPE, &rec);
        if d > 0 && super::ring_at(d - 1) == ring {
            let parent = &mut self.scope_stats[d - 1];
            parent.peak_fill = parent.peak_fill.max(st.peak_fill);
            parent.peak_heap = parent.peak_heap.max(st.peak_heap);
            parent.peak_pool = parent.peak_pool.max(st.peak_pool);
        }
    }
}
