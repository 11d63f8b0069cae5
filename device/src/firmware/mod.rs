//! The firmware proper (only built for `aarch64-unknown-none`).
//!
//! * [`entry`]: reset and exception entry in assembly; [`mmu`]: the identity map;
//! * [`layout`]: where everything lives in guest RAM; [`shared`]: the words shared with the host;
//! * [`control`]: vCPU 0, the control core (ready, doorbell, launches, shutdown);
//! * [`vcpus`] and [`programs`]: what the other vCPUs run (AICPU threads, AICore cores, boot);
//! * [`names`]: the compiled-in kernels and orchestrations and the `.pto_abi` section;
//!   [`probes`]: probe code for the emulated device's fault tests;
//! * [`logger`]: the defmt logger writing the log ring; [`trap`]: fault and panic records;
//! * [`gic`]: the timer interrupt that ends a sleeping WFI; [`psci`]: PSCI over HVC; [`uart`]: one line per fault or panic on the serial port.

pub mod control;
pub mod entry;
pub mod gic;
pub mod layout;
pub mod logger;
pub mod mmu;
pub mod names;
pub mod probes;
pub mod programs;
pub mod psci;
pub mod shared;
pub mod trap;
pub mod uart;
pub mod vcpus;

/// Rust entry of every vCPU, called by the entry code with the MMU on and `.bss` zeroed.
#[no_mangle]
pub extern "C" fn pto_firmware_main(vcpu: u64, _context: u64) -> ! {
    if vcpu == 0 {
        control::control_main()
    } else {
        vcpus::secondary_main(vcpu as u32)
    }
}
