//! Slot-lock budgets: a fanout lock that stays held (a stuck holder, or a lock word overwritten
//! in device memory) ends the operation that needed it with `SLOT_LOCK_TIMEOUT`, and changes
//! nothing in that slot.

extern crate std;

use core::sync::atomic::Ordering;

use pto_abi::error::{RuntimeErrorCode, StallClass};
use pto_abi::runtime::ScopeKind;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::{make_task_id, DType, TaskState};

use super::{Budgets, FuncTable, ReleaseBatch, Runtime, SlotLockTimeout};
use crate::orch::{run_orchestration, Arg, Drain, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec};
use crate::platform::HostPlatform;
use crate::queue::Shape;
use crate::sched::deterministic::{run_with, DeterministicScheduler, VirtualCores};
use crate::testkit::HostRuntime;

const OUT: OutputSpec = OutputSpec { bytes: 64, dtype: DType::U8 };
/// A short lock budget (the scheduler budget): a stuck lock fails fast.
const SHORT: Budgets = Budgets { orch_ns: 1_000_000_000, sched_ns: 2_000_000 };
const P: u64 = 0;
const C: u64 = 1;

fn host() -> HostRuntime {
    HostRuntime::new(&ArenaSizingKey::uniform(16, 64 << 10, 64)).unwrap()
}

/// A runtime over `host`, reset for a run, in the shared (locking) mode.
fn shared_runtime(host: &HostRuntime) -> Runtime<'static> {
    // SAFETY: no thread of an earlier run still uses the runtime.
    unsafe { host.reset() };
    Runtime::new(host.view(), &HostPlatform, FuncTable::EMPTY, SHORT)
}

/// Sets `task`'s fanout lock word as a holder that never comes back would leave it.
fn stick(rt: &Runtime<'_>, task: u64) {
    rt.slot(task).fanout_lock().store(1, Ordering::Relaxed);
}

fn lock_word(rt: &Runtime<'_>, task: u64) -> u32 {
    rt.slot(task).fanout_lock().load(Ordering::Relaxed)
}

fn state(rt: &Runtime<'_>, task: u64) -> u32 {
    rt.slot(task).task_state().load(Ordering::Acquire)
}

/// P, then C reading P's output (outermost scope, ring 0).
fn producer_and_consumer(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let p = o.submit(&TaskSpec::aiv(0, &[Arg::Output(OUT)]))?.output(0);
    o.submit(&TaskSpec::aiv(0, &[Arg::Input(p), Arg::Output(OUT)]))?;
    Ok(())
}

#[test]
fn a_stuck_lock_fails_completion_and_release_and_changes_nothing_in_the_slot() {
    let host = host();
    let rt = shared_runtime(&host);
    let summary = run_orchestration(&rt, producer_and_consumer, &[], None);
    assert_eq!((summary.error, summary.tasks_submitted), (None, 2));
    let mut batch = ReleaseBatch::new();
    assert_eq!(rt.pop_ready(Shape::Aiv), Some(P));

    // Completion: P's own lock.
    stick(&rt, P);
    assert_eq!(rt.complete(P, &mut batch), Err(SlotLockTimeout { task: P }));
    assert_eq!(state(&rt, P), TaskState::Pending as u32, "P not marked completed");
    assert_eq!(lock_word(&rt, P), 1, "the stuck word is neither taken over nor cleared");
    assert_eq!(rt.pop_ready(Shape::Aiv), None, "C was not notified");

    // The holder comes back: the same completion goes through.
    rt.slot(P).lock().unlock();
    let rings = rt.complete(P, &mut batch).unwrap();
    rt.advance(rings);
    assert_eq!(rt.pop_ready(Shape::Aiv), Some(C));
    let rings = rt.complete(C, &mut batch).unwrap();
    rt.advance(rings);
    assert_eq!((batch.held(), batch.producers()), (1, 1), "C's release of P is held");

    // Release: P's lock again, while the batch is applied.
    stick(&rt, P);
    assert_eq!(rt.flush_releases(&mut batch), Err(SlotLockTimeout { task: P }));
    assert!(batch.is_empty(), "a failed flush holds nothing back");
    assert_eq!((batch.held(), batch.applied()), (0, 0), "nothing was applied");
    assert_eq!(rt.slot(P).fanout_refcount().load(Ordering::Relaxed), 0, "P not released");
    assert_eq!(state(&rt, P), TaskState::Completed as u32, "P not consumed");
    assert_eq!(rt.release(P, 1), Err(SlotLockTimeout { task: P }));
    assert_eq!(rt.drop_scope_ref(P), Err(SlotLockTimeout { task: P }));
    assert_eq!(lock_word(&rt, P), 1);
    assert_eq!(rt.last_alive(0), 0, "the watermark stays at P");
}

