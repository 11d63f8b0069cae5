//! The AICore protocol on simulated cores (one backend launch, one block per core): many tasks on
//! every core, pipelined and batched dispatch, faults reported as completions, ordered shutdown
//! with a deadline, the stop path.

mod aicore_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pto_abi::launch::CoreFault;
use pto_device::aicore::{CoreExit, TaskOutcome};
use pto_device::platform::HostPlatform;
use pto_host::sim::{sim_pause, SimLaunchRecord};

use aicore_support::*;

/// Tasks 0..n of WRITE, each writing `3 * id + block` into its own word.
fn writes(fx: &Fixture, n: u64, block_num: u32) -> Vec<Work> {
    (0..n)
        .flat_map(|id| (0..block_num).map(move |b| (id, b)).collect::<Vec<_>>())
        .map(|(id, b)| Work {
            kernel: WRITE,
            task_id: id,
            block_idx: b,
            block_num,
            args: vec![fx.buffer.get(), id * block_num as u64 + b as u64, 3 * id],
        })
        .collect()
}

fn check_writes(fx: &Fixture, n: u64, block_num: u32) {
    let words = fx.read_buffer((n * block_num as u64) as usize);
    for id in 0..n {
        for b in 0..block_num as u64 {
            assert_eq!(words[(id * block_num as u64 + b) as usize], 3 * id + b, "task {id} block {b}");
        }
    }
}

#[test]
fn thousands_of_pipelined_tasks_finish_once_each_on_every_core_with_their_side_effects() {
    let (clusters, n, blocks) = (2, 1500, 2);
    let fx = Fixture::new(n * blocks as u64);
    let mut cores = fx.start(clusters);
    let launch = fx.sim.launch_log().pop();
    assert!(
        matches!(&launch, Some(SimLaunchRecord::Launch { block_dim: 6, .. })),
        "the cores are one backend launch, one block per core: {launch:?}"
    );
    let mut ch = fx.channels(0, 1, clusters);
    assert_eq!(ch.owned(), cores.cores());
    ch.wait_online(&HostPlatform, HANG_GUARD.as_nanos() as u64).unwrap();
    let work = writes(&fx, n, blocks);
    let done = drive(&mut ch, &work, 2);

    let mut seen = HashSet::new();
    let mut last_token = [0u64; 6];
    for c in &done {
        assert_eq!(c.outcome, TaskOutcome::Finished);
        assert!(seen.insert((c.task_id, c.block_idx)), "task {} block {} completed twice", c.task_id, c.block_idx);
        assert_eq!(c.token, last_token[c.core as usize] + 1, "core {} tokens complete in order", c.core);
        last_token[c.core as usize] = c.token;
    }
    assert_eq!(seen.len(), work.len());
    check_writes(&fx, n, blocks);

    ch.shutdown(&HostPlatform, HANG_GUARD.as_nanos() as u64).unwrap();
    let reports = cores.join(HANG_GUARD).unwrap();
    assert_eq!(reports.len(), 6);
    for r in &reports {
        assert_eq!(r.exit, CoreExit::Exited);
        assert_eq!(r.last_token, last_token[r.core as usize], "core {} ran exactly the tokens it finished", r.core);
        assert!(r.last_token > 0, "core {} got work", r.core);
    }
}

#[test]
fn two_schedulers_drive_their_own_clusters_concurrently() {
    let (clusters, n) = (4, 400);
    let fx = Fixture::new(2 * n);
    let mut cores = fx.start(clusters);
    std::thread::scope(|s| {
        for sched in 0..2u32 {
            let fx = &fx;
            s.spawn(move || {
                let mut ch = fx.channels(sched, 2, clusters);
                assert!(ch.owned().iter().all(|c| (c / 3) % 2 == sched), "scheduler {sched} owns whole clusters");
                let work: Vec<Work> = (0..n)
                    .map(|i| {
                        let id = sched as u64 * n + i;
                        Work {
                            kernel: WRITE,
                            task_id: id,
                            block_idx: 0,
                            block_num: 1,
                            args: vec![fx.buffer.get(), id, 3 * id],
                        }
                    })
                    .collect();
                let done = drive(&mut ch, &work, 1);
                assert!(done.iter().all(|c| ch.owned().contains(c.core)));
                ch.shutdown(&HostPlatform, HANG_GUARD.as_nanos() as u64).unwrap();
            });
        }
    });
    check_writes(&fx, 2 * n, 1);
    let reports = cores.join(HANG_GUARD).unwrap();
    assert!(reports.iter().all(|r| r.exit == CoreExit::Exited && r.last_token > 0));
}

