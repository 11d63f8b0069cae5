//! Orchestrator and deterministic scheduler over a runtime in host memory.

extern crate std;

use std::vec;
use std::vec::Vec;

use pto_abi::error::RuntimeErrorCode;
use pto_abi::launch::{OrchArg, ORCH_ARG_SCALAR, ORCH_ARG_TENSOR};
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::{DType, Lane, TaskState, INACTIVE_KERNEL};
use pto_abi::DevAddr;

use super::*;
use crate::aicore::KernelResolver;
use crate::examples::vector;
use crate::hostmem::HostRegion;
use crate::kernel::{KernelInvocation, SimKernelFn};
use crate::orch::InvalidArgs;
use crate::platform::HostPlatform;
use crate::runtime::{Budgets, FuncTable, Runtime};
use crate::sched::deterministic::{run_deterministic, DeterministicOutcome, VirtualCores};
use crate::testkit::HostRuntime;

unsafe fn f32s<'a>(addr: u64, n: usize) -> &'a mut [f32] {
    // SAFETY: the caller passes a tensor address of `n` f32s owned by the running task.
    unsafe { core::slice::from_raw_parts_mut(addr as *mut f32, n) }
}

/// args [buf, n]: element `block_idx` of the block range gets `block_idx + 1` (SPMD check). Each
/// block touches only its own element, through a raw pointer (blocks of one task never hold
/// references over the whole buffer).
fn k_mark_block(inv: &KernelInvocation<'_>) {
    let n = inv.arg(1) as usize;
    // SAFETY: args are [buf, n]; each block touches only element `block_idx`.
    let o = unsafe { inv.tensor::<f32>(0, n) };
    let i = inv.block_idx as usize;
    o.write(i, o.read(i) + (inv.block_idx + 1) as f32);
}

/// args [buf, n, v]: every element = v (an INOUT/OUTPUT_EXISTING writer).
fn k_fill(inv: &KernelInvocation<'_>) {
    let n = inv.arg(1) as usize;
    // SAFETY: args are [buf, n, v]; buf is written by this task alone, each block its own share.
    let o = unsafe { inv.output_share::<f32>(0, n) };
    o.iter_mut().for_each(|x| *x = inv.arg_f32(2));
}

/// args [src, dst, n]: dst = src * 2 + 1. `src` and `dst` may be one buffer (an input and an
/// in-out of the same tensor), so the kernel holds no reference over either: it reads and writes
/// element by element through raw pointers.
fn k_step(inv: &KernelInvocation<'_>) {
    let n = inv.arg(2) as usize;
    // SAFETY: args are [src, dst, n], each a tensor of n f32s; both are raw device slices, so no
    // reference over either buffer exists even when they are one tensor.
    let (s, d) = unsafe { (inv.tensor::<f32>(0, n), inv.tensor::<f32>(1, n)) };
    for i in 0..n {
        d.write(i, s.read(i) * 2.0 + 1.0);
    }
}

const MARK_BLOCK: i32 = 3;
const FILL: i32 = 4;
const STEP: i32 = 5;

/// Kernel "code addresses" of the test: func id `k` lives at `0x1000 + 64 k`.
struct Kernels(Vec<(DevAddr, SimKernelFn)>);

impl KernelResolver for Kernels {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        self.0.iter().find(|(a, _)| *a == kernel).map(|(_, f)| *f)
    }
}

fn kernels() -> Kernels {
    let fns: [SimKernelFn; 6] = [vector::add, vector::add_scalar, vector::mul, k_mark_block, k_fill, k_step];
    Kernels(fns.iter().enumerate().map(|(k, f)| (DevAddr(0x1000 + 64 * k as u64), *f)).collect())
}

struct Env {
    host: HostRuntime,
    funcs: Vec<DevAddr>,
    kernels: Kernels,
}

impl Env {
    fn new(sizing: ArenaSizingKey) -> Self {
        let kernels = kernels();
        Env { host: HostRuntime::new(&sizing).unwrap(), funcs: kernels.0.iter().map(|(a, _)| *a).collect(), kernels }
    }

