//! Helpers shared by the image-pipeline tests: a simulated device, runners and small sizings.
#![allow(dead_code)]

use std::sync::Arc;

use pto_abi::launch::LaunchDescriptor;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::DevAddr;
use pto_device::boot::{BootError, BootedRuntime};
use pto_host::sim::SimBackend;
use pto_host::{BoundImage, DeviceBackend, DeviceRunner, LaunchParams};

/// A simulated device with a 4 GiB pool (tests use small sizings).
pub fn sim() -> Arc<SimBackend> {
    Arc::new(SimBackend::with_capacity(4 << 30).expect("reserve the simulated device pool"))
}

/// A runner on `sim`.
pub fn runner(sim: &Arc<SimBackend>) -> DeviceRunner {
    DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>)
}

/// A small valid sizing: windows `w`, heaps 64 KiB, dep pools 64.
pub fn sizing(w: u64) -> ArenaSizingKey {
    ArenaSizingKey::uniform(w, 64 << 10, 64)
}

/// Writes the launch block for `bound` and boots directly on the sim pool, as the AICPU launch does.
pub fn boot_direct(runner: &mut DeviceRunner, bound: &BoundImage) -> Result<BootedRuntime, BootError> {
    boot_direct_with(runner, bound, &LaunchParams::default())
}

/// As [`boot_direct`] with explicit launch parameters.
pub fn boot_direct_with(
    runner: &mut DeviceRunner,
    bound: &BoundImage,
    params: &LaunchParams,
) -> Result<BootedRuntime, BootError> {
    let block = runner.prepare_launch(bound, params).expect("write the launch block");
    // SAFETY: the descriptor was just uploaded into the sim pool; on the sim a device address is
    // the real address, and no other thread touches these regions during the test.
    unsafe { pto_device::boot::boot(pto_device::boot::dev_ptr::<LaunchDescriptor>(block.descriptor())) }
}

/// Reads `len` bytes of device memory at `addr`.
pub fn read_bytes(runner: &DeviceRunner, addr: DevAddr, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    runner.backend().copy_from_device(addr, &mut v).expect("read device memory");
    v
}

/// Re-seals the image resident at `bound` with the checksum of its current bytes, so a boot that
/// verifies the checksum reaches the checks behind it.
pub fn reseal(runner: &DeviceRunner, bound: &BoundImage) {
    let mut bytes = read_bytes(runner, bound.regions.arena.base, bound.image_size);
    assert!(pto_abi::image::seal_image(&mut bytes), "the image holds a header");
    let at = pto_abi::image::IMAGE_CHECKSUM_OFFSET;
    let addr = DevAddr(bound.regions.arena.base.get() + at as u64);
    runner.backend().copy_to_device(addr, &bytes[at..at + 8]).expect("write the checksum");
}
