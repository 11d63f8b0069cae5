//! AICore cores of the simulated device: each core is one block of a backend launch
//! ([`DeviceBackend::launch_kernel`]) running the device's core loop
//! ([`pto_device::aicore::run_core`]) against the registers and payloads in the sim device pool.
//!
//! * [`SimKernelTable`] resolves a kernel's device address to its Rust function and turns a
//!   panicking kernel into a [`CoreFault::KernelFailed`] report instead of a dead thread.
//! * [`serve_core`] is one core's life in a launch: optionally wait for the launch's boot report,
//!   announce, serve tokens until `DISPATCH_EXIT` or until the host aborts the launch's stream.
//!   The simulated device's AICore entry runs it per block
//!   ([`SIM_AICORE_ENTRY`](super::SIM_AICORE_ENTRY)).
//! * [`SimCores`] launches cores for protocol tests and benchmarks that drive the AICPU side
//!   themselves: its own entry (carrying its resolver and collecting one [`CoreReport`] per core)
//!   launched like any other, `clusters × 3` blocks (core `c` = lane `c % 3` of cluster `c / 3`).
//! * Idle cores spin briefly, then yield, then sleep in short steps ([`sim_pause`]): the machine
//!   may have fewer CPUs than there are simulated cores.
//! * [`SimCores::join`] waits for the cores to exit on their own (after the AICPU side's
//!   shutdown); [`SimCores::stop_and_join`] aborts the launch first, for when the AICPU side died.
//!   Both are bounded: a core stuck inside a kernel is reported, never waited on forever.
//! * The AICPU side waits through [`HostPlatform`](pto_device::platform::HostPlatform).

use std::collections::HashMap;
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pto_abi::consts::{LANE_COUNT, MAX_CLUSTERS};
use pto_abi::launch::{BootReport, CoreFault};
use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::{
    run_core, wait_for_boot, CoreEndpoint, CoreMask, CoreReport, CoreTables, CoreWait, EndpointError, KernelResolver,
};
use pto_device::boot::dev_ptr;
use pto_device::kernel::KernelInvocation;

use super::{SimBackend, SimLaunch};
use crate::backend::{BackendError, DeviceBackend, KernelFn, StreamId};

/// Empty polls spent spinning before a waiter starts yielding.
pub const SPIN_POLLS: u32 = 64;
/// Empty polls (counted from the first) after which a waiter sleeps instead of yielding.
pub const YIELD_POLLS: u32 = 256;
/// How long a waiter sleeps per empty poll once it sleeps.
pub const SLEEP_STEP: Duration = Duration::from_micros(50);

/// The host's wait between two empty polls: spin for [`SPIN_POLLS`], then `yield_now` until
/// [`YIELD_POLLS`], then sleep [`SLEEP_STEP`].
#[inline]
pub fn sim_pause(empty_polls: u32) {
    if empty_polls < SPIN_POLLS {
        std::hint::spin_loop();
    } else if empty_polls < YIELD_POLLS {
        std::thread::yield_now();
    } else {
        std::thread::sleep(SLEEP_STEP);
    }
}

/// Kernel device address → Rust kernel, for the simulated cores.
#[derive(Clone, Debug, Default)]
pub struct SimKernelTable {
    kernels: HashMap<DevAddr, KernelFn>,
}

impl SimKernelTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `kernel` the code at `addr`; returns the kernel it replaces, if any.
    pub fn insert(&mut self, addr: DevAddr, kernel: KernelFn) -> Option<KernelFn> {
        self.kernels.insert(addr, kernel)
    }

    /// Number of kernels.
    pub fn len(&self) -> usize {
        self.kernels.len()
    }

    /// True when no kernel is registered.
    pub fn is_empty(&self) -> bool {
        self.kernels.is_empty()
    }

    /// Every (address, kernel), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (DevAddr, KernelFn)> + '_ {
        self.kernels.iter().map(|(&a, &f)| (a, f))
    }
}

