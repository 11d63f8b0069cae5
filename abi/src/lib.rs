//! The byte layout of everything that crosses the host/AICPU boundary.
//!
//! `no_std`, no allocator, no `unsafe`: the host (x86-64 or aarch64 Linux) and the AICPU firmware
//! (`aarch64-unknown-none`) compile this same crate, so both agree on every struct, every arena
//! offset and the [`ABI_FINGERPRINT`].
//!
//! # What crosses
//!
//! The host prepares three device regions for a run, each with a 1024-aligned base:
//!
//! - the **runtime arena** ([`arena`]): an image the host builds ([`image::ImageHeader`] first)
//!   holding every runtime structure that is not per task slot, at offsets the layout engine
//!   ([`layout`]) computes from an [`ArenaSizingKey`];
//! - **shared memory** (SM, [`sm`]): the SM header (per-ring flow control, error words the host
//!   reads back after a failed run) and per ring the task descriptors, payloads and slot states
//!   ([`task`]);
//! - the **GM heap**: the four ring heaps that hold runtime-allocated kernel outputs.
//!
//! The launch descriptor ([`launch::LaunchDescriptor`]) tells the device where the three regions
//! are this time, and the device reports its boot outcome in a [`launch::BootReport`]. Callables
//! (an orchestration plus its child kernels) travel as blobs ([`callable`]) the device parses with
//! checked arithmetic. Error codes are in [`error`]. A host process drives a chip-worker process
//! through the shared-memory [`mailbox`].
//!
//! # Rules every ABI struct keeps
//!
//! - `#[repr(C)]`, fixed-width integer fields only: addresses are [`DevAddr`] (a `u64` newtype),
//!   never pointers, references, `usize` or `bool`, because the host may be x86-64 while the device
//!   is aarch64; offsets into an image are [`ImageOffset`], so the two cannot be mixed up.
//! - Every padding byte is an explicit `_pad` field, and zerocopy's `IntoBytes` derive proves there
//!   is no hidden padding; naturally aligned, never `packed` (the firmware runs with strict
//!   alignment before its MMU is on).
//! - Enums that cross are `#[repr(u32)]` with a checked `TryFrom<u32>` ([`abi_enum!`]): the other
//!   side may be newer or corrupt.
//! - Pointers stored in the arena come in classes: arena-internal ones are wired by the device at
//!   every boot as arena base + offset; ones into SM and the heap are rebound from this launch's
//!   bases; values only the device knows (core counts) are written at boot; links created while
//!   running are made unreachable for the next run by epoch and counter resets.
//!
//! # Fingerprint and golden files
//!
//! [`fingerprint::ABI_TYPES`] lists every ABI struct with every field, and
//! [`fingerprint::ABI_CAPACITIES`] every capacity and magic value; [`ABI_FINGERPRINT`] hashes both.
//! Generated const assertions pin every size, alignment and field offset on every target, and a
//! struct that drifted fails the build with a message naming the type, the field, the offset found
//! and the golden one. After a deliberate change, list every field in `ABI_TYPES` and re-bless:
//!
//! ```text
//! RUSTFLAGS="--cfg pto_abi_bless" PTO_BLESS=1 cargo test -p pto-abi --test abi_golden
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![forbid(clippy::wildcard_imports)]

pub mod addr;
pub mod arena;
pub mod callable;
pub mod consts;
mod drift;
pub mod emu;
pub mod enums;
pub mod error;
pub mod fingerprint;
pub mod hash;
pub mod image;
pub mod launch;
pub mod layout;
pub mod mailbox;
pub mod runtime;
pub mod sizing;
pub mod sm;
pub mod task;
pub mod trace;

#[cfg(not(pto_abi_bless))]
#[path = "generated/assert_layouts.rs"]
mod assert_layouts;

pub use addr::{DevAddr, ImageOffset};
pub use arena::{ArenaOffsets, Region, RuntimeArenaLayout};
pub use callable::{CallableError, ChipCallableView};
pub use error::{BootErrorCode, DeviceErrorCode, RuntimeErrorCode};
pub use fingerprint::{ABI_FINGERPRINT, ABI_VERSION};
pub use hash::{fnv1a64, FNV1A64_INIT};
pub use image::ImageHeader;
pub use launch::{BootReport, KernelArgs, LaunchDescriptor};
pub use layout::{heap_layout, reserve_layout, sm_layout, HeapLayout, LayoutError, SmLayout};
pub use sizing::{ArenaSizingKey, SizingError};
