//! Scheduler tests on a runtime in host memory: the release batch driven step by step on the test
//! thread, and the threaded scheduler with its AICore cores played by test threads.

extern crate std;

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::vec::Vec;

use pto_abi::consts::RING_COUNT;
use pto_abi::error::RuntimeErrorCode;
use pto_abi::launch::{CoreRegisters, OrchArg, DISPATCH_EXIT, DISPATCH_IDLE};
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::{make_task_id, DType, TaskState};
use pto_abi::DevAddr;

use super::threaded::{total_completed, SchedExit, SchedulerThread};
use crate::aicore::signal::Condition;
use crate::aicore::{reset_core_tables, run_core, CoreEndpoint, CoreTables, CoreWait, KernelResolver};
use crate::kernel::{KernelInvocation, SimKernelFn};
use crate::orch::{
    run_orchestration, Arg, OrchArgs, OrchError, OrchSummary, OrchestrationFn, Orchestrator, OutputSpec, TaskSpec,
    Tensor,
};
use crate::platform::HostPlatform;
use crate::queue::Shape;
use crate::runtime::{Budgets, FuncTable, ReleaseBatch, Runtime, RELEASE_BATCH};
use crate::sync::{atomic_u32, atomic_u64};
use crate::testkit::HostRuntime;

const OUT: OutputSpec = OutputSpec { bytes: 64, dtype: DType::U8 };
const NOP: i32 = 0;

fn state(rt: &Runtime<'_>, task: u64) -> u32 {
    rt.slot(task).task_state().load(Ordering::Acquire)
}

fn assert_state(rt: &Runtime<'_>, task: u64, s: TaskState) {
    assert_eq!(state(rt, task), s as u32, "task {task:#x}");
}

/// A runtime in host memory, reset for a run, with every kernel id accepted.
fn manual_runtime(host: &HostRuntime) -> Runtime<'static> {
    // SAFETY: no thread of an earlier run still uses the runtime.
    unsafe { host.reset() };
    Runtime::new(host.view(), &HostPlatform, FuncTable::EMPTY, Budgets::DEFAULT)
}

/// Completes every vector task ready now (what a scheduler does on FIN), recording releases in
/// `batch`; advances the rings where tasks were consumed. Returns the completed tasks, sorted.
fn complete_ready(rt: &Runtime<'_>, batch: &mut ReleaseBatch) -> Vec<u64> {
    let mut ready = Vec::new();
    while let Some(t) = rt.pop_ready(Shape::Aiv) {
        ready.push(t);
    }
    for &t in &ready {
        let rings = rt.complete(t, batch).unwrap();
        rt.advance(rings);
    }
    ready.sort_unstable();
    ready
}

/// P, then three consumers of P's output (outermost scope, ring 0).
fn fan_out_of_three(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let p = o.submit(&TaskSpec::aiv(NOP, &[Arg::Output(OUT)]))?.output(0);
    for _ in 0..3 {
        o.submit(&TaskSpec::aiv(NOP, &[Arg::Input(p), Arg::Output(OUT)]))?;
    }
    Ok(())
}

#[test]
fn completed_consumers_keep_their_producer_until_the_batch_is_applied() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
    let rt = manual_runtime(&host);
    let summary = run_orchestration(&rt, fan_out_of_three, &[], None);
    assert_eq!((summary.error, summary.tasks_submitted), (None, 4));
    let mut batch = ReleaseBatch::new();

    assert_eq!(complete_ready(&rt, &mut batch), [0], "only P is ready");
    assert!(batch.is_empty(), "P has no producer");
    assert_eq!(complete_ready(&rt, &mut batch), [1, 2, 3], "P's completion made its consumers ready");
    assert_eq!((batch.held(), batch.producers()), (3, 1), "three releases of P, merged into one entry");
    for c in 1..=3 {
        assert_state(&rt, c, TaskState::Consumed);
    }
    assert_state(&rt, 0, TaskState::Completed);
    assert_eq!(rt.slot(0).fanout_refcount().load(Ordering::Relaxed), 0, "no release applied yet");
    assert_eq!(rt.last_alive(0), 0, "the watermark waits for P");

    let rings = rt.flush_releases(&mut batch).unwrap();
    assert_state(&rt, 0, TaskState::Consumed);
    assert_eq!(rt.slot(0).fanout_refcount().load(Ordering::Relaxed), 3);
    rt.advance(rings);
    assert_eq!(rt.last_alive(0), 4, "every task consumed");
    assert_eq!((batch.held(), batch.applied(), batch.flushes()), (0, 3, 1));
    assert_eq!(rt.flush_releases(&mut batch), Ok(Default::default()), "an empty flush changes nothing");
    assert_eq!(batch.flushes(), 1);
}

