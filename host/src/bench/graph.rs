//! The whole task cycle of the deterministic mode: submit, dispatch, complete, release.
//!
//! One orchestration run per figure, on a runtime in host memory: a warm-up of whole scopes, then
//! the timed tasks, on the same live runtime. Every scope holds the whole groups of its shape that
//! fit in 256 tasks (chain 256, fan-out-32 231 = 7 groups, diamond 256 = 64 groups); the
//! orchestration submits a scope, ends it, and the scope's end drains it (the deterministic
//! scheduler runs on the orchestrator's thread). With [`VirtualCores::Instant`] no kernel runs, so
//! a figure is the runtime's own cost per task.
//!
//! Tasks live in ring 1 (scope depth 1). An edge that crosses a scope boundary finds its producer
//! already consumed (its scope was drained), as any cross-scope edge of this workload does.
//!
//! [`check`] runs the same graphs with real kernels in a shuffled ready order: each kernel checks
//! the stamps its producers wrote and writes its own, so a missing dependency shows as an error.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pto_abi::consts::RING_COUNT;
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_abi::DevAddr;
use pto_device::hostmem::HostRegion;
use pto_device::kernel::KernelInvocation;
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec, Tensor};
use pto_device::platform::HostPlatform;
use pto_device::runtime::{Budgets, FuncTable, Runtime};
use pto_device::sched::deterministic::{run_with, DeterministicScheduler, VirtualCores};
use pto_device::testkit::HostRuntime;

use super::baseline::{DescriptorTraffic, TaskTraffic};
use super::{Plan, Sampled};
use crate::backend::KernelFn;
use crate::runner::RunArg;

/// The ring the benchmark tasks live in (scope depth 1).
pub const BENCH_RING: usize = 1;
/// Tasks per scope at most; a scope holds whole groups of the shape.
pub const SCOPE_TASKS: u64 = 256;
/// Bytes of every tensor (runtime-allocated outputs and existing buffers alike).
pub const TENSOR_BYTES: u64 = 1024;
/// Existing buffers the `ext` mode cycles through (far more than the tasks of one scope).
pub const EXT_BUFFERS: u64 = 4096;

/// A graph shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Shape {
    /// Task i reads task i-1's output.
    Chain,
    /// Groups of one root and 32 consumers of it; each root reads the previous root's output.
    Fanout32,
    /// A → {B, C} → D; A reads the previous D's output.
    Diamond,
}

impl Shape {
    /// Every shape, in report order.
    pub const ALL: [Shape; 3] = [Shape::Chain, Shape::Fanout32, Shape::Diamond];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Fanout32 => "fanout32",
            Shape::Diamond => "diamond",
        }
    }

    /// Tensor arguments and producers of each task of one group, in submit order.
    pub fn traffic(self) -> &'static [TaskTraffic] {
        const ONE: TaskTraffic = TaskTraffic { tensors: 2, fanin: 1 };
        const JOIN: TaskTraffic = TaskTraffic { tensors: 3, fanin: 2 };
        match self {
            Shape::Chain => &[ONE],
            Shape::Fanout32 => &[ONE; 33],
            Shape::Diamond => &[ONE, ONE, ONE, JOIN],
        }
    }

    /// The code [`graph_program`] takes for this shape.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The shape of a [`Shape::code`].
    pub fn from_code(code: u64) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Tasks of one group.
    pub fn group_len(self) -> u64 {
        self.traffic().len() as u64
    }

    /// Tasks of one scope: the whole groups that fit in [`SCOPE_TASKS`].
    pub fn scope_len(self) -> u64 {
        SCOPE_TASKS / self.group_len() * self.group_len()
    }
}

/// How the tasks of a graph name the tensors that link them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum TensorMode {
    /// Every task writes its own existing buffer (OUTPUT_EXISTING); consumers read it as INPUT
    /// and find their producer through the tensor map.
    Ext,
    /// Every task returns a runtime-allocated 1 KiB output; consumers read the returned tensor
    /// (an edge to its creator, no tensor-map entry).
    Rt,
}

