//! Chip workers and the chip pool, with real `pto worker` processes: the mailbox state machine
//! (including refused frames), startup failures, a worker killed with a run in flight, shutdown
//! with runs in flight, 1,000 checked runs over 4 workers, and that no process or mailbox file
//! outlives a pool.
//!
//! The tests share one lock: each counts this process's children and its mailbox files.

use std::mem::offset_of;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pto_host::abi::mailbox::{
    ChipMailbox, MailboxArg, MailboxArgKind, MailboxCommand, MailboxError, MailboxRunConfig, MailboxRunMode,
    MailboxState, MAILBOX_MAX_ARGS, MAILBOX_PROTOCOL_VERSION,
};
use pto_host::abi::task::DType;
use pto_host::examples::{vector_example_callable, VECTOR_EXPECTED, VECTOR_RESULT_ARG};
use pto_host::pool::shm::{MailboxMap, SHM_DIR, SHM_PREFIX};
use pto_host::{
    ArenaSizingKey, Budgets, CallableRunConfig, ChipExit, ChipPool, ChipSpec, PoolConfig, PoolError, PoolEvent,
    PoolRun, RunArg, RunMode,
};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn pto() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pto"))
}

fn config(n: usize) -> PoolConfig {
    PoolConfig { worker_exe: Some(pto()), ..PoolConfig::sim(n) }
}

/// Live (not yet reaped) children of this process.
fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name (which may hold spaces): state, ppid, …
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let mut f = rest.split_whitespace();
        let (_state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(me) {
            v.push(pid);
        }
    }
    v
}

