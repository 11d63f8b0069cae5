//! Typed access to the words the firmware shares with the host: the control block and the log
//! ring header at their fixed guest addresses. Every shared word is reached through an atomic
//! (loads with Acquire where they publish others, stores with Release), never through `&mut`.

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, AtomicU64};

use pto_abi::emu::{EmuControlBlock, EmuFaultRecord, EmuLaunchSlot, EmuLogHeader, EmuPanicRecord};

use super::layout;

/// The control block.
pub fn control() -> *mut EmuControlBlock {
    layout::CONTROL_BLOCK as usize as *mut EmuControlBlock
}

/// The log ring header.
pub fn log_header() -> *mut EmuLogHeader {
    layout::LOG_RING as usize as *mut EmuLogHeader
}

/// Launch slot `i` (`i < EMU_LAUNCH_SLOTS`).
pub fn slot(i: usize) -> *mut EmuLaunchSlot {
    // SAFETY: in-bounds projection of the control block's slot array (the caller's `i`).
    unsafe { addr_of_mut!((*control()).launches[i]) }
}

/// The fault record.
pub fn fault() -> *mut EmuFaultRecord {
    // SAFETY: field projection of the control block.
    unsafe { addr_of_mut!((*control()).fault) }
}

/// The panic record.
pub fn panic_record() -> *mut EmuPanicRecord {
    // SAFETY: field projection of the control block.
    unsafe { addr_of_mut!((*control()).panic) }
}

/// The shared u32 at `p`.
///
/// # Safety
/// `p` must be an aligned u32 inside the control block or the log header.
pub unsafe fn word32<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: the caller's contract; the memory lives as long as the machine.
    unsafe { AtomicU32::from_ptr(p) }
}

/// The shared u64 at `p`.
///
/// # Safety
/// `p` must be an aligned u64 inside the control block or the log header.
pub unsafe fn word64<'a>(p: *mut u64) -> &'a AtomicU64 {
    // SAFETY: the caller's contract.
    unsafe { AtomicU64::from_ptr(p) }
}

/// `field` of the control block as an atomic: `cb!(u64, doorbell)`.
macro_rules! cb {
    (u32, $($f:tt)+) => {
        // SAFETY: an aligned u32 field of the control block.
        unsafe { $crate::firmware::shared::word32(core::ptr::addr_of_mut!((*$crate::firmware::shared::control()).$($f)+)) }
    };
    (u64, $($f:tt)+) => {
        // SAFETY: an aligned u64 field of the control block.
        unsafe { $crate::firmware::shared::word64(core::ptr::addr_of_mut!((*$crate::firmware::shared::control()).$($f)+)) }
    };
}
pub(crate) use cb;

/// The CNTVCT_EL0 virtual counter.
pub fn ticks() -> u64 {
    let t: u64;
    // SAFETY: reads a system register; no memory effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// The counter frequency (CNTFRQ_EL0), ticks per second.
pub fn tick_hz() -> u64 {
    let f: u64;
    // SAFETY: reads a system register; no memory effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f
}

/// The calling vCPU's index (MPIDR_EL1 affinity 0).
pub fn vcpu() -> u32 {
    let m: u64;
    // SAFETY: reads a system register; no memory effects.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    (m & 0xff) as u32
}
