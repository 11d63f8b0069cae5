//! Random task graphs for runtime tests, their orchestration, and a sequential reference
//! executor. A graph is a tree of scopes whose tasks read up to two sources (slices of external
//! buffers or outputs created earlier in an enclosing scope) and write one destination (a slice of
//! an external buffer as INOUT or OUTPUT_EXISTING, or a new runtime output). Write-after-read and
//! write-after-write orderings, which the runtime does not track automatically, become explicit
//! dependencies; read-after-write is left to the runtime. Any schedule that honours the
//! dependencies therefore produces the reference's final external buffers.
#![allow(dead_code)]

use pto_abi::launch::{OrchArg, ORCH_ARG_SCALAR, ORCH_ARG_TENSOR};
use pto_abi::runtime::ScopeKind;
use pto_abi::task::DType;
use pto_device::kernel::{DeviceSlice, KernelInvocation};
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskId, TaskSpec, Tensor};

/// Elements per chunk (ranges are whole chunks).
pub const CHUNK: usize = 16;

/// A source of a task.
#[derive(Clone, Debug)]
pub enum Src {
    /// Chunks `[start, start + count)` of external buffer `buf`.
    Ext { buf: usize, start: usize },
    /// The runtime output of task `task` (global index).
    Out { task: usize },
}

/// The destination of a task.
#[derive(Clone, Debug)]
pub enum Dst {
    /// Read-modify-write of chunks of an external buffer.
    InOut { buf: usize, start: usize },
    /// Overwrite of chunks of an external buffer.
    Existing { buf: usize, start: usize },
    /// A new runtime-allocated output.
    New,
}

/// One task.
#[derive(Clone, Debug)]
pub struct DagTask {
    /// Chunks per source and destination.
    pub chunks: usize,
    /// Up to two sources.
    pub srcs: Vec<Src>,
    /// The destination.
    pub dst: Dst,
    /// Kernel salt.
    pub salt: u32,
    /// SPMD blocks.
    pub blocks: u32,
    /// Explicit dependencies (global task indices).
    pub deps: Vec<usize>,
    /// Kernel lanes: 0 = AIV, 1 = AIC, 2 = mixed (AIC + AIV0: the AIV0 lane does the work).
    pub lanes: u8,
}

/// A scope's items.
#[derive(Clone, Debug)]
pub enum Item {
    /// A task (its global index is its position in submission order).
    Task(DagTask),
    /// A nested scope.
    Scope(ScopeKind, Vec<Item>),
}

/// A random graph.
#[derive(Clone, Debug)]
pub struct Dag {
    /// External buffers.
    pub ext_buffers: usize,
    /// Chunks per external buffer.
    pub ext_chunks: usize,
    /// Top-level scopes.
    pub scopes: Vec<Item>,
    /// Tasks in submission order.
    pub task_count: usize,
}

/// Kernel id of the graph kernel.
pub const DAG_KERNEL: i32 = 0;
/// Kernel id of a kernel that does nothing (the idle lane of mixed tasks).
pub const NOP_KERNEL: i32 = 1;