/// Mailbox files of this process.
fn mailbox_files() -> Vec<String> {
    let prefix = format!("{SHM_PREFIX}{}-", std::process::id());
    std::fs::read_dir(SHM_DIR)
        .expect("read /dev/shm")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Asserts that nothing of a pool is left: no child, no mailbox file.
fn assert_nothing_left() {
    assert_eq!(children(), Vec::<u32>::new(), "worker processes left behind");
    assert_eq!(mailbox_files(), Vec::<String>::new(), "mailbox files left behind");
}

/// The vector example over `n` elements (small tensors keep the bulk runs cheap).
fn vector_run(n: usize, mode: RunMode) -> PoolRun {
    PoolRun {
        cid: 0,
        args: vec![
            RunArg::input_f32(&vec![2.0; n]),
            RunArg::input_f32(&vec![3.0; n]),
            RunArg::output_f32(n),
            RunArg::Scalar(n as u64),
        ],
        config: CallableRunConfig {
            sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
            mode,
            budgets: Budgets::DEFAULT,
        },
    }
}

const DET: RunMode = RunMode::Deterministic { noop_cores: false };

fn assert_47(result: &Result<pto_host::RunReport, pto_host::WorkerError>, n: usize) {
    let report = result.as_ref().expect("run succeeds");
    let f = report.output_f32(VECTOR_RESULT_ARG);
    assert_eq!(f.len(), n);
    assert!(f.iter().all(|&x| x == VECTOR_EXPECTED), "{:?}", &f[..4]);
    assert_eq!(report.tasks_completed, 5);
}

#[test]
fn a_thousand_runs_over_four_workers_all_check_47_and_nothing_is_left() {
    let _g = lock();
    assert_nothing_left();
    let mut pool = ChipPool::start(&config(4)).expect("start");
    assert_eq!(children().len(), 4);
    assert!(mailbox_files().is_empty(), "the names go once both sides have mapped them");
    pool.prepare(0, &vector_example_callable().unwrap()).expect("prepare");
    let job = vector_run(64, DET);
    let mut per_chip = [0u32; 4];
    let (mut submitted, mut done) = (0, 0);
    let mut seen = std::collections::HashSet::new();
    while done < 1000 {
        while submitted < 1000 && pool.in_flight() < 4 {
            pool.submit(&job).expect("submit");
            submitted += 1;
        }
        match pool.next_event(Duration::from_secs(30)).expect("an event") {
            PoolEvent::Finished { chip, run_id, result } => {
                assert_47(&result, 64);
                assert!(seen.insert(run_id), "run {run_id} reported twice");
                per_chip[chip] += 1;
                done += 1;
            }
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(per_chip.iter().all(|&c| c > 0), "every chip served runs: {per_chip:?}");
    let report = pool.shutdown(Duration::from_secs(10));
    assert!(report.chips.iter().all(|c| *c == ChipExit::Stopped("exit code 0".into())), "{:?}", report.chips);
    assert!(report.events.is_empty());
    assert_nothing_left();
}

#[test]
fn runs_go_to_a_named_chip_and_a_failed_run_leaves_the_worker_usable() {
    let _g = lock();
    let mut pool = ChipPool::start(&config(2)).expect("start");
    // A run before the callable is prepared is refused by the worker.
    let id = pool.submit_to(1, &vector_run(64, DET)).unwrap();
    match pool.next_event(Duration::from_secs(30)).unwrap() {
        PoolEvent::Finished { chip: 1, run_id, result: Err(e) } => {
            assert_eq!(run_id, id);
            assert_eq!(e.error, MailboxError::NotPrepared);
        }
        e => panic!("{e:?}"),
    }
    pool.prepare(0, &vector_example_callable().unwrap()).unwrap();
    // Preparing again is served by the resident blob.
    pool.prepare(0, &vector_example_callable().unwrap()).unwrap();
    // A heap too small for the outputs fails on the device; the error carries its code name.
    let mut bad = vector_run(16_384, DET);
    bad.config.sizing = ArenaSizingKey::uniform(4, 1024, 4);
    pool.submit_to(1, &bad).unwrap();
    match pool.next_event(Duration::from_secs(30)).unwrap() {
        PoolEvent::Finished { chip: 1, result: Err(e), .. } => {
            assert_eq!(e.error, MailboxError::RunFailed);
            assert!(!e.code_name.is_empty() && !e.message.is_empty(), "{e:?}");
        }
        e => panic!("{e:?}"),
    }
    let threaded = vector_run(16_384, RunMode::Threaded { threads: 2, clusters: 1 });
    pool.submit_to(1, &threaded).unwrap();
    match pool.next_event(Duration::from_secs(30)).unwrap() {
        PoolEvent::Finished { chip: 1, result, .. } => assert_47(&result, 16_384),
        e => panic!("{e:?}"),
    }
    assert!(matches!(pool.submit_to(2, &threaded), Err(PoolError::NoSuchChip { chip: 2, chips: 2 })));
    pool.unregister(0).unwrap();
    assert!(
        matches!(pool.unregister(0), Err(PoolError::Refused { error, .. }) if error.error == MailboxError::NotPrepared)
    );
    drop(pool);
    assert_nothing_left();
}

#[test]
fn a_worker_killed_with_a_run_in_flight_is_reported_with_the_lost_run() {
    let _g = lock();
    let mut pool = ChipPool::start(&config(3)).expect("start");
    pool.prepare(0, &vector_example_callable().unwrap()).unwrap();
    let pid = pool.worker_pid(1).unwrap() as i32;
    // Stopped first, the worker cannot answer: the run is certainly in flight when it dies.
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let lost = pool.submit_to(1, &vector_run(64, DET)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    match pool.next_event(Duration::from_secs(30)).unwrap() {
        PoolEvent::WorkerLost { chip, run_id, status } => {
            assert_eq!((chip, run_id), (1, Some(lost)));
            assert!(status.contains("signal 9"), "{status}");
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(pool.submit_to(1, &vector_run(64, DET)), Err(PoolError::ChipDead { chip: 1, .. })));
    // The others go on serving, and `submit` skips the dead chip.
    for _ in 0..6 {
        pool.submit(&vector_run(64, DET)).unwrap();
    }
    let mut n = 0;
    while let Some(e) = pool.next_event(Duration::from_secs(30)) {
        match e {
            PoolEvent::Finished { chip, result, .. } => {
                assert_ne!(chip, 1);
                assert_47(&result, 64);
                n += 1;
            }
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(n, 6);
    let report = pool.shutdown(Duration::from_secs(10));
    assert!(matches!(&report.chips[1], ChipExit::AlreadyGone(s) if s.contains("signal 9")), "{:?}", report.chips);
    assert_eq!(report.chips[0], ChipExit::Stopped("exit code 0".into()));
    assert_nothing_left();
}

#[test]
fn shutdown_with_runs_in_flight_serves_them_first() {
    let _g = lock();
    let mut pool = ChipPool::start(&config(2)).expect("start");
    pool.prepare(0, &vector_example_callable().unwrap()).unwrap();
    let threaded = vector_run(16_384, RunMode::Threaded { threads: 2, clusters: 1 });
    let a = pool.submit_to(0, &threaded).unwrap();
    let b = pool.submit_to(1, &threaded).unwrap();
    let report = pool.shutdown(Duration::from_secs(20));
    assert_eq!(report.chips, vec![ChipExit::Stopped("exit code 0".into()); 2]);
    let mut ids = Vec::new();
    for e in &report.events {
        match e {
            PoolEvent::Finished { run_id, result, .. } => {
                assert_47(result, 16_384);
                ids.push(*run_id);
            }
            e => panic!("{e:?}"),
        }
    }
    ids.sort();
    assert_eq!(ids, vec![a, b]);
    assert_nothing_left();
}

#[test]
fn a_worker_that_fails_init_aborts_startup_and_nothing_is_left() {
    let _g = lock();
    let mut cfg = config(4);
    cfg.chips[2] = ChipSpec { backend: "no-such-backend".into(), device_memory: 1 << 20 };
    match ChipPool::start(&cfg) {
        Err(PoolError::Startup { chip: 2, message }) => {
            assert!(message.contains("failed to start") && message.contains("unknown backend"), "{message}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("startup must fail"),
    }
    assert_nothing_left();
}

#[test]
fn a_worker_that_dies_or_misses_the_deadline_aborts_startup() {
    let _g = lock();
    let mut cfg = config(2);
    cfg.worker_exe = Some("/bin/false".into());
    match ChipPool::start(&cfg) {
        Err(PoolError::Startup { message, .. }) => {
            assert!(message.contains("ended before it was ready (exit code 1)"), "{message}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("startup must fail"),
    }
    assert_nothing_left();
    let dir = std::env::temp_dir().join(format!("pto-pool-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("silent-worker");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    cfg.worker_exe = Some(script);
    cfg.ready_deadline = Duration::from_millis(300);
    match ChipPool::start(&cfg) {
        Err(PoolError::Startup { chip: 0, message }) => {
            assert!(message.contains("not ready within 300 ms"), "{message}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("startup must fail"),
    }
    assert_nothing_left();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_pto_executable_the_pool_says_how_to_name_one() {
    let _g = lock();
    if std::env::var_os(pto_host::pool::WORKER_EXE_ENV).is_some() {
        return;
    }
    let cfg = PoolConfig::sim(1);
    match ChipPool::start(&cfg) {
        Err(PoolError::NoWorkerExe(m)) => assert!(m.contains("PTO_WORKER_EXE"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the test binary is not `pto`"),
    }
    assert_nothing_left();
}

/// Helper for the next test, run in a child copy of this test binary: starts a pool, prints its
/// worker pids and exits without dropping it.
#[test]
fn helper_pool_then_exit() {
    if std::env::var_os("PTO_POOL_EXIT_HELPER").is_none() {
        return;
    }
    let pool = ChipPool::start(&config(2)).expect("start");
    let pids: Vec<String> = (0..2).map(|i| pool.worker_pid(i).unwrap().to_string()).collect();
    println!("PIDS {}", pids.join(" "));
    std::process::exit(1);
}

#[test]
fn a_parent_that_exits_without_dropping_its_pool_leaves_no_worker() {
    let _g = lock();
    let helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_pool_then_exit", "--nocapture", "--test-threads", "1"])
        .env("PTO_POOL_EXIT_HELPER", "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let helper_pid = helper.id();
    let out = helper.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("PIDS ").unwrap_or_else(|| panic!("{text}"));
    let line = text[at + 5..].lines().next().unwrap();
    let pids: Vec<u32> = line.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    // The kernel kills the workers when their parent dies; wait for it with a generous bound.
    let until = Instant::now() + Duration::from_secs(20);
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')).map(|zombie| !zombie))
            .unwrap_or(false)
    };
    while pids.iter().any(|&p| alive(p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids {
        assert!(!alive(p), "worker {p} outlived its parent");
    }
    let prefix = format!("{SHM_PREFIX}{helper_pid}-");
    let left: Vec<_> = std::fs::read_dir(SHM_DIR)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "the exited parent left mailbox files: {left:?}");
}

// ---- the mailbox state machine, frame by frame, against one worker ----

struct RawWorker {
    mb: MailboxMap,
    child: Child,
    generation: u64,
}

impl RawWorker {
    fn start() -> RawWorker {
        let mb = MailboxMap::create(0).unwrap();
        let child = Command::new(pto())
            .args(["worker", "--chip", "0", "--mailbox"])
            .arg(mb.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut w = RawWorker { mb, child, generation: 0 };
        assert_eq!(w.wait_for(|s| s != MailboxState::Starting), MailboxState::InitReady);
        w.mb.set_state(MailboxState::Idle);
        w
    }

    fn wait_for(&mut self, done: impl Fn(MailboxState) -> bool) -> MailboxState {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.mb.state().expect("a valid state");
            if done(s) {
                return s;
            }
            assert!(Instant::now() < until, "worker stuck in {s:?}");
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("worker exited: {status}");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Posts a frame and returns the worker's answer: the error word and the generation served.
    fn post(&mut self, state: MailboxState, command: u32, version: u32, generation: u64, cid: u32) -> (u32, u64) {
        let mb = &self.mb;
        mb.write(offset_of!(ChipMailbox, frame_version), &version);
        mb.write(offset_of!(ChipMailbox, command), &command);
        mb.write(offset_of!(ChipMailbox, generation), &generation);
        mb.write(offset_of!(ChipMailbox, run_id), &generation);
        mb.write(offset_of!(ChipMailbox, cid), &cid);
        mb.set_state(state);
        let want = if state == MailboxState::TaskReady { MailboxState::TaskDone } else { MailboxState::ControlDone };
        assert_eq!(self.wait_for(|s| s == want), want);
        let err: u32 = self.mb.read(offset_of!(ChipMailbox, error));
        let served: u64 = self.mb.read(offset_of!(ChipMailbox, done_generation));
        self.mb.set_state(MailboxState::Idle);
        (err, served)
    }

    fn next(&mut self, state: MailboxState, command: MailboxCommand, cid: u32) -> u32 {
        self.generation += 1;
        let g = self.generation;
        let (err, served) = self.post(state, command as u32, MAILBOX_PROTOCOL_VERSION, g, cid);
        assert_eq!(served, g);
        err
    }

    fn message(&self) -> String {
        self.mb.read_text(offset_of!(ChipMailbox, error_message), 512)
    }
}

fn write_vector_frame(mb: &MailboxMap, n: u64) {
    let bytes = n * 4;
    let mut args = [MailboxArg { kind: 0, dtype: 0, offset: 0, bytes: 0, scalar: 0 }; MAILBOX_MAX_ARGS];
    let tensor = |kind: MailboxArgKind, offset| MailboxArg {
        kind: kind as u32,
        dtype: DType::F32 as u32,
        offset,
        bytes,
        scalar: 0,
    };
    args[0] = tensor(MailboxArgKind::Input, 0);
    args[1] = tensor(MailboxArgKind::Input, 4096);
    args[2] = tensor(MailboxArgKind::Output, 8192);
    args[3] = MailboxArg { kind: MailboxArgKind::Scalar as u32, dtype: 0, offset: 0, bytes: 0, scalar: n };
    let two: Vec<u8> = (0..n).flat_map(|_| 2.0f32.to_le_bytes()).collect();
    let three: Vec<u8> = (0..n).flat_map(|_| 3.0f32.to_le_bytes()).collect();
    mb.write_args(0, &two);
    mb.write_args(4096, &three);
    mb.write(offset_of!(ChipMailbox, args), &args);
    mb.write(offset_of!(ChipMailbox, arg_count), &4u32);
    let sizing = ArenaSizingKey::uniform(64, 1 << 20, 256);
    let config = MailboxRunConfig {
        sizing,
        mode: MailboxRunMode::Deterministic as u32,
        threads: 0,
        clusters: 0,
        _pad: [0; 4],
        orch_budget_ns: 500_000_000,
        sched_budget_ns: 500_000_000,
    };
    mb.write(offset_of!(ChipMailbox, config), &config);
}

#[test]
fn the_mailbox_state_machine_serves_and_refuses_frame_by_frame() {
    let _g = lock();
    let mut w = RawWorker::start();
    let e = |err: MailboxError| err as u32;
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Ping, 0), 0);
    // RUN for a cid never prepared.
    write_vector_frame(&w.mb, 64);
    assert_eq!(w.next(MailboxState::TaskReady, MailboxCommand::Run, 5), e(MailboxError::NotPrepared));
    assert!(w.message().contains("callable id 5 was never prepared"), "{}", w.message());
    // PREPARE: a wrong content hash is refused, the right one registers, a repeat is a hit.
    let blob = vector_example_callable().unwrap();
    w.mb.write_args(0, blob.as_bytes());
    w.mb.write(offset_of!(ChipMailbox, blob_bytes), &blob.total_size());
    w.mb.write(offset_of!(ChipMailbox, content_hash), &(blob.content_hash() ^ 1));
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Prepare, 5), e(MailboxError::HashMismatch));
    w.mb.write(offset_of!(ChipMailbox, content_hash), &blob.content_hash());
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Prepare, 5), 0);
    assert_eq!(w.mb.read::<u32>(offset_of!(ChipMailbox, cache_hit)), 0);
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Prepare, 5), 0);
    assert_eq!(w.mb.read::<u32>(offset_of!(ChipMailbox, cache_hit)), 1, "prepared once, by content hash");
    w.mb.write(offset_of!(ChipMailbox, content_hash), &(blob.content_hash() ^ 2));
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Prepare, 5), e(MailboxError::CidInUse));
    // A command posted with the wrong state, and an unknown command.
    assert_eq!(w.next(MailboxState::TaskReady, MailboxCommand::Prepare, 5), e(MailboxError::BadCommand));
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Run, 5), e(MailboxError::BadCommand));
    w.generation += 1;
    let g = w.generation;
    assert_eq!(w.post(MailboxState::ControlRequest, 99, MAILBOX_PROTOCOL_VERSION, g, 5).0, e(MailboxError::BadCommand));
    // Another protocol version.
    w.generation += 1;
    let g = w.generation;
    let (err, served) = w.post(MailboxState::TaskReady, MailboxCommand::Run as u32, MAILBOX_PROTOCOL_VERSION + 1, g, 5);
    assert_eq!((err, served), (e(MailboxError::BadProtocol), g));
    assert!(w.message().contains(&format!("protocol version {}", MAILBOX_PROTOCOL_VERSION + 1)), "{}", w.message());
    // A stale generation (the last one again, then an older one).
    let (err, served) = w.post(MailboxState::TaskReady, MailboxCommand::Run as u32, MAILBOX_PROTOCOL_VERSION, g - 1, 5);
    assert_eq!((err, served), (e(MailboxError::StaleGeneration), g - 1));
    assert!(w.message().contains(&format!("generation {}", g - 1)), "{}", w.message());
    // The bad protocol frame did not consume its generation, so g is still fresh once. (The
    // blob overwrote the tensors: write them again.)
    write_vector_frame(&w.mb, 64);
    let (err, _) = w.post(MailboxState::TaskReady, MailboxCommand::Run as u32, MAILBOX_PROTOCOL_VERSION, g, 5);
    assert_eq!(err, 0, "{}", w.message());
    let f = pto_host::f32s(&w.mb.read_args(8192, 64 * 4));
    assert!(f.iter().all(|&x| x == VECTOR_EXPECTED), "{f:?}");
    let (err, _) = w.post(MailboxState::TaskReady, MailboxCommand::Run as u32, MAILBOX_PROTOCOL_VERSION, g, 5);
    assert_eq!(err, e(MailboxError::StaleGeneration));
    // An argument outside the region.
    let mut args: [MailboxArg; MAILBOX_MAX_ARGS] = w.mb.read(offset_of!(ChipMailbox, args));
    args[1].offset = u64::MAX - 8;
    w.mb.write(offset_of!(ChipMailbox, args), &args);
    assert_eq!(w.next(MailboxState::TaskReady, MailboxCommand::Run, 5), e(MailboxError::BadArgs));
    // UNREGISTER, then the cid is gone.
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Unregister, 5), 0);
    assert_eq!(w.next(MailboxState::ControlRequest, MailboxCommand::Unregister, 5), e(MailboxError::NotPrepared));
    write_vector_frame(&w.mb, 64);
    assert_eq!(w.next(MailboxState::TaskReady, MailboxCommand::Run, 5), e(MailboxError::NotPrepared));
    // SHUTDOWN: sticky, answered with the SHUTDOWN state and exit code 0.
    w.mb.request_shutdown();
    assert_eq!(w.wait_for(|s| s == MailboxState::Shutdown), MailboxState::Shutdown);
    assert!(w.mb.shutdown_requested());
    let status = w.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    drop(w);
    assert_nothing_left();
}

#[test]
fn a_corrupt_state_word_stops_the_worker_with_its_own_exit_code() {
    let _g = lock();
    let mut w = RawWorker::start();
    w.mb.set_state_raw(77);
    let status = w.child.wait().unwrap();
    assert_eq!(status.code(), Some(pto_host::pool::worker::EXIT_PROTOCOL));
    drop(w);
    assert_nothing_left();
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
