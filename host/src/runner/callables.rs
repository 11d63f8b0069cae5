//! Callables on a runner: register and unregister by callable id, the counters tests read, and
//! running a registered callable.
//!
//! Uploads allocate through the runner's tracking allocator, so a callable's device copy counts in
//! the runner's committed bytes and is released at finalize.

use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::TensorDirection;
use pto_device::runtime::Budgets;

use super::request::{RunArg, RunError, RunMode, RunReport, RunShape};
use super::DeviceRunner;
use crate::callable::{
    check_args_against_signature, BindError, ChipCallable, PreparedCallableArtifacts, RegistryError, UploadError,
};

/// Counters of a runner's callable work that tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallableCounters {
    /// Blobs uploaded (device copies created).
    pub uploads: u64,
    /// Registrations served by a resident identical blob.
    pub dedup_hits: u64,
    /// Device copies freed.
    pub frees: u64,
    /// AICore program registrations (one per runner once one succeeds).
    pub aicore_registrations: u64,
    /// Orchestrations registered with the device (one per device copy).
    pub orchestration_registrations: u64,
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
fn run_arg_direction(arg: &RunArg) -> TensorDirection {
    match arg {
        RunArg::Input { .. } => TensorDirection::Input,
        RunArg::Output { .. } => TensorDirection::OutputExisting,
        RunArg::InOut { .. } => TensorDirection::InOut,
        RunArg::Scalar(_) => TensorDirection::NoDep,
    }
}

/// True when `e` reports a device fault (the runner must then abandon its memory).
fn registry_fault(e: &RegistryError) -> bool {
    match e {
        RegistryError::Upload { source: UploadError::Backend { source, .. }, .. } => source.is_device_fault(),
        RegistryError::Free { source, .. } => source.is_device_fault(),
        _ => false,
    }
}

impl DeviceRunner {
    /// Registers `blob` as `cid` (0..64): the backend checks that it can resolve every name the
    /// blob carries, then the blob is uploaded unless an identical blob is resident on this
    /// runner; returns its artifacts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use pto_host::examples::{define_vector_symbols, vector_example_callable};
    /// use pto_host::sim::SimBackend;
    /// use pto_host::{DeviceBackend, DeviceRunner, RegistryError};
    ///
    /// let sim = Arc::new(SimBackend::with_capacity(64 << 20)?);
    /// let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    /// let blob = vector_example_callable()?;
    /// // The device does not know the example's names yet: nothing is uploaded.
    /// assert!(matches!(runner.register_callable(0, &blob), Err(RegistryError::Code { cid: 0, .. })));
    /// define_vector_symbols(&mut sim.symbols())?;
    /// let a = runner.register_callable(0, &blob)?;
    /// let b = runner.register_callable(1, &blob)?;
    /// assert_eq!(a.device_base, b.device_base, "identical blobs share one device copy");
    /// assert_eq!(a.func_table()?.len(), 3);
    /// assert_eq!(runner.callable_counters().uploads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_callable(
        &mut self,
        cid: u32,
        blob: &ChipCallable,
    ) -> Result<PreparedCallableArtifacts, RegistryError> {
        let r = self.registry.register_callable(&mut self.alloc, cid, blob);
        if let Err(e) = &r {
            self.faulted |= registry_fault(e);
        }
        r
    }

    /// Unregisters `cid`; its device copy is freed when no other cid uses it.
    pub fn unregister_callable(&mut self, cid: u32) -> Result<(), RegistryError> {
        let r = self.registry.unregister_callable(&mut self.alloc, cid);
        if let Err(e) = &r {
            self.faulted |= registry_fault(e);
        }
        r
    }

    /// The artifacts of `cid`, if registered.
    pub fn callable(&self, cid: u32) -> Option<&PreparedCallableArtifacts> {
        self.registry.artifacts(cid)
    }

    /// Uploads, dedup hits, frees, AICore and orchestration registrations so far.
    pub fn callable_counters(&self) -> CallableCounters {
        let r = self.registry.counters();
        CallableCounters {
            uploads: r.uploads,
            dedup_hits: r.dedup_hits,
            frees: r.frees,
            aicore_registrations: self.launcher.counters().aicore_registrations,
            orchestration_registrations: r.orchestration_registrations,
        }
    }

    /// Runs the callable registered as `cid`: checks `args` against its signature (count and
    /// direction), then runs with the launch descriptor's func-id table holding exactly this
    /// callable's child code addresses (the launch block is rewritten from zero, so no entry of an
    /// earlier run survives) and its orchestration. Like every run it launches through the
    /// backend: the AICore program is registered on this runner's first threaded run only, the
    /// AICPU program on its first run.
    pub fn run_callable(
        &mut self,
        cid: u32,
        args: &[RunArg],
        config: &CallableRunConfig,
    ) -> Result<RunReport, CallableRunError> {
        let artifacts = self.registry.artifacts(cid).ok_or(CallableRunError::NotRegistered { cid })?;
        let directions: Vec<TensorDirection> = args.iter().map(run_arg_direction).collect();
        check_args_against_signature(cid, &artifacts.signature, &directions)?;
        // The artifacts are cloned so the run can borrow the runner mutably.
        let artifacts = artifacts.clone();
        let shape = RunShape { args, sizing: config.sizing, mode: config.mode, budgets: config.budgets };
        Ok(self.run_code(&shape, &artifacts.code())?)
    }
}
