//! Scheduling-cost benchmarks of the deterministic mode (issue 4): virtual cores complete a task
//! the moment it is dispatched and no kernel runs, so a figure is the runtime's own cost per task
//! for the whole cycle — submit, dispatch, complete, release — measured as wall time over the
//! timed tasks after a warm-up on the same live runtime, in scopes of about 256 tasks (submit a
//! scope, end it, drain).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pto_abi::launch::{OrchArg, ORCH_ARG_SCALAR};
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_abi::DevAddr;
use pto_device::hostmem::HostRegion;
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec, Tensor};
use pto_device::platform::{Clock, HostPlatform};
use pto_device::runtime::{Budgets, FuncTable, Runtime};
use pto_device::sched::deterministic::{run_deterministic, VirtualCores};
use pto_device::testkit::HostRuntime;

/// The graph shape of a benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Task i reads task i-1's tensor.
    Chain,
    /// Groups of one root and 32 consumers; each root reads the previous root's tensor.
    Fanout32,
    /// A → {B, C} → D; A reads the previous D.
    Diamond,
}

/// How tasks name the tensors that link them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TensorMode {
    /// Every task writes its own existing tensor (OUTPUT_EXISTING); consumers read it as INPUT and
    /// find the producer through the tensor map.
    Ext,
    /// Runtime-allocated 1 KiB outputs; consumers read the returned tensor (creator edge).
    Rt,
}

/// One measured figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphFigure {
    /// Tasks timed (after the warm-up).
    pub tasks: u64,
    /// Nanoseconds per timed task.
    pub ns_per_task: f64,
}

/// Bytes of every tensor of the graph benchmarks.
const TENSOR_BYTES: u64 = 1024;
/// External buffers the `ext` mode cycles through.
const EXT_BUFFERS: u64 = 4096;

static TIMER_START_NS: AtomicU64 = AtomicU64::new(0);

struct Params {
    shape: Shape,
    mode: TensorMode,
    warmup: u64,
    total: u64,
    ext_base: u64,
}

impl Params {
    fn from_args(a: &OrchArgs<'_>) -> Result<Self, OrchError> {
        Ok(Params {
            shape: match a.scalar(0)? {
                0 => Shape::Chain,
                1 => Shape::Fanout32,
                _ => Shape::Diamond,
            },
            mode: if a.scalar(1)? == 0 { TensorMode::Ext } else { TensorMode::Rt },
            warmup: a.scalar(2)?,
            total: a.scalar(3)?,
            ext_base: a.scalar(4)?,
        })
    }
}

/// Submits the graph's tasks one scope at a time.
struct Builder {
    p: Params,
    next_ext: u64,
}

impl Builder {
    fn ext(&mut self) -> Tensor {
        let k = self.next_ext % EXT_BUFFERS;
        self.next_ext += 1;
        Tensor::external(DevAddr(self.p.ext_base + k * TENSOR_BYTES), TENSOR_BYTES, DType::U8)
    }

    /// One task reading `inputs`; returns the tensor it writes.
    fn task(&mut self, o: &mut Orchestrator<'_, '_>, inputs: &[Tensor]) -> Result<Tensor, OrchError> {
        let mut args = [Arg::NoDep(inputs.first().copied().unwrap_or_else(|| self.ext())); 3];
        for (a, t) in args.iter_mut().zip(inputs) {
            *a = Arg::Input(*t);
        }
        let n = inputs.len();
        match self.p.mode {
            TensorMode::Ext => {
                let out = self.ext();
                args[n] = Arg::OutputExisting(out);
                o.submit(&TaskSpec::aiv(0, &args[..=n]))?;
                Ok(out)
            }
            TensorMode::Rt => {
                args[n] = Arg::Output(OutputSpec { bytes: TENSOR_BYTES, dtype: DType::U8 });
                Ok(o.submit(&TaskSpec::aiv(0, &args[..=n]))?.output(0))
            }
        }
    }
}

fn graph_orchestration(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let p = Params::from_args(args)?;
    let platform = o.runtime().platform;
    let end = p.warmup + p.total;
    let mut b = Builder { p, next_ext: 0 };
    let mut prev = b.ext();
    let mut timing = false;
    while o.tasks_submitted() < end {
        if !timing && o.tasks_submitted() >= b.p.warmup {
            timing = true;
            TIMER_START_NS.store(platform.now_ns(), Ordering::Relaxed);
        }
        prev = o.scope(ScopeKind::Auto, |o| {
            let mut prev = prev;
            match b.p.shape {
                Shape::Chain => {
                    for _ in 0..256 {
                        prev = b.task(o, &[prev])?;
                    }
                }
                Shape::Fanout32 => {
                    for _ in 0..7 {
                        prev = b.task(o, &[prev])?;
                        for _ in 0..32 {
                            b.task(o, &[prev])?;
                        }
                    }
                }
                Shape::Diamond => {
                    for _ in 0..64 {
                        let a = b.task(o, &[prev])?;
                        let x = b.task(o, &[a])?;
                        let y = b.task(o, &[a])?;
                        prev = b.task(o, &[x, y])?;
                    }
                }
            }
            Ok(prev)
        })?;
    }
    Ok(())
}

/// Sizing of the benchmark runtime: default windows, 16 MiB ring heaps.
pub fn bench_sizing() -> ArenaSizingKey {
    ArenaSizingKey { heap_sizes: [16 << 20; 4], ..ArenaSizingKey::default() }
}

