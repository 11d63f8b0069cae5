//! A run's staged tensors: staging them (one device buffer per tensor argument, plus the
//! `OrchArg` records) and releasing them afterwards.
//!
//! Release depends on what the device may still do. When every launch of the run ended (or was
//! never started), each buffer is freed; a buffer whose free fails stays allocated and counted in
//! the runner's committed bytes, and the next run retries it ([`DeviceRunner::deferred_frees`]).
//! When a wait failed and no abort confirmed the device idle, or after a device fault, the buffers
//! are *abandoned*: forgotten without a free, because the device may still read or write them,
//! and the run's error says so ([`RunError::Abandoned`]).

use pto_abi::launch::{OrchArg, ORCH_ARG_SCALAR, ORCH_ARG_TENSOR};
use pto_abi::trace::{record_size, TraceHeader};
use pto_abi::DevAddr;
use zerocopy::IntoBytes;

use crate::backend::DeviceIo;

use super::request::{RunArg, RunError, RunReport, RunShape};
use super::trace::{RunTrace, StagedTrace, TRACE_KIND_NAMES};
use super::DeviceRunner;

/// Device buffers staged for one run.
pub(super) struct Staged {
    /// Per argument: the buffer and its size (tensors only).
    pub buffers: Vec<Option<(DevAddr, u64)>>,
    /// The `OrchArg` records.
    pub records: Option<DevAddr>,
    /// The run's trace region (traced runs only).
    pub trace: Option<super::trace::StagedTrace>,
}

impl Staged {
    fn addrs(&self) -> impl Iterator<Item = DevAddr> + '_ {
        self.buffers.iter().flatten().map(|&(a, _)| a).chain(self.records).chain(self.trace.map(|t| t.base))
    }
}

impl DeviceRunner {
    /// Stages `req`'s tensors and argument records; on failure nothing stays allocated.
    pub(super) fn stage(&mut self, req: &RunShape<'_>) -> Result<Staged, RunError> {
        let mut staged = Staged { buffers: Vec::with_capacity(req.args.len()), records: None, trace: None };
        match self.stage_into(req, &mut staged) {
            Ok(()) => Ok(staged),
            Err(e) => {
                // Nothing was launched: the device never saw these buffers.
                self.free_staged(&staged);
                Err(e)
            }
        }
    }

    fn stage_into(&mut self, req: &RunShape<'_>, staged: &mut Staged) -> Result<(), RunError> {
        let mut records = Vec::with_capacity(req.args.len());
        for a in req.args {
            let (bytes, dtype, data) = match a {
                RunArg::Input { data, dtype } | RunArg::InOut { data, dtype } => {
                    (data.len() as u64, *dtype, Some(data))
                }
                RunArg::Output { bytes, dtype } => (*bytes, *dtype, None),
                RunArg::Scalar(v) => {
                    staged.buffers.push(None);
                    records.push(OrchArg { value: *v, bytes: 0, kind: ORCH_ARG_SCALAR, dtype: 0 });
                    continue;
                }
            };
            let addr = self.alloc(bytes)?;
            staged.buffers.push(Some((addr, bytes)));
            let r = match data {
                Some(d) => self.backend().copy_to_device(addr, d),
                None => self.backend().memset(addr, 0, bytes),
            };
            self.note(r)?;
            records.push(OrchArg { value: addr.get(), bytes, kind: ORCH_ARG_TENSOR, dtype: dtype as u32 });
        }
        if !records.is_empty() {
            let bytes = records.as_slice().as_bytes();
            let addr = self.alloc(bytes.len() as u64)?;
            staged.records = Some(addr);
            let r = self.backend().copy_to_device(addr, bytes);
            self.note(r)?;
        }
        staged.trace = self.stage_trace()?;
        Ok(())
    }

    /// Releases `staged` after a run whose outcome is `result`: frees the buffers when the device
    /// is `idle` (deferring a failed free to the next run), abandons them otherwise.
    pub(super) fn release_staged(
        &mut self,
        staged: Staged,
        idle: bool,
        result: Result<RunReport, RunError>,
    ) -> Result<RunReport, RunError> {
        if idle && !self.faulted {
            self.free_staged(&staged);
            return result;
        }
        let (mut buffers, mut bytes) = (0, 0);
        for addr in staged.addrs() {
            if let Some(b) = self.alloc.abandon_block(addr) {
                buffers += 1;
                bytes += b;
            }
        }
        match result {
            Err(error) if buffers > 0 => Err(RunError::Abandoned { error: Box::new(error), buffers, bytes }),
            other => other,
        }
    }

    /// Frees every buffer of `staged`; a failed free is deferred to the next run.
    fn free_staged(&mut self, staged: &Staged) {
        for addr in staged.addrs() {
            if self.free(addr).is_err() {
                self.deferred_frees.push(addr);
            }
        }
    }

    /// Retries the frees that failed after earlier runs; a block that still cannot be freed stays
    /// deferred.
    pub(super) fn retry_deferred_frees(&mut self) {
        let pending = std::mem::take(&mut self.deferred_frees);
        for addr in pending {
            if self.free(addr).is_err() {
                self.deferred_frees.push(addr);
            }
        }
    }
}

impl DeviceRunner {
    /// Allocates and writes the trace region of a run (nothing at level 0).
    pub(super) fn stage_trace(&mut self) -> Result<Option<StagedTrace>, RunError> {
        let Some(h) = self.trace.header().map_err(RunError::Request)? else { return Ok(None) };
        let base = self.alloc(h.region_bytes)?;
        let staged = StagedTrace { base, bytes: h.region_bytes, level: h.level };
        let r = self.backend().copy_to_device(base, h.as_bytes());
        if let Err(e) = self.note(r) {
            let _ = self.free(base);
            return Err(e.into());
        }
        Ok(Some(staged))
    }

    /// Reads back and decodes a run's trace region.
    pub(super) fn read_trace(&mut self, t: &StagedTrace) -> Result<RunTrace, RunError> {
        // The header first, then only the records each section holds (the rest was never written).
        let r = self.backend().read_obj::<TraceHeader>(t.base);
        let h = self.note(r)?;
        let mut region = vec![0u8; t.bytes as usize];
        region[..size_of::<TraceHeader>()].copy_from_slice(h.as_bytes());
        for (k, s) in h.sections.iter().enumerate() {
            let used = s.cursor.min(s.capacity).saturating_mul(record_size(k as u32));
            let Some(end) = s.offset.checked_add(used).filter(|e| *e <= t.bytes) else {
                return Err(RunError::Trace(format!("section {} ends past the region", TRACE_KIND_NAMES[k])));
            };
            if used > 0 {
                let r = self
                    .backend()
                    .read_bytes(DevAddr(t.base.get() + s.offset), &mut region[s.offset as usize..end as usize]);
                self.note(r)?;
            }
        }
        RunTrace::decode(&region).map_err(RunError::Trace)
    }
}