#[test]
fn one_publish_releases_a_batch_prepared_on_every_core() {
    let fx = Fixture::new(6);
    let mut cores = fx.start(2);
    let mut ch = fx.channels(0, 1, 2);
    for core in ch.owned() {
        let args = [fx.buffer.get(), core as u64, 100];
        let d = pto_device::aicore::Dispatch {
            kernel: WRITE,
            task_id: core as u64,
            block_idx: 0,
            block_num: 1,
            args: &args,
        };
        assert_eq!(ch.prepare(core, &d).unwrap(), 1);
        assert_eq!(ch.prepared_token(core), Some(1));
    }
    // Nothing runs before the publish: the buffer stays zero however long the cores poll.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(fx.read_buffer(6), [0; 6]);
    assert_eq!(ch.publish(), 6);
    let mut finished = 0;
    let platform = HostPlatform;
    let mut polls = 0;
    while finished < 6 {
        for core in ch.owned() {
            finished += ch.poll(core).unwrap().completions().len();
        }
        sim_pause(polls);
        polls += 1;
    }
    assert_eq!(fx.read_buffer(6), [100; 6]);
    ch.shutdown(&platform, HANG_GUARD.as_nanos() as u64).unwrap();
    cores.join(HANG_GUARD).unwrap();
}

#[test]
fn unknown_kernels_and_failing_kernels_are_reported_as_faults_and_cores_keep_serving() {
    let fx = Fixture::new(64);
    let mut cores = fx.start(1);
    let mut ch = fx.channels(0, 1, 1);
    let mut work = Vec::new();
    for i in 0..30u64 {
        let (kernel, args) = match i % 3 {
            0 => (NOWHERE, vec![]),
            1 => (PANIC, vec![]),
            _ => (WRITE, vec![fx.buffer.get(), i, 1000 + i]),
        };
        work.push(Work { kernel, task_id: i, block_idx: 0, block_num: 1, args });
    }
    let done = drive(&mut ch, &work, 2);
    assert_eq!(done.len(), 30);
    for c in &done {
        let expected = match c.task_id % 3 {
            0 => TaskOutcome::Faulted(CoreFault::UnknownKernel),
            1 => TaskOutcome::Faulted(CoreFault::KernelFailed),
            _ => TaskOutcome::Finished,
        };
        assert_eq!(c.outcome, expected, "task {}", c.task_id);
        if c.task_id % 3 == 0 {
            assert_eq!(c.kernel, NOWHERE, "the completion names the unknown address");
        }
    }
    let words = fx.read_buffer(30);
    for i in (2..30).step_by(3) {
        assert_eq!(words[i], 1000 + i as u64);
    }
    ch.shutdown(&HostPlatform, HANG_GUARD.as_nanos() as u64).unwrap();
    let reports = cores.join(HANG_GUARD).unwrap();
    assert_eq!(reports.iter().map(|r| r.faults).sum::<u64>(), 20);
    assert!(reports.iter().all(|r| r.exit == CoreExit::Exited));
}

#[test]
fn shutdown_deadline_names_cores_without_a_worker() {
    // The scheduler owns two clusters but only the first has workers: cores 3, 4, 5 never exit.
    let fx = Fixture::new(1);
    let mut cores = fx.start(1);
    let mut ch = fx.channels(0, 1, 2);
    let e = ch.shutdown(&HostPlatform, 20_000_000).unwrap_err();
    assert_eq!(e.not_exited.iter().collect::<Vec<_>>(), [3, 4, 5]);
    assert!(e.to_string().starts_with("cores 3, 4, 5 did not acknowledge exit"), "{e}");
    assert_eq!(ch.exited().iter().collect::<Vec<_>>(), [0, 1, 2]);
    let reports = cores.join(HANG_GUARD).unwrap();
    assert!(reports.iter().all(|r| r.exit == CoreExit::Exited));
}