/// Runs one graph benchmark on a fresh runtime in host memory: `warmup` tasks, then `tasks` timed.
pub fn bench_graph(shape: Shape, mode: TensorMode, warmup: u64, tasks: u64) -> Result<GraphFigure, String> {
    let host = HostRuntime::new(&bench_sizing()).map_err(|e| e.to_string())?;
    let ext = HostRegion::new(EXT_BUFFERS * TENSOR_BYTES);
    let shape_code = match shape {
        Shape::Chain => 0,
        Shape::Fanout32 => 1,
        Shape::Diamond => 2,
    };
    let scalar = |v: u64| OrchArg { value: v, bytes: 0, kind: ORCH_ARG_SCALAR, dtype: 0 };
    let args = [
        scalar(shape_code),
        scalar((mode == TensorMode::Rt) as u64),
        scalar(warmup),
        scalar(tasks),
        scalar(ext.addr().get()),
    ];
    let mut rt = Runtime::new(host.view(), &HostPlatform, FuncTable::EMPTY, Budgets::DEFAULT);
    TIMER_START_NS.store(0, Ordering::Relaxed);
    let out = // SAFETY: this thread is the only user of the runtime.
        unsafe { run_deterministic(&mut rt, graph_orchestration, &args, VirtualCores::Instant) };
    let end = HostPlatform.now_ns();
    if let Some(e) = out.error {
        return Err(e.to_string());
    }
    if out.tasks_completed != out.tasks_submitted {
        return Err(format!("{} of {} tasks completed", out.tasks_completed, out.tasks_submitted));
    }
    let start = TIMER_START_NS.load(Ordering::Relaxed);
    let timed = out.tasks_submitted.saturating_sub(warmup).max(1);
    Ok(GraphFigure { tasks: timed, ns_per_task: (end - start) as f64 / timed as f64 })
}

/// Wall time of `f` in nanoseconds.
pub fn time_ns(f: impl FnOnce()) -> u64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as u64
}

/// One tensor-map figure: 2 lookups + 1 insert per task, the chains of tasks that left the
/// in-flight window reclaimed every 64 tasks.
pub fn bench_tensor_map(in_flight: u64, tasks: u64) -> f64 {
    use pto_device::tensormap::TensorMap;
    const WINDOW: u64 = 65_536;
    let entries = 2 * WINDOW;
    let buckets = HostRegion::new(WINDOW * 4);
    let pool = HostRegion::new((entries + 1) * 64);
    // SAFETY: both regions are large enough and outlive the map.
    let mut map = unsafe { TensorMap::from_raw(buckets.ptr().cast(), WINDOW, pool.ptr().cast(), entries) };
    map.init();
    let mut chains = vec![0u32; WINDOW as usize];
    let buffers = 2 * in_flight;
    let addr = |i: u64| 0x1000_0000 + (i % buffers) * TENSOR_BYTES;
    let mut cleaned = 0u64;
    let mut found = 0u64;
    let mut step = |map: &mut TensorMap, i: u64| {
        map.lookup(addr(i.wrapping_sub(1)), 0, TENSOR_BYTES, |p| found = found.wrapping_add(p));
        map.lookup(addr(i.wrapping_sub(2)), 0, TENSOR_BYTES, |p| found = found.wrapping_add(p));
        let slot = (i % WINDOW) as usize;
        chains[slot] = 0;
        map.insert(addr(i), 0, TENSOR_BYTES, i, &mut chains[slot]).expect("map sized for the window");
        if i % 64 == 63 {
            while cleaned + in_flight <= i {
                map.release_chain(chains[(cleaned % WINDOW) as usize]);
                chains[(cleaned % WINDOW) as usize] = 0;
                cleaned += 1;
            }
        }
    };
    for i in 0..in_flight * 2 {
        step(&mut map, i);
    }
    let start = in_flight * 2;
    let ns = time_ns(|| {
        for i in start..start + tasks {
            step(&mut map, i);
        }
    });
    std::hint::black_box(found);
    ns as f64 / tasks as f64
}

/// Ready-queue figures in nanoseconds per item: a push+pop pair on one thread; pushes and pops in
/// batches of 32 on one thread; one producer and one consumer thread.
pub fn bench_ready_queue(items: u64) -> [f64; 3] {
    use pto_abi::runtime::ReadyQueueHeader;
    use pto_device::queue::ReadyQueue;
    const CAP: u64 = 4096;
    let region = HostRegion::new(std::mem::size_of::<ReadyQueueHeader>() as u64 + CAP * 16);
    // SAFETY: the region holds the header and CAP cells and outlives every use below.
    let q = unsafe { ReadyQueue::from_raw(region.ptr(), CAP) };
    q.init();
    let pair = time_ns(|| {
        for i in 0..items {
            q.push(i).expect("room");
            std::hint::black_box(q.pop());
        }
    }) as f64
        / items as f64;
    let mut batch = [0u64; 32];
    let rounds = (items / 32).max(1);
    let batched = time_ns(|| {
        for r in 0..rounds {
            let vals: [u64; 32] = std::array::from_fn(|k| r * 32 + k as u64);
            assert_eq!(q.push_batch(&vals), 32);
            assert_eq!(q.pop_batch(&mut batch), 32);
        }
    }) as f64
        / (rounds * 32) as f64;
    let spsc = time_ns(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..items {
                    let mut spins = 0u32;
                    while q.push(i).is_err() {
                        spins += 1;
                        if spins % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                }
            });
            let mut got = 0;
            let mut spins = 0u32;
            while got < items {
                if q.pop().is_some() {
                    got += 1;
                } else {
                    spins += 1;
                    if spins % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            }
        });
    }) as f64
        / items as f64;
    [pair, batched, spsc]
}
