//! `SimBackend`: the simulated device, the default backend.
//!
//! Its memory is one pool of its own, reserved with `mmap` (not the host heap), so no host buffer
//! ever shares an address with device memory. A [`DevAddr`] on the simulated device *is* the real
//! address of the byte inside the pool: device code (boot, orchestrator, scheduler, kernels)
//! dereferences device addresses directly, exactly as the firmware does. Host code reaches the pool
//! only through the [`DeviceBackend`] calls.
//!
//! For tests it counts every call and every device write, tracks committed and peak bytes, keeps a
//! log of the latest registrations and launches, and can fail the N-th call of any operation
//! ([`SimBackend::fail_nth`]).
//!
//! Device programs are Rust entries registered by name ([`SimBackend::register_entry`]); the
//! "binary" given to [`DeviceBackend::register_kernel_binary`] is that name. Three are built in
//! ([`firmware`]): the boot-only AICPU entry, the AICore entry and the AICPU entry; they are the
//! backend's [`DeviceProgram`]s. Kernels and orchestrations are found by code address in the
//! device's [`SimCodeSpace`], where [`DeviceBackend::load_code`] puts a run's code: a host
//! function at its own address, a callable's code at its device address after resolving its
//! names in the device's name tables ([`SimBackend::symbols`]). A launch runs one
//! host thread per block; launches on one stream run in order, launches on different streams
//! concurrently; [`DeviceBackend::stream_abort`] raises a flag the blocks of the stream's launches
//! see through [`SimLaunch::aborted`].

mod code;
pub mod cores;
pub mod firmware;
pub mod symbols;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pto_abi::consts::REGION_BASE_ALIGN;
use pto_abi::DevAddr;

pub use code::{CodeGuard, SimCodeSpace, SimProgram};
pub use cores::{sim_pause, SimCoreConfig, SimCores, SimCoresError, SimKernelTable};
pub use firmware::{SIM_AICORE_ENTRY, SIM_AICPU_ENTRY, SIM_BOOT_ENTRY};
pub use symbols::{sim_kernel_binary, sim_kernel_name, SymbolError, SymbolTable, Symbols};

use super::{
    BackendError, BackendOp, CodeError, CodeKind, CodeRef, DeviceBackend, DeviceProgram, KernelFn, KernelHandle,
    LoadedCode, RunCode, StreamId,
};
use pto_device::orch::OrchestrationFn;

/// Default size of the pool's address reservation (pages are committed only when touched).
pub const DEFAULT_POOL_CAPACITY: u64 = 16 << 30;

/// Launch records [`SimBackend::launch_log`] keeps (the oldest are dropped first).
pub const LAUNCH_LOG_CAPACITY: usize = 4096;

/// How long dropping a [`SimBackend`] waits for the launches still running after it aborted every
/// stream; launches still running then are detached (they keep the pool mapped until they return).
const DROP_JOIN_BUDGET: Duration = Duration::from_secs(2);

/// What one block of a launch receives.
#[derive(Clone, Copy, Debug)]
pub struct SimLaunch<'a> {
    /// Device address of the launch's `KernelArgs`.
    pub args: DevAddr,
    /// This block's index in `0..block_dim`.
    pub block_idx: u32,
    /// Blocks of the launch.
    pub block_dim: u32,
    /// The stream's abort count, and its value when the launch was queued.
    aborts: &'a AtomicU64,
    queued_at: u64,
}

impl SimLaunch<'_> {
    /// True once the host aborted the stream this launch was queued on
    /// ([`DeviceBackend::stream_abort`]): a block waiting for work returns.
    pub fn aborted(&self) -> bool {
        self.aborts.load(Ordering::Acquire) != self.queued_at
    }
}

/// A device entry of the simulated device: runs one block of a launch; an error is a device fault.
pub type SimEntryFn = Arc<dyn Fn(&SimLaunch<'_>) -> Result<(), String> + Send + Sync>;

/// One registration or launch the backend served, in call order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimLaunchRecord {
    /// `register_kernel_binary` of the entry named `entry`.
    Register {
        /// The entry name (the "binary").
        entry: String,
        /// The handle returned.
        handle: KernelHandle,
    },
    /// `launch_kernel` of the entry named `entry`.
    Launch {
        /// The entry name.
        entry: String,
        /// The stream.
        stream: StreamId,
        /// Blocks.
        block_dim: u32,
        /// Device address of the `KernelArgs`.
        args: DevAddr,
    },
}

