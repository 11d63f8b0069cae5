//! Graph shapes on the threaded simulated device (and the deterministic mode where noted): a
//! 10,000-task chain, wide fan-out/fan-in beyond the inline edges, disjoint slices of one buffer
//! running at the same time, INOUT chains, explicit write-after-read edges, SPMD tasks with more
//! blocks than cores, and mixed AIC+AIV tasks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::{DType, INACTIVE_KERNEL};
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_device::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskId, TaskSpec, Tensor};
use pto_device::runtime::Budgets;
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, RunArg, RunMode, RunReport, RunRequest};

/// `[buf, n]`: every word += 1.
fn k_inc(inv: &KernelInvocation<'_>) {
    // SAFETY: an INOUT tensor of n words; this block touches only its share.
    unsafe { inv.output_share::<u32>(0, inv.arg(1) as usize) }.iter_mut().for_each(|w| *w += 1);
}

/// `[src, dst, n]`: dst = src + 1.
fn k_step(inv: &KernelInvocation<'_>) {
    let n = inv.arg(2) as usize;
    let lo = inv.block_range(n).start;
    // SAFETY: src is an INPUT and dst an OUTPUT of n words; this block writes only its share.
    let (s, d) = unsafe { (inv.input::<u32>(0, n), inv.output_share::<u32>(1, n)) };
    for (k, d) in d.iter_mut().enumerate() {
        *d = s[lo + k] + 1;
    }
}

/// `[buf, n]`: word `block_idx` = block_idx + 1 (each block its own word).
fn k_block(inv: &KernelInvocation<'_>) {
    // SAFETY: a tensor of n words, one per block; each block writes only its own word.
    let w = unsafe { inv.tensor::<u32>(0, inv.arg(1) as usize) };
    w.write(inv.block_idx as usize, inv.block_idx + 1);
}

/// `[src, dst, n]`: waits 20 ms, then dst = src (a slow reader).
fn k_slow_copy(inv: &KernelInvocation<'_>) {
    std::thread::sleep(Duration::from_millis(20));
    let n = inv.arg(2) as usize;
    let r = inv.block_range(n);
    // SAFETY: src is an INPUT and dst an OUTPUT of n words; this block writes only its share.
    let (s, d) = unsafe { (inv.input::<u32>(0, n), inv.output_share::<u32>(1, n)) };
    d.copy_from_slice(&s[r]);
}

/// `[buf, n, v]`: every word = v.
fn k_fill(inv: &KernelInvocation<'_>) {
    // SAFETY: an OUTPUT of n words; this block writes only its share.
    unsafe { inv.output_share::<u32>(0, inv.arg(1) as usize) }.iter_mut().for_each(|w| *w = inv.arg(2) as u32);
}

static ARRIVED: AtomicU32 = AtomicU32::new(0);

/// `[buf, n, parties]`: waits (up to 10 s) until `parties` blocks have arrived, then writes the
/// number that had arrived into every word: only tasks that can run at the same time all see
/// `parties`.
fn k_rendezvous(inv: &KernelInvocation<'_>) {
    let parties = inv.arg(2) as u32;
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    let give_up = Instant::now() + Duration::from_secs(10);
    while ARRIVED.load(Ordering::Acquire) < parties && Instant::now() < give_up {
        std::thread::sleep(Duration::from_micros(200));
    }
    let seen = ARRIVED.load(Ordering::Acquire).min(parties);
    // SAFETY: an OUTPUT of n words; this block writes only its share.
    unsafe { inv.output_share::<u32>(0, inv.arg(1) as usize) }.iter_mut().for_each(|w| *w = seen);
}

/// Adds `v` to word `block_idx` of `[buf, n]` atomically: the lanes of a mixed task run the same
/// block at the same time.
fn add_to_block_word(inv: &KernelInvocation<'_>, v: u32) {
    // SAFETY: a tensor of n words; the lanes update word `block_idx` only through atomics.
    let w = unsafe { inv.tensor::<u32>(0, inv.arg(1) as usize) };
    w.atomic_u32(inv.block_idx as usize).fetch_add(v, Ordering::Relaxed);
}

/// Per-lane kernels of a mixed task: `[buf, n]`, lane l adds 10^l to word `block_idx`.
fn k_lane0(inv: &KernelInvocation<'_>) {
    add_to_block_word(inv, 1);
}
fn k_lane1(inv: &KernelInvocation<'_>) {
    add_to_block_word(inv, 10);
}
fn k_lane2(inv: &KernelInvocation<'_>) {
    add_to_block_word(inv, 100);
}

