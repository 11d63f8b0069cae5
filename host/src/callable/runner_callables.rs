//! Everything callable-related a runner owns, in one value: the symbol tables it resolves names
//! against, the cid registry over deduplicated device copies, and the kernel launcher with its
//! cached binary handles. `DeviceRunner` holds one of these and forwards to it.

use pto_abi::launch::LaunchDescriptor;
use pto_abi::task::TensorDirection;
use pto_abi::DevAddr;

use super::bind::{check_args_against_signature, BindError};
use super::blob::ChipCallable;
use super::launch::{KernelLauncher, LaunchError, LaunchShape};
use super::memory::DeviceMemory;
use super::registry::{CallableRegistry, PreparedCallableArtifacts, RegistryError};
use super::symbols::Symbols;
use crate::backend::DeviceBackend;

/// Counters of a runner's callable work that tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallableCounters {
    /// Blobs uploaded (device copies created).
    pub uploads: u64,
    /// Registrations served by a resident identical blob.
    pub dedup_hits: u64,
    /// Device copies freed.
    pub frees: u64,
    /// AICore binary registrations (one per runner once one succeeds).
    pub aicore_registrations: u64,
    /// Orchestrations registered with the device (one per device copy).
    pub orchestration_registrations: u64,
}

/// Why a callable could not be bound to a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareRunError {
    /// The cid holds no callable.
    #[error("callable id {cid} is not registered")]
    NotRegistered {
        /// The cid.
        cid: u32,
    },
    /// The run's arguments do not fit the signature, or the func table cannot take the children.
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// A runner's callables: symbols, registry, launcher.
#[derive(Debug)]
pub struct RunnerCallables<O> {
    /// Names the simulated device resolves kernels and orchestrations against.
    pub symbols: Symbols<O>,
    registry: CallableRegistry<O>,
    launcher: KernelLauncher,
}

impl<O: Copy> RunnerCallables<O> {
    /// Callables of a runner launching `aicore_binary` and `aicpu_binary`; nothing is registered
    /// with the device yet.
    pub fn new(symbols: Symbols<O>, aicore_binary: Vec<u8>, aicpu_binary: Vec<u8>) -> Self {
        RunnerCallables {
            symbols,
            registry: CallableRegistry::new(),
            launcher: KernelLauncher::new(aicore_binary, aicpu_binary),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> CallableCounters {
        let r = self.registry.counters();
        CallableCounters {
            uploads: r.uploads,
            dedup_hits: r.dedup_hits,
            frees: r.frees,
            aicore_registrations: self.launcher.counters().aicore_registrations,
            orchestration_registrations: r.orchestration_registrations,
        }
    }

    /// The registry (read-only).
    pub fn registry(&self) -> &CallableRegistry<O> {
        &self.registry
    }

    /// The launcher (read-only).
    pub fn launcher(&self) -> &KernelLauncher {
        &self.launcher
    }

    /// The launcher, to launch and wait.
    pub fn launcher_mut(&mut self) -> &mut KernelLauncher {
        &mut self.launcher
    }

    /// Registers `blob` as `cid` (see [`CallableRegistry::register_callable`]).
    pub fn register_callable(
        &mut self,
        mem: &mut dyn DeviceMemory,
        cid: u32,
        blob: &ChipCallable,
    ) -> Result<PreparedCallableArtifacts<O>, RegistryError> {
        self.registry.register_callable(mem, &self.symbols, cid, blob)
    }

    /// Unregisters `cid` (see [`CallableRegistry::unregister_callable`]).
    pub fn unregister_callable(&mut self, mem: &mut dyn DeviceMemory, cid: u32) -> Result<(), RegistryError> {
        self.registry.unregister_callable(mem, cid)
    }

    /// Binds `cid` to a run whose arguments have directions `args`: checks them against the
    /// signature, then clears `desc`'s func-id table and replays the cid's child addresses and
    /// orchestration into it. On error `desc` is untouched.
    pub fn prepare_run(
        &self,
        cid: u32,
        args: &[TensorDirection],
        desc: &mut LaunchDescriptor,
    ) -> Result<&PreparedCallableArtifacts<O>, PrepareRunError> {
        let artifacts = self.registry.artifacts(cid).ok_or(PrepareRunError::NotRegistered { cid })?;
        check_args_against_signature(cid, &artifacts.signature, args)?;
        artifacts.replay_into(desc)?;
        Ok(artifacts)
    }

    /// One run's launch with the `KernelArgs` copy at `args`: AICore kernel, then AICPU kernel.
    pub fn launch(
        &mut self,
        backend: &dyn DeviceBackend,
        args: DevAddr,
        aicore: LaunchShape,
        aicpu: LaunchShape,
    ) -> Result<(), LaunchError> {
        self.launcher.launch(backend, args, aicore, aicpu)
    }

    /// Waits for the launched kernels (see [`KernelLauncher::synchronize`]).
    pub fn synchronize(&self, backend: &dyn DeviceBackend) -> Result<(), LaunchError> {
        self.launcher.synchronize(backend)
    }

    /// Unregisters every cid and frees every device copy (runner teardown); the first failure is
    /// returned, everything is forgotten either way.
    pub fn release(&mut self, mem: &mut dyn DeviceMemory) -> Result<(), RegistryError> {
        self.registry.release_all(mem)
    }

    /// Forgets every cid and device copy without freeing (after a device fault, or when the
    /// runner's allocator already freed everything).
    pub fn abandon(&mut self) {
        self.registry.abandon_all();
    }
}