    fn run(&self, f: OrchestrationFn, args: &[OrchArg]) -> DeterministicOutcome {
        // SAFETY: no thread of an earlier run still uses the runtime.
        unsafe { self.host.reset() };
        // SAFETY: the table outlives the runtime context.
        let funcs = unsafe { FuncTable::from_raw(self.funcs.as_ptr(), self.funcs.len() as u32) };
        let mut rt = Runtime::new(self.host.view(), &HostPlatform, funcs, Budgets::DEFAULT);
        // SAFETY: this thread is the only user of the runtime.
        unsafe { run_deterministic(&mut rt, f, args, VirtualCores::RunKernels(&self.kernels)) }
    }

    fn sm_orch_code(&self) -> u32 {
        // SAFETY: the SM header is valid while the fixture lives.
        unsafe { (*self.host.view().sm).orch.code }
    }
}

fn small() -> ArenaSizingKey {
    ArenaSizingKey::uniform(64, 1 << 20, 256)
}

fn tensor_arg(r: &HostRegion, n: usize) -> OrchArg {
    OrchArg { value: r.addr().0, bytes: (n * 4) as u64, kind: ORCH_ARG_TENSOR, dtype: DType::F32 as u32 }
}

fn scalar_arg(v: u64) -> OrchArg {
    OrchArg { value: v, bytes: 0, kind: ORCH_ARG_SCALAR, dtype: 0 }
}

fn fill(r: &HostRegion, n: usize, v: f32) {
    // SAFETY: the region holds n f32s.
    unsafe { f32s(r.addr().0, n) }.iter_mut().for_each(|x| *x = v);
}

fn read(r: &HostRegion, n: usize) -> Vec<f32> {
    // SAFETY: as above.
    unsafe { f32s(r.addr().0, n) }.to_vec()
}

const N: usize = 16_384;

#[test]
fn vector_example_gives_47_everywhere_and_reruns_on_the_same_runtime() {
    let env = Env::new(small());
    let (a, b, f) = (HostRegion::new(N as u64 * 4), HostRegion::new(N as u64 * 4), HostRegion::new(N as u64 * 4));
    fill(&a, N, 2.0);
    fill(&b, N, 3.0);
    let args = [tensor_arg(&a, N), tensor_arg(&b, N), tensor_arg(&f, N), scalar_arg(N as u64)];
    for round in 0..3 {
        fill(&f, N, 0.0);
        let out = env.run(vector::vector_orchestration, &args);
        assert_eq!(out.error, None, "round {round}");
        assert_eq!((out.tasks_submitted, out.tasks_completed), (5, 5));
        assert!(read(&f, N).iter().all(|x| *x == 47.0), "round {round}");
    }
    // Every ring drained: watermark caught up with the submit counter.
    let v = env.host.view();
    for r in 0..4 {
        // SAFETY: valid flow control.
        let (cur, alive) = unsafe { ((*v.rings[r].flow).current_task_index, (*v.rings[r].flow).last_task_alive) };
        assert_eq!(cur, alive, "ring {r}");
    }
    // SAFETY: valid flow control.
    assert_eq!(unsafe { (*v.rings[1].flow).current_task_index }, 2, "task ids restart every run");
    assert!(!crate::reset::tensor_map_dirty(&v), "a clean run leaves an empty tensor map");
}

#[test]
fn chain_through_an_existing_buffer_with_a_window_of_four() {
    let mut sizing = small();
    sizing.task_window_sizes = [4; 4];
    sizing.heap_sizes = [64 << 10; 4];
    let env = Env::new(sizing);
    let dst = HostRegion::new(64 * 4);
    let args = [tensor_arg(&dst, 64), scalar_arg(2000)];
    let out = env.run(chain_existing, &args);
    assert_eq!(out.error, None);
    // x_{k+1} = 2 x_k + 1 from 0, 2000 steps, in f32: saturates to a fixed finite pattern; the
    // reference is computed the same way on the host.
    let mut x = 0f32;
    for _ in 0..2000 {
        x = x * 2.0 + 1.0;
    }
    assert!(read(&dst, 64).iter().all(|v| *v == x));
    assert_eq!(out.tasks_submitted, 2001);
}

