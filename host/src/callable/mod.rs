//! Callables: the `ChipCallable` blob and its builder, its layout and hashes, the upload of a
//! patched scratch copy, and the registry of callable ids over deduplicated device copies.
//!
//! A chip callable is one blob: a header with the chip signature (argument directions), the
//! orchestration's name and bytes, and child kernels, each with its func id, name, signature and
//! binary. Registering it on a runner asks the backend to resolve its names, uploads one copy per
//! distinct blob, and remembers the device address of every child's code: a run of the callable
//! names exactly those addresses in the launch descriptor's func-id table.

mod bind;
mod blob;
mod layout;
mod memory;
mod registry;
mod upload;

pub use bind::{check_args_against_signature, BindError};
pub use blob::{BuildError, ChipCallable, CoreCallable, NameOwner, Orchestration, MAX_NAME_LEN};
pub use layout::{compute_chip_callable_layout, ChildLayout, ChipCallableLayout};
pub use memory::DeviceMemory;
pub use registry::{
    CallableRegistry, PreparedCallableArtifacts, PreparedChild, RegistryCounters, RegistryError, MAX_CALLABLE_IDS,
};
pub use upload::{
    patch_chip_callable_scratch_for_device, upload_and_collect_child_addrs, UploadError, UploadedCallable,
};
