//! Kernel launches of a runner (DESIGN §8): the AICore and AICPU binaries are registered on first
//! use and their handles kept for the runner's lifetime (the vendor API has no unregister, so
//! registering per run would exhaust device memory); both kernels receive the device address of a
//! `KernelArgs` copy; the AICore kernel is launched before the AICPU kernel, each on its own
//! stream (the AICore kernel runs until the AICPU tells its cores to exit).
//!
//! Waiting is bounded where the device side may not end by itself: the AICore kernel gets a
//! budget, then an abort and a grace; a kernel still running after that is left behind on its
//! stream, and the next AICore launch gets a fresh stream so it never queues behind it.

use std::time::Duration;

use pto_abi::DevAddr;

use crate::backend::{BackendError, DeviceBackend, KernelHandle, StreamId};

/// Which launch step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchStep {
    /// Creating a launch stream.
    CreateStream,
    /// Registering the AICore binary.
    RegisterAicore,
    /// Registering the AICPU binary.
    RegisterAicpu,
    /// Launching the AICore kernel.
    LaunchAicore,
    /// Launching the AICPU kernel (the AICore kernel is already running).
    LaunchAicpu,
    /// Waiting for the launched kernels.
    Synchronize,
    /// Aborting a launched kernel that did not end by itself.
    Abort,
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

/// The block dimension of one kernel launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchShape {
    /// Blocks of the launch.
    pub block_dim: u32,
}

/// One kernel binary with its handle and stream, both created on first use.
#[derive(Debug)]
struct LazyKernel {
    binary: Vec<u8>,
    handle: Option<KernelHandle>,
    stream: Option<StreamId>,
    registrations: u64,
    launches: u64,
}

impl LazyKernel {
    fn new(binary: Vec<u8>) -> Self {
        LazyKernel { binary, handle: None, stream: None, registrations: 0, launches: 0 }
    }

    fn launch(
        &mut self,
        backend: &dyn DeviceBackend,
        register: LaunchStep,
        launch: LaunchStep,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        let stream = match self.stream {
            Some(s) => s,
            None => {
                let s =
                    backend.stream_create().map_err(|source| LaunchError { step: LaunchStep::CreateStream, source })?;
                *self.stream.insert(s)
            }
        };
        let handle = match self.handle {
            Some(h) => h,
            None => {
                let h = backend
                    .register_kernel_binary(&self.binary)
                    .map_err(|source| LaunchError { step: register, source })?;
                self.registrations += 1;
                *self.handle.insert(h)
            }
        };
        backend
            .launch_kernel(handle, stream, shape.block_dim, args)
            .map_err(|source| LaunchError { step: launch, source })?;
        self.launches += 1;
        Ok(())
    }

    fn synchronize(&self, backend: &dyn DeviceBackend) -> Result<(), LaunchError> {
        match self.stream {
            Some(s) => {
                backend.stream_synchronize(s).map_err(|source| LaunchError { step: LaunchStep::Synchronize, source })
            }
            None => Ok(()),
        }
    }

    /// Waits up to `budget` for the kernel's launches to end by themselves, then aborts them and
    /// waits `grace` more; launches still running then stay behind on a stream this kernel stops
    /// using.
    fn wait_bounded(
        &mut self,
        backend: &dyn DeviceBackend,
        budget: Duration,
        grace: Duration,
    ) -> Result<(), LaunchError> {
        let Some(stream) = self.stream else { return Ok(()) };
        let sync = |timeout| {
            backend
                .stream_synchronize_timeout(stream, timeout)
                .map_err(|source| LaunchError { step: LaunchStep::Synchronize, source })
        };
        match sync(budget) {
            Err(LaunchError { source: BackendError::Timeout { .. }, .. }) => {}
            done => return done,
        }
        let outcome = match backend.stream_abort(stream) {
            Ok(()) => sync(grace),
            Err(source) => Err(LaunchError { step: LaunchStep::Abort, source }),
        };
        if let Err(e) = &outcome {
            if matches!(e.source, BackendError::Timeout { .. }) || e.step == LaunchStep::Abort {
                self.stream = None;
            }
        }
        outcome.map_err(|e| match e.source {
            BackendError::Timeout { op, .. } => {
                LaunchError { step: e.step, source: BackendError::Timeout { op, waited: budget + grace } }
            }
            _ => e,
        })
    }
}