/// 2000 INOUT steps on one existing buffer, each in its own scope (tensor-map edges only).
fn chain_existing(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let dst = args.tensor(0)?;
    let count = args.scalar(1)?;
    let n = dst.elements();
    o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(dst)]).scalars(&[n, 0]))?;
    for _ in 0..count {
        o.scope(ScopeKind::Auto, |o| {
            o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(dst), Arg::InOut(dst)]).scalars(&[n]))?;
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn spmd_blocks_each_run_once_with_their_index() {
    fn spmd(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        let n = buf.elements();
        o.submit(&TaskSpec::aiv(MARK_BLOCK, &[Arg::InOut(buf)]).scalars(&[n]).blocks(n as u32))?;
        // A mixed task: every block runs on all three lanes.
        let kernels = [MARK_BLOCK, MARK_BLOCK, MARK_BLOCK];
        o.submit(&TaskSpec::mix(kernels, &[Arg::InOut(buf)]).scalars(&[n]).blocks(n as u32))?;
        Ok(())
    }
    let env = Env::new(small());
    let buf = HostRegion::new(100 * 4);
    let out = env.run(spmd, &[tensor_arg(&buf, 100)]);
    assert_eq!(out.error, None);
    let got = read(&buf, 100);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(*v, 4.0 * (i + 1) as f32, "element {i}: one AIV block and three mixed-lane blocks");
    }
}

fn slot_fanin(env: &Env, t: TaskId) -> u32 {
    env.host.view();
    // SAFETY: the slot of a task of the last run.
    unsafe { (*env.host.view().slot(t.0)).fanin_count }
}

static SEEN: std::sync::Mutex<Vec<TaskId>> = std::sync::Mutex::new(Vec::new());

#[test]
fn disjoint_slices_do_not_depend_and_overlapping_ones_do() {
    fn slices(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        let q = buf.bytes / 4;
        let mut ids = Vec::new();
        for k in 0..4 {
            let s = buf.slice(k * q, q).unwrap();
            ids.push(
                o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(s)]).scalars(&[q / 4, 1.0f32.to_bits() as u64]))?
                    .task,
            );
        }
        // Reads slices 1..=2: waits for exactly those two writers.
        let mid = buf.slice(q, 2 * q).unwrap();
        let half = OutputSpec { bytes: 2 * q, dtype: DType::F32 };
        ids.push(o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(mid), Arg::Output(half)]).scalars(&[q / 2]))?.task);
        // The same producer reached twice in one submit yields one edge.
        let s0 = buf.slice(0, q).unwrap();
        ids.push(o.submit(&TaskSpec::dep_only(&[Arg::Input(s0), Arg::Input(s0)]).deps(&[ids[0]]))?.task);
        *SEEN.lock().unwrap() = ids;
        Ok(())
    }
    let env = Env::new(small());
    let buf = HostRegion::new(1024);
    let out = env.run(slices, &[tensor_arg(&buf, 256)]);
    assert_eq!(out.error, None);
    let ids = SEEN.lock().unwrap().clone();
    for t in &ids[..4] {
        assert_eq!(slot_fanin(&env, *t), 1, "disjoint writers have only the guard");
    }
    assert_eq!(slot_fanin(&env, ids[4]), 3, "two overlapping writers + guard");
    assert_eq!(slot_fanin(&env, ids[5]), 2, "one producer (deduplicated) + guard");
}