/// Counters of the calls a [`SimBackend`] served, for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Successful allocations.
    pub mallocs: u64,
    /// Successful frees.
    pub frees: u64,
    /// Successful host → device copies.
    pub copies_to_device: u64,
    /// Bytes copied host → device.
    pub bytes_to_device: u64,
    /// Successful device → host copies.
    pub copies_from_device: u64,
    /// Bytes copied device → host.
    pub bytes_from_device: u64,
    /// Successful memsets.
    pub memsets: u64,
    /// Bytes set by memsets.
    pub bytes_memset: u64,
    /// Successful kernel binary registrations.
    pub registrations: u64,
    /// Kernel launches queued.
    pub launches: u64,
}

impl SimCounters {
    /// Host-initiated writes into device memory: copies to the device plus memsets.
    pub fn device_writes(&self) -> u64 {
        self.copies_to_device + self.memsets
    }
}

const OP_COUNT: usize = 8;

fn op_index(op: BackendOp) -> usize {
    match op {
        BackendOp::Malloc => 0,
        BackendOp::Free => 1,
        BackendOp::CopyToDevice => 2,
        BackendOp::CopyFromDevice => 3,
        BackendOp::Memset => 4,
        BackendOp::Stream => 5,
        BackendOp::RegisterKernel => 6,
        BackendOp::Launch => 7,
    }
}

/// An armed fault: the call of `op` whose running count reaches `at` fails.
#[derive(Clone, Copy, Debug)]
struct Fault {
    op: BackendOp,
    at: u64,
    nth: u64,
}

/// Allocator state of the pool: free ranges and live allocations, by offset from the pool base.
#[derive(Debug, Default)]
struct Heap {
    free: BTreeMap<u64, u64>,
    live: BTreeMap<u64, u64>,
    committed: u64,
    peak: u64,
}

impl Heap {
    fn allocate(&mut self, size: u64) -> Option<u64> {
        let (&at, &len) = self.free.iter().find(|(_, &len)| len >= size)?;
        self.free.remove(&at);
        if len > size {
            self.free.insert(at + size, len - size);
        }
        self.live.insert(at, size);
        self.committed += size;
        self.peak = self.peak.max(self.committed);
        Some(at)
    }

