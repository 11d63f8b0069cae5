//! Callables on a `DeviceRunner`: register and unregister by cid, the counters tests read, and
//! the AICore launch with its binary registered once per runner.
//!
//! The runner holds one [`RunnerCallables`] (symbols, cid registry, launcher); uploads allocate
//! through the runner's tracking allocator, so a callable's device copy counts in the runner's
//! committed bytes and is released at finalize.

use std::sync::Arc;

use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::TensorDirection;
use pto_abi::DevAddr;
use pto_device::orch::OrchestrationFn;
use pto_device::runtime::Budgets;

use super::bind::{check_args_against_signature, BindError};
use super::blob::ChipCallable;
use super::launch::{KernelLauncher, LaunchError, LaunchShape};
use super::registry::{PreparedCallableArtifacts, RegistryError};
use super::runner_callables::{CallableCounters, RunnerCallables};
use super::symbols::Symbols;
use super::upload::UploadError;
use crate::backend::{BackendError, SimBackend};
use crate::run::{RunArg, RunCode, RunError, RunMode, RunReport, RunRequest};
use crate::runner::{DeviceRunner, TrackingAllocator};

/// Name of the AICore kernel binary a runner launches (on the simulated device: the built-in
/// AICore entry).
pub const AICORE_KERNEL_BINARY: &str = crate::backend::sim::SIM_AICORE_ENTRY;
/// Name of the AICPU kernel binary a runner launches (on the simulated device: the built-in AICPU
/// entry).
pub const AICPU_KERNEL_BINARY: &str = crate::backend::sim::SIM_AICPU_ENTRY;

/// The callables state of a runner: orchestrations are `pto_device` orchestration functions.
pub type RunnerCallableState = RunnerCallables<OrchestrationFn>;

/// Artifacts of a callable registered on a runner.
pub type RunnerArtifacts = PreparedCallableArtifacts<OrchestrationFn>;

/// A fresh callables state for a new runner: empty symbol tables, nothing registered.
pub fn new_runner_callables() -> RunnerCallableState {
    RunnerCallables::new(Symbols::default(), AICORE_KERNEL_BINARY.into(), AICPU_KERNEL_BINARY.into())
}

/// What `runner_ext` borrows from a runner at once: its callables, its allocator, its fault flag.
pub struct CallableParts<'a> {
    /// The callables state.
    pub callables: &'a mut RunnerCallableState,
    /// The tracking allocator uploads go through.
    pub alloc: &'a mut TrackingAllocator,
    /// Set when a backend call reports a device fault (finalize then abandons instead of freeing).
    pub faulted: &'a mut bool,
}

/// A failed kernel launch on a runner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelLaunchError {
    /// No launch block has been written yet (`prepare_launch` comes first).
    #[error("no launch block: prepare the launch before launching kernels")]
    NoLaunchBlock,
    /// The backend refused a step.
    #[error(transparent)]
    Launch(#[from] LaunchError),
}

/// How a registered callable runs: everything of a run besides the callable and its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallableRunConfig {
    /// Arena sizing.
    pub sizing: ArenaSizingKey,
    /// Threaded or deterministic.
    pub mode: RunMode,
    /// No-progress budgets.
    pub budgets: Budgets,
}

/// A failed run of a registered callable. The runner stays usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallableRunError {
    /// The cid holds no callable.
    #[error("callable id {cid} is not registered")]
    NotRegistered {
        /// The cid.
        cid: u32,
    },
    /// The arguments do not fit the callable's signature (nothing was staged or launched).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The run itself failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The direction a run argument has in a chip signature: the run stages `Output` as an existing
/// zeroed buffer the graph writes (`OutputExisting`), and a scalar carries no dependency (`NoDep`).
pub fn run_arg_direction(arg: &RunArg) -> TensorDirection {
    match arg {
        RunArg::Input { .. } => TensorDirection::Input,
        RunArg::Output { .. } => TensorDirection::OutputExisting,
        RunArg::InOut { .. } => TensorDirection::InOut,
        RunArg::Scalar(_) => TensorDirection::NoDep,
    }
}

fn is_device_fault(e: &BackendError) -> bool {
    matches!(e, BackendError::DeviceFault { .. })
}

fn registry_fault(e: &RegistryError) -> bool {
    match e {
        RegistryError::Upload { source: UploadError::Backend { source, .. }, .. } => is_device_fault(source),
        RegistryError::Free { source, .. } => is_device_fault(source),
        _ => false,
    }
}

impl DeviceRunner {
    /// The symbol tables callables are resolved against (define kernels and orchestrations here
    /// before registering blobs that name them).
    pub fn callable_symbols_mut(&mut self) -> &mut Symbols<OrchestrationFn> {
        &mut self.callable_parts().callables.symbols
    }

