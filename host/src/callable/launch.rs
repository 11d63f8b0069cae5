//! Kernel launches of a runner (DESIGN §8): the AICore and AICPU binaries are registered on first
//! use and their handles kept for the runner's lifetime (the vendor API has no unregister, so
//! registering per run would exhaust device memory); `KernelArgs` travels as a device copy; the
//! AICore kernel is launched before the AICPU kernel.

use std::mem::size_of;

use pto_abi::launch::KernelArgs;
use pto_abi::DevAddr;
use zerocopy::IntoBytes;

use crate::backend::{BackendError, DeviceBackend, KernelHandle, StreamId};

/// Which launch step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchStep {
    /// Allocating or writing the device copy of `KernelArgs`.
    StageKernelArgs,
    /// Registering the AICore binary.
    RegisterAicore,
    /// Registering the AICPU binary.
    RegisterAicpu,
    /// Launching the AICore kernel.
    LaunchAicore,
    /// Launching the AICPU kernel (the AICore kernel is already running).
    LaunchAicpu,
}

/// A failed launch step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step:?}: {source}")]
pub struct LaunchError {
    /// The step.
    pub step: LaunchStep,
    /// The backend's error.
    #[source]
    pub source: BackendError,
}

/// Counters of launch work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchCounters {
    /// AICore binary registrations (at most one per runner once one succeeds).
    pub aicore_registrations: u64,
    /// AICPU binary registrations.
    pub aicpu_registrations: u64,
    /// AICore kernel launches.
    pub aicore_launches: u64,
    /// AICPU kernel launches.
    pub aicpu_launches: u64,
}

/// One kernel of a launch: what to run and on how many blocks.
#[derive(Clone, Copy, Debug)]
pub struct LaunchShape {
    /// Block dimension of the launch.
    pub block_dim: u32,
}

/// The launch state of one runner: its two binaries, their cached handles, the device copy of
/// `KernelArgs`.
#[derive(Debug)]
pub struct KernelLauncher {
    aicore_binary: Vec<u8>,
    aicpu_binary: Vec<u8>,
    aicore: Option<KernelHandle>,
    aicpu: Option<KernelHandle>,
    kernel_args: Option<DevAddr>,
    counters: LaunchCounters,
}

impl KernelLauncher {
    /// A launcher for these binaries; nothing is registered until the first launch.
    pub fn new(aicore_binary: Vec<u8>, aicpu_binary: Vec<u8>) -> Self {
        KernelLauncher {
            aicore_binary,
            aicpu_binary,
            aicore: None,
            aicpu: None,
            kernel_args: None,
            counters: LaunchCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> LaunchCounters {
        self.counters
    }

    /// The cached AICore handle, if registered.
    pub fn aicore_handle(&self) -> Option<KernelHandle> {
        self.aicore
    }

    /// Device address of the `KernelArgs` copy, once staged.
    pub fn kernel_args_addr(&self) -> Option<DevAddr> {
        self.kernel_args
    }

    /// Writes `args` into the runner's device copy of `KernelArgs` (allocated on first use).
    pub fn stage_kernel_args(
        &mut self,
        backend: &dyn DeviceBackend,
        args: &KernelArgs,
    ) -> Result<DevAddr, LaunchError> {
        let err = |source| LaunchError { step: LaunchStep::StageKernelArgs, source };
        let addr = match self.kernel_args {
            Some(addr) => addr,
            None => {
                let addr = backend.malloc(size_of::<KernelArgs>() as u64).map_err(err)?;
                self.kernel_args = Some(addr);
                addr
            }
        };
        backend.copy_to_device(addr, args.as_bytes()).map_err(err)?;
        Ok(addr)
    }

    /// Launches the AICore kernel with the `KernelArgs` copy at `args`, registering the AICore
    /// binary first if this runner has not yet.
    pub fn launch_aicore_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        stream: StreamId,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        let handle = match self.aicore {
            Some(handle) => handle,
            None => {
                let handle = backend
                    .register_kernel_binary(&self.aicore_binary)
                    .map_err(|source| LaunchError { step: LaunchStep::RegisterAicore, source })?;
                self.counters.aicore_registrations += 1;
                *self.aicore.insert(handle)
            }
        };
        backend
            .launch_kernel(handle, stream, shape.block_dim, args)
            .map_err(|source| LaunchError { step: LaunchStep::LaunchAicore, source })?;
        self.counters.aicore_launches += 1;
        Ok(())
    }

    /// Launches the AICPU kernel with the `KernelArgs` copy at `args`, registering the AICPU binary
    /// first if this runner has not yet.
    pub fn launch_aicpu_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        stream: StreamId,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        let handle = match self.aicpu {
            Some(handle) => handle,
            None => {
                let handle = backend
                    .register_kernel_binary(&self.aicpu_binary)
                    .map_err(|source| LaunchError { step: LaunchStep::RegisterAicpu, source })?;
                self.counters.aicpu_registrations += 1;
                *self.aicpu.insert(handle)
            }
        };
        backend
            .launch_kernel(handle, stream, shape.block_dim, args)
            .map_err(|source| LaunchError { step: LaunchStep::LaunchAicpu, source })?;
        self.counters.aicpu_launches += 1;
        Ok(())
    }

    /// One run's launch: stages `args`, launches the AICore kernel, then the AICPU kernel.
    ///
    /// On [`LaunchStep::LaunchAicpu`] the AICore kernel is already running; the caller must stop it.
    pub fn launch(
        &mut self,
        backend: &dyn DeviceBackend,
        stream: StreamId,
        args: &KernelArgs,
        aicore: LaunchShape,
        aicpu: LaunchShape,
    ) -> Result<DevAddr, LaunchError> {
        let addr = self.stage_kernel_args(backend, args)?;
        self.launch_aicore_kernel(backend, stream, aicore, addr)?;
        self.launch_aicpu_kernel(backend, stream, aicpu, addr)?;
        Ok(addr)
    }

    /// Forgets the `KernelArgs` copy without freeing it (after a device fault).
    pub fn abandon(&mut self) {
        self.kernel_args = None;
    }

    /// Frees the `KernelArgs` copy (runner teardown). Kernel handles stay valid for the backend's
    /// lifetime; there is nothing to unregister.
    pub fn release(&mut self, backend: &dyn DeviceBackend) -> Result<(), BackendError> {
        match self.kernel_args.take() {
            Some(addr) => backend.free(addr),
            None => Ok(()),
        }
    }
}
