//! The control core (vCPU 0): boots the machine, publishes `ready`, then forever takes launches
//! in sequence order from the doorbell, hands their blocks to vCPUs, and powers the machine off
//! when the host asks.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::Ordering;

use pto_abi::consts::MAX_AICPU_THREADS;
use pto_abi::emu::{
    EmuLaunchStatus, EmuProgram, EMU_CONTROL_MAGIC, EMU_LAUNCH_SLOTS, EMU_MAX_VCPUS, EMU_NO_BLOCK, EMU_READY,
    EMU_SHUTDOWN_REQUESTED,
};
use pto_device::platform::aarch64;
use pto_device::pto_log;

use super::shared::{cb, slot, tick_hz, ticks, word64};
use super::trap::HALTED;
use super::vcpus::{complete, LAUNCHES, WORK};
use super::{logger, psci, trap};

/// After a launch, the control core polls the doorbell without sleeping for this long (so a host
/// posting launches back to back gets the polling round trip).
const CONTROL_SPIN_US: u64 = 2_000;
/// Once idle, the control core sleeps this long between two doorbell polls (the latency a first
/// launch after a short pause pays at most).
const CONTROL_SLEEP_NS: u64 = 50_000;
/// Idle for longer than this, the control core sleeps [`CONTROL_DEEP_SLEEP_NS`] instead.
const CONTROL_DEEP_IDLE_US: u64 = 100_000;
/// The sleep between two doorbell polls of a long idle machine (its qemu then takes a few percent
/// of a host core instead of a whole one).
const CONTROL_DEEP_SLEEP_NS: u64 = 1_000_000;

extern "C" {
    fn _pto_secondary();
}

/// How the vCPUs are split.
#[derive(Clone, Copy)]
struct Roles {
    /// AICPU vCPUs: `1 ..= aicpu`.
    aicpu: u32,
    /// AICore vCPUs: the `aicore` after the AICPU ones.
    aicore: u32,
}

fn count_vcpus() -> u32 {
    let mut n = 1;
    while (n as usize) < EMU_MAX_VCPUS && psci::affinity_info(n as u64) >= 0 {
        n += 1;
    }
    n
}

fn roles(vcpus: u32) -> Roles {
    if vcpus < 3 {
        return Roles { aicpu: vcpus.saturating_sub(1), aicore: 0 };
    }
    let aicpu = (MAX_AICPU_THREADS as u32).min(vcpus - 2);
    Roles { aicpu, aicore: vcpus - 1 - aicpu }
}

fn shutdown_requested() -> bool {
    cb!(u32, shutdown).load(Ordering::Acquire) == EMU_SHUTDOWN_REQUESTED
}

fn power_off() -> ! {
    pto_log!(info, "shutdown requested: powering off");
    psci::system_off();
    trap::park()
}

/// Starts vCPU `v` on `_pto_secondary`, retrying while it is still powering off. False when PSCI
/// refuses for another reason.
fn power_on(v: u32) -> bool {
    loop {
        match psci::cpu_on(v as u64, _pto_secondary as *const () as usize as u64, v as u64) {
            0 => return true,
            psci::ALREADY_ON | psci::ON_PENDING => {
                if shutdown_requested() {
                    power_off();
                }
                core::hint::spin_loop();
            }
            _ => return false,
        }
    }
}

/// What launch `seq` in slot `s` needs: the vCPUs `first .. first + count` and the parts.
struct Plan {
    program: EmuProgram,
    first: u32,
    count: u32,
}

fn plan(program: EmuProgram, block_dim: u32, r: Roles) -> Result<Plan, (EmuLaunchStatus, u64)> {
    match program {
        EmuProgram::AicpuMain => {
            if block_dim > r.aicpu {
                return Err((EmuLaunchStatus::TooManyBlocks, r.aicpu as u64));
            }
            Ok(Plan { program, first: 1, count: block_dim })
        }
        EmuProgram::AicpuBoot => {
            if r.aicpu == 0 {
                return Err((EmuLaunchStatus::TooManyBlocks, 0));
            }
            Ok(Plan { program, first: 1, count: block_dim.min(1) })
        }
        EmuProgram::AicoreMain => {
            if r.aicore == 0 && block_dim > 0 {
                return Err((EmuLaunchStatus::TooManyBlocks, 0));
            }
            Ok(Plan { program, first: 1 + r.aicpu, count: block_dim.min(r.aicore) })
        }
    }
}

fn finish_now(s: usize, seq: u64, failure: Option<(EmuLaunchStatus, u64)>) {
    let st = &LAUNCHES[s];
    let (status, detail) = failure.map(|(c, d)| (c as u32, d)).unwrap_or((0, 0));
    st.status.store(status, Ordering::Relaxed);
    st.failed_block.store(if failure.is_some() { 0 } else { EMU_NO_BLOCK }, Ordering::Relaxed);
    st.detail.store(detail, Ordering::Relaxed);
    if let Some((code, _)) = failure {
        pto_log!(warn, "launch {=u64} refused: {=str}", seq, code.name());
    }
    complete(s, seq);
}

