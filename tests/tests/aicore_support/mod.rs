//! Helpers shared by the AICore protocol tests: core tables in a simulated device, test kernels
//! and a dispatch driver.
#![allow(dead_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::{reset_core_tables, Completion, CoreChannels, CoreTables, Dispatch};
use pto_device::kernel::KernelInvocation;
use pto_host::sim::{sim_pause, SimBackend, SimCoreConfig, SimCores, SimKernelTable};
use pto_host::DeviceBackend;

/// Kernel address of [`write_kernel`].
pub const WRITE: DevAddr = DevAddr(0x10_0000);
/// Kernel address of [`panic_kernel`].
pub const PANIC: DevAddr = DevAddr(0x20_0000);
/// Kernel address of [`gate_kernel`].
pub const GATE: DevAddr = DevAddr(0x30_0000);
/// An address no kernel has.
pub const NOWHERE: DevAddr = DevAddr(0xdead_0000);

/// Budget for anything a test waits on; only a hang guard, never a speed assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// `args = [out, index, value]`: stores `value + block_idx` into the u64 `out[index]`.
pub fn write_kernel(inv: &KernelInvocation<'_>) {
    let slot = inv.arg(1) as usize;
    // SAFETY: the test gives each (task, block) its own u64 (index `slot`) inside a live sim
    // allocation.
    let out = unsafe { inv.tensor::<u64>(0, slot + 1) };
    out.atomic_u64(slot).store(inv.arg(2) + inv.block_idx as u64, Ordering::Relaxed);
}

/// Always panics (a failing kernel).
pub fn panic_kernel(_: &KernelInvocation<'_>) {
    panic!("test kernel fails on purpose");
}

/// `args = [flag]`: spins (yielding) until the u64 at `flag` is nonzero.
pub fn gate_kernel(inv: &KernelInvocation<'_>) {
    // SAFETY: the test passes the address of a live u64 in the sim pool, written atomically.
    let flag = unsafe { inv.tensor::<u64>(0, 1) }.atomic_u64(0);
    while flag.load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The resolver of the test kernels.
pub fn kernels() -> Arc<SimKernelTable> {
    let mut t = SimKernelTable::new();
    t.insert(WRITE, write_kernel);
    t.insert(PANIC, panic_kernel);
    t.insert(GATE, gate_kernel);
    Arc::new(t)
}

/// A simulated device holding reset core tables and a buffer of `words` u64.
pub struct Fixture {
    pub sim: Arc<SimBackend>,
    pub tables: CoreTables,
    pub buffer: DevAddr,
}

impl Fixture {
    pub fn new(words: u64) -> Fixture {
        let sim = Arc::new(SimBackend::with_capacity(64 << 20).expect("sim pool"));
        let total: u64 = TABLE_BYTES.iter().sum();
        let base = sim.malloc(total).unwrap();
        let tables = CoreTables {
            registers: base,
            handshakes: DevAddr(base.get() + TABLE_BYTES[0]),
            payloads: DevAddr(base.get() + TABLE_BYTES[0] + TABLE_BYTES[1]),
        };
        // SAFETY: the three tables lie in one live allocation of the pool; no core runs yet.
        unsafe { reset_core_tables(&tables) };
        let buffer = sim.malloc(words.max(1) * 8).unwrap();
        sim.memset(buffer, 0, words.max(1) * 8).unwrap();
        Fixture { sim, tables, buffer }
    }

    /// Starts workers for `clusters` clusters (tables already reset: no boot gate).
    pub fn start(&self, clusters: u32) -> SimCores {
        let cfg = SimCoreConfig { clusters, tables: self.tables, boot_report: None };
        // SAFETY: the tables stay allocated in `self.sim` for the fixture's life; workers hold the
        // pool and each test joins or drops them before the fixture.
        unsafe { SimCores::start(&self.sim, &cfg, kernels()).unwrap() }
    }

    /// Channels of scheduler `sched` of `n` over `clusters` clusters.
    pub fn channels(&self, sched: u32, n: u32, clusters: u32) -> CoreChannels {
        // SAFETY: the tables are live; each test gives each core to one scheduler.
        unsafe { CoreChannels::for_scheduler(self.tables, sched, n, clusters).unwrap() }
    }

    /// The buffer's words.
    pub fn read_buffer(&self, words: usize) -> Vec<u64> {
        let mut bytes = vec![0u8; words * 8];
        self.sim.copy_from_device(self.buffer, &mut bytes).unwrap();
        bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

/// One block to dispatch.
#[derive(Clone, Debug)]
pub struct Work {
    pub kernel: DevAddr,
    pub task_id: u64,
    pub block_idx: u32,
    pub block_num: u32,
    pub args: Vec<u64>,
}

/// Dispatches every item of `work` over the channels' cores (any core; up to `depth` tokens in
/// flight per core, batched: prepare on every core that can take one, then one publish) and
/// returns every completion in the order seen. Panics if the hang guard expires.
pub fn drive(ch: &mut CoreChannels, work: &[Work], depth: u32) -> Vec<Completion> {
    let start = Instant::now();
    let mut next = 0usize;
    let mut done = Vec::with_capacity(work.len());
    let mut empty = 0u32;
    while done.len() < work.len() {
        assert!(start.elapsed() < HANG_GUARD, "dispatch hung: {} of {} done", done.len(), work.len());
        let mut progressed = false;
        for core in ch.owned() {
            let p = ch.poll(core).expect("poll");
            assert!(!p.exited, "core {core} exited during dispatch");
            progressed |= !p.completions().is_empty();
            done.extend_from_slice(p.completions());
        }
        for core in ch.owned() {
            if next < work.len() && ch.can_prepare(core) && ch.in_flight(core) < depth {
                let w = &work[next];
                let d = Dispatch {
                    kernel: w.kernel,
                    task_id: w.task_id,
                    block_idx: w.block_idx,
                    block_num: w.block_num,
                    args: &w.args,
                };
                ch.prepare(core, &d).expect("prepare");
                next += 1;
            }
        }
        progressed |= ch.publish() > 0;
        if progressed {
            empty = 0;
        } else {
            sim_pause(empty);
            empty += 1;
        }
    }
    done
}