#[test]
fn a_core_busy_in_a_kernel_misses_the_deadline_then_exits_after_its_kernel() {
    let fx = Fixture::new(1);
    let mut cores = fx.start(1);
    let mut ch = fx.channels(0, 1, 1);
    let flag = fx.buffer;
    let args = [flag.get()];
    let d = pto_device::aicore::Dispatch { kernel: GATE, task_id: 1, block_idx: 0, block_num: 1, args: &args };
    ch.prepare(1, &d).unwrap();
    ch.publish();
    let platform = HostPlatform;
    let mut polls = 0;
    while ch.poll(1).unwrap().running != Some(1) {
        sim_pause(polls);
        polls += 1;
    }
    let e = ch.shutdown(&platform, 20_000_000).unwrap_err();
    assert_eq!(e.not_exited.iter().collect::<Vec<_>>(), [1], "only the core inside the kernel is late");
    // SAFETY: `flag` is a live u64 of the sim pool that the gate kernel polls.
    unsafe { (*(flag.get() as usize as *const AtomicU64)).store(1, Ordering::Release) };
    ch.shutdown(&platform, HANG_GUARD.as_nanos() as u64).unwrap();
    let reports = cores.join(HANG_GUARD).unwrap();
    assert!(reports.iter().all(|r| r.exit == CoreExit::Exited));
    assert_eq!(reports[1].last_token, 1);
}

#[test]
fn workers_stop_without_an_exit_token_when_the_aicpu_side_dies() {
    let fx = Fixture::new(4);
    let mut cores = fx.start(2);
    let mut ch = fx.channels(0, 1, 2);
    let args = [fx.buffer.get(), 0, 5];
    let d = pto_device::aicore::Dispatch { kernel: WRITE, task_id: 1, block_idx: 0, block_num: 1, args: &args };
    ch.prepare(0, &d).unwrap();
    ch.publish();
    // The scheduler dies here: it never writes DISPATCH_EXIT.
    let reports = cores.stop_and_join(HANG_GUARD).unwrap();
    assert_eq!(reports.len(), 6);
    assert!(reports.iter().all(|r| r.exit == CoreExit::Stopped), "{reports:?}");
}

#[test]
fn a_worker_stuck_in_a_kernel_is_reported_not_waited_on() {
    let fx = Fixture::new(1);
    let mut cores = fx.start(1);
    let mut ch = fx.channels(0, 1, 1);
    let args = [fx.buffer.get()];
    let d = pto_device::aicore::Dispatch { kernel: GATE, task_id: 1, block_idx: 0, block_num: 1, args: &args };
    ch.prepare(2, &d).unwrap();
    ch.publish();
    let mut polls = 0;
    while ch.poll(2).unwrap().running != Some(1) {
        sim_pause(polls);
        polls += 1;
    }
    let e = cores.stop_and_join(Duration::from_millis(20)).unwrap_err();
    assert_eq!(
        e,
        pto_host::sim::SimCoresError::Stuck { cores: ch.owned().and(single(2)), timeout: Duration::from_millis(20) }
    );
    // The worker is not lost: once its kernel returns a join collects it. It was told to stop, so it
    // leaves the token unended (a later run may already have reset these tables).
    // SAFETY: a live u64 of the sim pool.
    unsafe { (*(fx.buffer.get() as usize as *const AtomicU64)).store(1, Ordering::Release) };
    let reports = cores.join(HANG_GUARD).unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[2].last_token, 1);
    assert!(reports.iter().all(|r| r.exit == CoreExit::Stopped));
    let p = ch.poll(2).unwrap();
    assert!(p.completions().is_empty(), "a stopped core writes no FIN");
    assert_eq!(p.running, Some(1));
}

fn single(core: u32) -> pto_device::aicore::CoreMask {
    let mut m = pto_device::aicore::CoreMask::EMPTY;
    m.insert(core);
    m
}
