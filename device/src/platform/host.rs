//! The host platform of the simulated device: `std::time::Instant` and `std::thread::yield_now`.

extern crate std;

use std::sync::OnceLock;
use std::time::Instant;

use super::Platform;

/// Device code running as host threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostPlatform;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Platform for HostPlatform {
    fn now_ns(&self) -> u64 {
        origin().elapsed().as_nanos() as u64
    }

    fn yield_now(&self) {
        std::thread::yield_now();
    }

    fn idle(&self) {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}