/// Six producers, then one task reading all six.
fn six_into_one(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let mut args = [Arg::Output(OUT); 7];
    for a in args.iter_mut().take(6) {
        *a = Arg::Input(o.submit(&TaskSpec::aiv(NOP, &[Arg::Output(OUT)]))?.output(0));
    }
    o.submit(&TaskSpec::aiv(NOP, &args))?;
    Ok(())
}

#[test]
fn a_full_batch_applies_itself_before_recording_more() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
    let rt = manual_runtime(&host);
    assert_eq!(run_orchestration(&rt, six_into_one, &[], None).error, None);
    let mut batch = ReleaseBatch::with_limit(4);

    assert_eq!(complete_ready(&rt, &mut batch), [0, 1, 2, 3, 4, 5]);
    assert!(batch.is_empty());
    assert_eq!(complete_ready(&rt, &mut batch), [6]);
    // Producers 0..4 filled the batch; the fifth release applied them, then was recorded.
    assert_eq!((batch.flushes(), batch.applied(), batch.held(), batch.producers()), (1, 4, 2, 2));
    for p in 0..4 {
        assert_state(&rt, p, TaskState::Consumed);
    }
    for p in 4..6 {
        assert_state(&rt, p, TaskState::Completed);
    }
    assert_eq!(rt.last_alive(0), 4, "the watermark stops at the first producer still held");

    let rings = rt.flush_releases(&mut batch).unwrap();
    rt.advance(rings);
    assert_eq!(rt.last_alive(0), 7);
    assert_eq!((batch.flushes(), batch.applied(), batch.held()), (2, 6, 0));
}

#[test]
fn batch_limits_are_clamped_to_the_capacity() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
    let rt = manual_runtime(&host);
    assert_eq!(run_orchestration(&rt, six_into_one, &[], None).error, None);
    // A limit of 0 behaves as 1: every second distinct producer flushes the first.
    let mut batch = ReleaseBatch::with_limit(0);
    complete_ready(&rt, &mut batch);
    complete_ready(&rt, &mut batch);
    assert_eq!((batch.flushes(), batch.applied(), batch.held()), (5, 5, 1));
    rt.flush_releases(&mut batch).unwrap();
    rt.advance_all();
    assert_eq!(rt.last_alive(0), 7);
    assert_eq!(ReleaseBatch::with_limit(usize::MAX).producers(), 0);
    assert_eq!(ReleaseBatch::with_limit(0).limit(), 1);
    assert_eq!(ReleaseBatch::with_limit(RELEASE_BATCH + 1).limit(), RELEASE_BATCH);
}

// ---------------------------------------------------------------------------------------------
// The threaded scheduler, with test threads playing the AICore cores.

