//! Level-4 trace records of the orchestrator: one submit record and the dependency edges of
//! every submit, with the reason each producer was found.

use heapless::Vec;
use pto_abi::runtime::ScopeFrame;
use pto_abi::task::NO_TASK;
use pto_abi::trace::{
    EdgeRecord, SubmitRecord, EDGE_REASON_CREATOR, EDGE_REASON_EXPLICIT, EDGE_REASON_OVERLAP, TRACE_KIND_EDGE,
    TRACE_KIND_SUBMIT,
};

use super::{Arg, Orchestrator, TaskSpec};

/// Distinct producers remembered per submit to record each edge once; further ones may repeat.
const EDGE_DEDUP: usize = 128;

impl Orchestrator<'_, '_> {
    /// Records every producer edge of the task `id` being submitted, in the order the submit
    /// considers them (explicit dependencies, creators, overlapping writers), each producer once.
    /// Returns the number of edges recorded.
    pub(super) fn trace_edges(&self, id: u64, spec: &TaskSpec<'_>, frame: &ScopeFrame) -> u32 {
        let mut seen: Vec<u64, EDGE_DEDUP> = Vec::new();
        let mut n = 0u32;
        let mut edge = |p: u64, tensor: u32, reason: u32| {
            if p == NO_TASK || p == id || seen.contains(&p) || !self.rt.is_live(p) {
                return;
            }
            let _ = seen.push(p);
            n += 1;
            self.rt.trace.record(TRACE_KIND_EDGE, &EdgeRecord { producer: p, consumer: id, tensor, reason });
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

    /// Records the submit envelope of task `id`.
    pub(super) fn trace_submit(&self, id: u64, start_ns: u64, producers: u32) {
        let end_ns = self.rt.platform.now_ns();
        let rec = SubmitRecord { task_id: id, start_ns, end_ns, producers, scope_serial: 0 };
        self.rt.trace.record(TRACE_KIND_SUBMIT, &rec);
    }
}
