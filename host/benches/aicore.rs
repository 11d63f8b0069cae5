//! AICore protocol cost on the simulated device, against a baseline measured in the same run:
//!
//! * round trip of one task (prepare → publish → core ACK, no-op kernel, FIN → poll) on one
//!   simulated core thread vs an atomic ping-pong between two threads that wait the same way
//!   (spin, then yield, then sleep: [`sim_pause`]);
//! * per-task cost of pipelined, batched dispatch (up to 2 tokens in flight per core) over the 6
//!   cores of 2 clusters, vs the same ping-pong.
//!
//! Run: `cargo bench -p pto-host --bench aicore -- --warm-up-time 1 --measurement-time 2`.
//! The ratios are printed at the end from criterion's estimates of this run.

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pto_abi::DevAddr;
use pto_device::aicore::tables::TABLE_BYTES;
use pto_device::aicore::{reset_core_tables, CoreChannels, CoreTables, Dispatch};
use pto_device::kernel::KernelInvocation;
use pto_host::sim::{sim_pause, SimBackend, SimCoreConfig, SimCores, SimKernelTable};
use pto_host::DeviceBackend;
use support::{print_ratios, Ratio};

const NOOP: DevAddr = DevAddr(0x1000);
const BATCH: u64 = 600;

fn noop(_: &KernelInvocation<'_>) {}

/// A sim device with reset core tables, `clusters` worker clusters and channels over them.
fn setup(clusters: u32) -> (Arc<SimBackend>, SimCores, CoreChannels) {
    let sim = Arc::new(SimBackend::with_capacity(16 << 20).expect("sim pool"));
    let base = sim.malloc(TABLE_BYTES.iter().sum()).unwrap();
    let tables = CoreTables {
        registers: base,
        handshakes: DevAddr(base.get() + TABLE_BYTES[0]),
        payloads: DevAddr(base.get() + TABLE_BYTES[0] + TABLE_BYTES[1]),
    };
    let mut kernels = SimKernelTable::new();
    kernels.insert(NOOP, noop);
    // SAFETY: the tables lie in one live allocation of `sim`, reset before any worker starts;
    // the workers hold `sim` and are joined when `SimCores` drops; one scheduler owns every core.
    unsafe {
        reset_core_tables(&tables);
        let cores =
            SimCores::start(&sim, &SimCoreConfig { clusters, tables, boot_report: None }, Arc::new(kernels)).unwrap();
        let ch = CoreChannels::for_scheduler(tables, 0, 1, clusters).unwrap();
        (sim, cores, ch)
    }
}

const WORK: Dispatch<'static> = Dispatch { kernel: NOOP, task_id: 0, block_idx: 0, block_num: 1, args: &[] };

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("aicore_round_trip");

    // Baseline: ping-pong of a counter between this thread and a partner waiting like a core.
    let ping = Arc::new(AtomicU64::new(0));
    let pong = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let partner = {
        let (ping, pong, stop) = (ping.clone(), pong.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut seen, mut empty) = (0u64, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let v = ping.load(Ordering::Acquire);
                if v != seen {
                    seen = v;
                    pong.store(v, Ordering::Release);
                    empty = 0;
                } else {
                    sim_pause(empty);
                    empty += 1;
                }
            }
        })
    };
    let mut n = 0u64;
    g.bench_function("atomic_ping_pong", |b| {
        b.iter(|| {
            n += 1;
            ping.store(n, Ordering::Release);
            let mut empty = 0;
            while pong.load(Ordering::Acquire) != n {
                sim_pause(empty);
                empty += 1;
            }
        })
    });
    stop.store(true, Ordering::Relaxed);
    partner.join().unwrap();

    let (_sim, _cores, mut ch) = setup(1);
    g.bench_function("dispatch_fin_one_core", |b| {
        b.iter(|| {
            ch.prepare(0, black_box(&WORK)).unwrap();
            ch.publish();
            let mut empty = 0;
            while ch.poll(0).unwrap().completions().is_empty() {
                sim_pause(empty);
                empty += 1;
            }
        })
    });
    g.finish();
}

fn pipelined(c: &mut Criterion) {
    let mut g = c.benchmark_group("aicore_pipelined");
    g.sample_size(20);
    let (_sim, _cores, mut ch) = setup(2);
    g.bench_function("per_task_6_cores", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let (mut sent, mut done, mut empty) = (0u64, 0u64, 0u32);
                while done < BATCH {
                    let mut progressed = false;
                    for core in ch.owned() {
                        let k = ch.poll(core).unwrap().completions().len() as u64;
                        done += k;
                        progressed |= k > 0;
                        if sent < BATCH && ch.can_prepare(core) {
                            ch.prepare(core, &WORK).unwrap();
                            sent += 1;
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
            }
            start.elapsed() / BATCH as u32
        })
    });
    g.finish();
}

fn report() {
    const BASE: (&str, &str) = ("aicore_round_trip", "atomic_ping_pong");
    print_ratios(&[
        Ratio {
            figure: ("aicore_round_trip", "dispatch_fin_one_core"),
            base: BASE,
            label: "dispatch→FIN round trip, one core / ping-pong",
        },
        Ratio {
            figure: ("aicore_pipelined", "per_task_6_cores"),
            base: BASE,
            label: "pipelined per-task cost, 6 cores / ping-pong",
        },
    ]);
}

fn main() {
    let mut c = Criterion::default().configure_from_args().measurement_time(Duration::from_secs(2));
    round_trip(&mut c);
    pipelined(&mut c);
    c.final_summary();
    report();
}
