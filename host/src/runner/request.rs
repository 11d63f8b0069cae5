//! What a run takes and gives back.

use std::time::Duration;

use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_device::orch::OrchestrationFn;
use pto_device::runtime::Budgets;

use super::failure::DeviceFailure;
use super::kernels::LaunchError;
use super::RunnerError;
use crate::backend::{CodeError, CodeRef, KernelFn, RunCode};

/// One argument of a run.
#[derive(Clone, Debug, PartialEq)]
pub enum RunArg {
    /// Host bytes copied to a device buffer before the run; not read back.
    Input {
        /// The contents.
        data: Vec<u8>,
        /// Element type.
        dtype: DType,
    },
    /// A zeroed device buffer read back after the run.
    Output {
        /// Bytes of the buffer.
        bytes: u64,
        /// Element type.
        dtype: DType,
    },
    /// Host bytes copied in before the run and read back after it.
    InOut {
        /// The contents.
        data: Vec<u8>,
        /// Element type.
        dtype: DType,
    },
    /// A 64-bit scalar word.
    Scalar(u64),
}

impl RunArg {
    /// An f32 input tensor.
    pub fn input_f32(values: &[f32]) -> RunArg {
        RunArg::Input { data: bytemuck_f32(values), dtype: DType::F32 }
    }

    /// An f32 output tensor of `len` elements.
    pub fn output_f32(len: usize) -> RunArg {
        RunArg::Output { bytes: (len * 4) as u64, dtype: DType::F32 }
    }
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes read back from a run.
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// How the device runs the task graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// AICPU threads (the last orchestrates, the others schedule) and AICore worker threads.
    Threaded {
        /// AICPU threads, 2..=4.
        threads: u32,
        /// AICore clusters (3 cores each), 1..=24.
        clusters: u32,
    },
    /// One AICPU thread orchestrates and drives virtual cores itself.
    Deterministic {
        /// Virtual cores complete tasks without running kernels (scheduling-cost runs).
        noop_cores: bool,
    },
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunRequest<'a> {
    /// The orchestration.
    pub orchestration: OrchestrationFn,
    /// Kernels by func id (host functions: only a backend that runs device code in the host
    /// process, the simulated device, can run them; other backends run registered callables).
    pub kernels: &'a [KernelFn],
    /// Run arguments; tensors are staged to the device in order.
    pub args: &'a [RunArg],
    /// Arena sizing.
    pub sizing: ArenaSizingKey,
    /// Threaded or deterministic.
    pub mode: RunMode,
    /// No-progress budgets.
    pub budgets: Budgets,
}

impl<'a> RunRequest<'a> {
    /// The request's code: its orchestration and kernel `i` as func id `i`, all host functions.
    pub fn code(&self) -> RunCode<'a> {
        RunCode {
            orchestration: CodeRef::Host(self.orchestration),
            kernels: self.kernels.iter().enumerate().map(|(id, &f)| (id as u32, CodeRef::Host(f))).collect(),
        }
    }

    pub(super) fn shape(&self) -> RunShape<'a> {
        RunShape { args: self.args, sizing: self.sizing, mode: self.mode, budgets: self.budgets }
    }
}

/// Everything of a run besides its code.
#[derive(Clone, Copy, Debug)]
pub(super) struct RunShape<'a> {
    pub args: &'a [RunArg],
    pub sizing: ArenaSizingKey,
    pub mode: RunMode,
    pub budgets: Budgets,
}

/// What a successful run reports.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// Per argument: the bytes read back for `Output` and `InOut`, else `None`.
    pub outputs: Vec<Option<Vec<u8>>>,
    /// Tasks the orchestration submitted.
    pub tasks_submitted: u64,
    /// Tasks completed.
    pub tasks_completed: u64,
    /// Time to bind the sizing (build/upload on a miss, nothing on a hit).
    pub bind_time: Duration,
    /// True when the resident image served the bind.
    pub bind_cache_hit: bool,
    /// Time from the AICPU launch (the AICore kernel is already launched) until the AICPU kernel
    /// ended: boot, the whole graph, and the schedulers shutting their cores down.
    pub run_time: Duration,
    /// The run's trace, when the runner traces ([`DeviceRunner::set_trace`](super::DeviceRunner::set_trace)).
    pub trace: Option<Box<super::trace::RunTrace>>,
}

impl RunReport {
    /// Run time per completed task.
    pub fn per_task(&self) -> Duration {
        self.run_time.checked_div(self.tasks_completed.max(1) as u32).unwrap_or_default()
    }

    /// Output `i` decoded as f32s (empty when argument `i` has no output).
    pub fn output_f32(&self, i: usize) -> Vec<f32> {
        self.outputs.get(i).and_then(|o| o.as_deref()).map(f32s).unwrap_or_default()
    }
}

/// A failed run. The runner stays usable after every variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The request itself is wrong.
    #[error("invalid run request: {0}")]
    Request(String),
    /// Binding, staging or launching failed on the host side.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// The backend could not make the run's code resolvable on the device.
    #[error("cannot load the run's code: {0}")]
    Code(#[from] CodeError),
    /// Registering or launching a kernel failed (nothing of the run is left running).
    #[error("launch: {0}")]
    Launch(#[from] LaunchError),
    /// The device reported an error code.
    #[error("{0}")]
    Device(Box<DeviceFailure>),
    /// Kernels faulted (unknown kernel address or a failing kernel); the graph still drained.
    #[error("{faults} kernel block(s) faulted, first in task {first_task:#x}")]
    KernelFaults {
        /// Faulted blocks.
        faults: u64,
        /// Task of the first faulted block.
        first_task: u64,
    },
    /// The run's trace region came back malformed (the device wrote a header it was not given).
    #[error("trace: {0}")]
    Trace(String),
    /// Device threads did not finish (the host gave up waiting).
    #[error("device threads did not finish: {0}")]
    Stuck(String),
    /// The run failed with `error` while the device may still touch its staged tensors: they
    /// were abandoned (forgotten without a free, never reused), not freed.
    #[error("{error}; {buffers} staged buffer(s) ({bytes} bytes) abandoned: the device may still touch them")]
    Abandoned {
        /// Why the run failed.
        error: Box<RunError>,
        /// Buffers abandoned.
        buffers: usize,
        /// Their bytes, as the runner accounted them.
        bytes: u64,
    },
}
