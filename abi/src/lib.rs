//! The byte layout of everything that crosses the host/AICPU boundary.
//!
//! `no_std`, no allocator: the host (x86-64 or aarch64 Linux) and the AICPU firmware
//! (`aarch64-unknown-none`) compile this same crate, so both agree on every struct, every arena
//! offset and the [`ABI_FINGERPRINT`]. Golden assertions pin every size and offset on every target.
#![cfg_attr(not(test), no_std)]

pub mod addr;
pub mod callable;
pub mod consts;
pub mod emu;
pub mod enums;
pub mod error;
pub mod fingerprint;
pub mod image;
pub mod launch;
pub mod layout;
pub mod runtime;
pub mod sizing;
pub mod sm;
pub mod task;

#[cfg(not(pto_abi_bless))]
#[path = "generated/assert_layouts.rs"]
mod assert_layouts;

pub use addr::{DevAddr, ImageOffset};
pub use fingerprint::{ABI_FINGERPRINT, ABI_VERSION};
pub use layout::{heap_layout, reserve_layout, sm_layout, ArenaOffsets, LayoutError, Region, RuntimeArenaLayout};
pub use sizing::{ArenaSizingKey, SizingError};
