//! AICore cores of the simulated device: one host thread per core running the device's core loop
//! ([`pto_device::aicore::run_core`]) against the registers and payloads in the sim device pool.
//!
//! * [`SimKernelTable`] resolves a kernel's device address to its Rust function and turns a
//!   panicking kernel into a [`CoreFault::KernelFailed`] report instead of a dead thread.
//! * [`SimCores::start`] starts `clusters × 3` worker threads (core `c` = lane `c % 3` of cluster
//!   `c / 3`). Each optionally waits for the launch's boot report, announces itself and serves
//!   tokens until `DISPATCH_EXIT` or the stop flag.
//! * Idle workers spin briefly, then yield, then sleep in short steps ([`sim_pause`]): the machine
//!   may have fewer CPUs than there are simulated cores.
//! * [`SimCores::join`] waits for the workers to exit on their own (after the AICPU side's
//!   shutdown); [`SimCores::stop_and_join`] raises the stop flag first, for when the AICPU side
//!   died. Both are bounded: a worker stuck inside a kernel is reported, never waited on forever.
//! * The AICPU side waits through [`HostPlatform`](pto_device::platform::HostPlatform).

use std::collections::HashMap;
use std::mem::size_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pto_abi::consts::{LANE_COUNT, MAX_CLUSTERS};
use pto_abi::launch::{BootReport, CoreFault};
use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::{
    run_core, wait_for_boot, CoreEndpoint, CoreMask, CoreReport, CoreTables, CoreWait, EndpointError, KernelResolver,
};
use pto_device::boot::dev_ptr;
use pto_device::kernel::{KernelInvocation, SimKernelFn};

use crate::backend::SimBackend;

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
    kernels: HashMap<DevAddr, SimKernelFn>,
}

impl SimKernelTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `kernel` the code at `addr`; returns the kernel it replaces, if any.
    pub fn insert(&mut self, addr: DevAddr, kernel: SimKernelFn) -> Option<SimKernelFn> {
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
}

impl KernelResolver for SimKernelTable {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        self.kernels.get(&kernel).copied()
    }

    /// Runs the kernel; a panic becomes [`CoreFault::KernelFailed`].
    fn invoke(&self, kernel: SimKernelFn, invocation: &KernelInvocation<'_>) -> Result<(), CoreFault> {
        catch_unwind(AssertUnwindSafe(|| kernel(invocation))).map_err(|_| CoreFault::KernelFailed)
    }
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
    /// The OS refused a thread; the workers already started were stopped and joined.
    #[error("cannot start the thread of core {core}: {detail}")]
    Spawn {
        /// The core whose thread failed to start.
        core: u32,
        /// The OS error.
        detail: String,
    },
    /// Workers still running when the join budget ran out (inside a kernel that does not return);
    /// their threads were detached.
    #[error("{cores} still running after {timeout:?}; their threads were detached")]
    Stuck {
        /// The cores.
        cores: CoreMask,
        /// The budget.
        timeout: Duration,
    },
    /// A table or the boot report does not lie in the simulated device's pool.
    #[error("core tables or boot report do not lie in the simulated device's memory pool")]
    NotDeviceMemory,
    /// Worker threads that panicked outside a kernel.
    #[error("the worker thread of {cores} panicked")]
    Panicked {
        /// The cores.
        cores: CoreMask,
    },
}

struct SimCoreWait {
    stop: Arc<AtomicBool>,
}

impl CoreWait for SimCoreWait {
    fn idle(&mut self, empty_polls: u32) {
        sim_pause(empty_polls);
    }

