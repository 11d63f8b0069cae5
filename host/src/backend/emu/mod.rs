//! `EmuBackend`: the emulated device, an aarch64 `virt` machine under qemu running the real
//! `aarch64-unknown-none` firmware build, whose guest RAM the host reaches only through a shared
//! mapping.

pub mod elf;
pub mod heap;
pub mod log;
pub mod qemu;
pub mod ram;