fn nop(_: &KernelInvocation<'_>) {}

/// The core registers table of the run [`probe`] watches.
static PROBE_REGISTERS: AtomicU64 = AtomicU64::new(0);
/// Set by [`probe`] when a core had a second token published while it ran one.
static SAW_SECOND_TOKEN: AtomicBool = AtomicBool::new(false);

/// Runs for 2 ms, then looks at the registers of the first two clusters: a core showing `ACK | t`
/// (running token `t`) whose dispatch register already holds a later token was handed its next
/// block while running this one.
fn probe(_: &KernelInvocation<'_>) {
    std::thread::sleep(std::time::Duration::from_millis(2));
    let base = PROBE_REGISTERS.load(Ordering::Acquire) as usize as *mut CoreRegisters;
    for core in 0..6 {
        // SAFETY: the registers table of the running test runtime; its words are atomics.
        let (dispatch, condition) = unsafe {
            let r = base.add(core);
            (
                atomic_u64(addr_of_mut!((*r).dispatch)).load(Ordering::Acquire),
                atomic_u64(addr_of_mut!((*r).condition)).load(Ordering::Acquire),
            )
        };
        if let Condition::Ack(t) = Condition::decode(condition) {
            if dispatch != DISPATCH_EXIT && dispatch > t {
                SAW_SECOND_TOKEN.store(true, Ordering::Release);
            }
        }
    }
}

/// The fanout-lock word [`stick`] sets.
static STICK_LOCK: AtomicU64 = AtomicU64::new(0);

/// Sets the lock word in [`STICK_LOCK`] and returns without clearing it: a holder that never lets
/// go.
fn stick(_: &KernelInvocation<'_>) {
    let word = STICK_LOCK.load(Ordering::Acquire) as usize as *mut u32;
    // SAFETY: a slot's lock word in the running test runtime; every access to it is atomic.
    unsafe { atomic_u32(word) }.store(1, Ordering::Release);
}

const NOP_ADDR: DevAddr = DevAddr(0x1000);
const PROBE_ADDR: DevAddr = DevAddr(0x1040);
const STICK_ADDR: DevAddr = DevAddr(0x1080);
const PROBE: i32 = 1;
const STICK: i32 = 2;
const FUNCS: [DevAddr; 3] = [NOP_ADDR, PROBE_ADDR, STICK_ADDR];

struct Kernels;

impl KernelResolver for Kernels {
    fn resolve(&self, kernel: DevAddr) -> Option<SimKernelFn> {
        match kernel {
            NOP_ADDR => Some(nop),
            PROBE_ADDR => Some(probe),
            STICK_ADDR => Some(stick),
            _ => None,
        }
    }
}

/// Spin briefly, then yield, then sleep: test threads outnumber the CPUs.
struct TestWait<'a> {
    stop: &'a AtomicBool,
}