    fn release(&mut self, at: u64) -> Option<u64> {
        let size = self.live.remove(&at)?;
        self.committed -= size;
        let (mut start, mut len) = (at, size);
        if let Some((&prev, &plen)) = self.free.range(..at).next_back() {
            if prev + plen == at {
                self.free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.free.get(&(at + size)) {
            self.free.remove(&(at + size));
            len += nlen;
        }
        self.free.insert(start, len);
        Some(size)
    }

    /// The live allocation holding `[at, at + len)`, as (start, size).
    fn containing(&self, at: u64, len: u64) -> Option<(u64, u64)> {
        let (&start, &size) = self.live.range(..=at).next_back()?;
        let end = at.checked_add(len)?;
        (end <= start + size).then_some((start, size))
    }
}

/// One stream: its most recent launch (which collects its predecessor first) and how often the
/// stream was aborted.
#[derive(Default)]
struct Stream {
    last: Option<Pending>,
    aborts: Arc<AtomicU64>,
}

/// A block's thread, or why it could not start.
type BlockThread = Result<JoinHandle<Result<(), String>>, String>;

/// The work of a stream's most recent launch.
enum Pending {
    /// Its blocks run now, one thread each.
    Running(Vec<BlockThread>),
    /// Queued behind an unfinished launch: a thread collects that one, then runs the blocks.
    Queued(JoinHandle<Result<(), String>>),
    /// Never ran: its predecessor failed with this error.
    Failed(String),
}

impl Pending {
    fn is_finished(&self) -> bool {
        match self {
            Pending::Running(blocks) => blocks.iter().flatten().all(JoinHandle::is_finished),
            Pending::Queued(h) => h.is_finished(),
            Pending::Failed(_) => true,
        }
    }

    /// Waits for the launch; the first failing block's error wins.
    fn join(self) -> Result<(), String> {
        match self {
            Pending::Running(blocks) => join_blocks(blocks),
            Pending::Queued(h) => h.join().unwrap_or_else(|_| Err("launch thread panicked".into())),
            Pending::Failed(e) => Err(e),
        }
    }
}

/// The outcome of a launch as a backend result.
fn launch_result(p: Pending) -> Result<(), BackendError> {
    p.join().map_err(|detail| BackendError::DeviceFault { op: BackendOp::Launch, detail })
}

/// What every block of one launch shares.
struct LaunchCtx {
    entry: String,
    f: SimEntryFn,
    args: DevAddr,
    block_dim: u32,
    aborts: Arc<AtomicU64>,
    queued_at: u64,
    /// Keeps the pool mapped while a block runs.
    _pool: Arc<Pool>,
}

/// Starts one thread per block of `ctx`.
fn spawn_blocks(ctx: &Arc<LaunchCtx>) -> Vec<BlockThread> {
    (0..ctx.block_dim)
        .map(|block_idx| {
            let ctx = ctx.clone();
            let builder = std::thread::Builder::new().name(format!("{}/{block_idx}", ctx.entry));
            builder
                .spawn(move || {
                    let launch = SimLaunch {
                        args: ctx.args,
                        block_idx,
                        block_dim: ctx.block_dim,
                        aborts: &ctx.aborts,
                        queued_at: ctx.queued_at,
                    };
                    match catch_unwind(AssertUnwindSafe(|| (ctx.f)(&launch))) {
                        Ok(r) => r.map_err(|e| format!("block {block_idx}: {e}")),
                        Err(_) => Err(format!("block {block_idx} panicked")),
                    }
                })
                .map_err(|e| format!("block {block_idx}: cannot start its thread: {e}"))
        })
        .collect()
}

/// Waits for every block; the first failing block's error wins.
fn join_blocks(blocks: Vec<BlockThread>) -> Result<(), String> {
    let mut first = Ok(());
    for (block_idx, b) in blocks.into_iter().enumerate() {
        let r = b.and_then(|h| h.join().unwrap_or_else(|_| Err(format!("block {block_idx}: thread panicked"))));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// The mmap'd pool. Launch threads hold it too, so it stays mapped while any of them runs.
struct Pool {
    base: usize,
    len: usize,
}

impl Pool {
    fn reserve(len: u64) -> Result<Pool, BackendError> {
        let len = usize::try_from(len).map_err(|_| BackendError::Unsupported(format!("pool of {len} bytes")))?;
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let err = std::io::Error::last_os_error();
            return Err(BackendError::Unsupported(format!("cannot reserve a {len}-byte device pool: {err}")));
        }
        Ok(Pool { base: p as usize, len })
    }

    /// Gives the physical pages of `[off, off + len)` back to the OS (whole pages only).
    fn discard(&self, off: u64, len: u64) {
        const PAGE: u64 = 4096;
        let start = (self.base as u64 + off).next_multiple_of(PAGE);
        let end = (self.base as u64 + off + len) & !(PAGE - 1);
        if end > start {
            // SAFETY: the range lies inside the pool mapping, in a block no allocation holds.
            unsafe { libc::madvise(start as usize as *mut libc::c_void, (end - start) as usize, libc::MADV_DONTNEED) };
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping made in `reserve`; nothing uses it any more.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// A run's code resolved to (code address, function) pairs.
struct ResolvedCode {
    orchestration: (DevAddr, OrchestrationFn),
    kernels: Vec<(DevAddr, KernelFn)>,
}

/// The simulated device.
pub struct SimBackend {
    pool: Arc<Pool>,
    heap: Mutex<Heap>,
    faults: Mutex<Vec<Fault>>,
    calls: [AtomicU64; OP_COUNT],
    counters: Mutex<SimCounters>,
    entries: Mutex<HashMap<String, SimEntryFn>>,
    kernels: Mutex<Vec<(String, SimEntryFn)>>,
    streams: Mutex<Vec<Stream>>,
    code: Arc<SimCodeSpace>,
    symbols: Mutex<Symbols>,
    log: Mutex<VecDeque<SimLaunchRecord>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every update is one step).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimBackend {
    /// A simulated device with a pool of [`DEFAULT_POOL_CAPACITY`] bytes.
    pub fn new() -> Result<Self, BackendError> {
        Self::with_capacity(DEFAULT_POOL_CAPACITY)
    }

    /// A simulated device whose memory pool holds `capacity` bytes (rounded up to 1024).
    pub fn with_capacity(capacity: u64) -> Result<Self, BackendError> {
        let capacity = capacity.max(REGION_BASE_ALIGN).next_multiple_of(REGION_BASE_ALIGN);
        let pool = Pool::reserve(capacity)?;
        let mut heap = Heap::default();
        heap.free.insert(0, capacity);
        let sim = SimBackend {
            pool: Arc::new(pool),
            heap: Mutex::new(heap),
            faults: Mutex::new(Vec::new()),
            calls: Default::default(),
            counters: Mutex::new(SimCounters::default()),
            entries: Mutex::new(HashMap::new()),
            kernels: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            code: Arc::new(SimCodeSpace::default()),
            symbols: Mutex::new(Symbols::default()),
            log: Mutex::new(VecDeque::new()),
        };
        firmware::install(&sim);
        Ok(sim)
    }

    /// Makes `f` launchable under `name` (the "binary" later passed to `register_kernel_binary`);
    /// replaces an entry of the same name for later registrations.
    pub fn register_entry<F>(&self, name: &str, f: F)
    where
        F: Fn(&SimLaunch<'_>) -> Result<(), String> + Send + Sync + 'static,
    {
        lock(&self.entries).insert(name.to_owned(), Arc::new(f));
    }

    /// The device's code space: which kernel and orchestration runs at which code address.
    pub fn code(&self) -> &Arc<SimCodeSpace> {
        &self.code
    }

    /// The device's name tables, which registered callables' names resolve in (define kernels
    /// and orchestrations here before registering callables that name them).
    pub fn symbols(&self) -> MutexGuard<'_, Symbols> {
        lock(&self.symbols)
    }

    /// The orchestration and kernels of `code` as (code address, function), names resolved in
    /// the device's name tables.
    fn resolve(&self, code: &RunCode<'_>) -> Result<ResolvedCode, CodeError> {
        let symbols = lock(&self.symbols);
        let unresolved = |kind, name: &str, names: Vec<String>| CodeError::Unresolved {
            kind,
            name: name.to_owned(),
            backend: "sim",
            available: names,
        };
        let orchestration = match code.orchestration {
            CodeRef::Host(f) => (DevAddr(f as usize as u64), f),
            CodeRef::Callable { name, addr, .. } => {
                let f = symbols.orchestrations.get(name).ok_or_else(|| {
                    unresolved(
                        CodeKind::Orchestration,
                        name,
                        symbols.orchestrations.names().map(str::to_owned).collect(),
                    )
                })?;
                (addr, f)
            }
        };
        let mut kernels = Vec::with_capacity(code.kernels.len());
        for (_, k) in &code.kernels {
            kernels.push(match *k {
                CodeRef::Host(f) => (DevAddr(f as usize as u64), f),
                CodeRef::Callable { name, bytes, addr } => {
                    let kernel = sim_kernel_name(bytes).map_err(|detail| CodeError::BadBinary {
                        kind: CodeKind::Kernel,
                        name: name.to_owned(),
                        detail,
                    })?;
                    let f = symbols.kernels.get(kernel).ok_or_else(|| {
                        unresolved(CodeKind::Kernel, kernel, symbols.kernels.names().map(str::to_owned).collect())
                    })?;
                    (addr, f)
                }
            });
        }
        Ok(ResolvedCode { orchestration, kernels })
    }

    /// Streams whose latest launch is still running (including launches the host stopped
    /// waiting for).
    pub fn running_streams(&self) -> usize {
        lock(&self.streams).iter().filter(|s| s.last.as_ref().is_some_and(|h| !h.is_finished())).count()
    }

    /// The latest registrations and launches, oldest first (at most [`LAUNCH_LOG_CAPACITY`]).
    pub fn launch_log(&self) -> Vec<SimLaunchRecord> {
        lock(&self.log).iter().cloned().collect()
    }

    fn record(&self, r: SimLaunchRecord) {
        let mut log = lock(&self.log);
        if log.len() == LAUNCH_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(r);
    }

    /// Fails the `n`-th call of `op` counted from now (`n = 1`: the next call).
    pub fn fail_nth(&self, op: BackendOp, n: u64) {
        let at = self.calls[op_index(op)].load(Ordering::Relaxed) + n.max(1);
        lock(&self.faults).push(Fault { op, at, nth: n.max(1) });
    }

    /// A snapshot of the call counters.
    pub fn counters(&self) -> SimCounters {
        *lock(&self.counters)
    }

    /// Bytes held by live allocations (sizes rounded up to 1024).
    pub fn committed_bytes(&self) -> u64 {
        lock(&self.heap).committed
    }

    /// Highest value [`SimBackend::committed_bytes`] ever reached.
    pub fn peak_bytes(&self) -> u64 {
        lock(&self.heap).peak
    }

    /// Number of live allocations.
    pub fn live_allocations(&self) -> usize {
        lock(&self.heap).live.len()
    }

    /// Total bytes of the pool.
    pub fn capacity(&self) -> u64 {
        self.pool.len as u64
    }

    /// True when `addr` lies inside the pool (device memory of this simulated device).
    pub fn is_device_address(&self, addr: DevAddr) -> bool {
        self.span().contains(addr, 1)
    }

    /// Where the pool lies.
    pub(crate) fn span(&self) -> PoolSpan {
        PoolSpan { base: self.pool.base as u64, len: self.pool.len as u64 }
    }

    /// Counts a call of `op` and fires an armed fault for it.
    fn enter(&self, op: BackendOp) -> Result<(), BackendError> {
        let count = self.calls[op_index(op)].fetch_add(1, Ordering::Relaxed) + 1;
        let mut faults = lock(&self.faults);
        if let Some(i) = faults.iter().position(|f| f.op == op && f.at == count) {
            let f = faults.swap_remove(i);
            return Err(BackendError::InjectedFault { op, nth: f.nth });
        }
        Ok(())
    }

    /// The pool offset of a live range `[addr, addr + len)`.
    fn checked_range(&self, op: BackendOp, addr: DevAddr, len: u64) -> Result<u64, BackendError> {
        let invalid = BackendError::InvalidRange { op, addr, len };
        let off = addr.get().checked_sub(self.pool.base as u64).ok_or(invalid.clone())?;
        lock(&self.heap).containing(off, len).ok_or(invalid)?;
        Ok(off)
    }

    fn pool_ptr(&self, off: u64) -> *mut u8 {
        (self.pool.base + off as usize) as *mut u8
    }
}

impl Drop for SimBackend {
    /// Aborts every stream and waits a bounded time for its launches; a launch still running then
    /// (a kernel that does not return) is detached and keeps the pool mapped until it returns.
    fn drop(&mut self) {
        let mut streams = std::mem::take(&mut *lock(&self.streams));
        for s in &streams {
            s.aborts.fetch_add(1, Ordering::AcqRel);
        }
        let deadline = Instant::now() + DROP_JOIN_BUDGET;
        let mut polls = 0;
        while streams.iter().any(|s| s.last.as_ref().is_some_and(|h| !h.is_finished())) && Instant::now() < deadline {
            sim_pause(polls);
            polls = polls.saturating_add(1);
        }
        for s in &mut streams {
            if let Some(h) = s.last.take().filter(|h| h.is_finished()) {
                let _ = h.join();
            }
        }
    }
}

/// The address range of a pool, for checks on the device side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolSpan {
    base: u64,
    len: u64,
}

impl PoolSpan {
    /// True when `[addr, addr + len)` lies inside the pool (`len` ≥ 1).
    pub(crate) fn contains(&self, addr: DevAddr, len: u64) -> bool {
        let Some(off) = addr.get().checked_sub(self.base) else { return false };
        off.checked_add(len.max(1)).is_some_and(|end| end <= self.len)
    }
}

impl DeviceBackend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError> {
        self.enter(BackendOp::Malloc)?;
        if size == 0 {
            return Err(BackendError::InvalidArgument { op: BackendOp::Malloc, detail: "size 0".into() });
        }
        let rounded = size
            .checked_next_multiple_of(REGION_BASE_ALIGN)
            .ok_or(BackendError::OutOfMemory { requested: size, available: 0 })?;
        let mut heap = lock(&self.heap);
        let Some(off) = heap.allocate(rounded) else {
            let available = heap.free.values().copied().max().unwrap_or(0);
            return Err(BackendError::OutOfMemory { requested: size, available });
        };
        drop(heap);
        lock(&self.counters).mallocs += 1;
        Ok(DevAddr(self.pool.base as u64 + off))
    }

    fn free(&self, addr: DevAddr) -> Result<(), BackendError> {
        self.enter(BackendOp::Free)?;
        let invalid = BackendError::InvalidRange { op: BackendOp::Free, addr, len: 0 };
        let off = addr.get().checked_sub(self.pool.base as u64).ok_or(invalid.clone())?;
        let size = lock(&self.heap).release(off).ok_or(invalid)?;
        self.pool.discard(off, size);
        lock(&self.counters).frees += 1;
        Ok(())
    }

    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        self.enter(BackendOp::CopyToDevice)?;
        let off = self.checked_range(BackendOp::CopyToDevice, dst, src.len() as u64)?;
        // SAFETY: `[off, off + len)` lies inside a live allocation of the pool mapping, which no
        // host buffer overlaps; device threads racing with this copy see what hardware would.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.pool_ptr(off), src.len()) };
        let mut c = lock(&self.counters);
        c.copies_to_device += 1;
        c.bytes_to_device += src.len() as u64;
        Ok(())
    }

    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        self.enter(BackendOp::CopyFromDevice)?;
        let off = self.checked_range(BackendOp::CopyFromDevice, src, dst.len() as u64)?;
        // SAFETY: as in `copy_to_device`, with the direction reversed.
        unsafe { std::ptr::copy_nonoverlapping(self.pool_ptr(off), dst.as_mut_ptr(), dst.len()) };
        let mut c = lock(&self.counters);
        c.copies_from_device += 1;
        c.bytes_from_device += dst.len() as u64;
        Ok(())
    }

    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        self.enter(BackendOp::Memset)?;
        let off = self.checked_range(BackendOp::Memset, dst, len)?;
        // SAFETY: as in `copy_to_device`.
        unsafe { std::ptr::write_bytes(self.pool_ptr(off), value, len as usize) };
        let mut c = lock(&self.counters);
        c.memsets += 1;
        c.bytes_memset += len;
        Ok(())
    }

    fn stream_create(&self) -> Result<StreamId, BackendError> {
        self.enter(BackendOp::Stream)?;
        let mut streams = lock(&self.streams);
        streams.push(Stream::default());
        Ok(StreamId(streams.len() as u32 - 1))
    }

    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError> {
        self.enter(BackendOp::Stream)?;
        let last = self.with_stream(BackendOp::Stream, stream, |s| s.last.take())?;
        last.map_or(Ok(()), launch_result)
    }

    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: Duration) -> Result<(), BackendError> {
        self.enter(BackendOp::Stream)?;
        let deadline = Instant::now() + timeout;
        let mut polls = 0;
        loop {
            let finished = self.with_stream(BackendOp::Stream, stream, |s| match &s.last {
                Some(h) if !h.is_finished() => None,
                _ => Some(s.last.take()),
            })?;
            if let Some(last) = finished {
                return last.map_or(Ok(()), launch_result);
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout { op: BackendOp::Stream, waited: timeout });
            }
            sim_pause(polls);
            polls = polls.saturating_add(1);
        }
    }

    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError> {
        self.enter(BackendOp::Stream)?;
        self.with_stream(BackendOp::Stream, stream, |s| s.aborts.fetch_add(1, Ordering::AcqRel))?;
        Ok(())
    }

    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        self.enter(BackendOp::RegisterKernel)?;
        let invalid = |detail: String| BackendError::InvalidArgument { op: BackendOp::RegisterKernel, detail };
        let name = std::str::from_utf8(binary)
            .map_err(|_| invalid("a simulated-device binary is the UTF-8 name of a registered entry".into()))?;
        let f = lock(&self.entries)
            .get(name)
            .cloned()
            .ok_or_else(|| invalid(format!("no simulated-device entry named `{name}` is registered")))?;
        let handle = {
            let mut kernels = lock(&self.kernels);
            kernels.push((name.to_owned(), f));
            KernelHandle(kernels.len() as u32 - 1)
        };
        lock(&self.counters).registrations += 1;
        self.record(SimLaunchRecord::Register { entry: name.to_owned(), handle });
        Ok(handle)
    }

    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError> {
        self.enter(BackendOp::Launch)?;
        let invalid = |detail: String| BackendError::InvalidArgument { op: BackendOp::Launch, detail };
        let (entry, f) = lock(&self.kernels)
            .get(kernel.0 as usize)
            .cloned()
            .ok_or_else(|| invalid(format!("unknown kernel handle {}", kernel.0)))?;
        if block_dim == 0 {
            return Err(invalid("block_dim 0".into()));
        }
        let mut streams = lock(&self.streams);
        let s = streams.get_mut(stream.0 as usize).ok_or_else(|| invalid(format!("unknown stream {}", stream.0)))?;
        let queued_at = s.aborts.load(Ordering::Acquire);
        let ctx = Arc::new(LaunchCtx {
            entry: entry.clone(),
            f,
            args,
            block_dim,
            aborts: s.aborts.clone(),
            queued_at,
            _pool: self.pool.clone(),
        });
        s.last = Some(match s.last.take() {
            Some(previous) if !previous.is_finished() => {
                let queued = std::thread::Builder::new().name(format!("sim-stream-{}", stream.0)).spawn(move || {
                    previous.join()?;
                    join_blocks(spawn_blocks(&ctx))
                });
                // On failure the predecessor moved into the closure that never ran: it is detached.
                Pending::Queued(
                    queued.map_err(|e| BackendError::DeviceFault { op: BackendOp::Launch, detail: e.to_string() })?,
                )
            }
            Some(previous) => match previous.join() {
                Ok(()) => Pending::Running(spawn_blocks(&ctx)),
                Err(e) => Pending::Failed(e),
            },
            None => Pending::Running(spawn_blocks(&ctx)),
        });
        drop(streams);
        lock(&self.counters).launches += 1;
        self.record(SimLaunchRecord::Launch { entry, stream, block_dim, args });
        Ok(())
    }

    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError> {
        let entry = match program {
            DeviceProgram::Boot => SIM_BOOT_ENTRY,
            DeviceProgram::Aicpu => SIM_AICPU_ENTRY,
            DeviceProgram::Aicore => SIM_AICORE_ENTRY,
        };
        self.register_kernel_binary(entry.as_bytes())
    }

    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError> {
        self.resolve(code).map(|_| ())
    }

    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError> {
        let resolved = self.resolve(code)?;
        let mut table = SimKernelTable::new();
        for &(addr, f) in &resolved.kernels {
            table.insert(addr, f);
        }
        let guard = self.code.load(&SimProgram { orchestration: resolved.orchestration, kernels: &table })?;
        Ok(LoadedCode {
            orchestration: resolved.orchestration.0,
            kernels: resolved.kernels.iter().map(|&(addr, _)| addr).collect(),
            keep: Some(Box::new(guard)),
        })
    }
}