#[test]
fn the_single_thread_mode_takes_no_lock_so_a_set_word_does_not_stop_it() {
    let host = host();
    let mut rt = shared_runtime(&host);
    // SAFETY: this thread alone uses the runtime.
    unsafe { rt.set_exclusive(true) };
    assert_eq!(run_orchestration(&rt, producer_and_consumer, &[], None).error, None);
    let mut batch = ReleaseBatch::new();
    stick(&rt, P);
    assert_eq!(rt.pop_ready(Shape::Aiv), Some(P));
    assert!(rt.complete(P, &mut batch).is_ok());
}

/// P, then (with P's lock stuck) C reading P: wiring C to P needs P's lock.
fn consumer_of_a_stuck_producer(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    let p = o.submit(&TaskSpec::aiv(0, &[Arg::Output(OUT)]))?;
    o.runtime().slot(p.task.0).fanout_lock().store(1, Ordering::Relaxed);
    let r = o.submit(&TaskSpec::aiv(0, &[Arg::Input(p.output(0)), Arg::Output(OUT)]));
    assert_eq!(r.err(), Some(OrchError::new(RuntimeErrorCode::SlotLockTimeout, 0, p.task.0)));
    assert!(o.submit(&TaskSpec::aiv(0, &[Arg::Output(OUT)])).is_err(), "the run is over");
    Ok(())
}

#[test]
fn a_stuck_producer_lock_ends_the_run_at_wiring_with_slot_lock_timeout() {
    let host = host();
    let mut rt = shared_runtime(&host);
    let sched = DeterministicScheduler::new(VirtualCores::Instant).with_shared_mode();
    // SAFETY: this thread alone uses the runtime.
    let out = unsafe { run_with(&mut rt, consumer_of_a_stuck_producer, &[], sched) };
    assert_eq!(out.error, Some(OrchError::new(RuntimeErrorCode::SlotLockTimeout, 0, P)));
    assert_eq!(out.tasks_completed, 0);
    // SAFETY: the SM header of the test runtime; the run is over.
    let sm = unsafe { &*rt.view.sm };
    assert_eq!((sm.orch.code, sm.orch.ring, sm.orch.detail), (RuntimeErrorCode::SlotLockTimeout as u32, 0, P));
    assert_eq!(sm.orch.orchestrator_done, 1);
    assert_eq!(sm.sched.code, 0, "one code: the first writer's");
    assert_eq!(lock_word(&rt, P), 1);
    assert_eq!(rt.slot(C).fanout_lock().load(Ordering::Relaxed), 0, "the consumer's own lock is free");
}

/// The task of [`scoped_producer`]: a scope at depth 1 submits to ring 1.
const SCOPED_P: u64 = make_task_id(1, 0);

/// P in a scope of its own, then the end of the scope (P's reference dropped under its lock).
fn scoped_producer(o: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    o.scope(ScopeKind::Auto, |o| o.submit(&TaskSpec::aiv(0, &[Arg::Output(OUT)])).map(|_| ()))
}

/// The deterministic scheduler, with one task's lock stuck the first time it is asked to drain
/// (after the orchestrator dropped the scope reference, before the task completes).
struct StickBeforeDrain<'k> {
    inner: DeterministicScheduler<'k>,
    task: Option<u64>,
}

impl Drain for StickBeforeDrain<'_> {
    fn drain(&mut self, rt: &Runtime<'_>) -> bool {
        if let Some(t) = self.task.take() {
            stick(rt, t);
        }
        self.inner.drain(rt)
    }
}

#[test]
fn a_stuck_lock_at_completion_stops_the_scheduler_with_slot_lock_timeout_naming_the_task() {
    let host = host();
    let rt = shared_runtime(&host);
    let mut sched =
        StickBeforeDrain { inner: DeterministicScheduler::new(VirtualCores::Instant), task: Some(SCOPED_P) };
    let summary = run_orchestration(&rt, scoped_producer, &[], Some(&mut sched));
    assert_eq!(summary.tasks_submitted, 1);
    // SAFETY: the SM header of the test runtime; the run is over.
    let sm = unsafe { &*rt.view.sm };
    assert_eq!(sm.sched.code, RuntimeErrorCode::SlotLockTimeout as u32);
    assert_eq!((sm.sched.thread, sm.sched.stall_task), (0, SCOPED_P));
    assert_eq!(sm.sched.stall_class, StallClass::None as u32);
    assert_eq!(sm.orch.code, 0);
    assert_eq!(state(&rt, SCOPED_P), TaskState::Pending as u32, "P not marked completed");
    assert_eq!(lock_word(&rt, SCOPED_P), 1);
    assert_eq!(sched.inner.completed, 0);
    assert_eq!(sched.inner.held_releases(), 0);
    assert!(!sched.inner.drain(&rt), "a stopped scheduler runs nothing more");
}
