//! AICPU firmware: boots from an arena image the host built and runs the orchestrator and scheduler.
//!
//! `no_std` and allocation-free: every structure lives in the arena or in shared memory. Built as a
//! library for the host (the simulated device) and for `aarch64-unknown-none` (the firmware).
//!
//! Features: `std` (host builds: a std clock and thread yield for [`platform`]); `testkit`
//! (tests and benchmarks only: `hostmem`, zeroed host allocations standing in for device regions,
//! and `testkit`, a runtime booted in host memory by the device's own boot); `pointer-audit` (the
//! boot-time pointer audit in release builds too; it always runs in debug builds).
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub use pto_abi as abi;

pub mod aicore;
pub mod aicpu;
pub mod boot;
pub mod deppool;
pub mod examples;
#[cfg(any(test, feature = "testkit"))]
pub mod hostmem;
pub mod kernel;
#[macro_use]
pub mod log;
pub mod onboard;
pub mod orch;
pub mod platform;
pub mod program;
pub mod queue;
pub mod reset;
pub mod ring;
pub mod runtime;
pub mod sched;
pub mod slot;
pub mod sync;
pub mod tensormap;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod trace;
pub mod view;
