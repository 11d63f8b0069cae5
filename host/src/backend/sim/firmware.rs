//! The programs built into every simulated device, registered by name at construction: what the
//! firmware binaries are on hardware.
//!
//! * [`SIM_BOOT_ENTRY`]: block 0 boots the runtime and nothing else (the boot-only launch).
//! * [`SIM_AICORE_ENTRY`]: block `c` is AICore core `c`: it reads the per-core tables and the
//!   core count from the launch's `KernelArgs` device copy, waits for the launch's boot, then runs
//!   the core loop ([`serve_core`]), resolving kernel addresses in the device's code space.
//! * [`SIM_AICPU_ENTRY`]: block `t` is AICPU thread `t` of the launch descriptor named by
//!   `KernelArgs::runtime_desc` ([`run_aicpu_thread`]); the orchestration is the code loaded at
//!   the descriptor's orchestration address.
//!
//! Every address read from device memory is checked against the pool before it is dereferenced;
//! an entry reports a bad one as an error (a device fault of the launch), never a crash.

use std::mem::{align_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};

use pto_abi::consts::MAX_AICPU_THREADS;
use pto_abi::launch::{BootReport, KernelArgs, LaunchDescriptor};
use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::CoreTables;
use pto_device::aicpu::{report_orchestrator_abort, run_aicpu_thread, AicpuEnv, AicpuExit};
use pto_device::boot::dev_ptr;
use pto_device::platform::HostPlatform;

use super::cores::{serve_core, LaunchWait};
use super::{PoolSpan, SimBackend, SimCodeSpace, SimLaunch};

/// Name of the built-in AICPU entry that only boots the runtime.
pub const SIM_BOOT_ENTRY: &str = "pto_aicpu_boot";
/// Name of the built-in AICore entry (one block per core).
pub const SIM_AICORE_ENTRY: &str = "pto_aicore_main";
/// Name of the built-in AICPU entry (one block per AICPU thread).
pub const SIM_AICPU_ENTRY: &str = "pto_aicpu_main";

