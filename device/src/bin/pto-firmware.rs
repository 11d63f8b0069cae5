//! `pto-firmware`: the AICPU firmware of the emulated aarch64 device (`qemu-system-aarch64
//! -machine virt`), built with `cargo fw-build` for `aarch64-unknown-none`.
//!
//! It runs the same `pto-device` code as the simulated device: AICPU threads (boot, orchestrator,
//! schedulers) and AICore cores on vCPUs, driven by the host through the shared-memory protocol of
//! `pto_abi::emu`. On any other target this binary is a stub that says how to build the real one.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
#[path = "../firmware/mod.rs"]
mod firmware;

/// Host builds: the firmware only exists for `aarch64-unknown-none`.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "pto-firmware is the aarch64-unknown-none firmware of the emulated device; build it with \
         `cargo fw-build` (target/aarch64-unknown-none/release/pto-firmware)"
    );
    std::process::exit(2);
}