#[test]
fn explicit_dependencies_order_write_after_read() {
    // Task R reads buf into out; task W overwrites buf. Without the explicit edge W would be free
    // to run first; with it, R sees the old value. Deterministic mode runs ready tasks FIFO, so
    // the check here is the edge itself plus the value.
    fn war(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let (buf, dst) = (args.tensor(0)?, args.tensor(1)?);
        let n = buf.elements();
        let r = o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(buf), Arg::OutputExisting(dst)]).scalars(&[n]))?;
        let w = o.submit(
            &TaskSpec::aiv(FILL, &[Arg::OutputExisting(buf)]).scalars(&[n, 9.0f32.to_bits() as u64]).deps(&[r.task]),
        )?;
        *SEEN.lock().unwrap() = vec![r.task, w.task];
        Ok(())
    }
    let env = Env::new(small());
    let (buf, dst) = (HostRegion::new(64), HostRegion::new(64));
    fill(&buf, 16, 1.0);
    let out = env.run(war, &[tensor_arg(&buf, 16), tensor_arg(&dst, 16)]);
    assert_eq!(out.error, None);
    let ids = SEEN.lock().unwrap().clone();
    assert_eq!(slot_fanin(&env, ids[1]), 2);
    assert!(read(&dst, 16).iter().all(|v| *v == 3.0));
    assert!(read(&buf, 16).iter().all(|v| *v == 9.0));
}

#[test]
fn wide_fan_out_and_fan_in_spill_beyond_the_inline_edges() {
    fn fan(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        let n = buf.elements();
        let parts = 100u64;
        let per = n / parts;
        o.submit(&TaskSpec::aiv(FILL, &[Arg::OutputExisting(buf)]).scalars(&[n, 1.0f32.to_bits() as u64]))?;
        let mut leaves = Vec::new();
        for k in 0..parts {
            let s = buf.slice(k * per * 4, per * 4).unwrap();
            leaves.push(o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(s), Arg::OutputExisting(s)]).scalars(&[per]))?.task);
        }
        // Fan-in: one task waits for all 100 leaves (64 inline + 36 spilled edges).
        let join =
            o.submit(&TaskSpec::aiv(STEP, &[Arg::Input(buf), Arg::OutputExisting(buf)]).scalars(&[n]).deps(&leaves))?;
        *SEEN.lock().unwrap() = vec![join.task];
        Ok(())
    }
    let env = Env::new(ArenaSizingKey::uniform(256, 1 << 20, 1024));
    let buf = HostRegion::new(100 * 8 * 4);
    let out = env.run(fan, &[tensor_arg(&buf, 800)]);
    assert_eq!(out.error, None);
    assert_eq!(out.tasks_completed, 102);
    // 1 → 3 → 7 everywhere.
    assert!(read(&buf, 800).iter().all(|v| *v == 7.0));
    let join = SEEN.lock().unwrap()[0];
    assert_eq!(slot_fanin(&env, join), 102, "100 leaves + the fill (its range is not covered) + guard");
}

#[test]
fn mixed_lane_tasks_and_dependency_only_tasks_complete() {
    fn mixed(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        let n = buf.elements();
        let a = o.submit(
            &TaskSpec::on(Lane::Aic, FILL, &[Arg::OutputExisting(buf)]).scalars(&[n, 5.0f32.to_bits() as u64]),
        )?;
        let d = o.submit(&TaskSpec::dep_only(&[]).deps(&[a.task]))?;
        o.submit(
            &TaskSpec::mix([INACTIVE_KERNEL, STEP, INACTIVE_KERNEL], &[Arg::Input(buf), Arg::OutputExisting(buf)])
                .scalars(&[n])
                .deps(&[d.task]),
        )?;
        Ok(())
    }
    let env = Env::new(small());
    let buf = HostRegion::new(64);
    let out = env.run(mixed, &[tensor_arg(&buf, 16)]);
    assert_eq!(out.error, None);
    assert_eq!(out.tasks_completed, 3);
    assert!(read(&buf, 16).iter().all(|v| *v == 11.0));
}

fn expect_code(env: &Env, f: OrchestrationFn, args: &[OrchArg], code: RuntimeErrorCode) -> OrchError {
    let out = env.run(f, args);
    let e = out.error.unwrap_or_else(|| panic!("expected {code:?}, run succeeded"));
    assert_eq!(e.code, code, "{e}");
    assert_eq!(env.sm_orch_code(), code as u32, "latched in SM");
    assert!(crate::reset::tensor_map_dirty(&env.host.view()), "a failed run leaves the map for boot to clear");
    // The next run on the same runtime succeeds.
    let buf = HostRegion::new(64 * 4);
    let ok = env.run(chain_existing, &[tensor_arg(&buf, 64), scalar_arg(10)]);
    assert_eq!(ok.error, None, "run after {code:?}");
    assert_eq!(env.sm_orch_code(), 0);
    e
}

