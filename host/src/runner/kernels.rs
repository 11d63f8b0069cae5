//! Kernel launches of a runner: the backend's AICore and AICPU programs
//! ([`DeviceProgram`]) are registered on first use and their handles kept for the runner's
//! lifetime (the vendor API has no unregister, so registering per run would exhaust device
//! memory); both kernels receive the device address of the launch block's `KernelArgs`; the
//! AICore kernel is launched before the AICPU kernel, each on its own stream (the AICore kernel
//! runs until the AICPU tells its cores to exit).
//!
//! Waiting is bounded where the device side may not end by itself: the AICore kernel gets a
//! budget, then an abort and a grace; a kernel still running after that is left behind on its
//! stream, and the next AICore launch gets a fresh stream so it never queues behind it.

use std::time::Duration;

use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::DevAddr;

use crate::backend::{BackendError, DeviceBackend, DeviceProgram, KernelHandle, StreamId};

/// Which launch step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchStep {
    /// Creating a launch stream.
    CreateStream,
    /// Registering the AICore program.
    RegisterAicore,
    /// Registering the AICPU program.
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

/// A launch that was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// Launch parameters with more func-table entries than a launch descriptor holds (nothing
    /// was written).
    #[error("func table has {0} entries; at most {MAX_FUNC_IDS} are supported")]
    FuncTableTooLong(usize),
    /// No launch block has been written yet (`prepare_launch` comes first).
    #[error("no launch block: prepare the launch before launching kernels")]
    NoLaunchBlock,
    /// The backend refused a step.
    #[error("{step:?}: {source}")]
    Step {
        /// The step.
        step: LaunchStep,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
}