impl TensorMode {
    /// Both modes, in report order.
    pub const ALL: [TensorMode; 2] = [TensorMode::Ext, TensorMode::Rt];

    /// The code [`graph_program`] takes for this mode.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The mode of a [`TensorMode::code`].
    pub fn from_code(code: u64) -> Option<TensorMode> {
        TensorMode::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            TensorMode::Ext => "ext",
            TensorMode::Rt => "rt",
        }
    }
}

/// How the deterministic runtime synchronises: without atomics (its own mode) or with every lock
/// and atomic read-modify-write of the threaded mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum SyncMode {
    /// `Runtime::set_exclusive(true)`: no locks, plain refcount updates, the single-thread queue
    /// paths (the deterministic mode's own setting).
    Exclusive,
    /// The shared (atomic) mode threaded runs use: fanout locks, atomic refcounts, MPMC queue
    /// operations, the watermark lock, although one thread does all the work.
    Shared,
}

impl SyncMode {
    /// Both modes, in report order.
    pub const ALL: [SyncMode; 2] = [SyncMode::Exclusive, SyncMode::Shared];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Exclusive => "exclusive",
            SyncMode::Shared => "shared",
        }
    }
}

/// What one orchestration run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphRun {
    /// Tasks submitted before the timer started.
    pub warmup_tasks: u64,
    /// Tasks submitted, dispatched, completed and released while the timer ran.
    pub timed_tasks: u64,
    /// Wall time of the timed tasks.
    pub elapsed_ns: u64,
    /// CPU time the orchestrating thread used for the timed tasks.
    pub cpu_ns: u64,
    /// Tasks the orchestrator submitted in the run.
    pub submitted: u64,
    /// Tasks the scheduler completed in the run.
    pub completed: u64,
    /// Kernel calls (check mode) or 0.
    pub kernel_runs: u64,
    /// Inputs whose producer's stamp was wrong when the kernel ran (check mode).
    pub stamp_errors: u64,
    /// Dep-list nodes ring [`BENCH_RING`] handed out in the run (the runtime's own counter).
    pub dep_nodes: u64,
    /// Ready-queue pushes of the run, every queue (the queues' producer cursors).
    pub queue_pushes: u64,
}

impl GraphRun {
    /// Nanoseconds per timed task.
    pub fn ns_per_task(&self) -> f64 {
        self.elapsed_ns as f64 / self.timed_tasks.max(1) as f64
    }
}

/// One whole-cycle graph figure.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphLine {
    /// Graph shape.
    pub shape: Shape,
    /// Tensor mode.
    pub mode: TensorMode,
    /// Synchronisation mode of the runtime.
    pub sync: SyncMode,
    /// Timed tasks asked for (the run rounds up to whole scopes).
    pub requested_tasks: u64,
    /// Wall nanoseconds per task.
    pub ns_per_task: Sampled,
    /// Median CPU nanoseconds per task of the orchestrating thread (wall minus time descheduled).
    pub cpu_ns_per_task: f64,
    /// Nanoseconds per task of the descriptor-traffic baseline.
    pub baseline_ns: Sampled,
    /// The counts of the last run (tasks timed, submitted, completed).
    pub run: GraphRun,
}

/// A task's output as its consumers see it.
#[derive(Clone, Copy, Debug)]
struct Node {
    tensor: Tensor,
    /// The producing task's stamp (its 1-based submit index; 0 = the seed buffer).
    stamp: u64,
    /// The scope it was created in.
    scope: u64,
}

/// Where check-mode kernels report.
#[derive(Debug, Default)]
#[repr(C)]
struct CheckCounters {
    errors: AtomicU64,
    runs: AtomicU64,
}

/// An input stamp the kernel does not check: a runtime-allocated output of an ended scope, whose
/// bytes the runtime may already have handed out again.
const UNCHECKED: u64 = u64::MAX;

