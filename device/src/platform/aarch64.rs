//! The platform of the real aarch64 firmware: the generic timer's virtual counter (CNTVCT_EL0 at
//! CNTFRQ_EL0 ticks per second) as the clock. A short wait spins (the `yield` hint); a long one
//! ([`Platform::idle`]) sleeps [`IDLE_SLEEP_NS`] in WFI until the vCPU's virtual timer fires, once
//! the firmware has routed that timer's interrupt to wake WFI ([`enable_timer_sleep`]); before
//! that it spins too (under the emulator WFE does not sleep, and WFI without a wake-up source
//! would never return).
//!
//! The onboard AICPU program (an aarch64 Linux shared object, at EL0) uses the same platform: Linux
//! lets EL0 read both counter registers, and it never turns timer sleep on, so its waits spin.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

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

/// How long [`Platform::idle`] sleeps once timer sleep is on.
pub const IDLE_SLEEP_NS: u64 = 20_000;

static TIMER_SLEEP: AtomicBool = AtomicBool::new(false);

/// Turns timer sleep on: the caller has enabled the virtual-timer interrupt in the interrupt
/// controller for every vCPU that will call [`sleep_ns`] (with the interrupt masked in PSTATE, so
/// it only ends a WFI).
pub fn enable_timer_sleep() {
    TIMER_SLEEP.store(true, Ordering::Release);
}

/// True once [`enable_timer_sleep`] was called.
pub fn timer_sleep_enabled() -> bool {
    TIMER_SLEEP.load(Ordering::Acquire)
}

/// Sleeps about `ns` nanoseconds (WFI until the virtual timer fires; a spurious wake-up returns
/// early), or spins briefly when timer sleep is off.
pub fn sleep_ns(ns: u64) {
    if !timer_sleep_enabled() {
        for _ in 0..64 {
            core::hint::spin_loop();
        }
        return;
    }
    let ticks = (ns as u128 * cntfrq() as u128 / 1_000_000_000).max(1) as u64;
    let deadline = cntvct().wrapping_add(ticks);
    // SAFETY: programs this vCPU's own virtual timer (compare value, enabled and unmasked), waits
    // for an interrupt with PSTATE.I masked (so nothing is taken), then disables the timer, which
    // lowers its interrupt again.
    unsafe {
        asm!(
            "msr cntv_cval_el0, {d}",
            "mov {t}, #1",
            "msr cntv_ctl_el0, {t}",
            "isb",
            "wfi",
            "msr cntv_ctl_el0, xzr",
            "isb",
            d = in(reg) deadline,
            t = out(reg) _,
            options(nomem, nostack),
        );
    }
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
        sleep_ns(IDLE_SLEEP_NS);
    }
}
