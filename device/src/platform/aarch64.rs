//! The platform of the real aarch64 firmware: the generic timer's virtual counter (CNTVCT_EL0 at
//! CNTFRQ_EL0 ticks per second) as the clock; waiting spins (the `yield` hint), because under the
//! emulator WFE does not sleep and WFI needs an interrupt source the firmware does not set up.

use core::arch::asm;

use super::Platform;

/// Device code running on the firmware's vCPUs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Aarch64Platform;

/// The virtual counter.
#[inline]
pub fn cntvct() -> u64 {
    let t: u64;
    // SAFETY: reads a system register; the `isb` keeps the read from being hoisted.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// The counter frequency in ticks per second (never 0).
#[inline]
pub fn cntfrq() -> u64 {
    let f: u64;
    // SAFETY: reads a system register; no memory effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f.max(1)
}

/// `ticks` of a counter running at `hz` in nanoseconds (saturating).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 / hz.max(1) as u128;
    ns.min(u64::MAX as u128) as u64
}

impl Platform for Aarch64Platform {
    fn now_ns(&self) -> u64 {
        ticks_to_ns(cntvct(), cntfrq())
    }

    fn yield_now(&self) {
        core::hint::spin_loop();
    }

    fn idle(&self) {
        for _ in 0..32 {
            core::hint::spin_loop();
        }
    }
}