const INC: i32 = 0;
const STEP: i32 = 1;
const BLOCK: i32 = 2;
const SLOW_COPY: i32 = 3;
const FILL: i32 = 4;
const RENDEZVOUS: i32 = 5;
const LANE0: i32 = 6;
const LANE1: i32 = 7;
const LANE2: i32 = 8;
const KERNELS: [SimKernelFn; 9] =
    [k_inc, k_step, k_block, k_slow_copy, k_fill, k_rendezvous, k_lane0, k_lane1, k_lane2];

fn run(f: pto_device::orch::OrchestrationFn, args: &[RunArg], sizing: ArenaSizingKey, mode: RunMode) -> RunReport {
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    let req = RunRequest { orchestration: f, kernels: &KERNELS, args, sizing, mode, budgets: Budgets::DEFAULT };
    runner.run(&req).unwrap_or_else(|e| panic!("{e}"))
}

fn zeros(words: usize) -> RunArg {
    RunArg::InOut { data: vec![0; words * 4], dtype: DType::I32 }
}

fn u32s(r: &RunReport, arg: usize) -> Vec<u32> {
    r.outputs[arg].as_ref().unwrap().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };

#[test]
fn chain_of_ten_thousand_tasks() {
    // INOUT increments (tensor-map edges), then runtime-output steps (creator edges), 256 per scope.
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        let n = buf.elements();
        for _ in 0..20 {
            o.scope(ScopeKind::Auto, |o| {
                for _ in 0..250 {
                    o.submit(&TaskSpec::aiv(INC, &[Arg::InOut(buf)]).scalars(&[n]))?;
                }
                Ok(())
            })?;
        }
        for _ in 0..20 {
            o.scope(ScopeKind::Auto, |o| {
                let out = OutputSpec { bytes: buf.bytes, dtype: DType::I32 };
                let mut prev =
                    o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(buf), Arg::Output(out)]).scalars(&[n]))?.output(0);
                for _ in 0..248 {
                    prev =
                        o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(prev), Arg::Output(out)]).scalars(&[n]))?.output(0);
                }
                o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(prev), Arg::OutputExisting(buf)]).scalars(&[n]))?;
                Ok(())
            })?;
        }
        Ok(())
    }
    for mode in [THREADED, RunMode::Deterministic { noop_cores: false }] {
        let r = run(f, &[zeros(16)], ArenaSizingKey::uniform(512, 1 << 20, 1024), mode);
        assert_eq!(r.tasks_completed, 10_000);
        assert!(u32s(&r, 0).iter().all(|w| *w == 5000 + 20 * 250), "{mode:?}");
    }
}

#[test]
fn wide_fan_out_and_fan_in() {
    // One writer, 300 readers each writing its own slice, one task joining all 300 (64 inline +
    // 236 spilled edges) that increments everything.
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let (src, dst) = (args.tensor(0)?, args.tensor(1)?);
        o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(src)]).scalars(&[1, 41]))?;
        let mut leaves: Vec<TaskId> = Vec::new();
        for k in 0..300u64 {
            let d = dst.slice(k * 4, 4).unwrap();
            leaves.push(o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(src), Arg::OutputExisting(d)]).scalars(&[1]))?.task);
        }
        o.submit(&TaskSpec::aiv(INC, &[Arg::NoDep(dst)]).scalars(&[300]).deps(&leaves))?;
        Ok(())
    }
    let r = run(f, &[zeros(1), zeros(300)], ArenaSizingKey::uniform(1024, 1 << 20, 1024), THREADED);
    assert!(u32s(&r, 1).iter().all(|w| *w == 43));
}

#[test]
fn disjoint_slices_of_one_buffer_run_at_the_same_time() {
    // Four writers of disjoint quarters: no edges between them, so all four can be running at
    // once on the four vector cores of two clusters (each waits until all four have arrived).
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        for k in 0..4u64 {
            let q = buf.slice(k * 64, 64).unwrap();
            o.submit(&TaskSpec::aiv(RENDEZVOUS, &[Arg::OutputExisting(q)]).scalars(&[16, 4]))?;
        }
        Ok(())
    }
    ARRIVED.store(0, Ordering::Release);
    let r = run(f, &[zeros(64)], ArenaSizingKey::uniform(64, 1 << 20, 64), THREADED);
    assert!(u32s(&r, 0).iter().all(|w| *w == 4), "every writer saw all four running: {:?}", u32s(&r, 0));
}

