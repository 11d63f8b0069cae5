//! What device code needs from the machine it runs on: a monotonic clock and a way to give the
//! processor away while waiting.
//!
//! The simulated device runs AICPU and AICore code as host threads on a machine with few cores,
//! so every wait in device code spins briefly and then yields through [`Platform::yield_now`].
//! Every such wait also has a budget read from [`Platform::now_ns`] and ends in an error code when
//! it runs out; [`Budgets`](crate::runtime::Budgets) lists each wait with its budget and code.

#[cfg(any(test, feature = "std"))]
mod host;
#[cfg(any(test, feature = "std"))]
pub use host::HostPlatform;
#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use aarch64::Aarch64Platform;

/// Clock and scheduling hooks of the machine running device code.
pub trait Platform: Sync {
    /// Monotonic time in nanoseconds (any origin).
    fn now_ns(&self) -> u64;
    /// Gives the processor to another thread for a moment (a no-op on a dedicated core).
    fn yield_now(&self);
    /// Waits a little longer after many empty rounds (the simulated device sleeps briefly, so idle
    /// device threads leave the host's few CPUs to the busy ones). Defaults to `yield_now`.
    fn idle(&self) {
        self.yield_now();
    }
}

/// Spins a few times, then yields: the waiting policy of every device loop.
#[derive(Debug, Default)]
pub struct Backoff {
    step: u32,
}

/// Busy-wait rounds before a [`Backoff`] starts yielding.
const SPIN_ROUNDS: u32 = 6;
/// Rounds (spinning included) before a [`Backoff`] idles instead of yielding.
const YIELD_ROUNDS: u32 = 256;

impl Backoff {
    /// A fresh backoff (spins first).
    pub const fn new() -> Self {
        Backoff { step: 0 }
    }

    /// Waits a little longer than last time: `2^step` spin hints, then a yield per call, then
    /// [`Platform::idle`] once the wait has lasted `YIELD_ROUNDS` rounds.
    pub fn snooze(&mut self, platform: &dyn Platform) {
        if self.step < SPIN_ROUNDS {
            for _ in 0..(1u32 << self.step) {
                core::hint::spin_loop();
            }
        } else if self.step < YIELD_ROUNDS {
            platform.yield_now();
        } else {
            platform.idle();
        }
        self.step = self.step.saturating_add(1);
    }

    /// Starts over with spinning (after progress).
    pub fn reset(&mut self) {
        self.step = 0;
    }
}
