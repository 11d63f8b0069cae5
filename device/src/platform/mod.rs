//! What device code needs from the machine it runs on: the AICore protocol's
//! [`Clock`](crate::aicore::Clock) (a monotonic clock plus a way to wait between polls), and the
//! waiting policy every device loop follows.
//!
//! The simulated device runs AICPU and AICore code as host threads on a machine with few cores,
//! so every wait in device code spins briefly and then gives the processor away through
//! [`Clock::pause`](crate::aicore::Clock::pause).

#[cfg(any(test, feature = "std"))]
mod host;
#[cfg(any(test, feature = "std"))]
pub use host::HostPlatform;

pub use crate::aicore::Clock;

/// Counts the empty rounds of one wait and hands them to [`Clock::pause`], which spins for the
/// first ones and then yields (or sleeps).
#[derive(Debug, Default)]
pub struct Backoff {
    empty: u32,
}

impl Backoff {
    /// A fresh backoff (spins first).
    pub const fn new() -> Self {
        Backoff { empty: 0 }
    }

    /// Waits a little, longer after many empty rounds.
    pub fn snooze(&mut self, clock: &dyn Clock) {
        clock.pause(self.empty);
        self.empty = self.empty.saturating_add(1);
    }

    /// Starts over with spinning (after progress).
    pub fn reset(&mut self) {
        self.empty = 0;
    }
}