#[test]
fn scope_deadlock_when_a_scope_outgrows_the_window() {
    fn many(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..5 {
                o.submit(&TaskSpec::dep_only(&[]))?;
            }
            Ok(())
        })
    }
    let mut sizing = small();
    sizing.task_window_sizes = [4; 4];
    let env = Env::new(sizing);
    let e = expect_code(&env, many, &[], RuntimeErrorCode::ScopeDeadlock);
    assert_eq!(e.ring, 1);
}

#[test]
fn heap_ring_deadlock_for_outputs_a_scope_can_never_free() {
    fn big(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..5 {
                o.alloc(&[OutputSpec { bytes: 1024, dtype: DType::U8 }])?;
            }
            Ok(())
        })
    }
    fn too_big(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.alloc(&[OutputSpec { bytes: 8192, dtype: DType::U8 }])?;
        Ok(())
    }
    let mut sizing = small();
    sizing.heap_sizes = [4096; 4];
    let env = Env::new(sizing);
    expect_code(&env, big, &[], RuntimeErrorCode::HeapRingDeadlock);
    let e = expect_code(&env, too_big, &[], RuntimeErrorCode::HeapRingDeadlock);
    assert_eq!(e.detail, 8192);
}

#[test]
fn dep_pool_overflow_when_a_task_needs_more_nodes_than_the_pool_has() {
    fn fan_in(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut ids = Vec::new();
        for _ in 0..40 {
            ids.push(o.submit(&TaskSpec::dep_only(&[]))?.task);
        }
        o.submit(&TaskSpec::dep_only(&[]).deps(&ids))?;
        Ok(())
    }
    let env = Env::new(ArenaSizingKey::uniform(64, 1 << 20, 8));
    expect_code(&env, fan_in, &[], RuntimeErrorCode::DepPoolOverflow);
}

#[test]
fn tensormap_overflow_when_open_scopes_hold_every_entry() {
    fn writes(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let buf = args.tensor(0)?;
        o.scope(ScopeKind::Auto, |o| {
            for t in 0..4u64 {
                let mut a = Vec::new();
                for k in 0..32u64 {
                    a.push(Arg::OutputExisting(buf.slice((t * 32 + k) * 4, 4).unwrap()));
                }
                o.submit(&TaskSpec::dep_only(&a))?;
            }
            Ok(())
        })
    }
    let env = Env::new(ArenaSizingKey::smallest());
    let buf = HostRegion::new(4096);
    expect_code(&env, writes, &[tensor_arg(&buf, 1024)], RuntimeErrorCode::TensormapOverflow);
}

#[test]
fn invalid_args_name_the_rule_and_the_argument() {
    fn bad_view(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut t = args.tensor(0)?;
        t.bytes += 4;
        o.submit(&TaskSpec::aiv(FILL, &[Arg::Input(t), Arg::InOut(t)]))?;
        Ok(())
    }
    fn bad_kernel(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.submit(&TaskSpec::on(Lane::Aiv1, 77, &[]))?;
        Ok(())
    }
    fn bad_dep(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let t = o.submit(&TaskSpec::dep_only(&[]))?.task;
        o.submit(&TaskSpec::dep_only(&[]).deps(&[t, TaskId(t.0 + 5)]))?;
        Ok(())
    }
    fn bad_run_arg(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let _ = o;
        args.scalar(0)?;
        Ok(())
    }
    let env = Env::new(small());
    let buf = HostRegion::new(64);
    let arg = [tensor_arg(&buf, 16)];
    let e = expect_code(&env, bad_view, &arg, RuntimeErrorCode::InvalidArgs);
    assert_eq!((e.invalid_reason(), e.detail as u32), (Some(InvalidArgs::BadTensorView), 0));
    let e = expect_code(&env, bad_kernel, &arg, RuntimeErrorCode::InvalidArgs);
    assert_eq!((e.invalid_reason(), e.detail as u32), (Some(InvalidArgs::UnknownKernel), 2));
    let e = expect_code(&env, bad_dep, &arg, RuntimeErrorCode::InvalidArgs);
    assert_eq!((e.invalid_reason(), e.detail as u32), (Some(InvalidArgs::UnknownDependency), 1));
    let e = expect_code(&env, bad_run_arg, &arg, RuntimeErrorCode::InvalidArgs);
    assert_eq!(e.invalid_reason(), Some(InvalidArgs::BadRunArgument));
    assert!(std::format!("{e}").contains("run argument"));
}

