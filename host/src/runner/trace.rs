//! Run traces on the host: the trace configuration of a runner, the trace region staged for a
//! run, and its decoding into a [`RunTrace`] after the run.

use pto_abi::trace::{
    layout, record_size, BlockRecord, EdgeRecord, PhaseRecord, ScopeRecord, SubmitRecord, TraceHeader, MAX_TRACE_LEVEL,
    TRACE_KIND_BLOCK, TRACE_KIND_COUNT, TRACE_KIND_EDGE, TRACE_KIND_PHASE, TRACE_KIND_SCOPE, TRACE_KIND_SUBMIT,
    TRACE_MAGIC,
};
use pto_abi::DevAddr;
use zerocopy::{FromBytes, IntoBytes};

use super::DeviceRunner;

/// Names of the record kinds by `TRACE_KIND_*`, as reports print them.
pub const TRACE_KIND_NAMES: [&str; TRACE_KIND_COUNT] = ["block", "phase", "submit", "edge", "scope"];

/// What a runner's runs record: a level 0..=4 and the record capacity of each kind.
///
/// Level 0 stages nothing and the device writes nothing; 1 records each block's timing, 2 adds
/// the AICPU dispatch and finish times, 3 scheduler phases, 4 orchestrator submits, dependency
/// edges and scope stats. A kind whose capacity runs out stops recording and counts drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    /// Trace level, 0..=4.
    pub level: u32,
    /// Records per kind (`TRACE_KIND_*` order: block, phase, submit, edge, scope).
    pub capacities: [u64; TRACE_KIND_COUNT],
}

impl TraceConfig {
    /// Tracing off.
    pub const OFF: TraceConfig = TraceConfig { level: 0, capacities: [0; TRACE_KIND_COUNT] };

    /// `level` with room for 64 Ki blocks and submits, 256 Ki edges, 16 Ki phases, 4 Ki scopes.
    pub fn level(level: u32) -> Result<TraceConfig, String> {
        if level > MAX_TRACE_LEVEL {
            return Err(format!("trace level = {level}: must be in 0..={MAX_TRACE_LEVEL}"));
        }
        Ok(TraceConfig { level, capacities: [1 << 16, 1 << 14, 1 << 16, 1 << 18, 1 << 12] })
    }

    /// The same level with every capacity `n` (tests of full buffers).
    pub fn with_capacity(self, n: u64) -> TraceConfig {
        TraceConfig { capacities: [n; TRACE_KIND_COUNT], ..self }
    }

    /// The header the region of this configuration starts with (`None` at level 0).
    pub(super) fn header(&self) -> Result<Option<TraceHeader>, String> {
        if self.level == 0 {
            return Ok(None);
        }
        layout(self.level, self.capacities)
            .map(Some)
            .ok_or_else(|| format!("trace capacities {:?} overflow the region size", self.capacities))
    }
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig::OFF
    }
}

/// The trace of one run as the device recorded it (times in device-clock nanoseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunTrace {
    /// The run's trace level.
    pub level: u32,
    /// Device clock when orchestration began.
    pub epoch_ns: u64,
    /// Task blocks, in record order.
    pub blocks: Vec<BlockRecord>,
    /// Scheduler iterations.
    pub phases: Vec<PhaseRecord>,
    /// Orchestrator submits.
    pub submits: Vec<SubmitRecord>,
    /// Dependency edges.
    pub edges: Vec<EdgeRecord>,
    /// Closed scopes.
    pub scopes: Vec<ScopeRecord>,
    /// Records not written because their kind's buffer was full, by `TRACE_KIND_*`.
    pub dropped: [u64; TRACE_KIND_COUNT],
}

impl RunTrace {
    /// Total records dropped over every kind.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Decodes a trace region's bytes (untrusted: every count and offset is checked).
    pub fn decode(region: &[u8]) -> Result<RunTrace, String> {
        let (h, _) = TraceHeader::read_from_prefix(region)
            .map_err(|_| format!("trace region of {} bytes has no header", region.len()))?;
        if h.magic != TRACE_MAGIC {
            return Err(format!("trace header magic {:#x}, expected {TRACE_MAGIC:#x}", h.magic));
        }
        let mut t = RunTrace { level: h.level, epoch_ns: h.epoch_ns, ..RunTrace::default() };
        for (k, s) in h.sections.iter().enumerate() {
            let written = s.cursor.min(s.capacity);
            // Claims past the capacity that were not yet counted dropped still are lost records.
            t.dropped[k] = s.dropped.max(s.cursor - written);
            let size = record_size(k as u32);
            let bytes =
                written.checked_mul(size).ok_or_else(|| format!("trace section {k}: {written} records overflow"))?;
            let end = s.offset.checked_add(bytes).filter(|e| *e <= region.len() as u64).ok_or_else(|| {
                format!(
                    "trace section {} ({}): {written} records at offset {} exceed the region",
                    k, TRACE_KIND_NAMES[k], s.offset
                )
            })?;
            let body = &region[s.offset as usize..end as usize];
            match k as u32 {
                TRACE_KIND_BLOCK => t.blocks = records(body),
                TRACE_KIND_PHASE => t.phases = records(body),
                TRACE_KIND_SUBMIT => t.submits = records(body),
                TRACE_KIND_EDGE => t.edges = records(body),
                TRACE_KIND_SCOPE => t.scopes = records(body),
                _ => {}
            }
        }
        Ok(t)
    }
}

fn records<T: FromBytes + IntoBytes + zerocopy::Immutable + zerocopy::KnownLayout + Copy>(body: &[u8]) -> Vec<T> {
    body.chunks_exact(size_of::<T>()).filter_map(|c| T::read_from_bytes(c).ok()).collect()
}

/// A trace region staged for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StagedTrace {
    /// Region base.
    pub base: DevAddr,
    /// Region bytes.
    pub bytes: u64,
    /// The run's level.
    pub level: u32,
}

impl DeviceRunner {
    /// Sets what this runner's later runs record ([`TraceConfig::OFF`] by default); each traced
    /// run's report carries its [`RunTrace`].
    pub fn set_trace(&mut self, config: TraceConfig) {
        self.trace = config;
    }

    /// The trace configuration of this runner's runs.
    pub fn trace_config(&self) -> TraceConfig {
        self.trace
    }
}