    fn must_stop(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Running simulated AICore workers.
pub struct SimCores {
    workers: Vec<(u32, JoinHandle<CoreReport>)>,
    reports: Vec<CoreReport>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for SimCores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCores").field("running", &self.workers.len()).finish_non_exhaustive()
    }
}

/// How long [`Drop`] waits for workers after raising the stop flag before detaching them.
const DROP_JOIN_BUDGET: Duration = Duration::from_secs(2);
/// How long a join waits for idle workers to notice the stop flag it raised.
const STOP_GRACE: Duration = Duration::from_millis(100);

impl SimCores {
    /// Starts one worker thread per core of `config.clusters` clusters on the simulated device
    /// `sim`. Every worker holds a reference to `sim`, so its pool stays mapped until the last
    /// worker has returned, even one detached by a failed join.
    ///
    /// # Safety
    /// `config.tables` (and `config.boot_report`, if any) must stay allocated in `sim` until every
    /// worker has returned, and be the tables of a runtime whose registers were reset for this run
    /// (by boot, or by [`reset_core_tables`](pto_device::aicore::reset_core_tables) when
    /// `boot_report` is None); no other worker may serve the same cores.
    pub unsafe fn start(
        sim: &Arc<SimBackend>,
        config: &SimCoreConfig,
        resolver: Arc<dyn KernelResolver + Send + Sync>,
    ) -> Result<SimCores, SimCoresError> {
        if config.clusters == 0 || config.clusters as usize > MAX_CLUSTERS {
            return Err(SimCoresError::ClusterCount { clusters: config.clusters });
        }
        let t = &config.tables;
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
        let mut endpoints = Vec::with_capacity(cores as usize);
        for core in 0..cores {
            // SAFETY: forwarded contract: the tables are live device memory, one worker per core.
            endpoints.push(unsafe { CoreEndpoint::new(&config.tables, core) }.map_err(SimCoresError::Tables)?);
        }
        let mut started = SimCores {
            workers: Vec::with_capacity(cores as usize),
            reports: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for mut endpoint in endpoints {
            let core = endpoint.core();
            let resolver = resolver.clone();
            let stop = started.stop.clone();
            let report = config.boot_report;
            let device = sim.clone();
            let spawned = std::thread::Builder::new().name(format!("sim-aicore-{core}")).spawn(move || {
                let _pool_stays_mapped = device;
                let mut wait = SimCoreWait { stop };
                if let Some(report) = report {
                    // SAFETY: the boot report is live device memory (caller's contract).
                    if let Err(exit) = unsafe { wait_for_boot(dev_ptr::<BootReport>(report), &mut wait) } {
                        return endpoint.report(exit);
                    }
                }
                run_core(&mut endpoint, &*resolver, &mut wait)
            });
            match spawned {
                Ok(handle) => started.workers.push((core, handle)),
                Err(e) => {
                    // Dropping `started` stops and joins the workers already running.
                    return Err(SimCoresError::Spawn { core, detail: e.to_string() });
                }
            }
        }
        Ok(started)
    }

    /// The cores whose workers have not been joined yet.
    pub fn cores(&self) -> CoreMask {
        let mut m = CoreMask::EMPTY;
        for (core, _) in &self.workers {
            m.insert(*core);
        }
        m
    }

    /// Raises the stop flag: every idle worker returns
    /// [`CoreExit::Stopped`](pto_device::aicore::CoreExit::Stopped) at its next poll.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// True when every worker has returned.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(|(_, h)| h.is_finished())
    }

    /// Waits up to `timeout` for every worker to return on its own (normally after the AICPU
    /// side's shutdown), then raises the stop flag for the idle ones still polling and waits a
    /// short grace. Returns every worker's report in core order; a worker still running after that
    /// (inside a kernel that does not return) makes it [`SimCoresError::Stuck`], and a later call
    /// can join it.
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
        let mut stuck = CoreMask::EMPTY;
        let mut panicked = CoreMask::EMPTY;
        let mut running = Vec::new();
        for (core, handle) in std::mem::take(&mut self.workers) {
            if !handle.is_finished() {
                stuck.insert(core);
                running.push((core, handle));
                continue;
            }
            match handle.join() {
                Ok(r) => self.reports.push(r),
                Err(_) => {
                    panicked.insert(core);
                }
            }
        }
        self.workers = running;
        if !stuck.is_empty() {
            return Err(SimCoresError::Stuck { cores: stuck, timeout });
        }
        if !panicked.is_empty() {
            return Err(SimCoresError::Panicked { cores: panicked });
        }
        let mut reports = std::mem::take(&mut self.reports);
        reports.sort_by_key(|r| r.core);
        Ok(reports)
    }

    /// Raises the stop flag, then joins as [`SimCores::join`] does (the path for an AICPU side
    /// that died or never shut the cores down).
    pub fn stop_and_join(&mut self, timeout: Duration) -> Result<Vec<CoreReport>, SimCoresError> {
        self.stop();
        self.join(timeout)
    }
}

impl Drop for SimCores {
    /// Stops and joins the workers, waiting at most a bounded time; a worker stuck in a kernel is
    /// detached (it keeps the pool mapped until it returns).
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            let _ = self.stop_and_join(DROP_JOIN_BUDGET);
        }
    }
}
