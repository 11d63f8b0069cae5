//! Callables (DESIGN §7–8): the `ChipCallable` blob and its builder, its layout and hashes, the
//! upload of a patched scratch copy, the per-runner registry of callable ids over deduplicated
//! device copies, binding a callable to a run, and kernel launches with lazy binary registration.

pub mod bind;
pub mod blob;
pub mod example;
pub mod launch;
pub mod layout;
pub mod memory;
pub mod registry;
pub mod runner_callables;
pub mod runner_ext;
pub mod symbols;
pub mod upload;

pub use bind::{check_args_against_signature, BindError};
pub use blob::{BuildError, ChipCallable, CoreCallable, Orchestration};
pub use launch::{KernelLauncher, LaunchCounters, LaunchError, LaunchShape, LaunchStep};
pub use layout::{compute_chip_callable_layout, ChildLayout, ChipCallableLayout};
pub use memory::DeviceMemory;
pub use registry::{
    CallableRegistry, PreparedCallableArtifacts, PreparedChild, RegistryCounters, RegistryError, MAX_CALLABLE_IDS,
};
pub use runner_callables::{CallableCounters, PrepareRunError, RunnerCallables};
pub use symbols::{sim_kernel_binary, sim_kernel_name, SymbolError, SymbolKind, SymbolTable, Symbols};
pub use upload::{
    patch_chip_callable_scratch_for_device, upload_and_collect_child_addrs, UploadError, UploadedCallable,
};