/// Tries to start launch `seq`; false when its vCPUs are still busy (try again later).
fn try_start(seq: u64, r: Roles) -> bool {
    let s = ((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize;
    let p = slot(s);
    // SAFETY: the host's line of slot `s`: `seq` with Acquire (the host stored it, then the
    // doorbell, with Release), the other fields plain reads after it.
    let (found, program, block_dim, kernel_args) = unsafe {
        (
            word64(addr_of_mut!((*p).seq)).load(Ordering::Acquire),
            read_volatile(addr_of!((*p).program)),
            read_volatile(addr_of!((*p).block_dim)),
            read_volatile(addr_of!((*p).kernel_args)),
        )
    };
    if found != seq {
        finish_now(s, seq, Some((EmuLaunchStatus::SlotMismatch, found)));
        return true;
    }
    if HALTED.load(Ordering::Acquire) {
        finish_now(s, seq, Some((EmuLaunchStatus::Halted, 0)));
        return true;
    }
    let program = match EmuProgram::try_from(program) {
        Ok(p) => p,
        Err(v) => {
            finish_now(s, seq, Some((EmuLaunchStatus::UnknownProgram, v as u64)));
            return true;
        }
    };
    let plan = match plan(program, block_dim, r) {
        Ok(p) => p,
        Err(f) => {
            finish_now(s, seq, Some(f));
            return true;
        }
    };
    let vcpus = plan.first..plan.first + plan.count;
    if vcpus.clone().any(|v| WORK[v as usize].busy.load(Ordering::Acquire) != 0) {
        return false;
    }
    let st = &LAUNCHES[s];
    st.status.store(0, Ordering::Relaxed);
    st.failed_block.store(EMU_NO_BLOCK, Ordering::Relaxed);
    st.detail.store(0, Ordering::Relaxed);
    st.remaining.store(plan.count, Ordering::Relaxed);
    // SAFETY: the firmware line of slot `s`, written by the control core before any part runs.
    unsafe {
        write_volatile(addr_of_mut!((*p).start_ticks), ticks());
        word64(addr_of_mut!((*p).started_seq)).store(seq, Ordering::Release);
    }
    if plan.count == 0 {
        complete(s, seq);
        return true;
    }
    for (part, v) in vcpus.enumerate() {
        let w = &WORK[v as usize];
        w.seq.store(seq, Ordering::Relaxed);
        w.slot.store(s as u32, Ordering::Relaxed);
        w.program.store(plan.program as u32, Ordering::Relaxed);
        w.part.store(part as u32, Ordering::Relaxed);
        w.parts.store(plan.count, Ordering::Relaxed);
        w.kernel_args.store(kernel_args.get(), Ordering::Relaxed);
        w.block_dim.store(block_dim, Ordering::Relaxed);
        w.busy.store(1, Ordering::Release);
        if !power_on(v) {
            w.busy.store(0, Ordering::Release);
            super::vcpus::fail(s, part as u32, (EmuLaunchStatus::VcpuStartFailed, v as u64));
            super::vcpus::part_done(s, seq);
        }
    }
    true
}

/// vCPU 0 after the entry code: boot, publish `ready`, serve the doorbell.
pub fn control_main() -> ! {
    logger::init();
    let sleeps = super::gic::init_boot_cpu();
    let vcpus = count_vcpus();
    let r = roles(vcpus);
    // The host's words are never written here; the firmware's own start from known values.
    // SAFETY: aligned firmware words of the control block; the host does not write them.
    unsafe {
        let c = super::shared::control();
        for i in 0..EMU_LAUNCH_SLOTS {
            let p = slot(i);
            write_volatile(addr_of_mut!((*p).status), 0);
            write_volatile(addr_of_mut!((*p).failed_block), EMU_NO_BLOCK);
        }
        write_volatile(addr_of_mut!((*c).vcpu_count), vcpus);
        write_volatile(addr_of_mut!((*c).aicpu_vcpus), r.aicpu);
        write_volatile(addr_of_mut!((*c).aicore_vcpus), r.aicore);
        write_volatile(addr_of_mut!((*c).cntfrq), tick_hz());
        write_volatile(addr_of_mut!((*c).ready_ticks), ticks());
        write_volatile(addr_of_mut!((*c).magic), EMU_CONTROL_MAGIC);
    }
    let mut taken = cb!(u64, doorbell).load(Ordering::Acquire);
    cb!(u64, launches_taken).store(taken, Ordering::Release);
    pto_log!(
        info,
        "pto-firmware ready: {=u32} vCPUs ({=u32} AICPU, {=u32} AICore), ABI {=u64:#x}",
        vcpus,
        r.aicpu,
        r.aicore,
        pto_abi::ABI_FINGERPRINT
    );
    if !sleeps {
        pto_log!(warn, "no GICv2: idle waits spin instead of sleeping");
    }
    cb!(u32, ready).store(EMU_READY, Ordering::Release);
    let mut last_work = ticks();
    let spin_window = tick_hz() / 1_000_000 * CONTROL_SPIN_US;
    let deep_idle = tick_hz() / 1_000_000 * CONTROL_DEEP_IDLE_US;
    loop {
        if shutdown_requested() {
            power_off();
        }
        let doorbell = cb!(u64, doorbell).load(Ordering::Acquire);
        if doorbell > taken && try_start(taken + 1, r) {
            taken += 1;
            cb!(u64, launches_taken).store(taken, Ordering::Release);
            last_work = ticks();
            continue;
        }
        let idle = ticks().wrapping_sub(last_work);
        if idle < spin_window {
            for _ in 0..16 {
                core::hint::spin_loop();
            }
        } else if idle < deep_idle {
            aarch64::sleep_ns(CONTROL_SLEEP_NS);
        } else {
            aarch64::sleep_ns(CONTROL_DEEP_SLEEP_NS);
        }
    }
}
