//! The firmware's map of guest RAM (guest physical = virtual: the MMU maps 1:1).
//!
//! ```text
//! 0x4000_0000  RAM base: qemu's DTB (never used, never overwritten)
//! 0x4020_0000  ORIGIN: the firmware image (code, data, .pto_abi, .bss)
//! 0x40A0_0000  STACKS_BASE: per vCPU an exception stack and a main stack, each above a guard page
//! 0x40F0_0000  CONTROL_BLOCK (64 KiB reserved)         — shared with the host
//! 0x40F1_0000  LOG_RING (960 KiB: header + ring bytes) — shared with the host
//! 0x4100_0000  HEAP_BASE: the host's device heap, to the end of RAM
//! ```
//!
//! These values reach the host through `.pto_abi` and the linker script through absolute symbols
//! (`entry.rs`), so each is written once.

use pto_abi::emu::{EmuControlBlock, EmuLogHeader, EMU_GUEST_RAM_BASE, EMU_MAX_VCPUS};

/// First byte of guest RAM.
pub const RAM_BASE: u64 = EMU_GUEST_RAM_BASE;
/// Link origin and entry point (qemu 7.2 keeps the DTB only below a high enough image).
pub const ORIGIN: u64 = 0x4020_0000;
/// End of the region the image and its stacks may use.
pub const IMAGE_LIMIT: u64 = 0x40F0_0000;
/// The control block.
pub const CONTROL_BLOCK: u64 = 0x40F0_0000;
/// Bytes reserved for the control block.
pub const CONTROL_BLOCK_SIZE: u64 = 0x1_0000;
/// The log ring (header, then ring bytes).
pub const LOG_RING: u64 = CONTROL_BLOCK + CONTROL_BLOCK_SIZE;
/// Bytes of the log ring, header included.
pub const LOG_RING_SIZE: u64 = 0xF_0000;
/// First byte of the host's device heap.
pub const HEAP_BASE: u64 = LOG_RING + LOG_RING_SIZE;
/// End of the identity map's RAM part (1 GiB blocks 1..4 of the 4 GiB address space).
pub const MAPPED_RAM_END: u64 = 0x1_0000_0000;
/// Fewest bytes of guest RAM: everything up to the heap plus 16 MiB of heap.
pub const MIN_RAM_BYTES: u64 = HEAP_BASE - RAM_BASE + 0x100_0000;
/// Exception stack of each vCPU (SP_EL1).
pub const EXC_STACK_BYTES: u64 = 16 * 1024;
/// Main stack of each vCPU (SP_EL0).
pub const MAIN_STACK_BYTES: u64 = 256 * 1024;
/// One vCPU's stacks: exception stack, then main stack.
pub const STACK_SLOT_BYTES: u64 = EXC_STACK_BYTES + MAIN_STACK_BYTES;
/// vCPUs the firmware has stacks for.
pub const VCPUS: usize = EMU_MAX_VCPUS;
/// First byte of the stacks (2 MiB aligned: the identity map gives this range 4 KiB pages).
pub const STACKS_BASE: u64 = 0x40A0_0000;
/// Bytes of all stacks.
pub const STACKS_BYTES: u64 = STACK_SLOT_BYTES * VCPUS as u64;
/// Bytes of the unmapped guard page at the bottom of each stack: running off a stack faults.
pub const GUARD_BYTES: u64 = 4096;
/// The PL011 UART of the `virt` machine (qemu's serial port).
pub const UART_BASE: u64 = 0x0900_0000;

const _: () = assert!(core::mem::size_of::<EmuControlBlock>() as u64 <= CONTROL_BLOCK_SIZE);
const _: () = assert!((core::mem::size_of::<EmuLogHeader>() as u64) < LOG_RING_SIZE);
const _: () = assert!(ORIGIN >= RAM_BASE + 0x20_0000 && IMAGE_LIMIT <= CONTROL_BLOCK);
const _: () = assert!(STACKS_BASE % 0x20_0000 == 0 && STACKS_BASE + STACKS_BYTES <= IMAGE_LIMIT);
const _: () = assert!(EXC_STACK_BYTES % GUARD_BYTES == 0 && MAIN_STACK_BYTES % GUARD_BYTES == 0);
const _: () = assert!(CONTROL_BLOCK % 4096 == 0 && LOG_RING % 4096 == 0 && HEAP_BASE % 4096 == 0);

/// True when `[addr, addr + len)` lies in the mapped RAM and `addr` is a multiple of `align`.
pub fn in_ram(addr: u64, len: u64, align: u64) -> bool {
    addr >= RAM_BASE
        && addr % align == 0
        && match addr.checked_add(len) {
            Some(end) => end <= MAPPED_RAM_END,
            None => false,
        }
}

/// True when `[addr, addr + len)` is a range of the host's device heap that is aligned.
pub fn in_heap(addr: u64, len: u64, align: u64) -> bool {
    addr >= HEAP_BASE && in_ram(addr, len, align)
}