/// The launch state of one runner: its AICore and AICPU binaries with cached handles and streams.
#[derive(Debug)]
pub struct KernelLauncher {
    aicore: LazyKernel,
    aicpu: LazyKernel,
}

impl KernelLauncher {
    /// A launcher for these binaries; nothing is registered until the first launch.
    pub fn new(aicore_binary: Vec<u8>, aicpu_binary: Vec<u8>) -> Self {
        KernelLauncher { aicore: LazyKernel::new(aicore_binary), aicpu: LazyKernel::new(aicpu_binary) }
    }

    /// Counters so far.
    pub fn counters(&self) -> LaunchCounters {
        LaunchCounters {
            aicore_registrations: self.aicore.registrations,
            aicpu_registrations: self.aicpu.registrations,
            aicore_launches: self.aicore.launches,
            aicpu_launches: self.aicpu.launches,
        }
    }

    /// The cached AICore handle, once registered.
    pub fn aicore_handle(&self) -> Option<KernelHandle> {
        self.aicore.handle
    }

    /// Launches the AICore kernel with the `KernelArgs` copy at `args`, registering the AICore
    /// binary first if this runner has not yet.
    pub fn launch_aicore_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        self.aicore.launch(backend, LaunchStep::RegisterAicore, LaunchStep::LaunchAicore, shape, args)
    }

    /// Launches the AICPU kernel with the `KernelArgs` copy at `args`, registering the AICPU binary
    /// first if this runner has not yet.
    pub fn launch_aicpu_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        self.aicpu.launch(backend, LaunchStep::RegisterAicpu, LaunchStep::LaunchAicpu, shape, args)
    }

    /// One run's launch: the AICore kernel, then the AICPU kernel, both with the `KernelArgs` copy
    /// at `args`.
    ///
    /// On [`LaunchStep::LaunchAicpu`] or [`LaunchStep::RegisterAicpu`] the AICore kernel is already
    /// running; the caller must stop it ([`KernelLauncher::wait_aicore`] with a zero budget).
    pub fn launch(
        &mut self,
        backend: &dyn DeviceBackend,
        args: DevAddr,
        aicore: LaunchShape,
        aicpu: LaunchShape,
    ) -> Result<(), LaunchError> {
        self.launch_aicore_kernel(backend, aicore, args)?;
        self.launch_aicpu_kernel(backend, aicpu, args)
    }

    /// Waits for the AICPU kernel, then the AICore kernel; the first failure is returned after
    /// both were waited for.
    pub fn synchronize(&self, backend: &dyn DeviceBackend) -> Result<(), LaunchError> {
        let aicpu = self.aicpu.synchronize(backend);
        let aicore = self.aicore.synchronize(backend);
        aicpu.and(aicore)
    }

    /// Waits for the AICPU kernel (the AICPU device code bounds each of its own waits).
    pub fn wait_aicpu(&self, backend: &dyn DeviceBackend) -> Result<(), LaunchError> {
        self.aicpu.synchronize(backend)
    }

    /// Waits up to `budget` for the AICore kernel to end by itself (its cores exit when the AICPU
    /// shuts them down), then aborts it and waits `grace` more. On a timeout the kernel is left
    /// running on its stream and the next AICore launch uses a new stream.
    pub fn wait_aicore(
        &mut self,
        backend: &dyn DeviceBackend,
        budget: Duration,
        grace: Duration,
    ) -> Result<(), LaunchError> {
        self.aicore.wait_bounded(backend, budget, grace)
    }
}