impl CoreWait for TestWait<'_> {
    fn idle(&mut self, empty_polls: u32) {
        if empty_polls < 64 {
            core::hint::spin_loop();
        } else if empty_polls < 1024 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    fn must_stop(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// How one scheduler thread ended: its exit, the releases it still held, and the releases it
/// applied.
#[derive(Clone, Copy, Debug)]
struct SchedEnd {
    exit: SchedExit,
    held: u64,
    applied: u64,
}

struct ThreadedRun {
    summary: OrchSummary,
    scheds: Vec<SchedEnd>,
}

impl ThreadedRun {
    fn applied(&self) -> u64 {
        self.scheds.iter().map(|s| s.applied).sum()
    }
}

/// A fake core for [`run_threaded`]: announces itself, then answers the first token with a
/// condition value naming a token never published, then waits for EXIT.
fn corrupt_core(tables: &CoreTables, core: u32, stop: &AtomicBool) {
    // SAFETY: the tables are the test runtime's; this thread is the only endpoint of `core`.
    let ep = unsafe { CoreEndpoint::new(tables, core) }.unwrap();
    ep.announce();
    let regs = tables.registers_of(core);
    // SAFETY: the core's registers, aligned u64 words shared through atomics.
    let (dispatch, condition) =
        unsafe { (atomic_u64(addr_of_mut!((*regs).dispatch)), atomic_u64(addr_of_mut!((*regs).condition))) };
    let mut wait = TestWait { stop };
    let mut polls = 0;
    while dispatch.load(Ordering::Acquire) == DISPATCH_IDLE && !stop.load(Ordering::Acquire) {
        wait.idle(polls);
        polls += 1;
    }
    condition.store(Condition::Fin(99).encode(), Ordering::Release);
    while dispatch.load(Ordering::Acquire) != DISPATCH_EXIT && !stop.load(Ordering::Acquire) {
        wait.idle(polls);
        polls += 1;
    }
    condition.store(Condition::Exited.encode(), Ordering::Release);
}

/// Runs `f` in the threaded mode: `scheds` scheduler threads over `clusters` clusters whose cores
/// are test threads (core `corrupt`, if any, is a [`corrupt_core`]), the orchestrator on this
/// thread. Every scheduler applies its releases in batches of at most `limit` producers.
fn run_threaded(
    host: &HostRuntime,
    f: OrchestrationFn,
    args: &[OrchArg],
    (scheds, clusters): (u32, u32),
    limit: usize,
    corrupt: Option<u32>,
    budgets: Budgets,
) -> (Runtime<'static>, ThreadedRun) {
    // SAFETY: no thread of an earlier run still uses the runtime.
    unsafe { host.reset() };
    // SAFETY: the header is wired; no other thread uses the runtime between runs.
    let tables = CoreTables::from_header(unsafe { &*host.header() });
    // SAFETY: as above: the tables are this runtime's, and no core runs yet.
    unsafe { reset_core_tables(&tables) };
    // SAFETY: FUNCS is static.
    let funcs = unsafe { FuncTable::from_raw(FUNCS.as_ptr(), FUNCS.len() as u32) };
    let rt = Runtime::new(host.view(), &HostPlatform, funcs, budgets);
    let stop = AtomicBool::new(false);
    let run = std::thread::scope(|s| {
        let (rt, stop, tables) = (&rt, &stop, &tables);
        let cores: Vec<_> = (0..clusters * 3)
            .map(|core| {
                s.spawn(move || {
                    if Some(core) == corrupt {
                        return corrupt_core(tables, core, stop);
                    }
                    // SAFETY: as in `corrupt_core`.
                    let mut ep = unsafe { CoreEndpoint::new(tables, core) }.unwrap();
                    run_core(&mut ep, &Kernels, &mut TestWait { stop });
                })
            })
            .collect();
        let threads: Vec<_> = (0..scheds)
            .map(|i| {
                s.spawn(move || {
                    // SAFETY: the tables are this boot's; each scheduler owns its own clusters.
                    let mut t = unsafe { SchedulerThread::new(rt, *tables, i, scheds, clusters) }
                        .unwrap()
                        .with_release_limit(limit);
                    let exit = t.run();
                    SchedEnd { exit, held: t.held_releases(), applied: t.applied_releases().0 }
                })
            })
            .collect();
        let summary = run_orchestration(rt, f, args, None);
        let scheds: Vec<_> = threads.into_iter().map(|h| h.join()).collect();
        // Cores whose scheduler died without shutting them down stop here.
        stop.store(true, Ordering::Release);
        let cores: Vec<_> = cores.into_iter().map(|h| h.join()).collect();
        let scheds = scheds.into_iter().map(|r| r.expect("scheduler thread panicked")).collect();
        cores.into_iter().for_each(|r| r.expect("core thread panicked"));
        ThreadedRun { summary, scheds }
    });
    (rt, run)
}

/// Groups of one root and 8 consumers, each root reading the previous one; `[groups]` groups, all
/// in one scope, so every edge is wired (no producer can be consumed while the scope is open):
/// `9 × groups − 1` edges.
fn fan_out_groups(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let groups = args.scalar(0)?;
    o.scope(ScopeKind::Auto, |o| {
        let mut prev: Option<Tensor> = None;
        for _ in 0..groups {
            let root = match prev {
                Some(p) => o.submit(&TaskSpec::aiv(NOP, &[Arg::Input(p), Arg::Output(OUT)]))?,
                None => o.submit(&TaskSpec::aiv(NOP, &[Arg::Output(OUT)]))?,
            }
            .output(0);
            for _ in 0..8 {
                o.submit(&TaskSpec::aiv(NOP, &[Arg::Input(root), Arg::Output(OUT)]))?;
            }
            // A dependency-only task joining the group (completed by a scheduler, not a core).
            o.submit(&TaskSpec::dep_only(&[Arg::Input(root)]))?;
            prev = Some(root);
        }
        Ok(())
    })
}

fn scalar(v: u64) -> OrchArg {
    OrchArg { value: v, bytes: 0, kind: pto_abi::launch::ORCH_ARG_SCALAR, dtype: 0 }
}

fn assert_all_consumed(rt: &Runtime<'_>) {
    rt.advance_all();
    for r in 0..RING_COUNT {
        assert_eq!(rt.last_alive(r), rt.current(r), "ring {r}: every task consumed");
    }
}

#[test]
fn threaded_runs_apply_every_release_exactly_once_before_the_threads_stop() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(1024, 1 << 20, 1024)).unwrap();
    let groups = 30u64;
    let edges = 10 * groups - 1;
    for (threads, limit) in [((1, 1), RELEASE_BATCH), ((2, 2), 1), ((2, 2), 3), ((3, 2), RELEASE_BATCH)] {
        let (rt, run) = run_threaded(&host, fan_out_groups, &[scalar(groups)], threads, limit, None, Budgets::DEFAULT);
        assert_eq!(run.summary.error, None, "{threads:?} limit {limit}");
        assert_eq!(run.summary.tasks_submitted, 10 * groups);
        assert_eq!(total_completed(&rt), 10 * groups);
        for s in &run.scheds {
            assert_eq!((s.exit, s.held), (SchedExit::Finished, 0), "{threads:?} limit {limit}");
        }
        assert_eq!(run.applied(), edges, "{threads:?} limit {limit}: one release per edge");
        assert_all_consumed(&rt);
    }
}

