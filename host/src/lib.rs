//! Host side of the PTO runtime: a [`DeviceRunner`] on a device backend binds arena images,
//! registers callables, stages a run's tensors, launches the device programs and reports what the
//! run did.
//!
//! The crate reads bottom-up:
//!
//! | layer | what it holds |
//! |---|---|
//! | backend ([`DeviceBackend`], [`sim`]) | every way the host reaches a device: memory, streams, programs, a run's code |
//! | callable ([`ChipCallable`], [`CallableRegistry`]) | the callable blob, its layout, its upload, the registry of callable ids |
//! | image ([`build_runtime_image`], [`ImageCache`]) | arena images: the builder, the resident-image cache, the LRU of built images |
//! | runner ([`DeviceRunner`]) | bind, launch block, kernel launches, runs, callables on a runner |
//! | pool ([`ChipPool`], [`pool::worker`]) | one worker process per chip behind a shared-memory mailbox, and the pool that spreads runs over them |
//! | tool (`pto`, feature `cli`) | the command line tool and its benchmarks |
//!
//! # Device memory and faults
//! Host code never dereferences a device address: every byte goes through the backend
//! ([`DeviceIo`] for typed reads and writes). What the device wrote is untrusted input, checked
//! before it is believed. A [`BackendError::DeviceFault`] means the device itself failed; the
//! runner then *abandons* its memory at finalize (forgets every allocation without freeing it)
//! instead of freeing memory the device may still write.
//!
//! # Example
//! A runner on the simulated device runs the vector example as a registered callable:
//!
//! ```
//! use std::sync::Arc;
//! use pto_host::examples::{define_vector_symbols, vector_args, vector_example_callable, VECTOR_EXPECTED};
//! use pto_host::sim::SimBackend;
//! use pto_host::{ArenaSizingKey, Budgets, CallableRunConfig, DeviceBackend, DeviceRunner, RunMode};
//!
//! let sim = Arc::new(SimBackend::with_capacity(256 << 20)?);
//! // The simulated device resolves a callable's names in its name tables.
//! define_vector_symbols(&mut sim.symbols())?;
//! let mut runner = DeviceRunner::new(sim as Arc<dyn DeviceBackend>);
//!
//! runner.register_callable(7, &vector_example_callable()?)?;
//! let config = CallableRunConfig {
//!     sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
//!     mode: RunMode::Threaded { threads: 2, clusters: 1 },
//!     budgets: Budgets::DEFAULT,
//! };
//! let report = runner.run_callable(7, &vector_args(), &config)?;
//! assert_eq!(report.tasks_completed, 5);
//! assert!(report.output_f32(2).iter().all(|&f| f == VECTOR_EXPECTED));
//! runner.finalize()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backend;
mod callable;
pub mod examples;
mod image;
pub mod pool;
mod runner;

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "cli")]
pub mod cli;

pub use pto_abi as abi;
pub use pto_abi::sizing::ArenaSizingKey;
pub use pto_device::runtime::Budgets;

/// The simulated device: the default backend, its cores, name tables and test hooks.
pub mod sim {
    pub use crate::backend::sim::*;
}

/// The emulated device: qemu running the aarch64 firmware, its ELF checks and its device log.
pub mod emu {
    pub use crate::backend::emu::*;
}

/// The vendor runtime backend (CANN `libruntime.so`, loaded at run time).
pub mod onboard {
    pub use crate::backend::onboard::*;
}

pub use backend::{
    func_table, BackendError, BackendOp, CodeError, CodeKind, CodeRef, DeviceBackend, DeviceIo, DeviceProgram,
    KernelFn, KernelHandle, LoadedCode, RunCode, StreamId,
};
pub use callable::{
    check_args_against_signature, compute_chip_callable_layout, patch_chip_callable_scratch_for_device,
    upload_and_collect_child_addrs, BindError, BuildError, CallableRegistry, ChildLayout, ChipCallable,
    ChipCallableLayout, CoreCallable, DeviceMemory, NameOwner, Orchestration, PreparedCallableArtifacts, PreparedChild,
    RegistryCounters, RegistryError, UploadError, UploadedCallable, MAX_CALLABLE_IDS, MAX_NAME_LEN,
};
pub use image::{
    build_runtime_image, nominal_regions, CacheKey, Image, ImageCache, ImageError, ImageLru, ResidentImage,
};
pub use pool::{ChipExit, ChipPool, ChipSpec, PoolConfig, PoolError, PoolEvent, PoolRun, ShutdownReport, WorkerError};
pub use runner::{
    f32s, BindStats, BootFailure, BootOutcome, BootSummary, BoundImage, CallableCounters, CallableRunConfig,
    CallableRunError, DeviceFailure, DeviceRunner, KernelLauncher, LaunchBlock, LaunchCounters, LaunchError,
    LaunchParams, LaunchShape, LaunchStep, RegionKind, RunArg, RunError, RunMode, RunReport, RunRequest, RunTrace,
    RunnerError, StaticArenaError, TraceConfig, TrackingAllocator, TRACE_KIND_NAMES,
};