impl KernelResolver for SimKernelTable {
    fn resolve(&self, kernel: DevAddr) -> Option<KernelFn> {
        self.kernels.get(&kernel).copied()
    }

    /// Runs the kernel; a panic becomes [`CoreFault::KernelFailed`].
    fn invoke(&self, kernel: KernelFn, invocation: &KernelInvocation<'_>) -> Result<(), CoreFault> {
        catch_unwind(AssertUnwindSafe(|| kernel(invocation))).map_err(|_| CoreFault::KernelFailed)
    }
}

/// How a core of a launch waits: [`sim_pause`] between polls; it must stop once the host aborted
/// the launch's stream.
pub struct LaunchWait<'l, 'a> {
    launch: &'l SimLaunch<'a>,
}

impl<'l, 'a> LaunchWait<'l, 'a> {
    /// The wait of a block of `launch`.
    pub fn new(launch: &'l SimLaunch<'a>) -> Self {
        LaunchWait { launch }
    }
}

impl CoreWait for LaunchWait<'_, '_> {
    fn idle(&mut self, empty_polls: u32) {
        sim_pause(empty_polls);
    }

    fn must_stop(&self) -> bool {
        self.launch.aborted()
    }
}

/// One core's life in a launch: waits for the boot report at `boot_report` (when given), then
/// announces the core and serves its tokens until `DISPATCH_EXIT` or until `wait` says stop.
///
/// # Safety
/// `tables` (and `boot_report`, if any) must be live device memory for the whole call, be the
/// tables of a runtime whose registers are reset for this run (by the boot this waits for, or
/// already when `boot_report` is None), and nobody else may serve `core` meanwhile.
pub unsafe fn serve_core<R: KernelResolver + ?Sized, W: CoreWait + ?Sized>(
    tables: &CoreTables,
    core: u32,
    boot_report: Option<DevAddr>,
    resolver: &R,
    wait: &mut W,
) -> Result<CoreReport, EndpointError> {
    // SAFETY: forwarded contract: live tables, one server per core.
    // The cores read the clock the AICPU threads read, so their kernel stamps compare with the
    // AICPU's dispatch and finish times.
    let mut endpoint = unsafe { CoreEndpoint::new(tables, core) }?.with_clock(&pto_device::platform::HostPlatform);
    if let Some(report) = boot_report {
        // SAFETY: the boot report is live device memory (caller's contract).
        if let Err(exit) = unsafe { wait_for_boot(dev_ptr::<BootReport>(report), wait) } {
            return Ok(endpoint.report(exit));
        }
    }
    Ok(run_core(&mut endpoint, resolver, wait))
}

/// What to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimCoreConfig {
    /// Clusters to simulate (`1..=MAX_CLUSTERS`); cores `0 .. 3 × clusters`.
    pub clusters: u32,
    /// The per-core tables in the sim pool (e.g. `CoreTables::from_header` of a booted runtime).
    pub tables: CoreTables,
    /// The launch's boot report to wait for before touching the registers (None: start at once,
    /// for tables already reset by the caller).
    pub boot_report: Option<DevAddr>,
}

/// A failure to start or to finish the simulated cores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimCoresError {
    /// The cluster count is 0 or above the maximum.
    #[error("cluster count {clusters} is outside 1..={MAX_CLUSTERS}")]
    ClusterCount {
        /// The count given.
        clusters: u32,
    },
    /// The tables are unusable.
    #[error("core tables: {0}")]
    Tables(EndpointError),
    /// The backend refused to register, launch or collect the cores' launch.
    #[error("the cores' launch: {0}")]
    Launch(BackendError),
    /// Cores still running when the join budget ran out (inside a kernel that does not return);
    /// a later join can still collect them.
    #[error("{cores} still running after {timeout:?}")]
    Stuck {
        /// The cores.
        cores: CoreMask,
        /// The budget.
        timeout: Duration,
    },
    /// A table or the boot report does not lie in the simulated device's pool.
    #[error("core tables or boot report do not lie in the simulated device's memory pool")]
    NotDeviceMemory,
    /// Cores that panicked outside a kernel, or could not serve their tables.
    #[error("{cores} failed outside a kernel")]
    Panicked {
        /// The cores.
        cores: CoreMask,
    },
}