impl LaunchError {
    /// The backend's error, for a failed step.
    pub fn backend_error(&self) -> Option<&BackendError> {
        match self {
            LaunchError::Step { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn step(step: LaunchStep) -> impl FnOnce(BackendError) -> LaunchError {
    move |source| LaunchError::Step { step, source }
}

/// Counters of launch work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchCounters {
    /// AICore program registrations (at most one per runner once one succeeds).
    pub aicore_registrations: u64,
    /// AICPU program registrations.
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

/// One device program with its handle and stream, both created on first use.
#[derive(Debug)]
struct LazyKernel {
    program: DeviceProgram,
    handle: Option<KernelHandle>,
    stream: Option<StreamId>,
    /// The last bounded wait left a launch running on a stream this kernel no longer uses.
    left_running: bool,
    registrations: u64,
    launches: u64,
}

impl LazyKernel {
    fn new(program: DeviceProgram) -> Self {
        LazyKernel { program, handle: None, stream: None, left_running: false, registrations: 0, launches: 0 }
    }

    fn launch(
        &mut self,
        backend: &dyn DeviceBackend,
        register: LaunchStep,
        launch: LaunchStep,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        self.left_running = false;
        let stream = match self.stream {
            Some(s) => s,
            None => {
                let s = backend.stream_create().map_err(step(LaunchStep::CreateStream))?;
                *self.stream.insert(s)
            }
        };
        let handle = match self.handle {
            Some(h) => h,
            None => {
                let h = backend.register_program(self.program).map_err(step(register))?;
                self.registrations += 1;
                *self.handle.insert(h)
            }
        };
        backend.launch_kernel(handle, stream, shape.block_dim, args).map_err(step(launch))?;
        self.launches += 1;
        Ok(())
    }

    fn synchronize(&self, backend: &dyn DeviceBackend) -> Result<(), LaunchError> {
        match self.stream {
            Some(s) => backend.stream_synchronize(s).map_err(step(LaunchStep::Synchronize)),
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
        let sync = |timeout| backend.stream_synchronize_timeout(stream, timeout);
        match sync(budget) {
            Err(BackendError::Timeout { .. }) => {}
            done => return done.map_err(step(LaunchStep::Synchronize)),
        }
        let (failed_step, outcome) = match backend.stream_abort(stream) {
            Ok(()) => (LaunchStep::Synchronize, sync(grace)),
            Err(source) => (LaunchStep::Abort, Err(source)),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(source) => {
                if matches!(source, BackendError::Timeout { .. }) || failed_step == LaunchStep::Abort {
                    self.stream = None;
                    self.left_running = true;
                }
                let source = match source {
                    BackendError::Timeout { op, .. } => BackendError::Timeout { op, waited: budget + grace },
                    other => other,
                };
                Err(LaunchError::Step { step: failed_step, source })
            }
        }
    }
}

impl LazyKernel {
    /// After a failed wait: aborts the stream's launches and waits `grace` for them; true when
    /// they ended, so the device no longer touches what they were given. Launches that may still
    /// run stay behind on a stream this kernel stops using.
    fn quiesce(&mut self, backend: &dyn DeviceBackend, grace: Duration) -> bool {
        if std::mem::take(&mut self.left_running) {
            return false;
        }
        let Some(stream) = self.stream else { return true };
        // A device fault collected while waiting means the launch ended (it failed).
        let ended = backend.stream_abort(stream).is_ok()
            && matches!(
                backend.stream_synchronize_timeout(stream, grace),
                Ok(()) | Err(BackendError::DeviceFault { .. })
            );
        if !ended {
            self.stream = None;
        }
        ended
    }
}

/// The launch state of one runner: the backend's AICore and AICPU programs with cached handles
/// and streams.
#[derive(Debug)]
pub struct KernelLauncher {
    aicore: LazyKernel,
    aicpu: LazyKernel,
}

impl Default for KernelLauncher {
    fn default() -> Self {
        Self::new()
    }
}

impl KernelLauncher {
    /// A launcher of the backend's AICore and AICPU programs; nothing is registered until the
    /// first launch.
    pub fn new() -> Self {
        KernelLauncher { aicore: LazyKernel::new(DeviceProgram::Aicore), aicpu: LazyKernel::new(DeviceProgram::Aicpu) }
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
    /// program first if this runner has not yet.
    pub fn launch_aicore_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        self.aicore.launch(backend, LaunchStep::RegisterAicore, LaunchStep::LaunchAicore, shape, args)
    }

    /// Launches the AICPU kernel with the `KernelArgs` copy at `args`, registering the AICPU program
    /// first if this runner has not yet.
    pub fn launch_aicpu_kernel(
        &mut self,
        backend: &dyn DeviceBackend,
        shape: LaunchShape,
        args: DevAddr,
    ) -> Result<(), LaunchError> {
        self.aicpu.launch(backend, LaunchStep::RegisterAicpu, LaunchStep::LaunchAicpu, shape, args)
    }

    /// After a failed wait for the AICPU kernel: aborts it and waits `grace`; true when it ended
    /// (the device no longer touches the run's memory), false when it may still run (its stream
    /// is left behind and the next AICPU launch gets a fresh one).
    pub fn quiesce_aicpu(&mut self, backend: &dyn DeviceBackend, grace: Duration) -> bool {
        self.aicpu.quiesce(backend, grace)
    }

    /// After a failed wait for the AICore kernel: as [`KernelLauncher::quiesce_aicpu`]; false at
    /// once when the wait already left the kernel running.
    pub fn quiesce_aicore(&mut self, backend: &dyn DeviceBackend, grace: Duration) -> bool {
        self.aicore.quiesce(backend, grace)
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

impl super::DeviceRunner {
    /// The kernel launcher (cached handles, launch counters).
    pub fn kernel_launcher(&self) -> &KernelLauncher {
        &self.launcher
    }

    /// Launches the AICore program with the `KernelArgs` in this runner's launch block,
    /// registering it on the first launch only (the handle is kept for the runner's lifetime).
    /// Call after [`DeviceRunner::prepare_launch`](super::DeviceRunner::prepare_launch) wrote the
    /// launch block, and before the AICPU launch. Returns the `KernelArgs` address the kernel
    /// received.
    pub fn launch_aicore_kernel(&mut self, shape: LaunchShape) -> Result<DevAddr, LaunchError> {
        self.launch_program(DeviceProgram::Aicore, shape)
    }

    /// Launches the AICPU program with the `KernelArgs` in this runner's launch block,
    /// registering it on the first launch only. Call after the AICore launch (the AICPU threads
    /// drive cores that must already be running). Returns the `KernelArgs` address.
    pub fn launch_aicpu_kernel(&mut self, shape: LaunchShape) -> Result<DevAddr, LaunchError> {
        self.launch_program(DeviceProgram::Aicpu, shape)
    }

    fn launch_program(&mut self, program: DeviceProgram, shape: LaunchShape) -> Result<DevAddr, LaunchError> {
        let args = self.launch_block().ok_or(LaunchError::NoLaunchBlock)?.kernel_args();
        let backend = self.backend().clone();
        let r = match program {
            DeviceProgram::Aicore => self.launcher.launch_aicore_kernel(backend.as_ref(), shape, args),
            _ => self.launcher.launch_aicpu_kernel(backend.as_ref(), shape, args),
        };
        if let Err(e) = &r {
            self.faulted |= e.backend_error().is_some_and(BackendError::is_device_fault);
        }
        r.map(|()| args)
    }
}