#[test]
fn explicit_fatal_stops_orchestration_with_its_detail() {
    fn fatal(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        o.submit(&TaskSpec::dep_only(&[]))?;
        let e = o.fatal(0xBAD);
        // Later calls report the same error and submit nothing.
        assert_eq!(o.submit(&TaskSpec::dep_only(&[])).unwrap_err(), e);
        Err(e)
    }
    let env = Env::new(small());
    let e = expect_code(&env, fatal, &[], RuntimeErrorCode::ExplicitOrchFatal);
    assert_eq!(e.detail, 0xBAD);
}

#[test]
fn manual_scope_skips_automatic_dependencies_for_its_own_tensors() {
    fn manual(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let dst = args.tensor(0)?;
        let n = dst.elements();
        let out = OutputSpec { bytes: dst.bytes, dtype: DType::F32 };
        o.scope(ScopeKind::Manual, |o| {
            let a = o.submit(&TaskSpec::aiv(FILL, &[Arg::Output(out)]).scalars(&[n, 3.0f32.to_bits() as u64]))?;
            // Same-scope tensor: no automatic edge; the explicit one orders it.
            let b = o.submit(
                &TaskSpec::aiv(STEP, &[Arg::Input(a.output(0)), Arg::OutputExisting(dst)])
                    .scalars(&[n])
                    .deps(&[a.task]),
            )?;
            let c = o.submit(&TaskSpec::dep_only(&[Arg::Input(a.output(0))]))?;
            *SEEN.lock().unwrap() = vec![a.task, b.task, c.task];
            Ok(())
        })
    }
    let env = Env::new(small());
    let dst = HostRegion::new(64);
    let out = env.run(manual, &[tensor_arg(&dst, 16)]);
    assert_eq!(out.error, None);
    let ids = SEEN.lock().unwrap().clone();
    assert_eq!(slot_fanin(&env, ids[1]), 2, "explicit edge only");
    assert_eq!(slot_fanin(&env, ids[2]), 1, "manual-local input: no automatic edge");
    assert!(read(&dst, 16).iter().all(|v| *v == 7.0));
}

#[test]
fn tasks_end_consumed_and_the_pools_drain() {
    let env = Env::new(ArenaSizingKey::uniform(16, 64 << 10, 64));
    let buf = HostRegion::new(64 * 4);
    for _ in 0..3 {
        let out = env.run(chain_existing, &[tensor_arg(&buf, 64), scalar_arg(500)]);
        assert_eq!(out.error, None);
    }
    let v = env.host.view();
    for r in 0..4 {
        let rv = &v.rings[r];
        // SAFETY: valid flow control and slots.
        unsafe {
            assert_eq!((*rv.flow).current_task_index, (*rv.flow).last_task_alive, "ring {r}");
            for s in 0..16 {
                let st = (*rv.slots.add(s)).task_state;
                assert!(st == 0 || st == TaskState::Consumed as u32, "ring {r} slot {s} state {st}");
            }
            // SAFETY: valid orch state.
            let o = &(*v.orch_state).rings[r];
            assert_eq!(o.dep_pool_head, (*rv.sched).dep_pool_tail, "ring {r} dep pool fully reclaimed");
        }
    }
}