/// `[n]`: a chain of `n` tasks, two per scope (ring 1): with a window of 4 the orchestrator can
/// only go on once the schedulers have applied the releases of the tasks already run.
fn chain_in_small_scopes(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let n = args.scalar(0)?;
    let mut prev: Option<Tensor> = None;
    for _ in 0..n / 2 {
        o.scope(ScopeKind::Auto, |o| {
            for _ in 0..2 {
                let s = match prev {
                    Some(p) => o.submit(&TaskSpec::aiv(NOP, &[Arg::Input(p), Arg::Output(OUT)]))?,
                    None => o.submit(&TaskSpec::aiv(NOP, &[Arg::Output(OUT)]))?,
                };
                prev = Some(s.output(0));
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn idle_schedulers_apply_the_releases_a_blocked_orchestrator_waits_for() {
    // A window of 4 and batches far larger than the window: every release the orchestrator needs
    // is held in a batch that never fills, so only the flush of an idle round frees the window.
    let host = HostRuntime::new(&ArenaSizingKey::uniform(4, 64 << 10, 16)).unwrap();
    let budgets = Budgets { orch_ns: 2_000_000_000, sched_ns: 2_000_000_000 };
    for threads in [(1, 1), (2, 2)] {
        let (rt, run) =
            run_threaded(&host, chain_in_small_scopes, &[scalar(200)], threads, RELEASE_BATCH, None, budgets);
        assert_eq!(run.summary.error, None, "{threads:?}");
        assert_eq!(total_completed(&rt), 200);
        // An edge exists only when the previous task was still live at submit (it may already
        // have been consumed): at most one release per chain link.
        assert!(run.applied() <= 199, "{}", run.applied());
        assert!(run.scheds.iter().all(|s| s.held == 0 && s.exit == SchedExit::Finished));
        assert_all_consumed(&rt);
    }
}

/// P and four consumers; waits until all five completed, then fails with `EXPLICIT_ORCH_FATAL`
/// (the scope is never closed, so P stays live: only its refcount shows the releases).
fn fail_after_fan_out(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let p = o.submit(&TaskSpec::aiv(NOP, &[Arg::Output(OUT)]))?.output(0);
    for _ in 0..4 {
        o.submit(&TaskSpec::aiv(NOP, &[Arg::Input(p), Arg::Output(OUT)]))?;
    }
    let rt = o.runtime();
    let give_up = rt.platform.now_ns() + 5_000_000_000;
    while total_completed(rt) < 5 && rt.platform.now_ns() < give_up {
        std::thread::yield_now();
    }
    Err(o.fatal(7))
}

#[test]
fn schedulers_stopped_by_an_orchestrator_error_leave_no_release_behind() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
    for threads in [(1, 1), (2, 2)] {
        let (rt, run) = run_threaded(&host, fail_after_fan_out, &[], threads, RELEASE_BATCH, None, Budgets::DEFAULT);
        assert_eq!(run.summary.error.map(|e| (e.code, e.detail)), Some((RuntimeErrorCode::ExplicitOrchFatal, 7)));
        assert_eq!(total_completed(&rt), 5);
        for s in &run.scheds {
            assert_eq!((s.exit, s.held), (SchedExit::Stopped, 0), "{threads:?}");
        }
        let p = make_task_id(0, 0);
        assert_eq!(rt.slot(p).fanout_refcount().load(Ordering::Relaxed), 4, "all four releases applied");
        assert_eq!(run.applied(), 4);
    }
}

#[test]
fn a_scheduler_stopped_by_a_protocol_error_leaves_no_release_behind() {
    // One cluster; its second vector core answers its first token with a token never published.
    let host = HostRuntime::new(&ArenaSizingKey::uniform(64, 64 << 10, 64)).unwrap();
    let budgets = Budgets { orch_ns: 1_000_000_000, sched_ns: 200_000_000 };
    let (rt, run) = run_threaded(&host, fan_out_groups, &[scalar(4)], (1, 1), RELEASE_BATCH, Some(2), budgets);
    assert_eq!(run.scheds.len(), 1);
    let s = run.scheds[0];
    assert_eq!((s.exit, s.held), (SchedExit::Stopped, 0));
    // SAFETY: the SM header of the test runtime; the run is over.
    let (code, class) = unsafe {
        let sm = rt.view.sm;
        (
            atomic_u32(addr_of_mut!((*sm).sched.code)).load(Ordering::Acquire),
            atomic_u32(addr_of_mut!((*sm).sched.stall_class)).load(Ordering::Acquire),
        )
    };
    assert_eq!(code, RuntimeErrorCode::SchedulerTimeout as u32);
    assert_eq!(class, pto_abi::error::StallClass::RunningStalled as u32);
    // Every completed task's releases were applied: each producer's refcount counts exactly its
    // completed consumers (roots: 8 vector consumers, the dependency-only join, the next root).
    let completed = |t: u64| state(&rt, t) >= TaskState::Completed as u32;
    let mut expected_applied = 0;
    for g in 0..4u32 {
        let root = make_task_id(1, 10 * g);
        let mut consumers: Vec<u64> = (1..10).map(|k| make_task_id(1, 10 * g + k)).collect();
        if g < 3 {
            consumers.push(make_task_id(1, 10 * g + 10));
        }
        let done = consumers.iter().filter(|c| completed(**c)).count() as u32;
        expected_applied += done as u64;
        assert_eq!(rt.slot(root).fanout_refcount().load(Ordering::Relaxed), done, "root {root}");
    }
    assert_eq!(run.applied(), expected_applied);
}

/// One vector task running [`stick`] (ring 0, task 0).
fn one_sticky_task(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.submit(&TaskSpec::aiv(STICK, &[Arg::Output(OUT)]))?;
    Ok(())
}

#[test]
fn a_slot_lock_left_held_stops_the_threaded_run_with_its_code_naming_the_task() {
    // The task's kernel leaves its own slot's fanout lock set; whichever side takes that lock next
    // (the scheduler completing the task, or the orchestrator dropping its scope reference) waits
    // out its budget and latches SLOT_LOCK_TIMEOUT naming the task; every scheduler stops.
    let host = HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap();
    let p = make_task_id(0, 0);
    let word = manual_runtime(&host).slot(p).fanout_lock().as_ptr();
    STICK_LOCK.store(word as usize as u64, Ordering::Release);
    let budgets = Budgets { orch_ns: 1_000_000_000, sched_ns: 50_000_000 };
    for threads in [(1, 1), (2, 2)] {
        let (rt, run) = run_threaded(&host, one_sticky_task, &[], threads, RELEASE_BATCH, None, budgets);
        for s in &run.scheds {
            assert_eq!((s.exit, s.held), (SchedExit::Stopped, 0), "{threads:?}");
        }
        // SAFETY: the SM header of the test runtime; the run is over.
        let (sched_code, sched_task, orch_code, orch_task) = unsafe {
            let sm = rt.view.sm;
            (
                atomic_u32(addr_of_mut!((*sm).sched.code)).load(Ordering::Acquire),
                atomic_u64(addr_of_mut!((*sm).sched.stall_task)).load(Ordering::Acquire),
                atomic_u32(addr_of_mut!((*sm).orch.code)).load(Ordering::Acquire),
                atomic_u64(addr_of_mut!((*sm).orch.detail)).load(Ordering::Acquire),
            )
        };
        let code = RuntimeErrorCode::SlotLockTimeout as u32;
        if sched_code == code {
            assert_eq!(sched_task, p, "{threads:?}");
        } else {
            assert_eq!((orch_code, orch_task), (code, p), "{threads:?}: scheduler code {sched_code}");
        }
    }
}

/// `[n]`: `n` independent probe tasks on vector cores.
fn independent_probes(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    for _ in 0..args.scalar(0)? {
        o.submit(&TaskSpec::aiv(PROBE, &[Arg::Output(OUT)]))?;
    }
    Ok(())
}

#[test]
fn cores_get_their_next_block_while_running_one_unless_other_schedulers_have_idle_cores() {
    let host = HostRuntime::new(&ArenaSizingKey::uniform(64, 1 << 20, 64)).unwrap();
    // SAFETY: the header is wired.
    PROBE_REGISTERS.store(unsafe { (*host.header()).core_registers.get() }, Ordering::Release);

    // One scheduler, one cluster (two vector cores), eight tasks: the cores run them back to back.
    SAW_SECOND_TOKEN.store(false, Ordering::Release);
    let (rt, run) =
        run_threaded(&host, independent_probes, &[scalar(8)], (1, 1), RELEASE_BATCH, None, Budgets::DEFAULT);
    assert_eq!((run.summary.error, total_completed(&rt)), (None, 8));
    assert!(SAW_SECOND_TOKEN.load(Ordering::Acquire), "a core held a second token while running");

    // Two schedulers, one cluster each, four tasks: each vector core gets one; no scheduler queues
    // a task behind a running one while the other scheduler's cores are idle.
    SAW_SECOND_TOKEN.store(false, Ordering::Release);
    let (rt, run) =
        run_threaded(&host, independent_probes, &[scalar(4)], (2, 2), RELEASE_BATCH, None, Budgets::DEFAULT);
    assert_eq!((run.summary.error, total_completed(&rt)), (None, 4));
    assert!(!SAW_SECOND_TOKEN.load(Ordering::Acquire), "no second token with idle cores elsewhere");
}

/// The deterministic scheduler applies its batch at the end of every pass, whatever its limit.
#[test]
fn deterministic_passes_end_with_an_empty_batch() {
    use super::deterministic::{run_with, DeterministicScheduler, VirtualCores};
    let host = HostRuntime::new(&ArenaSizingKey::uniform(64, 1 << 20, 256)).unwrap();
    for limit in [1, 2, 5, RELEASE_BATCH] {
        // SAFETY: no thread of an earlier run still uses the runtime.
        unsafe { host.reset() };
        let mut rt = Runtime::new(host.view(), &HostPlatform, FuncTable::EMPTY, Budgets::DEFAULT);
        let sched = DeterministicScheduler::new(VirtualCores::Instant).with_release_limit(limit);
        // SAFETY: only this thread uses the runtime.
        let out = unsafe { run_with(&mut rt, chain_in_small_scopes, &[scalar(300)], sched) };
        assert_eq!((out.error, out.tasks_completed), (None, 300), "limit {limit}");
        assert_all_consumed(&rt);
    }
}