/// How one core of a [`SimCores`] launch ended so far.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Running,
    Done(CoreReport),
    Failed,
}

/// Running simulated AICore cores: one launch of a harness entry on a stream of its own.
pub struct SimCores {
    sim: Arc<SimBackend>,
    stream: StreamId,
    slots: Arc<Mutex<Vec<Slot>>>,
    collected: bool,
}

impl std::fmt::Debug for SimCores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCores").field("stream", &self.stream).field("cores", &self.cores()).finish_non_exhaustive()
    }
}

/// How long [`Drop`] waits for cores after aborting their launch before leaving them running.
const DROP_JOIN_BUDGET: Duration = Duration::from_secs(2);
/// How long a join waits for idle cores to notice the abort it raised.
const STOP_GRACE: Duration = Duration::from_millis(100);

/// Numbers the harness entries of [`SimCores`] (each start registers its own).
static HARNESS_SEQ: AtomicU64 = AtomicU64::new(0);

fn lock_slots(m: &Mutex<Vec<Slot>>) -> std::sync::MutexGuard<'_, Vec<Slot>> {
    // Each update is one assignment; a panic cannot leave half of one.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimCores {
    /// Launches one core per block for `config.clusters` clusters on the simulated device `sim`,
    /// through the backend (register the harness entry, create a stream, launch).
    ///
    /// # Safety
    /// `config.tables` (and `config.boot_report`, if any) must stay allocated in `sim` until every
    /// core has returned, and be the tables of a runtime whose registers were reset for this run
    /// (by boot, or by [`reset_core_tables`](pto_device::aicore::reset_core_tables) when
    /// `boot_report` is None); no other launch may serve the same cores.
    pub unsafe fn start(
        sim: &Arc<SimBackend>,
        config: &SimCoreConfig,
        resolver: Arc<dyn KernelResolver + Send + Sync>,
    ) -> Result<SimCores, SimCoresError> {
        if config.clusters == 0 || config.clusters as usize > MAX_CLUSTERS {
            return Err(SimCoresError::ClusterCount { clusters: config.clusters });
        }
        let t = config.tables;
        if !t.is_well_formed() {
            return Err(SimCoresError::Tables(EndpointError::Tables));
        }
        let inside = |base: DevAddr, len: u64| {
            sim.is_device_address(base) && sim.is_device_address(DevAddr(base.get().wrapping_add(len - 1)))
        };
        let spans = [(t.registers, TABLE_BYTES[0]), (t.handshakes, TABLE_BYTES[1]), (t.payloads, TABLE_BYTES[2])];
        if !spans.iter().all(|&(b, n)| inside(b, n))
            || config.boot_report.is_some_and(|r| !inside(r, size_of::<BootReport>() as u64))
        {
            return Err(SimCoresError::NotDeviceMemory);
        }
        let cores = config.clusters * LANE_COUNT as u32;
        let slots = Arc::new(Mutex::new(vec![Slot::Running; cores as usize]));
        let entry = format!("pto_sim_cores#{}", HARNESS_SEQ.fetch_add(1, Ordering::Relaxed));
        let (shared, boot_report) = (slots.clone(), config.boot_report);
        sim.register_entry(&entry, move |launch: &SimLaunch<'_>| {
            let core = launch.block_idx;
            let served = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: forwarded contract of `start`; block `core` is the one server of `core`.
                unsafe { serve_core(&t, core, boot_report, &*resolver, &mut LaunchWait::new(launch)) }
            }));
            let slot = match served {
                Ok(Ok(report)) => Slot::Done(report),
                _ => Slot::Failed,
            };
            lock_slots(&shared)[core as usize] = slot;
            Ok(())
        });
        let launch = || -> Result<StreamId, BackendError> {
            let handle = sim.register_kernel_binary(entry.as_bytes())?;
            let stream = sim.stream_create()?;
            // The harness entry carries its configuration itself: no KernelArgs.
            sim.launch_kernel(handle, stream, cores, DevAddr::NULL)?;
            Ok(stream)
        };
        let stream = launch().map_err(SimCoresError::Launch)?;
        Ok(SimCores { sim: sim.clone(), stream, slots, collected: false })
    }

    /// The cores whose reports have not been collected yet.
    pub fn cores(&self) -> CoreMask {
        let mut m = CoreMask::EMPTY;
        if !self.collected {
            for core in 0..lock_slots(&self.slots).len() {
                m.insert(core as u32);
            }
        }
        m
    }

    /// Aborts the cores' launch: every idle core returns
    /// [`CoreExit::Stopped`](pto_device::aicore::CoreExit::Stopped) at its next poll.
    pub fn stop(&self) {
        // The stream exists (created by `start`); aborting it cannot fail otherwise.
        let _ = self.sim.stream_abort(self.stream);
    }

    /// True when every core has returned.
    pub fn is_finished(&self) -> bool {
        lock_slots(&self.slots).iter().all(|s| !matches!(s, Slot::Running))
    }

    /// Waits up to `timeout` for every core to return on its own (normally after the AICPU
    /// side's shutdown), then aborts the launch for the idle ones still polling and waits a short
    /// grace. Returns every core's report in core order; a core still running after that (inside
    /// a kernel that does not return) makes it [`SimCoresError::Stuck`], and a later call can
    /// collect it.
    pub fn join(&mut self, timeout: Duration) -> Result<Vec<CoreReport>, SimCoresError> {
        let deadline = Instant::now() + timeout;
        let mut polls = SPIN_POLLS;
        while !self.is_finished() && Instant::now() < deadline {
            sim_pause(polls);
            polls = polls.saturating_add(1);
        }
        if !self.is_finished() {
            self.stop();
            let grace = Instant::now() + STOP_GRACE;
            while !self.is_finished() && Instant::now() < grace {
                sim_pause(YIELD_POLLS);
            }
        }
        let slots = lock_slots(&self.slots).clone();
        let mut stuck = CoreMask::EMPTY;
        let mut failed = CoreMask::EMPTY;
        let mut reports = Vec::with_capacity(slots.len());
        for (core, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Running => {
                    stuck.insert(core as u32);
                }
                Slot::Failed => {
                    failed.insert(core as u32);
                }
                Slot::Done(r) => reports.push(*r),
            }
        }
        if !stuck.is_empty() {
            return Err(SimCoresError::Stuck { cores: stuck, timeout });
        }
        // Every block returned: the launch thread ends at once.
        self.sim.stream_synchronize(self.stream).map_err(SimCoresError::Launch)?;
        self.collected = true;
        if !failed.is_empty() {
            return Err(SimCoresError::Panicked { cores: failed });
        }
        Ok(reports)
    }

    /// Aborts the launch, then joins as [`SimCores::join`] does (the path for an AICPU side that
    /// died or never shut the cores down).
    pub fn stop_and_join(&mut self, timeout: Duration) -> Result<Vec<CoreReport>, SimCoresError> {
        self.stop();
        self.join(timeout)
    }
}

impl Drop for SimCores {
    /// Aborts and joins the cores, waiting at most a bounded time; a core stuck in a kernel is
    /// left to the backend (its launch keeps the pool mapped until it returns).
    fn drop(&mut self) {
        if !self.collected {
            let _ = self.stop_and_join(DROP_JOIN_BUDGET);
        }
    }
}