impl SimBackend {
    fn with_stream<T>(
        &self,
        op: BackendOp,
        stream: StreamId,
        f: impl FnOnce(&mut Stream) -> T,
    ) -> Result<T, BackendError> {
        let mut streams = lock(&self.streams);
        let s = streams
            .get_mut(stream.0 as usize)
            .ok_or_else(|| BackendError::InvalidArgument { op, detail: format!("unknown stream {}", stream.0) })?;
        Ok(f(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_inside_the_pool_and_freed_space_coalesces() {
        let sim = SimBackend::with_capacity(8 << 20).unwrap();
        let a = sim.malloc(3 << 20).unwrap();
        let b = sim.malloc(1000).unwrap();
        let c = sim.malloc(3 << 20).unwrap();
        for x in [a, b, c] {
            assert!(x.is_aligned(REGION_BASE_ALIGN) && sim.is_device_address(x));
        }
        assert_eq!(sim.committed_bytes(), (6 << 20) + 1024);
        let e = sim.malloc(4 << 20).unwrap_err();
        assert!(matches!(e, BackendError::OutOfMemory { requested, .. } if requested == 4 << 20), "{e}");
        sim.free(b).unwrap();
        sim.free(a).unwrap();
        // a and b merged: an allocation of their combined size lands where a was.
        assert_eq!(sim.malloc(3 << 20 | 1024).unwrap(), a);
        assert_eq!(sim.peak_bytes(), (6 << 20) + 1024);
        assert!(matches!(sim.free(b), Err(BackendError::InvalidRange { op: BackendOp::Free, .. })));
    }

    #[test]
    fn copies_must_stay_inside_one_live_allocation() {
        let sim = SimBackend::with_capacity(1 << 20).unwrap();
        let a = sim.malloc(2048).unwrap();
        sim.copy_to_device(a, &[7u8; 2048]).unwrap();
        let mut back = [0u8; 16];
        sim.copy_from_device(DevAddr(a.get() + 2032), &mut back).unwrap();
        assert_eq!(back, [7u8; 16]);
        let over = sim.copy_to_device(DevAddr(a.get() + 2040), &[0u8; 16]).unwrap_err();
        assert!(matches!(over, BackendError::InvalidRange { op: BackendOp::CopyToDevice, .. }));
        let host = back.as_ptr() as u64;
        assert!(sim.copy_from_device(DevAddr(host), &mut back).is_err(), "host addresses are not device memory");
        sim.memset(a, 0, 2048).unwrap();
        let c = sim.counters();
        assert_eq!((c.copies_to_device, c.memsets, c.device_writes(), c.bytes_to_device), (1, 1, 2, 2048));
    }

    #[test]
    fn an_injected_fault_fires_once_at_the_nth_call() {
        let sim = SimBackend::with_capacity(1 << 20).unwrap();
        let a = sim.malloc(1024).unwrap();
        sim.fail_nth(BackendOp::CopyToDevice, 2);
        sim.copy_to_device(a, &[1]).unwrap();
        let e = sim.copy_to_device(a, &[1]).unwrap_err();
        assert_eq!(e, BackendError::InjectedFault { op: BackendOp::CopyToDevice, nth: 2 });
        sim.copy_to_device(a, &[1]).unwrap();
        assert_eq!(sim.counters().copies_to_device, 2, "a failed call writes nothing");
    }

    #[test]
    fn launches_on_one_stream_run_in_order_and_a_failure_skips_the_rest() {
        static ORDER: Mutex<Vec<&str>> = Mutex::new(Vec::new());
        let sim = SimBackend::with_capacity(1 << 20).unwrap();
        sim.register_entry("slow", |_: &SimLaunch<'_>| {
            std::thread::sleep(Duration::from_millis(20));
            lock(&ORDER).push("slow");
            Ok(())
        });
        sim.register_entry("fast", |_: &SimLaunch<'_>| {
            lock(&ORDER).push("fast");
            Ok(())
        });
        sim.register_entry("fail", |l: &SimLaunch<'_>| Err(format!("fails with {} blocks", l.block_dim)));
        let [slow, fast, fail] = ["slow", "fast", "fail"].map(|n| sim.register_kernel_binary(n.as_bytes()).unwrap());
        let s = sim.stream_create().unwrap();
        sim.launch_kernel(slow, s, 2, DevAddr::NULL).unwrap();
        sim.launch_kernel(fast, s, 1, DevAddr::NULL).unwrap();
        sim.stream_synchronize(s).unwrap();
        assert_eq!(*lock(&ORDER), ["slow", "slow", "fast"]);

        sim.launch_kernel(fail, s, 3, DevAddr::NULL).unwrap();
        sim.launch_kernel(fast, s, 1, DevAddr::NULL).unwrap();
        let e = sim.stream_synchronize(s).unwrap_err();
        assert_eq!(
            e,
            BackendError::DeviceFault { op: BackendOp::Launch, detail: "block 0: fails with 3 blocks".into() }
        );
        assert_eq!(lock(&ORDER).len(), 3, "the launch queued behind the failed one never ran");
        let c = sim.counters();
        assert_eq!((c.registrations, c.launches), (3, 4));
    }

    #[test]
    fn an_abort_reaches_the_launches_queued_before_it_and_a_bounded_wait_leaves_them_queued() {
        let sim = SimBackend::with_capacity(1 << 20).unwrap();
        sim.register_entry("wait_for_abort", |l: &SimLaunch<'_>| {
            while !l.aborted() {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        });
        sim.register_entry("not_aborted", |l: &SimLaunch<'_>| match l.aborted() {
            true => Err("saw an abort raised before it was queued".into()),
            false => Ok(()),
        });
        let wait = sim.register_kernel_binary(b"wait_for_abort").unwrap();
        let check = sim.register_kernel_binary(b"not_aborted").unwrap();
        let s = sim.stream_create().unwrap();
        sim.launch_kernel(wait, s, 4, DevAddr::NULL).unwrap();
        let e = sim.stream_synchronize_timeout(s, Duration::from_millis(5)).unwrap_err();
        assert_eq!(e, BackendError::Timeout { op: BackendOp::Stream, waited: Duration::from_millis(5) });
        assert_eq!(sim.running_streams(), 1, "still queued after the timeout");
        sim.stream_abort(s).unwrap();
        sim.stream_synchronize_timeout(s, Duration::from_secs(60)).unwrap();
        sim.launch_kernel(check, s, 2, DevAddr::NULL).unwrap();
        sim.stream_synchronize(s).unwrap();
        assert_eq!(sim.running_streams(), 0);
        let unknown = sim.stream_abort(StreamId(7)).unwrap_err();
        assert!(matches!(unknown, BackendError::InvalidArgument { op: BackendOp::Stream, .. }), "{unknown}");
    }
}