/// Registers the built-in entries of `sim`.
pub(super) fn install(sim: &SimBackend) {
    let span = sim.span();
    sim.register_entry(SIM_BOOT_ENTRY, move |l: &SimLaunch<'_>| boot_entry(l, span));
    let code = sim.code().clone();
    sim.register_entry(SIM_AICORE_ENTRY, move |l: &SimLaunch<'_>| aicore_entry(l, span, &code));
    let code = sim.code().clone();
    sim.register_entry(SIM_AICPU_ENTRY, move |l: &SimLaunch<'_>| aicpu_entry(l, span, &code));
}

/// A pointer to a `T` at `addr`, once `[addr, addr + size_of::<T>())` is known to lie in the pool
/// and `addr` is aligned for `T`.
fn checked<T>(span: PoolSpan, addr: DevAddr, what: &str) -> Result<*mut T, String> {
    if !span.contains(addr, size_of::<T>() as u64) || !addr.is_aligned(align_of::<T>() as u64) {
        return Err(format!("{what} address {addr} is not an aligned {}-byte range of device memory", size_of::<T>()));
    }
    Ok(dev_ptr(addr))
}

/// The launch's `KernelArgs`, copied out of device memory.
fn kernel_args(launch: &SimLaunch<'_>, span: PoolSpan) -> Result<KernelArgs, String> {
    let p = checked::<KernelArgs>(span, launch.args, "kernel args")?;
    // SAFETY: an aligned KernelArgs inside the pool; the host wrote it before the launch.
    Ok(unsafe { p.read_volatile() })
}

/// The boot-only entry: block 0 boots the runtime named by `KernelArgs::runtime_desc`; the
/// outcome goes to the launch's boot report.
fn boot_entry(launch: &SimLaunch<'_>, span: PoolSpan) -> Result<(), String> {
    if launch.block_idx != 0 {
        return Ok(());
    }
    let args = kernel_args(launch, span)?;
    // SAFETY: `runtime_desc` is a launch descriptor in the pool (or null, which boot rejects);
    // boot reports any failure in the descriptor's boot report.
    let _ = unsafe { pto_device::boot::boot(dev_ptr(args.runtime_desc)) };
    Ok(())
}

/// AICore core `launch.block_idx` of the launch (blocks at or above `core_count` return at once).
fn aicore_entry(launch: &SimLaunch<'_>, span: PoolSpan, code: &SimCodeSpace) -> Result<(), String> {
    let args = kernel_args(launch, span)?;
    let core = launch.block_idx;
    if core >= args.core_count {
        return Ok(());
    }
    let tables =
        CoreTables { registers: args.register_table, handshakes: args.handshake_table, payloads: args.core_payloads };
    let named = [
        ("register table", tables.registers),
        ("handshake table", tables.handshakes),
        ("payload table", tables.payloads),
    ];
    for ((what, base), bytes) in named.into_iter().zip(TABLE_BYTES) {
        if !span.contains(base, bytes) {
            return Err(format!("{what} {base}+{bytes:#x} does not lie in device memory"));
        }
    }
    let desc = checked::<LaunchDescriptor>(span, args.runtime_desc, "launch descriptor")?;
    // SAFETY: a launch descriptor inside the pool, written by the host before the launch.
    let report = unsafe { (*desc).boot_report };
    checked::<BootReport>(span, report, "boot report")?;
    let resolver = code.kernels();
    // SAFETY: the tables and the boot report lie in device memory (checked above) that the
    // launch's runtime owns; its boot resets the tables before it reports READY, which the core
    // waits for; block `core` is the only server of core `core` in this launch.
    unsafe { serve_core(&tables, core, Some(report), &*resolver, &mut LaunchWait::new(launch)) }
        .map(|_| ())
        .map_err(|e| format!("core {core}: {e}"))
}

/// AICPU thread `launch.block_idx` of the launch (blocks beyond the descriptor's thread count
/// return at once).
fn aicpu_entry(launch: &SimLaunch<'_>, span: PoolSpan, code: &SimCodeSpace) -> Result<(), String> {
    let args = kernel_args(launch, span)?;
    let desc = checked::<LaunchDescriptor>(span, args.runtime_desc, "launch descriptor")?;
    // SAFETY: a launch descriptor inside the pool, written by the host before the launch and not
    // changed while it runs.
    let (threads, orchestration_addr) = unsafe { ((*desc).aicpu_thread_count, (*desc).orchestration) };
    let threads = threads.clamp(1, MAX_AICPU_THREADS as u32);
    let thread = launch.block_idx;
    if thread >= threads {
        return Ok(());
    }
    let orchestration = code.orchestration(orchestration_addr).ok_or_else(|| {
        format!("AICPU thread {thread}: orchestration address {orchestration_addr} holds no loaded orchestration")
    })?;
    let kernels = code.kernels();
    let env = AicpuEnv { platform: &HostPlatform, kernels: &*kernels, orchestration };
    let desc = desc as *const LaunchDescriptor;
    // SAFETY: `desc` is this launch's descriptor; every block has a distinct thread index below
    // the descriptor's thread count; the AICore launch of the run serves its clusters.
    let exit = catch_unwind(AssertUnwindSafe(|| unsafe { run_aicpu_thread(desc, thread, &env) }));
    match exit {
        Err(_) => {
            if thread + 1 == threads {
                // SAFETY: as above; the orchestrator thread stopped running.
                unsafe { report_orchestrator_abort(desc) };
            }
            Err(format!("AICPU thread {thread} panicked"))
        }
        Ok(AicpuExit::BootNotReady) => Err(format!("AICPU thread {thread}: the runtime never became ready")),
        Ok(AicpuExit::View(e)) => Err(format!("AICPU thread {thread}: cannot view the booted runtime: {e:?}")),
        Ok(AicpuExit::NoCores) => Err(format!("AICPU thread {thread}: cannot open the channels of its cores")),
        // Boot failures are in the boot report, runtime errors in the SM error words.
        Ok(_) => Ok(()),
    }
}
