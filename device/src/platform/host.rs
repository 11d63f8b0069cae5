//! The host clock of device code running as threads of the simulated device.

extern crate std;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::Clock;

/// Device code running as host threads: `Instant` time; waits spin 64 rounds, yield until 256,
/// then sleep 20 µs per round (the machine may have fewer CPUs than device threads).
#[derive(Debug, Default, Clone, Copy)]
pub struct HostPlatform;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for HostPlatform {
    fn now_ns(&self) -> u64 {
        origin().elapsed().as_nanos() as u64
    }

    fn pause(&self, empty_polls: u32) {
        if empty_polls < 64 {
            core::hint::spin_loop();
        } else if empty_polls < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}
