//! AICPU firmware: boots from an arena image the host built and runs the orchestrator and scheduler.
//!
//! `no_std` and allocation-free: every structure lives in the arena or in shared memory. Built as a
//! library for the host (the simulated device) and for `aarch64-unknown-none` (the firmware).
#![cfg_attr(not(test), no_std)]

pub use pto_abi as abi;

pub mod aicore;
pub mod boot;
pub mod kernel;
