//! Time and waiting for the AICPU side of the protocol, as a small platform trait so the same code
//! runs in `no_std` firmware (a cycle counter) and on the simulated device (`std::time::Instant`).

/// A monotonic clock and a way to wait between polls.
pub trait Clock {
    /// Nanoseconds since an arbitrary fixed origin; never decreases.
    fn now_ns(&self) -> u64;

    /// Called between two polls that found nothing; `empty_polls` counts them (0 for the first),
    /// so an implementation can spin briefly, then yield, then sleep.
    fn pause(&self, empty_polls: u32) {
        let _ = empty_polls;
        core::hint::spin_loop();
    }
}

/// The instant `timeout_ns` after `now_ns`, saturating (a huge timeout never wraps into the past).
#[inline]
pub const fn deadline_after(now_ns: u64, timeout_ns: u64) -> u64 {
    now_ns.saturating_add(timeout_ns)
}
