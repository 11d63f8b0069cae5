//! The three programs a launch can run (`pto_abi::emu::EmuProgram`), exactly what the simulated
//! device's built-in entries run, on vCPUs: every address read from device memory is checked to
//! be an aligned range of the device heap before it is dereferenced.

use core::mem::{align_of, size_of};
use core::ptr::{addr_of, addr_of_mut, read_volatile};
use core::sync::atomic::Ordering;

use heapless::Vec;
use pto_abi::consts::MAX_CORES;
use pto_abi::emu::{EmuLaunchStatus, EMU_ABORT_REQUESTED};
use pto_abi::launch::{BootReport, KernelArgs, LaunchDescriptor};
use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::{wait_for_boot, CoreEndpoint, CoreTables, CoreWait, Step};
use pto_device::aicpu::AicpuExit;
use pto_device::boot::dev_ptr;
use pto_device::platform::{Aarch64Platform, Platform};
use pto_device::program::{run_aicpu_part, PartOutcome};
use pto_device::pto_log;

use super::layout::in_heap;
use super::names::{FirmwareKernels, CODE};
use super::shared::{slot, word32};
use super::trap::HALTED;
use super::vcpus::{Failure, Work};

static PLATFORM: Aarch64Platform = Aarch64Platform;

fn checked<T>(addr: DevAddr, status: EmuLaunchStatus) -> Result<*mut T, Failure> {
    if in_heap(addr.get(), size_of::<T>() as u64, align_of::<T>() as u64) {
        Ok(dev_ptr(addr))
    } else {
        Err((status, addr.get()))
    }
}

fn kernel_args(w: &Work) -> Result<KernelArgs, Failure> {
    let p = checked::<KernelArgs>(DevAddr(w.kernel_args.load(Ordering::Relaxed)), EmuLaunchStatus::BadKernelArgs)?;
    // SAFETY: an aligned KernelArgs inside the heap, written by the host before the launch.
    Ok(unsafe { p.read_volatile() })
}

/// Block 0 of a boot-only launch: boot the runtime; the outcome goes to the boot report.
pub fn boot_only(w: &Work) -> Result<(), Failure> {
    if w.part.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    let args = kernel_args(w)?;
    let desc = checked::<LaunchDescriptor>(args.runtime_desc, EmuLaunchStatus::BadLaunchDescriptor)?;
    // SAFETY: a launch descriptor inside the heap; boot validates everything it points at and
    // reports any failure in the descriptor's boot report.
    if let Err(e) = unsafe { pto_device::boot::boot(desc) } {
        pto_log!(warn, "boot failed: {=str} ({=str})", e.code.name(), e.subject);
    }
    Ok(())
}