#[test]
fn explicit_dependency_orders_write_after_read() {
    // R copies buf to out slowly; W overwrites buf but waits for R through an explicit edge.
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let (buf, out) = (args.tensor(0)?, args.tensor(1)?);
        o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(buf)]).scalars(&[8, 7]))?;
        let r = o.submit(&TaskSpec::aiv(SLOW_COPY, &[Arg::Input(buf), Arg::OutputExisting(out)]).scalars(&[8]))?;
        o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(buf)]).scalars(&[8, 9]).deps(&[r.task]))?;
        Ok(())
    }
    let r = run(f, &[zeros(8), zeros(8)], ArenaSizingKey::uniform(64, 1 << 20, 64), THREADED);
    assert_eq!(u32s(&r, 1), [7; 8], "the reader saw the value before the overwrite");
    assert_eq!(u32s(&r, 0), [9; 8]);
}

#[test]
fn spmd_tasks_with_more_blocks_than_cores_run_every_block_once() {
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let (a, b) = (args.tensor(0)?, args.tensor(1)?);
        o.submit(&TaskSpec::aiv(BLOCK, &[Arg::OutputExisting(a)]).scalars(&[50]).blocks(50))?;
        o.submit(&TaskSpec::aic(BLOCK, &[Arg::OutputExisting(b)]).scalars(&[37]).blocks(37))?;
        Ok(())
    }
    let r = run(
        f,
        &[zeros(50), zeros(37)],
        ArenaSizingKey::uniform(64, 1 << 20, 64),
        RunMode::Threaded { threads: 2, clusters: 1 },
    );
    assert_eq!(u32s(&r, 0), (1..=50).collect::<Vec<u32>>());
    assert_eq!(u32s(&r, 1), (1..=37).collect::<Vec<u32>>());
}

#[test]
fn mixed_aic_and_aiv_tasks_run_every_lane_of_every_block() {
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        o.submit(&TaskSpec::mix([LANE0, LANE1, LANE2], &[Arg::InOut(buf)]).scalars(&[9]).blocks(9))?;
        o.submit(&TaskSpec::mix([LANE0, INACTIVE_KERNEL, LANE2], &[Arg::InOut(buf)]).scalars(&[9]).blocks(9))?;
        o.submit(&TaskSpec::mix([INACTIVE_KERNEL, LANE1, LANE2], &[Arg::InOut(buf)]).scalars(&[9]).blocks(9))?;
        Ok(())
    }
    for mode in [THREADED, RunMode::Threaded { threads: 4, clusters: 3 }, RunMode::Deterministic { noop_cores: false }]
    {
        let r = run(f, &[zeros(9)], ArenaSizingKey::uniform(64, 1 << 20, 64), mode);
        assert!(u32s(&r, 0).iter().all(|w| *w == 111 + 101 + 110), "{mode:?}: {:?}", u32s(&r, 0));
    }
}

#[test]
fn tensors_of_runtime_outputs_flow_between_nested_scopes() {
    // A tensor created in an outer scope, read and overwritten (INOUT) in nested ones.
    fn f(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let dst = args.tensor(0)?;
        let n = dst.elements();
        o.scope(ScopeKind::Auto, |o| {
            let t: Tensor = o
                .submit(
                    &TaskSpec::aiv(FILL, &[Arg::Output(OutputSpec { bytes: dst.bytes, dtype: DType::I32 })])
                        .scalars(&[n, 5]),
                )?
                .output(0);
            for depth in 0..5 {
                o.scope(if depth % 2 == 0 { ScopeKind::Auto } else { ScopeKind::Manual }, |o| {
                    o.submit(&TaskSpec::aiv(INC, &[Arg::InOut(t)]).scalars(&[n]))?;
                    Ok(())
                })?;
            }
            o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(t), Arg::OutputExisting(dst)]).scalars(&[n]))?;
            Ok(())
        })
    }
    let r = run(f, &[zeros(32)], ArenaSizingKey::uniform(64, 1 << 20, 64), THREADED);
    assert!(u32s(&r, 0).iter().all(|w| *w == 11));
}