    /// Registers `blob` as `cid` (0..64): resolves its names, uploads it unless an identical blob
    /// is resident on this runner, and returns its artifacts.
    pub fn register_callable(&mut self, cid: u32, blob: &ChipCallable) -> Result<RunnerArtifacts, RegistryError> {
        let parts = self.callable_parts();
        let r = parts.callables.register_callable(parts.alloc, cid, blob);
        if let Err(e) = &r {
            *parts.faulted |= registry_fault(e);
        }
        r
    }

    /// Unregisters `cid`; its device copy is freed when no other cid uses it.
    pub fn unregister_callable(&mut self, cid: u32) -> Result<(), RegistryError> {
        let parts = self.callable_parts();
        let r = parts.callables.unregister_callable(parts.alloc, cid);
        if let Err(e) = &r {
            *parts.faulted |= registry_fault(e);
        }
        r
    }

    /// The artifacts of `cid`, if registered.
    pub fn callable(&self, cid: u32) -> Option<&RunnerArtifacts> {
        self.callables().registry().artifacts(cid)
    }

    /// Uploads, dedup hits, frees, AICore and orchestration registrations so far.
    pub fn callable_counters(&self) -> CallableCounters {
        self.callables().counters()
    }

    /// The kernel launcher (cached handles, launch counters).
    pub fn kernel_launcher(&self) -> &KernelLauncher {
        self.callables().launcher()
    }

    /// Launches the AICore kernel with the `KernelArgs` copy in this runner's launch block,
    /// registering the AICore binary on the first launch only (the handle is kept for the runner's
    /// lifetime). Call after [`DeviceRunner::prepare_launch`] wrote the launch block, and before
    /// the AICPU launch. Returns the `KernelArgs` address the kernel received.
    pub fn launch_aicore_kernel(&mut self, shape: LaunchShape) -> Result<DevAddr, KernelLaunchError> {
        let args = self.launch_block().ok_or(KernelLaunchError::NoLaunchBlock)?.kernel_args();
        let backend = self.backend().clone();
        let parts = self.callable_parts();
        parts.callables.launcher_mut().launch_aicore_kernel(backend.as_ref(), shape, args).map_err(|e| {
            *parts.faulted |= is_device_fault(&e.source);
            KernelLaunchError::Launch(e)
        })?;
        Ok(args)
    }

    /// Launches the AICPU kernel with the `KernelArgs` copy in this runner's launch block,
    /// registering the AICPU binary on the first launch only. Call after the AICore launch (the
    /// AICPU threads drive cores that must already be running). Returns the `KernelArgs` address.
    pub fn launch_aicpu_kernel(&mut self, shape: LaunchShape) -> Result<DevAddr, KernelLaunchError> {
        let args = self.launch_block().ok_or(KernelLaunchError::NoLaunchBlock)?.kernel_args();
        let backend = self.backend().clone();
        let parts = self.callable_parts();
        parts.callables.launcher_mut().launch_aicpu_kernel(backend.as_ref(), shape, args).map_err(|e| {
            *parts.faulted |= is_device_fault(&e.source);
            KernelLaunchError::Launch(e)
        })?;
        Ok(args)
    }

    /// Runs the callable registered as `cid` on the simulated device `sim` (this runner's
    /// backend): checks `args` against its signature (count and direction), then runs with the
    /// launch descriptor's func-id table holding exactly this callable's child code addresses
    /// (the launch block is rewritten from zero, so no entry of an earlier run survives) and its
    /// orchestration. Like every run it launches through the backend: the AICore binary is
    /// registered on this runner's first threaded run only, the AICPU binary on its first run.
    pub fn run_callable(
        &mut self,
        sim: &Arc<SimBackend>,
        cid: u32,
        args: &[RunArg],
        config: &CallableRunConfig,
    ) -> Result<RunReport, CallableRunError> {
        let artifacts = self.callable(cid).ok_or(CallableRunError::NotRegistered { cid })?;
        let directions: Vec<TensorDirection> = args.iter().map(run_arg_direction).collect();
        check_args_against_signature(cid, &artifacts.signature, &directions)?;
        let code = RunCode {
            orchestration: artifacts.orchestration,
            orchestration_addr: artifacts.orchestration_addr,
            func_table: artifacts.func_table(),
            kernels: artifacts.sim_kernel_table(),
        };
        let req = RunRequest {
            orchestration: artifacts.orchestration,
            kernels: &[],
            args,
            sizing: config.sizing,
            mode: config.mode,
            budgets: config.budgets,
        };
        Ok(self.run_code(sim, &req, code)?)
    }
}