#[test]
fn every_output_is_returned_in_argument_order_packed_in_the_task_block() {
    fn four(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
        let ext = args.tensor(0)?;
        let sizes = [100u64, 1024, 3000, 8];
        let a = [
            Arg::Output(OutputSpec { bytes: sizes[0], dtype: DType::U8 }),
            Arg::Input(ext),
            Arg::Output(OutputSpec { bytes: sizes[1], dtype: DType::F32 }),
            Arg::Output(OutputSpec { bytes: sizes[2], dtype: DType::I32 }),
            Arg::Output(OutputSpec { bytes: sizes[3], dtype: DType::F16 }),
        ];
        let s = o.submit(&TaskSpec::dep_only(&a))?;
        assert_eq!(s.output_count(), 4);
        assert!(s.get(4).is_none());
        let base = s.output(0).buffer.0;
        assert_eq!(base % 1024, 0, "outputs are 1024-aligned");
        let expect_offsets = [0u64, 1024, 2048, 5120];
        let dtypes = [DType::U8, DType::F32, DType::I32, DType::F16];
        for i in 0..4 {
            let t = s.output(i);
            assert_eq!(t.buffer.0, base + expect_offsets[i], "output {i}");
            assert_eq!((t.bytes, t.offset, t.dtype, t.creator), (sizes[i], 0, dtypes[i], s.task), "output {i}");
        }
        Ok(())
    }
    let env = Env::new(small());
    let buf = HostRegion::new(64);
    assert_eq!(env.run(four, &[tensor_arg(&buf, 16)]).error, None);
}

#[test]
fn an_alloc_with_too_many_outputs_latches_invalid_args_and_stops_the_run() {
    fn too_many(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let outputs = [OutputSpec { bytes: 64, dtype: DType::U8 }; 33];
        let e = o.alloc(&outputs).expect_err("33 outputs exceed the tensor arguments of a task");
        assert_eq!(e.invalid_reason(), Some(InvalidArgs::TooManyTensors));
        // The orchestration ignores the error; the next call is refused with the latched code.
        let next = o.submit(&TaskSpec::dep_only(&[])).expect_err("the run stopped");
        assert_eq!(next.code, RuntimeErrorCode::InvalidArgs);
        Ok(())
    }
    let env = Env::new(small());
    let e = expect_code(&env, too_many, &[], RuntimeErrorCode::InvalidArgs);
    assert_eq!(e.invalid_reason(), Some(InvalidArgs::TooManyTensors));
    assert_eq!(e.detail as u32, 33);
}

#[test]
fn a_dep_pool_overflow_reports_every_edge_the_task_needs() {
    fn fan_in(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        let mut ids = Vec::new();
        for _ in 0..128 {
            ids.push(o.submit(&TaskSpec::dep_only(&[]))?.task);
        }
        o.submit(&TaskSpec::dep_only(&[]).deps(&ids))?;
        Ok(())
    }
    let env = Env::new(ArenaSizingKey::uniform(256, 1 << 20, 4));
    let e = expect_code(&env, fan_in, &[], RuntimeErrorCode::DepPoolOverflow);
    assert_eq!(e.detail, 128, "a consumer of 128 producers needs 128 edges");
    assert_eq!(e.ring, 0);
}

/// Window 4, eight nested scopes of three tasks each: scopes at depth 3 and deeper share ring 3,
/// where the depth-3 scope's tasks pin the window while the depth-4 scope waits.
fn nested_scopes(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    fn level(o: &mut Orchestrator<'_, '_>, depth: u32) -> Result<(), OrchError> {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..3 {
                o.submit(&TaskSpec::dep_only(&[]))?;
            }
            if depth < 8 {
                level(o, depth + 1)?;
            }
            Ok(())
        })
    }
    level(o, 1)
}

#[test]
fn a_window_pinned_by_an_ancestor_scope_is_a_flow_control_deadlock() {
    let mut sizing = small();
    sizing.task_window_sizes = [4; 4];
    let env = Env::new(sizing);
    let e = expect_code(&env, nested_scopes, &[], RuntimeErrorCode::FlowControlDeadlock);
    assert_eq!(e.ring, 3);
}
