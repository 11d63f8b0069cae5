//! PSCI calls over HVC (qemu `virt` without EL2/EL3 implements PSCI in the hypervisor conduit).

use core::arch::asm;

const CPU_OFF: u64 = 0x8400_0002;
const CPU_ON_64: u64 = 0xC400_0003;
const AFFINITY_INFO_64: u64 = 0xC400_0004;
const SYSTEM_OFF: u64 = 0x8400_0008;

/// PSCI `ALREADY_ON`: the target is on, or still finishing its CPU_OFF.
pub const ALREADY_ON: i64 = -4;
/// PSCI `ON_PENDING`: an earlier CPU_ON of the target is still in progress.
pub const ON_PENDING: i64 = -5;

fn call(function: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call through HVC; the hypervisor (qemu) changes only x0..x3 and the state
    // of the PSCI function called.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") function => ret,
            inlateout("x1") a1 => _,
            inlateout("x2") a2 => _,
            inlateout("x3") a3 => _,
            options(nostack),
        );
    }
    ret as i64
}

/// Starts vCPU `mpidr` at physical address `entry` with `x0 = context`; 0 or a PSCI error.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> i64 {
    call(CPU_ON_64, mpidr, entry, context)
}

/// State of vCPU `mpidr`: 0 on, 1 off, 2 on pending, or a negative PSCI error (no such vCPU).
pub fn affinity_info(mpidr: u64) -> i64 {
    call(AFFINITY_INFO_64, mpidr, 0, 0)
}

/// Powers the calling vCPU off; returns only if PSCI refused.
pub fn cpu_off() -> i64 {
    call(CPU_OFF, 0, 0, 0)
}

/// Powers the machine off (qemu exits with status 0); returns only if PSCI refused.
pub fn system_off() -> i64 {
    call(SYSTEM_OFF, 0, 0, 0)
}