/// AICPU thread `part` of the launch (threads beyond the descriptor's count return at once).
pub fn aicpu_thread(w: &Work, _slot: usize) -> Result<(), Failure> {
    let args = kernel_args(w)?;
    let desc = checked::<LaunchDescriptor>(args.runtime_desc, EmuLaunchStatus::BadLaunchDescriptor)?;
    let thread = w.part.load(Ordering::Relaxed);
    // SAFETY: a launch descriptor inside the heap, written by the host before the launch and not
    // changed while it runs; every part of the launch runs one distinct thread index; the AICore
    // launch of the run serves its clusters.
    let exit = match unsafe { run_aicpu_part(desc, thread, &PLATFORM, &CODE) } {
        PartOutcome::Extra => return Ok(()),
        PartOutcome::UnknownOrchestration(addr) => return Err((EmuLaunchStatus::UnknownOrchestration, addr)),
        PartOutcome::Exit(exit) => exit,
    };
    match exit {
        AicpuExit::BootNotReady => Err((EmuLaunchStatus::BootNotReady, 0)),
        AicpuExit::View(_) => Err((EmuLaunchStatus::RuntimeView, 0)),
        AicpuExit::NoCores => Err((EmuLaunchStatus::NoCores, 0)),
        AicpuExit::BootFailed(e) => {
            pto_log!(warn, "AICPU thread {=u32}: boot failed: {=str} ({=str})", thread, e.code.name(), e.subject);
            Ok(())
        }
        AicpuExit::Orchestrated(s) => {
            match s.error {
                Some(e) => pto_log!(
                    warn,
                    "orchestrator stopped after {=u64} tasks: {=str} (ring {=u32}, detail {=u64:#x})",
                    s.tasks_submitted,
                    e.code.name(),
                    e.ring,
                    e.detail
                ),
                None => pto_log!(info, "orchestrator submitted {=u64} tasks", s.tasks_submitted),
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// How an AICore worker waits: spin, and stop once the host aborted the launch or the firmware
/// halted.
struct SlotWait {
    slot: usize,
}

impl CoreWait for SlotWait {
    fn idle(&mut self, empty_polls: u32) {
        if empty_polls > 64 {
            PLATFORM.idle();
        } else {
            PLATFORM.yield_now();
        }
    }

    fn must_stop(&self) -> bool {
        let p = slot(self.slot);
        // SAFETY: the host's aligned `abort` word of the slot.
        let abort = unsafe { word32(addr_of_mut!((*p).abort)) }.load(Ordering::Acquire);
        abort == EMU_ABORT_REQUESTED || HALTED.load(Ordering::Relaxed)
    }
}

/// AICore worker `part` of `parts`: serves cores `part, part + parts, …` below
/// `min(block_dim, core_count)`, polling them in turn, until each has exited or the launch is
/// aborted.
pub fn aicore_worker(w: &Work, s: usize) -> Result<(), Failure> {
    let args = kernel_args(w)?;
    let tables =
        CoreTables { registers: args.register_table, handshakes: args.handshake_table, payloads: args.core_payloads };
    for (base, bytes) in [tables.registers, tables.handshakes, tables.payloads].into_iter().zip(TABLE_BYTES) {
        if !in_heap(base.get(), bytes, 64) {
            return Err((EmuLaunchStatus::BadCoreTables, base.get()));
        }
    }
    let desc = checked::<LaunchDescriptor>(args.runtime_desc, EmuLaunchStatus::BadLaunchDescriptor)?;
    // SAFETY: a launch descriptor inside the heap, written by the host before the launch.
    let report = unsafe { read_volatile(addr_of!((*desc).boot_report)) };
    let report = checked::<BootReport>(report, EmuLaunchStatus::BadLaunchDescriptor)?;
    let mut wait = SlotWait { slot: s };
    // SAFETY: the boot report lies in the heap (checked above); the host wrote it PENDING before
    // the launch.
    if unsafe { wait_for_boot(report, &mut wait) }.is_err() {
        return Ok(());
    }
    let (part, parts) = (w.part.load(Ordering::Relaxed), w.parts.load(Ordering::Relaxed).max(1));
    let cores = w.block_dim.load(Ordering::Relaxed).min(args.core_count).min(MAX_CORES as u32);
    let mut mine: Vec<(CoreEndpoint, bool), MAX_CORES> = Vec::new();
    let mut core = part;
    while core < cores {
        // SAFETY: the tables lie in the heap (checked above) and belong to the runtime whose boot
        // (waited for above) reset them; core `core` is served by this worker alone.
        match unsafe { CoreEndpoint::new(&tables, core) } {
            Ok(e) => {
                // Capacity MAX_CORES holds every core index below MAX_CORES. The cores stamp
                // kernels with the virtual counter every vCPU shares with the AICPU threads.
                let _ = mine.push((e.with_clock(&PLATFORM), false));
            }
            Err(_) => return Err((EmuLaunchStatus::BadCoreTables, core as u64)),
        }
        core += parts;
    }
    for (e, _) in &mine {
        e.announce();
    }
    let resolver = FirmwareKernels;
    let mut empty = 0u32;
    let mut left = mine.len();
    while left > 0 {
        let mut progressed = false;
        for (e, done) in mine.iter_mut().filter(|(_, d)| !*d) {
            match e.step_or_stop(&resolver, &|| wait.must_stop()) {
                Step::Exited | Step::Stopped { .. } => {
                    *done = true;
                    left -= 1;
                    progressed = true;
                }
                Step::Ran { .. } => progressed = true,
                Step::Idle => {}
            }
        }
        if progressed {
            empty = 0;
        } else {
            if wait.must_stop() {
                break;
            }
            wait.idle(empty);
            empty = empty.saturating_add(1);
        }
    }
    Ok(())
}