/// The check-mode kernel. Arguments: input tensors, the output tensor, then the scalars
/// `[expected stamp per input..., input count, own stamp, counters address]`.
fn stamp_kernel(inv: &KernelInvocation<'_>) {
    let a = inv.args;
    let n = a.len();
    // SAFETY: the check-mode orchestration passes the address of a live `CheckCounters` last.
    let counters = unsafe { &*(a[n - 1] as *const CheckCounters) };
    let (stamp, inputs) = (a[n - 2], a[n - 3] as usize);
    let expected = &a[n - 3 - inputs..n - 3];
    for (k, want) in expected.iter().enumerate() {
        // SAFETY: input `k` is a live tensor of at least 8 bytes.
        let got = unsafe { (a[k] as *const u64).read_volatile() };
        if *want != UNCHECKED && got != *want {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    // SAFETY: the output tensor follows the inputs and is this task's to write.
    unsafe { (a[inputs] as *mut u64).write_volatile(stamp) };
    counters.runs.fetch_add(1, Ordering::Relaxed);
}

/// The kernel id every benchmark task runs (an AIV task).
const KERNEL: i32 = 0;
/// The device address check mode gives [`stamp_kernel`] in its func table.
const STAMP_KERNEL_ADDR: DevAddr = DevAddr(0x1000);

/// The virtual cores' kernel table: [`stamp_kernel`] at [`STAMP_KERNEL_ADDR`], nothing else.
struct StampKernel;

impl pto_device::aicore::KernelResolver for StampKernel {
    fn resolve(&self, kernel: DevAddr) -> Option<KernelFn> {
        (kernel == STAMP_KERNEL_ADDR).then_some(stamp_kernel as KernelFn)
    }
}

/// One graph run's parameters and results, handed to the orchestration through a thread-local
/// (the deterministic mode orchestrates on the calling thread).
struct Job {
    shape: Shape,
    mode: TensorMode,
    warmup: u64,
    tasks: u64,
    ext_base: u64,
    seed: Tensor,
    /// Check mode: the counters' address.
    check: Option<u64>,
    /// Consumers read their producer's output as `Arg::Input` (a dependency); tests clear this
    /// (`Arg::NoDep`) to prove the check sees a missing dependency.
    depend: bool,
    next_stamp: u64,
    scope: u64,
    warmup_done: u64,
    start: Option<(Instant, u64)>,
    end: Option<(Instant, u64)>,
    /// The last task submitted (kept in check mode only).
    last: Option<Node>,
}

thread_local! {
    static JOB: RefCell<Option<Job>> = const { RefCell::new(None) };
}

impl Job {
    /// A job over existing buffers at `ext` ([`EXT_BUFFERS`] × [`TENSOR_BYTES`]) and a zeroed
    /// seed tensor at `seed`.
    fn new(shape: Shape, mode: TensorMode, (warmup, tasks): (u64, u64), ext: DevAddr, seed: DevAddr) -> Self {
        Job {
            shape,
            mode,
            warmup,
            tasks,
            ext_base: ext.get(),
            seed: Tensor::external(seed, TENSOR_BYTES, DType::U8),
            check: None,
            depend: true,
            next_stamp: 0,
            scope: 0,
            warmup_done: 0,
            start: None,
            end: None,
            last: None,
        }
    }

    fn ext_tensor(&self, stamp: u64) -> Tensor {
        let k = (stamp - 1) % EXT_BUFFERS;
        Tensor::external(DevAddr(self.ext_base + k * TENSOR_BYTES), TENSOR_BYTES, DType::U8)
    }

    /// Submits one task reading `inputs`; returns its output. Inlined: returning the node
    /// through memory costs a store-forwarding stall per task.
    #[inline(always)]
    fn task(&mut self, o: &mut Orchestrator<'_, '_>, inputs: &[Node]) -> Result<Node, OrchError> {
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        let n = inputs.len();
        let read = |t: Tensor| if self.depend { Arg::Input(t) } else { Arg::NoDep(t) };
        let ext = self.ext_tensor(stamp);
        let out = match self.mode {
            TensorMode::Ext => Arg::OutputExisting(ext),
            TensorMode::Rt => Arg::Output(OutputSpec { bytes: TENSOR_BYTES, dtype: DType::U8 }),
        };
        let (one, two);
        let args: &[Arg] = match *inputs {
            [a] => {
                one = [read(a.tensor), out];
                &one
            }
            [a, b] => {
                two = [read(a.tensor), read(b.tensor), out];
                &two
            }
            _ => return Err(o.fatal(n as u64)),
        };
        let spec = TaskSpec::aiv(KERNEL, args);
        let submitted = match self.check {
            None => o.submit(&spec),
            Some(counters) => {
                let mut scalars = [0u64; 5];
                for (s, i) in scalars.iter_mut().zip(inputs) {
                    let stale = self.mode == TensorMode::Rt && i.scope != self.scope && i.stamp != 0;
                    *s = if stale { UNCHECKED } else { i.stamp };
                }
                scalars[n..n + 3].copy_from_slice(&[n as u64, stamp, counters]);
                o.submit(&spec.scalars(&scalars[..n + 3]))
            }
        };
        let tensor = match self.mode {
            TensorMode::Ext => submitted.map(|_| ext)?,
            TensorMode::Rt => submitted?.output(0),
        };
        let node = Node { tensor, stamp, scope: self.scope };
        if self.check.is_some() {
            self.last = Some(node);
        }
        Ok(node)
    }

    /// Submits one scope of whole groups after `prev`, ends it (which drains it); returns the
    /// node the next scope continues from.
    fn scope(&mut self, o: &mut Orchestrator<'_, '_>, prev: Node) -> Result<Node, OrchError> {
        self.scope += 1;
        let groups = self.shape.scope_len() / self.shape.group_len();
        o.scope(ScopeKind::Auto, |o| {
            let mut prev = prev;
            for _ in 0..groups {
                prev = match self.shape {
                    Shape::Chain => self.task(o, &[prev])?,
                    Shape::Fanout32 => {
                        let root = self.task(o, &[prev])?;
                        for _ in 0..32 {
                            self.task(o, &[root])?;
                        }
                        root
                    }
                    Shape::Diamond => {
                        let a = self.task(o, &[prev])?;
                        let b = self.task(o, &[a])?;
                        let c = self.task(o, &[a])?;
                        self.task(o, &[b, c])?
                    }
                };
            }
            Ok(prev)
        })
    }

    fn orchestrate(&mut self, o: &mut Orchestrator<'_, '_>) -> Result<(), OrchError> {
        let mut prev = Node { tensor: self.seed, stamp: 0, scope: 0 };
        while o.tasks_submitted() < self.warmup {
            prev = self.scope(o, prev)?;
        }
        self.warmup_done = o.tasks_submitted();
        self.start = Some((Instant::now(), super::thread_cpu_ns()));
        while o.tasks_submitted() - self.warmup_done < self.tasks {
            prev = self.scope(o, prev)?;
        }
        self.end = Some((Instant::now(), super::thread_cpu_ns()));
        Ok(())
    }
}

fn graph_orchestration(o: &mut Orchestrator<'_, '_>, _args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let Some(mut job) = JOB.with(|j| j.borrow_mut().take()) else {
        return Err(o.fatal(0));
    };
    let r = job.orchestrate(o);
    JOB.with(|j| *j.borrow_mut() = Some(job));
    r
}

/// The graph orchestration as a device program: its parameters come from the run's arguments
/// (scalars: shape code, tensor-mode code, warm-up tasks, timed tasks; tensors: the existing
/// buffers, at least [`EXT_BUFFERS`] × [`TENSOR_BYTES`] bytes, and a zeroed seed tensor), so it
/// runs on any orchestrator thread (`DeviceRunner::run`, threaded or deterministic).
pub fn graph_program(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let bad = |i: u32| OrchError::invalid(pto_device::orch::InvalidArgs::BadRunArgument, i);
    let shape = Shape::from_code(args.scalar(0)?).ok_or(bad(0))?;
    let mode = TensorMode::from_code(args.scalar(1)?).ok_or(bad(1))?;
    let (warmup, tasks) = (args.scalar(2)?, args.scalar(3)?);
    let (ext, seed) = (args.tensor(4)?, args.tensor(5)?);
    if ext.bytes < EXT_BUFFERS * TENSOR_BYTES {
        return Err(bad(4));
    }
    if seed.bytes < TENSOR_BYTES {
        return Err(bad(5));
    }
    Job::new(shape, mode, (warmup, tasks), ext.buffer, seed.buffer).orchestrate(o)
}

/// The run arguments [`graph_program`] takes for `tasks` timed tasks of `shape` in `mode` after
/// `warmup` tasks: the four scalars, the existing buffers and a zeroed seed tensor.
pub fn graph_run_args(shape: Shape, mode: TensorMode, warmup: u64, tasks: u64) -> Vec<RunArg> {
    vec![
        RunArg::Scalar(shape.code()),
        RunArg::Scalar(mode.code()),
        RunArg::Scalar(warmup),
        RunArg::Scalar(tasks),
        RunArg::Output { bytes: EXT_BUFFERS * TENSOR_BYTES, dtype: DType::U8 },
        RunArg::Input { data: vec![0; TENSOR_BYTES as usize], dtype: DType::U8 },
    ]
}

/// Refuses a sizing whose ring [`BENCH_RING`] cannot hold two scopes (tasks and 1 KiB outputs).
pub fn check_sizing(sizing: &ArenaSizingKey) -> Result<(), String> {
    let ring = BENCH_RING;
    if sizing.task_window_sizes[ring] < 2 * SCOPE_TASKS {
        return Err(format!(
            "task window of ring {ring} is {}: the graph benchmarks need at least {} (two scopes of {SCOPE_TASKS})",
            sizing.task_window_sizes[ring],
            2 * SCOPE_TASKS
        ));
    }
    if sizing.heap_sizes[ring] < 2 * SCOPE_TASKS * TENSOR_BYTES {
        return Err(format!(
            "heap of ring {ring} is {} bytes: the graph benchmarks need at least {} (two scopes of 1 KiB outputs)",
            sizing.heap_sizes[ring],
            2 * SCOPE_TASKS * TENSOR_BYTES
        ));
    }
    Ok(())
}

/// A runtime in host memory for graph runs, with the existing buffers of the `ext` mode.
pub struct GraphBench {
    host: HostRuntime,
    ext: HostRegion,
    seed: HostRegion,
}

impl GraphBench {
    /// Lays out a runtime for `sizing` (see [`check_sizing`]).
    pub fn new(sizing: &ArenaSizingKey) -> Result<Self, String> {
        check_sizing(sizing)?;
        let host = HostRuntime::new(sizing).map_err(|e| format!("invalid sizing: {e}"))?;
        Ok(GraphBench { host, ext: HostRegion::new(EXT_BUFFERS * TENSOR_BYTES), seed: HostRegion::new(TENSOR_BYTES) })
    }

    /// Runs `warmup` tasks then `tasks` timed ones (both rounded up to whole scopes) with instant
    /// virtual cores, and checks that every task was completed and released.
    pub fn run(&self, shape: Shape, mode: TensorMode, warmup: u64, tasks: u64) -> Result<GraphRun, String> {
        self.run_in(SyncMode::Exclusive, shape, mode, warmup, tasks)
    }

    /// [`GraphBench::run`] with the runtime in `sync` mode.
    pub fn run_in(
        &self,
        sync: SyncMode,
        shape: Shape,
        mode: TensorMode,
        warmup: u64,
        tasks: u64,
    ) -> Result<GraphRun, String> {
        self.run_job((shape, mode, sync), warmup, tasks, None, true).map(|(r, _)| r)
    }

    fn run_job(
        &self,
        (shape, mode, sync): (Shape, TensorMode, SyncMode),
        warmup: u64,
        tasks: u64,
        check: Option<(&CheckCounters, u64)>,
        depend: bool,
    ) -> Result<(GraphRun, Job), String> {
        let mut job = Job::new(shape, mode, (warmup, tasks), self.ext.addr(), self.seed.addr());
        job.check = check.map(|(c, _)| c as *const CheckCounters as u64);
        job.depend = depend;
        JOB.with(|j| *j.borrow_mut() = Some(job));
        // SAFETY: no thread of an earlier run still uses the runtime.
        unsafe { self.host.reset() };
        // The func table names the stamping kernel by a device address the virtual cores resolve.
        let table = [STAMP_KERNEL_ADDR];
        let kernels = StampKernel;
        let (funcs, sched) = match check {
            None => (FuncTable::EMPTY, DeterministicScheduler::new(VirtualCores::Instant)),
            Some((_, seed)) => (
                // SAFETY: `table` outlives the runtime context below.
                unsafe { FuncTable::from_raw(table.as_ptr(), 1) },
                DeterministicScheduler::new(VirtualCores::RunKernels(&kernels)).with_shuffle(seed),
            ),
        };
        let sched = match sync {
            SyncMode::Exclusive => sched,
            SyncMode::Shared => sched.with_shared_mode(),
        };
        let before = self.counters();
        let mut rt = Runtime::new(self.host.view(), &HostPlatform, funcs, Budgets::DEFAULT);
        // SAFETY: the runtime lives in `self.host`, which no other thread touches.
        let out = unsafe { run_with(&mut rt, graph_orchestration, &[], sched) };
        let job = JOB.with(|j| j.borrow_mut().take()).ok_or("the orchestration lost its job")?;
        if let Some(e) = out.error {
            return Err(format!("{} {} run failed: {e:?}", shape.name(), mode.name()));
        }
        if out.tasks_completed != out.tasks_submitted {
            return Err(format!("{} of {} tasks completed", out.tasks_completed, out.tasks_submitted));
        }
        self.check_drained()?;
        let after = self.counters();
        let (Some(start), Some(end)) = (job.start, job.end) else {
            return Err("the orchestration never reached the timed phase".into());
        };
        let counters = check.map(|(c, _)| c);
        let run = GraphRun {
            warmup_tasks: job.warmup_done,
            timed_tasks: out.tasks_submitted - job.warmup_done,
            elapsed_ns: (end.0 - start.0).as_nanos() as u64,
            cpu_ns: end.1.saturating_sub(start.1),
            submitted: out.tasks_submitted,
            completed: out.tasks_completed,
            kernel_runs: counters.map_or(0, |c| c.runs.load(Ordering::Relaxed)),
            stamp_errors: counters.map_or(0, |c| c.errors.load(Ordering::Relaxed)),
            dep_nodes: after.0.wrapping_sub(before.0),
            queue_pushes: after.1.wrapping_sub(before.1),
        };
        Ok((run, job))
    }

    /// The runtime's monotonic counters: dep-list nodes handed out in ring [`BENCH_RING`], and
    /// ready-queue pushes over every queue.
    fn counters(&self) -> (u64, u64) {
        let v = self.host.view();
        // SAFETY: orchestrator state and queue headers of a runtime no thread is using.
        unsafe {
            let nodes = (*v.orch_state).rings[BENCH_RING].dep_pool_head;
            let pushes = (*v.header)
                .ready_queues
                .iter()
                .map(|q| (*(q.get() as *const pto_abi::runtime::ReadyQueueHeader)).enqueue_pos)
                .sum();
            (nodes, pushes)
        }
    }

    /// Every ring's watermark caught up with its submit counter and the tensor map is empty.
    fn check_drained(&self) -> Result<(), String> {
        let v = self.host.view();
        for r in 0..RING_COUNT {
            // SAFETY: flow control of a runtime no thread is using.
            let (cur, alive) = unsafe { ((*v.rings[r].flow).current_task_index, (*v.rings[r].flow).last_task_alive) };
            if cur != alive {
                return Err(format!("ring {r}: {} tasks never released ({cur} submitted)", cur - alive));
            }
        }
        if pto_device::reset::tensor_map_dirty(&v) {
            return Err("the tensor map still holds entries after the run".into());
        }
        Ok(())
    }
}

/// What a check-mode run left behind.
#[derive(Clone, Copy, Debug)]
pub struct CheckedRun {
    /// The run's counts (timing is meaningless with kernels running).
    pub run: GraphRun,
    /// Stamp found in the last task's output after the run.
    pub last_stamp_found: u64,
    /// Stamp the last task was given (= tasks submitted).
    pub last_stamp: u64,
    /// Existing buffers (`ext` mode) whose final stamp differs from the last task that wrote it.
    pub ext_mismatches: u64,
}

/// Runs a graph with kernels that check and write stamps, in a ready order shuffled by `seed`.
pub fn check(
    bench: &GraphBench,
    shape: Shape,
    mode: TensorMode,
    warmup: u64,
    tasks: u64,
    seed: u64,
) -> Result<CheckedRun, String> {
    check_with(bench, shape, mode, (warmup, tasks), seed, true, SyncMode::Exclusive)
}

fn check_with(
    bench: &GraphBench,
    shape: Shape,
    mode: TensorMode,
    (warmup, tasks): (u64, u64),
    seed: u64,
    depend: bool,
    sync: SyncMode,
) -> Result<CheckedRun, String> {
    // SAFETY: the ext buffers and the seed belong to `bench`; nothing else uses them now.
    unsafe {
        std::ptr::write_bytes(bench.ext.ptr(), 0, bench.ext.len() as usize);
        std::ptr::write_bytes(bench.seed.ptr(), 0, bench.seed.len() as usize);
    }
    let counters = CheckCounters::default();
    let (run, job) = bench.run_job((shape, mode, sync), warmup, tasks, Some((&counters, seed)), depend)?;
    let last = job.last.ok_or("no task was submitted")?;
    // SAFETY: the last output is a live host buffer (ext region or runtime heap) of 1 KiB.
    let last_stamp_found = unsafe { (last.tensor.addr() as *const u64).read_volatile() };
    let mut ext_mismatches = 0;
    if mode == TensorMode::Ext {
        let total = job.next_stamp;
        for k in 0..EXT_BUFFERS.min(total) {
            // The last stamp s <= total with (s - 1) % EXT_BUFFERS == k.
            let want = total - ((total - 1 - k) % EXT_BUFFERS);
            // SAFETY: buffer k lies inside the ext region.
            let got = unsafe { (job.ext_tensor(want).addr() as *const u64).read_volatile() };
            if got != want {
                ext_mismatches += 1;
            }
        }
    }
    Ok(CheckedRun { run, last_stamp_found, last_stamp: last.stamp, ext_mismatches })
}

/// Measures one report line: the median over `plan.reps` runs of `tasks` timed tasks, beside the
/// descriptor-traffic baseline for as many tasks of the same shape.
pub fn measure(
    bench: &GraphBench,
    traffic: &mut DescriptorTraffic,
    (shape, mode, sync): (Shape, TensorMode, SyncMode),
    plan: &Plan,
    tasks: u64,
) -> Result<GraphLine, String> {
    let mut last = None;
    let mut cpu = Vec::new();
    let (ns, baseline_ns) = super::interleaved(
        plan.reps,
        || {
            // The same warm-up as the figure's.
            traffic.run(shape.traffic(), plan.warmup);
            traffic.run(shape.traffic(), tasks)
        },
        || {
            let r = bench.run_in(sync, shape, mode, plan.warmup, tasks)?;
            let ns = r.ns_per_task();
            cpu.push(r.cpu_ns as f64 / r.timed_tasks.max(1) as f64);
            last = Some(r);
            Ok(ns)
        },
    )?;
    let run = last.ok_or("no run")?;
    Ok(GraphLine {
        shape,
        mode,
        sync,
        requested_tasks: tasks,
        ns_per_task: ns,
        cpu_ns_per_task: super::median(&mut cpu),
        baseline_ns,
        run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_hold_whole_groups() {
        assert_eq!(Shape::Chain.scope_len(), 256);
        assert_eq!(Shape::Fanout32.scope_len(), 231);
        assert_eq!(Shape::Diamond.scope_len(), 256);
    }

    fn small() -> ArenaSizingKey {
        ArenaSizingKey::uniform(512, 1 << 20, 1024)
    }

    #[test]
    fn every_shape_and_mode_runs_its_tasks_in_dependency_order() {
        let bench = GraphBench::new(&small()).unwrap();
        for shape in Shape::ALL {
            for mode in TensorMode::ALL {
                for (seed, sync) in [(1, SyncMode::Exclusive), (0x5eed, SyncMode::Exclusive), (3, SyncMode::Shared)] {
                    let c = check_with(&bench, shape, mode, (600, 3000), seed, true, sync).unwrap();
                    let r = c.run;
                    let what = format!("{} {} {} seed {seed}", shape.name(), mode.name(), sync.name());
                    assert_eq!(r.stamp_errors, 0, "{what}: a consumer ran before its producer");
                    assert_eq!((r.kernel_runs, r.completed), (r.submitted, r.submitted), "{what}");
                    assert_eq!(r.submitted, r.warmup_tasks + r.timed_tasks, "{what}");
                    assert!(r.warmup_tasks >= 600 && r.timed_tasks >= 3000, "{what}: {r:?}");
                    assert_eq!(r.warmup_tasks % shape.scope_len(), 0, "{what}: whole scopes");
                    assert_eq!(r.timed_tasks % shape.scope_len(), 0, "{what}: whole scopes");
                    assert_eq!(c.last_stamp, r.submitted, "{what}");
                    assert_eq!(c.last_stamp_found, c.last_stamp, "{what}: the last output holds its stamp");
                    assert_eq!(c.ext_mismatches, 0, "{what}: final state of the existing buffers");
                }
            }
        }
    }

    #[test]
    fn the_check_sees_a_consumer_that_does_not_wait_for_its_producer() {
        let bench = GraphBench::new(&small()).unwrap();
        let c = check_with(&bench, Shape::Chain, TensorMode::Ext, (0, 512), 7, false, SyncMode::Exclusive).unwrap();
        assert_eq!(c.run.kernel_runs, 512);
        assert!(c.run.stamp_errors > 0, "shuffled independent tasks must read stale stamps");
    }

    #[test]
    fn instant_runs_complete_every_task_of_whole_scopes() {
        let bench = GraphBench::new(&small()).unwrap();
        for (shape, sync) in Shape::ALL.into_iter().zip([SyncMode::Exclusive, SyncMode::Shared, SyncMode::Shared]) {
            let r = bench.run_in(sync, shape, TensorMode::Rt, 100, 1000).unwrap();
            let scopes_warm = 100u64.div_ceil(shape.scope_len());
            assert_eq!(r.warmup_tasks, scopes_warm * shape.scope_len());
            assert_eq!(r.timed_tasks, 1000u64.div_ceil(shape.scope_len()) * shape.scope_len());
            assert_eq!(r.completed, r.submitted);
            assert_eq!(r.kernel_runs, 0, "instant cores call no kernel");
        }
    }

    #[test]
    fn a_window_too_small_for_two_scopes_is_refused_with_the_rule() {
        let mut s = ArenaSizingKey::uniform(256, 1 << 20, 1024);
        s.task_window_sizes[0] = 1024;
        let e = GraphBench::new(&s).err().unwrap();
        assert!(e.contains("ring 1 is 256") && e.contains("at least 512"), "{e}");
        let e = GraphBench::new(&ArenaSizingKey::uniform(1024, 64 << 10, 1024)).err().unwrap();
        assert!(e.contains("heap of ring 1"), "{e}");
    }
}
