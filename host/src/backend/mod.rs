//! The device backend: every way the host reaches a device, shaped after the vendor runtime calls
//! (`rtMalloc`, `rtMemcpy`, `rtMemset`, `rtStreamCreate`, `rtStreamSynchronize[WithTimeout]`,
//! `rtStreamAbort`, kernel registration, `rtKernelLaunch…`), plus the two questions whose answer
//! differs between devices: which programs a run launches ([`DeviceBackend::register_program`])
//! and how a run's code becomes resolvable on the device ([`DeviceBackend::load_code`]).
//!
//! Host code never dereferences a [`DevAddr`]: device memory is reached only through a backend
//! ([`DeviceIo`] for typed reads and writes).
//!
//! # What a backend must provide
//! * Memory: `malloc` (1024-byte aligned bases, whole 1024-byte granules), `free`, copies both ways, `memset`; an address
//!   outside every live allocation is [`BackendError::InvalidRange`], never a crash.
//! * Streams: launches on one stream run in order, on different streams concurrently;
//!   synchronize (unbounded and bounded) collects them; abort asks the launches queued so far to
//!   stop at their next poll.
//! * Programs: the boot-only AICPU program, the AICPU program and the AICore program, registered
//!   once per runner (the vendor runtime has no unregister). The simulated device answers its
//!   built-in entries; an emulated device answers the entries of the firmware it boots; the vendor
//!   runtime registers its binaries (`rtRegisterAllKernel`) and launches by handle
//!   (`rtKernelLaunchWithHandleV2`).
//! * Code: the orchestration and kernels of one run ([`RunCode`]) made resolvable and answered as
//!   device addresses ([`LoadedCode`]); see [`code`].
//!
//! # Device faults and abandoned memory
//! A backend reports that the device itself failed (a kernel trapped, the device was lost, a
//! launch could not complete) as [`BackendError::DeviceFault`]. After one, the device may still be
//! writing memory the host handed it, so a runner *abandons* its memory: it forgets every
//! allocation without freeing it (a freed block could be handed out again while the device still
//! writes it) and stops using the device; the backend reclaims the memory when it is dropped or
//! reset. The one exception is a fault a stream synchronize collects: it is the outcome of a
//! launch that has ended (it failed), so the device no longer touches that launch's memory and
//! the runner frees it as usual. Every other error leaves the device usable and the runner frees
//! normally.

use std::time::Duration;

use pto_abi::DevAddr;

pub mod code;
pub mod emu;
pub mod io;
pub mod onboard;
pub mod sim;

pub use code::{func_table, CodeError, CodeKind, CodeRef, KernelFn, LoadedCode, RunCode};
pub use io::DeviceIo;

/// The granule of device allocations: every allocation's base is aligned to it and it holds a
/// whole number of granules (what committed-byte accounts count).
pub const ALLOC_GRANULE: u64 = pto_abi::consts::REGION_BASE_ALIGN;

/// A stream (an ordered queue of device work) created by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub u32);

/// A registered kernel binary; valid for the backend's lifetime (the vendor API has no unregister).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelHandle(pub u32);

/// Which backend operation an error or an injected fault concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendOp {
    /// Device allocation.
    Malloc,
    /// Device free.
    Free,
    /// Host → device copy.
    CopyToDevice,
    /// Device → host copy.
    CopyFromDevice,
    /// Device memset.
    Memset,
    /// Stream creation or synchronisation.
    Stream,
    /// Kernel binary registration.
    RegisterKernel,
    /// Kernel launch.
    Launch,
}

