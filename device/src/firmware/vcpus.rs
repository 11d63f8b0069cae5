//! Work of the vCPUs other than the control core, and how a launch completes.
//!
//! The control core assigns one block range of a launch to a vCPU by filling its [`Work`] and
//! setting `busy` (Release), then powers it on (PSCI CPU_ON, retried while the vCPU is still
//! finishing its last CPU_OFF). The vCPU runs its part, reports it to the launch's
//! [`LaunchState`] (the last one to finish writes the slot's firmware line and `done_seq`),
//! clears `busy` and powers itself off. These words are firmware-private: the host never sees them.

use core::ptr::{addr_of_mut, write_volatile};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use pto_abi::emu::{EmuLaunchStatus, EmuProgram, EMU_LAUNCH_SLOTS, EMU_NO_BLOCK};

use super::layout::VCPUS;
use super::shared::{slot, ticks, word64};
use super::{programs, psci, trap};

/// One vCPU's assignment.
pub struct Work {
    /// 1 from assignment until the vCPU is about to power off.
    pub busy: AtomicU32,
    /// Sequence number of the launch (0 = none).
    pub seq: AtomicU64,
    /// Launch slot index.
    pub slot: AtomicU32,
    /// An `EmuProgram` value.
    pub program: AtomicU32,
    /// AICPU: thread index; AICore: worker index.
    pub part: AtomicU32,
    /// AICPU: block count; AICore: worker count.
    pub parts: AtomicU32,
    /// Guest address of the launch's KernelArgs.
    pub kernel_args: AtomicU64,
    /// AICore: blocks (cores) of the launch.
    pub block_dim: AtomicU32,
}

impl Work {
    const fn new() -> Work {
        Work {
            busy: AtomicU32::new(0),
            seq: AtomicU64::new(0),
            slot: AtomicU32::new(0),
            program: AtomicU32::new(0),
            part: AtomicU32::new(0),
            parts: AtomicU32::new(0),
            kernel_args: AtomicU64::new(0),
            block_dim: AtomicU32::new(0),
        }
    }
}

/// Every vCPU's assignment, by vCPU index.
pub static WORK: [Work; VCPUS] = [const { Work::new() }; VCPUS];

/// Firmware-side progress of the launch in one slot.
pub struct LaunchState {
    /// vCPUs of the launch that have not finished.
    pub remaining: AtomicU32,
    /// The first failure's `EmuLaunchStatus` (0 = none so far).
    pub status: AtomicU32,
    /// The first failing block.
    pub failed_block: AtomicU32,
    /// The first failure's detail.
    pub detail: AtomicU64,
}

/// Launch progress by slot index.
pub static LAUNCHES: [LaunchState; EMU_LAUNCH_SLOTS] = [const {
    LaunchState {
        remaining: AtomicU32::new(0),
        status: AtomicU32::new(0),
        failed_block: AtomicU32::new(EMU_NO_BLOCK),
        detail: AtomicU64::new(0),
    }
}; EMU_LAUNCH_SLOTS];

/// Sequence number of the launch vCPU `core` is running (0 = none, or the control core).
pub fn current_launch(core: u32) -> u64 {
    match WORK.get(core as usize) {
        Some(w) if w.busy.load(Ordering::Acquire) != 0 => w.seq.load(Ordering::Relaxed),
        _ => 0,
    }
}

/// A block failure: the status and its detail.
pub type Failure = (EmuLaunchStatus, u64);

/// Records `failure` of `block` in slot `s`'s launch if it is the first.
pub fn fail(s: usize, block: u32, failure: Failure) {
    let st = &LAUNCHES[s];
    if st.status.compare_exchange(0, failure.0 as u32, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        st.failed_block.store(block, Ordering::Relaxed);
        st.detail.store(failure.1, Ordering::Relaxed);
    }
}

/// Writes slot `s`'s firmware line for launch `seq` and publishes `done_seq` (Release).
pub fn complete(s: usize, seq: u64) {
    let st = &LAUNCHES[s];
    let p = slot(s);
    // SAFETY: the firmware line of slot `s`; only the vCPU that finishes the launch last (or the
    // control core for a launch it never started) writes it, once per launch.
    unsafe {
        write_volatile(addr_of_mut!((*p).status), st.status.load(Ordering::Acquire));
        write_volatile(addr_of_mut!((*p).failed_block), st.failed_block.load(Ordering::Relaxed));
        write_volatile(addr_of_mut!((*p).detail), st.detail.load(Ordering::Relaxed));
        write_volatile(addr_of_mut!((*p).end_ticks), ticks());
        word64(addr_of_mut!((*p).done_seq)).store(seq, Ordering::Release);
    }
}

/// One vCPU's part of a launch has returned: the last part completes the launch.
pub fn part_done(s: usize, seq: u64) {
    if LAUNCHES[s].remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        complete(s, seq);
    }
}

/// Entry of every vCPU but the control core: run the assigned part, report it, power off.
pub fn secondary_main(core: u32) -> ! {
    super::gic::init_this_cpu();
    let w = &WORK[core as usize];
    if w.busy.load(Ordering::Acquire) != 0 {
        let seq = w.seq.load(Ordering::Relaxed);
        let s = w.slot.load(Ordering::Relaxed) as usize % EMU_LAUNCH_SLOTS;
        let part = w.part.load(Ordering::Relaxed);
        let result = match EmuProgram::try_from(w.program.load(Ordering::Relaxed)) {
            Ok(EmuProgram::AicpuMain) => programs::aicpu_thread(w, s),
            Ok(EmuProgram::AicoreMain) => programs::aicore_worker(w, s),
            Ok(EmuProgram::AicpuBoot) => programs::boot_only(w),
            Err(v) => Err((EmuLaunchStatus::UnknownProgram, v as u64)),
        };
        if let Err(f) = result {
            fail(s, part, f);
        }
        part_done(s, seq);
        w.busy.store(0, Ordering::Release);
    }
    psci::cpu_off();
    trap::park()
}