/// Arguments: tensors `[src..., dst]`, scalars `[n, nsrc, salt, inout]`. Block `b` of `B`
/// handles elements `[b n / B, (b+1) n / B)`: dst = mix(salt, srcs..., old dst if inout).
pub fn dag_kernel(inv: &KernelInvocation<'_>) {
    let a = inv.args;
    let nsrc = a[a.len() - 3] as usize;
    let n = a[a.len() - 4] as usize;
    let salt = a[a.len() - 2] as u32;
    let inout = a[a.len() - 1] != 0;
    // SAFETY: every tensor argument holds n u32s. Sources may be other slices of dst's buffer, so
    // all access is through raw device slices; this block writes only dst[block_range(n)].
    let (srcs, dst): (Vec<DeviceSlice<'_, u32>>, _) =
        unsafe { ((0..nsrc).map(|s| inv.tensor::<u32>(s, n)).collect(), inv.tensor::<u32>(nsrc, n)) };
    for i in inv.block_range(n) {
        let mut acc = salt;
        for src in &srcs {
            acc = acc.wrapping_mul(31).wrapping_add(src.read(i));
        }
        if inout {
            acc = acc.wrapping_mul(7).wrapping_add(dst.read(i));
        }
        dst.write(i, acc);
    }
}

/// A kernel that does nothing.
pub fn nop_kernel(_: &KernelInvocation<'_>) {}

/// The func table of the graph kernels (id [`DAG_KERNEL`], [`NOP_KERNEL`]) and the resolver the
/// simulated device uses for it: kernel "code" lives at made-up device addresses.
pub fn dag_kernels() -> (Vec<pto_abi::DevAddr>, pto_host::sim::SimKernelTable) {
    let addrs = vec![pto_abi::DevAddr(0xD000), pto_abi::DevAddr(0xD040)];
    let mut table = pto_host::sim::SimKernelTable::new();
    table.insert(addrs[0], dag_kernel);
    table.insert(addrs[1], nop_kernel);
    (addrs, table)
}

fn mix(salt: u32, srcs: &[&[u32]], old: Option<&[u32]>, i: usize) -> u32 {
    let mut acc = salt;
    for s in srcs {
        acc = acc.wrapping_mul(31).wrapping_add(s[i]);
    }
    if let Some(o) = old {
        acc = acc.wrapping_mul(7).wrapping_add(o[i]);
    }
    acc
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (any seed).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Shape limits of a generated graph.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Tasks in the whole graph (about).
    pub tasks: usize,
    /// Most tasks pinned at once in one ring (the task window).
    pub window: usize,
    /// Deepest scope nesting.
    pub max_depth: usize,
    /// External buffers.
    pub ext_buffers: usize,
    /// Chunks per external buffer.
    pub ext_chunks: usize,
    /// Most blocks of an SPMD task.
    pub max_blocks: u32,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    lim: Limits,
    next: usize,
    /// Per buffer and chunk: last writer and readers since.
    writer: Vec<Vec<Option<usize>>>,
    readers: Vec<Vec<Vec<usize>>>,
    /// Chunks of every runtime output by task index.
    out_chunks: Vec<Option<usize>>,
    /// Tasks ring 3 can still take in the current depth-3 subtree.
    ring3_left: usize,
}

impl Gen<'_> {
    fn task(&mut self, visible_outs: &[usize], manual_own: &[usize]) -> DagTask {
        let lim = self.lim;
        let chunks = 1 + self.rng.below(lim.ext_chunks.min(4));
        let mut srcs = Vec::new();
        let mut deps = Vec::new();
        let me = self.next;
        let dst = match self.rng.below(3) {
            0 => Dst::New,
            k => {
                let buf = self.rng.below(lim.ext_buffers);
                let start = self.rng.below(lim.ext_chunks - chunks + 1);
                if k == 1 {
                    Dst::InOut { buf, start }
                } else {
                    Dst::Existing { buf, start }
                }
            }
        };
        // A source never aliases the destination (a kernel writing what it still reads).
        let clashes = |buf: usize, start: usize| match dst {
            Dst::InOut { buf: b, start: s } | Dst::Existing { buf: b, start: s } => {
                b == buf && start < s + chunks && s < start + chunks
            }
            Dst::New => false,
        };
        let nsrc = self.rng.below(3);
        for _ in 0..nsrc {
            let outs: Vec<usize> =
                visible_outs.iter().copied().filter(|t| self.out_chunks[*t] == Some(chunks)).collect();
            if !outs.is_empty() && self.rng.below(2) == 0 {
                srcs.push(Src::Out { task: outs[self.rng.below(outs.len())] });
            } else {
                let buf = self.rng.below(lim.ext_buffers);
                let start = self.rng.below(lim.ext_chunks - chunks + 1);
                if !clashes(buf, start) {
                    srcs.push(Src::Ext { buf, start });
                }
            }
        }
        // Orderings the runtime leaves to the program: WAR always, WAW for OUTPUT_EXISTING.
        if let Dst::InOut { buf, start } | Dst::Existing { buf, start } = dst {
            for c in start..start + chunks {
                deps.extend(self.readers[buf][c].iter().copied());
                if matches!(dst, Dst::Existing { .. }) {
                    deps.extend(self.writer[buf][c]);
                }
            }
        }
        for s in &srcs {
            match s {
                Src::Ext { buf, start } => {
                    for c in *start..*start + chunks {
                        self.readers[*buf][c].push(me);
                    }
                }
                // Inside a MANUAL scope a same-scope output gets no automatic edge: order it.
                Src::Out { task } if manual_own.contains(task) => deps.push(*task),
                Src::Out { .. } => {}
            }
        }
        if let Dst::InOut { buf, start } | Dst::Existing { buf, start } = dst {
            for c in start..start + chunks {
                self.readers[buf][c].clear();
                self.writer[buf][c] = Some(me);
            }
        }
        deps.sort_unstable();
        deps.dedup();
        deps.retain(|d| *d != me);
        self.out_chunks.push(matches!(dst, Dst::New).then_some(chunks));
        self.next += 1;
        let blocks = 1 + self.rng.below(lim.max_blocks as usize) as u32;
        DagTask { chunks, srcs, dst, salt: self.rng.next() as u32, blocks, deps, lanes: self.rng.below(3) as u8 }
    }

    /// A scope at `depth`. Rings 1 and 2 hold one scope's own tasks at a time (`window` each);
    /// ring 3 holds every task of a depth->=3 subtree until its depth-3 scope ends, so those share
    /// `ring3_left`.
    fn scope(&mut self, depth: usize, kind: ScopeKind, outer_outs: &[usize]) -> Vec<Item> {
        let mut items = Vec::new();
        let mut outs = outer_outs.to_vec();
        let mut own_outs = Vec::new();
        let own = 1 + self.rng.below(self.lim.window);
        let mut used = 0;
        while used < own && self.next < self.lim.tasks {
            if depth >= 3 && self.ring3_left == 0 {
                break;
            }
            if depth < self.lim.max_depth && self.rng.below(4) == 0 {
                if depth + 1 == 3 {
                    self.ring3_left = self.lim.window;
                }
                let kind = if self.rng.below(3) == 0 { ScopeKind::Manual } else { ScopeKind::Auto };
                let child = self.scope(depth + 1, kind, &outs);
                items.push(Item::Scope(kind, child));
                continue;
            }
            let manual_own: &[usize] = if kind == ScopeKind::Manual { &own_outs } else { &[] };
            let t = self.task(&outs, manual_own);
            if matches!(t.dst, Dst::New) {
                outs.push(self.next - 1);
                own_outs.push(self.next - 1);
            }
            items.push(Item::Task(t));
            used += 1;
            if depth >= 3 {
                self.ring3_left -= 1;
            }
        }
        items
    }
}

/// Generates a graph.
pub fn generate(seed: u64, lim: Limits) -> Dag {
    let mut rng = Rng::new(seed);
    let mut g = Gen {
        rng: &mut rng,
        lim,
        next: 0,
        writer: vec![vec![None; lim.ext_chunks]; lim.ext_buffers],
        readers: vec![vec![Vec::new(); lim.ext_chunks]; lim.ext_buffers],
        out_chunks: Vec::new(),
        ring3_left: 0,
    };
    let mut scopes = Vec::new();
    while g.next < lim.tasks {
        let items = g.scope(1, ScopeKind::Auto, &[]);
        scopes.push(Item::Scope(ScopeKind::Auto, items));
    }
    let task_count = g.next;
    Dag { ext_buffers: lim.ext_buffers, ext_chunks: lim.ext_chunks, scopes, task_count }
}

/// Initial content of external buffer `b`.
pub fn initial_ext(dag: &Dag, b: usize) -> Vec<u32> {
    (0..dag.ext_chunks * CHUNK).map(|i| (b * 1000 + i) as u32).collect()
}

/// Runs the graph sequentially in submission order; returns the final external buffers.
pub fn reference(dag: &Dag) -> Vec<Vec<u32>> {
    let mut ext: Vec<Vec<u32>> = (0..dag.ext_buffers).map(|b| initial_ext(dag, b)).collect();
    let mut outs: Vec<Option<Vec<u32>>> = Vec::new();
    fn walk(items: &[Item], ext: &mut Vec<Vec<u32>>, outs: &mut Vec<Option<Vec<u32>>>) {
        for it in items {
            match it {
                Item::Scope(_, inner) => walk(inner, ext, outs),
                Item::Task(t) => {
                    let n = t.chunks * CHUNK;
                    let srcs: Vec<Vec<u32>> = t
                        .srcs
                        .iter()
                        .map(|s| match s {
                            Src::Ext { buf, start } => ext[*buf][start * CHUNK..start * CHUNK + n].to_vec(),
                            Src::Out { task } => outs[*task].clone().expect("output exists"),
                        })
                        .collect();
                    let refs: Vec<&[u32]> = srcs.iter().map(|v| v.as_slice()).collect();
                    match t.dst {
                        Dst::New => {
                            // A fresh output's initial content is undefined; the kernel does not
                            // read it (not INOUT).
                            outs.push(Some((0..n).map(|i| mix(t.salt, &refs, None, i)).collect()));
                        }
                        Dst::InOut { buf, start } | Dst::Existing { buf, start } => {
                            let inout = matches!(t.dst, Dst::InOut { .. });
                            let old: Vec<u32> = ext[buf][start * CHUNK..start * CHUNK + n].to_vec();
                            for i in 0..n {
                                ext[buf][start * CHUNK + i] = mix(t.salt, &refs, inout.then_some(&old[..]), i);
                            }
                            outs.push(None);
                        }
                    }
                }
            }
        }
    }
    walk(&dag.scopes, &mut ext, &mut outs);
    ext
}

/// The run arguments: one tensor per external buffer, then the graph's address as a scalar (the
/// simulated device shares the host's address space, so the orchestration reads it in place).
pub fn run_args(dag: &Dag, ext: &[u64]) -> Vec<OrchArg> {
    let mut v: Vec<OrchArg> = ext
        .iter()
        .map(|a| OrchArg {
            value: *a,
            bytes: (dag.ext_chunks * CHUNK * 4) as u64,
            kind: ORCH_ARG_TENSOR,
            dtype: DType::I32 as u32,
        })
        .collect();
    v.push(OrchArg { value: dag as *const Dag as u64, bytes: 0, kind: ORCH_ARG_SCALAR, dtype: 0 });
    v
}

/// The orchestration of a graph built by [`run_args`].
pub fn dag_orchestration(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let n_ext = args.len() - 1;
    // SAFETY: the test keeps the graph alive for the whole run (see `run_args`).
    let dag = unsafe { &*(args.scalar(n_ext)? as *const Dag) };
    let ext: Vec<Tensor> = (0..n_ext).map(|i| args.tensor(i)).collect::<Result<_, _>>()?;
    let mut ids: Vec<TaskId> = Vec::with_capacity(dag.task_count);
    let mut outs: Vec<Option<Tensor>> = Vec::with_capacity(dag.task_count);
    fn walk(
        o: &mut Orchestrator<'_, '_>,
        items: &[Item],
        ext: &[Tensor],
        ids: &mut Vec<TaskId>,
        outs: &mut Vec<Option<Tensor>>,
    ) -> Result<(), OrchError> {
        for it in items {
            match it {
                Item::Scope(kind, inner) => o.scope(*kind, |o| walk(o, inner, ext, ids, outs))?,
                Item::Task(t) => {
                    let bytes = (t.chunks * CHUNK * 4) as u64;
                    let slice = |buf: usize, start: usize| ext[buf].slice((start * CHUNK * 4) as u64, bytes).unwrap();
                    let mut a: Vec<Arg> = t
                        .srcs
                        .iter()
                        .map(|s| match s {
                            Src::Ext { buf, start } => Arg::Input(slice(*buf, *start)),
                            Src::Out { task } => Arg::Input(outs[*task].expect("output exists")),
                        })
                        .collect();
                    a.push(match t.dst {
                        Dst::New => Arg::Output(OutputSpec { bytes, dtype: DType::I32 }),
                        Dst::InOut { buf, start } => Arg::InOut(slice(buf, start)),
                        Dst::Existing { buf, start } => Arg::OutputExisting(slice(buf, start)),
                    });
                    let inout = matches!(t.dst, Dst::InOut { .. }) as u64;
                    let scalars = [(t.chunks * CHUNK) as u64, t.srcs.len() as u64, t.salt as u64, inout];
                    let deps: Vec<TaskId> = t.deps.iter().map(|d| ids[*d]).collect();
                    let spec = match t.lanes {
                        0 => TaskSpec::aiv(DAG_KERNEL, &a),
                        1 => TaskSpec::aic(DAG_KERNEL, &a),
                        _ => TaskSpec::mix([NOP_KERNEL, DAG_KERNEL, pto_abi::task::INACTIVE_KERNEL], &a),
                    };
                    let s = o.submit(&spec.scalars(&scalars).deps(&deps).blocks(t.blocks))?;
                    ids.push(s.task);
                    outs.push(s.get(0));
                }
            }
        }
        Ok(())
    }
    walk(o, &dag.scopes, &ext, &mut ids, &mut outs)
}