/// A failed backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Not enough device memory.
    #[error("device allocation of {requested} bytes failed: {available} bytes available")]
    OutOfMemory {
        /// Bytes asked for.
        requested: u64,
        /// Bytes the device could still provide.
        available: u64,
    },
    /// An address range that is not inside one live allocation.
    #[error("{op:?}: device range {addr}+{len:#x} is not inside a live allocation")]
    InvalidRange {
        /// The operation.
        op: BackendOp,
        /// Start of the range.
        addr: DevAddr,
        /// Length of the range.
        len: u64,
    },
    /// A fault injected by a test.
    #[error("injected fault: {op:?} call #{nth} fails")]
    InjectedFault {
        /// The operation.
        op: BackendOp,
        /// 1-based index of the failing call of that operation.
        nth: u64,
    },
    /// The device reported a fault; its memory must be abandoned, not freed (see the module doc).
    #[error("device fault during {op:?}: {detail}")]
    DeviceFault {
        /// The operation.
        op: BackendOp,
        /// What the device reported.
        detail: String,
    },
    /// Work queued on a stream did not finish within the time given; it is still queued.
    #[error("{op:?}: work still running after {waited:?}")]
    Timeout {
        /// The operation.
        op: BackendOp,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The vendor runtime refused a call (the device stays usable): the code it returned, the
    /// code's name in the public headers (when they name it) and the whole message.
    #[error("{op:?}: {detail}")]
    Vendor {
        /// The operation.
        op: BackendOp,
        /// The runtime's status code.
        code: i32,
        /// The code's name in the public headers.
        name: Option<&'static str>,
        /// The call, the code, its name and its meaning.
        detail: String,
    },
    /// The backend cannot do this at all (e.g. no vendor runtime on this host).
    #[error("{0}")]
    Unsupported(String),
    /// Bad argument to a backend call (unknown handle, zero size …).
    #[error("{op:?}: {detail}")]
    InvalidArgument {
        /// The operation.
        op: BackendOp,
        /// What is wrong.
        detail: String,
    },
}

impl BackendError {
    /// True for [`BackendError::DeviceFault`]: the caller must abandon the device's memory.
    pub fn is_device_fault(&self) -> bool {
        matches!(self, BackendError::DeviceFault { .. })
    }
}

/// The programs a backend launches for a runner: what the firmware binaries are on hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceProgram {
    /// AICPU program that boots the runtime and nothing else (one block).
    Boot,
    /// AICPU program: block `t` is AICPU thread `t` of the launch descriptor.
    Aicpu,
    /// AICore program: block `c` serves AICore core `c`.
    Aicore,
}

/// The calls the runtime makes on a device (see the module doc for the contract). Implementations:
/// the simulated device ([`sim::SimBackend`]); an emulated aarch64 machine and the vendor runtime
/// fit the same calls.
///
/// All methods take `&self`: a backend is shared between the host thread and launch threads.
pub trait DeviceBackend: Send + Sync {
    /// Short backend name for messages (`sim`, `onboard` …).
    fn name(&self) -> &'static str;
    /// Allocates `size` bytes of device memory whose base is 1024-byte aligned; the allocation
    /// holds `size` rounded up to `ALLOC_GRANULE` bytes.
    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError>;
    /// Frees an allocation returned by [`DeviceBackend::malloc`].
    fn free(&self, addr: DevAddr) -> Result<(), BackendError>;
    /// Copies `src` to device memory at `dst`.
    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError>;
    /// Copies device memory at `src` into `dst`.
    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError>;
    /// Sets `len` bytes of device memory at `dst` to `value`.
    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError>;
    /// Creates a stream.
    fn stream_create(&self) -> Result<StreamId, BackendError>;
    /// Waits until all work queued on `stream` has finished.
    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError>;
    /// Waits at most `timeout` for the work queued on `stream`; [`BackendError::Timeout`] when it
    /// is still running (it stays queued: a later synchronize can still collect it).
    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: Duration) -> Result<(), BackendError>;
    /// Asks the work queued on `stream` so far to stop: kernels waiting for work return at their
    /// next poll; a kernel busy in user code finishes that first. Work queued later is unaffected.
    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError>;
    /// Registers a kernel binary; the handle lives as long as the backend.
    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError>;
    /// Registers one of the backend's own programs; the handle lives as long as the backend.
    /// A runner registers each program at most once.
    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError>;
    /// Checks that the device can resolve every piece of `code`, touching no device memory (a
    /// callable's addresses may still be null: it is checked before its upload).
    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError>;
    /// Makes `code` resolvable on the device and answers its device addresses. The code stays
    /// resolvable while the returned value lives; nothing stays loaded on an error.
    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError>;
    /// Queues a launch of `kernel` on `stream` with `block_dim` blocks; `args` is the device
    /// address of its `KernelArgs`.
    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError>;
}
