//! Chip workers: one process per device behind the shared-memory mailbox
//! ([`pto_abi::mailbox`]), and a [`ChipPool`] that spreads runs over them.
//!
//! The pool re-executes the `pto` binary as `pto worker` once per chip. Each worker owns a
//! [`DeviceRunner`](crate::DeviceRunner) on its backend and serves PREPARE, RUN, UNREGISTER and
//! shutdown through its mailbox ([`worker`]). The pool starts every worker and waits for all of
//! them with a deadline; posts a run to a free chip or a named one; hands back results as they
//! complete; notices a worker that died and names the run it lost; and shuts down with a deadline,
//! killing what does not stop.
//!
//! No orphan survives the pool: dropping it stops (or kills) and reaps every worker, and each
//! worker is started with `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the parent even when the
//! parent exits without unwinding. The signal follows the *thread* that started the pool: keep a
//! pool on the thread that created it, or at least keep that thread alive as long as the pool. No
//! mailbox file survives either: the worker removes the file's name once both sides have mapped it,
//! and the pool removes it on every failure path.

pub mod shm;
pub mod worker;

use std::collections::VecDeque;
use std::fmt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pto_abi::mailbox::{
    MailboxArg, MailboxArgKind, MailboxCommand, MailboxError, MailboxRunConfig, MailboxRunMode, MailboxState,
    MAILBOX_ARGS_CAPACITY, MAILBOX_ARG_ALIGN, MAILBOX_CODE_NAME_BYTES, MAILBOX_ERROR_BYTES, MAILBOX_MAX_ARGS,
    MAILBOX_PROTOCOL_VERSION,
};

use zerocopy::FromZeros;

use self::shm::{off, Backoff, MailboxMap};
use crate::backend::sim::DEFAULT_POOL_CAPACITY;
use crate::callable::ChipCallable;
use crate::runner::{CallableRunConfig, RunArg, RunMode, RunReport};

/// Environment variable naming the worker executable (a `pto` binary).
pub const WORKER_EXE_ENV: &str = "PTO_WORKER_EXE";

/// One chip of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipSpec {
    /// The worker's backend (`sim`).
    pub backend: String,
    /// Device memory of a simulated device, bytes.
    pub device_memory: u64,
}

/// How a pool starts.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// One entry per chip; chip `i` is device index `i`.
    pub chips: Vec<ChipSpec>,
    /// The worker executable; `None`: [`WORKER_EXE_ENV`], else the current executable when it is
    /// `pto`.
    pub worker_exe: Option<PathBuf>,
    /// How long startup may take until every worker is ready.
    pub ready_deadline: Duration,
}

impl PoolConfig {
    /// `n` simulated chips of [`DEFAULT_POOL_CAPACITY`] bytes each (reserved address space,
    /// committed on use), a 10 s startup deadline.
    pub fn sim(n: usize) -> PoolConfig {
        PoolConfig {
            chips: vec![ChipSpec { backend: "sim".into(), device_memory: DEFAULT_POOL_CAPACITY }; n],
            worker_exe: None,
            ready_deadline: Duration::from_secs(10),
        }
    }
}

/// What a worker reported for a refused frame or a failed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerError {
    /// The mailbox error word.
    pub error: MailboxError,
    /// The underlying code's name (e.g. `HEAP_RING_DEADLOCK` for a failed run).
    pub code_name: String,
    /// Code-specific words (for `RUN_FAILED`: device code, detail, ring, stall class).
    pub words: [u64; 4],
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error.name())?;
        if self.code_name != self.error.name() && !self.code_name.is_empty() {
            write!(f, " ({})", self.code_name)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A pool operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No worker executable could be found.
    #[error("no worker executable: {0}")]
    NoWorkerExe(String),
    /// A pool needs at least one chip.
    #[error("a pool needs at least one chip")]
    NoChips,
    /// Startup failed; every started worker was stopped.
    #[error("chip {chip}: {message}")]
    Startup {
        /// The chip that failed.
        chip: usize,
        /// Why.
        message: String,
    },
    /// The chip index names no chip of this pool.
    #[error("chip {chip} does not exist (the pool has {chips})")]
    NoSuchChip {
        /// The index.
        chip: usize,
        /// Chips of the pool.
        chips: usize,
    },
    /// The chip's worker is gone.
    #[error("chip {chip}: the worker is gone ({status})")]
    ChipDead {
        /// The chip.
        chip: usize,
        /// How it ended.
        status: String,
    },
    /// Every worker is gone.
    #[error("no worker of the pool is alive")]
    NoLiveChips,
    /// A run's arguments do not fit a mailbox.
    #[error("run arguments: {0}")]
    Args(String),
    /// A control request (prepare, unregister) was refused by a worker.
    #[error("chip {chip}: {error}")]
    Refused {
        /// The chip.
        chip: usize,
        /// What it reported.
        error: WorkerError,
    },
}

/// Something that happened to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolEvent {
    /// A run finished on a chip.
    Finished {
        /// The chip.
        chip: usize,
        /// The run's id (from [`ChipPool::submit`]).
        run_id: u64,
        /// Its report, or what the worker reported.
        result: Result<RunReport, WorkerError>,
    },
    /// A worker died; the run it held, if any, is lost.
    WorkerLost {
        /// The chip.
        chip: usize,
        /// The lost run.
        run_id: Option<u64>,
        /// How the worker ended (exit code or signal).
        status: String,
    },
}

/// A run to post: a prepared callable, its arguments and how it runs.
#[derive(Clone, Debug)]
pub struct PoolRun {
    /// The callable id (prepared with [`ChipPool::prepare`]).
    pub cid: u32,
    /// Arguments; tensors travel in the chip's arguments region.
    pub args: Vec<RunArg>,
    /// Sizing, mode, budgets.
    pub config: CallableRunConfig,
}

/// How a worker ended at shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChipExit {
    /// It answered the shutdown request and exited with this status.
    Stopped(String),
    /// It did not stop by the deadline and was killed.
    Killed,
    /// It had died before the shutdown.
    AlreadyGone(String),
}

/// What [`ChipPool::shutdown`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct ShutdownReport {
    /// Per chip, how its worker ended.
    pub chips: Vec<ChipExit>,
    /// Events not taken before the shutdown, and those of runs in flight when it began.
    pub events: Vec<PoolEvent>,
}

/// What a chip is doing.
#[derive(Clone, Debug)]
enum Busy {
    Idle,
    Run { run_id: u64, outputs: Vec<Option<(u64, u64)>> },
    Control,
}

struct Chip {
    mailbox: MailboxMap,
    child: Option<Child>,
    generation: u64,
    busy: Busy,
    gone: Option<String>,
    control: Option<Result<bool, WorkerError>>,
}

/// Describes an exit status: `exit code N` or `killed by signal N (NAME)`.
pub fn describe_status(s: ExitStatus) -> String {
    if let Some(code) = s.code() {
        format!("exit code {code}")
    } else if let Some(sig) = s.signal() {
        let name = match sig {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            _ => "",
        };
        format!("killed by signal {sig}{name}")
    } else {
        format!("{s}")
    }
}

/// The worker executable: `explicit`, else [`WORKER_EXE_ENV`], else the current executable when
/// its name is `pto`.
pub fn resolve_worker_exe(explicit: Option<&Path>) -> Result<PathBuf, PoolError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(WORKER_EXE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| PoolError::NoWorkerExe(format!("current executable: {e}")))?;
    if exe.file_stem().is_some_and(|s| s == "pto") {
        return Ok(exe);
    }
    Err(PoolError::NoWorkerExe(format!(
        "{} is not `pto`; name a `pto` binary in PoolConfig::worker_exe or {WORKER_EXE_ENV}",
        exe.display()
    )))
}

fn read_worker_error(mb: &MailboxMap) -> Option<WorkerError> {
    let raw: u32 = mb.read(off!(error));
    if raw == 0 {
        return None;
    }
    // The worker's length word is untrusted: it only bounds the bytes read.
    let len: u32 = mb.read(off!(error_len));
    let mut bytes = vec![0u8; (len as usize).min(MAILBOX_ERROR_BYTES)];
    mb.read_into(off!(error_message), &mut bytes);
    let message = String::from_utf8_lossy(&bytes).into_owned();
    let code_name = mb.read_text(off!(code_name), MAILBOX_CODE_NAME_BYTES);
    let words: [u64; 4] = mb.read(off!(error_words));
    Some(match MailboxError::try_from(raw) {
        Ok(error) => WorkerError { error, code_name, words, message },
        Err(v) => WorkerError {
            error: MailboxError::BadCommand,
            code_name,
            words,
            message: format!("the worker reported error word {v}, which this host does not know: {message}"),
        },
    })
}

impl Chip {
    /// Reaps the child if it exited; returns its status description.
    fn check_exit(&mut self) -> Option<String> {
        if let Some(g) = &self.gone {
            return Some(g.clone());
        }
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                let d = describe_status(status);
                self.gone = Some(d.clone());
                self.child = None;
                Some(d)
            }
            Ok(None) => None,
            Err(e) => {
                let d = format!("cannot wait for the worker: {e}");
                self.gone = Some(d.clone());
                Some(d)
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().map(describe_status).unwrap_or_else(|e| e.to_string());
            self.gone.get_or_insert(status);
        }
    }

    fn post(&mut self, state: MailboxState, command: MailboxCommand, run_id: u64, cid: u32) {
        self.generation += 1;
        let mb = &self.mailbox;
        mb.write(off!(frame_version), &MAILBOX_PROTOCOL_VERSION);
        mb.write(off!(command), &(command as u32));
        mb.write(off!(generation), &self.generation);
        mb.write(off!(run_id), &run_id);
        mb.write(off!(cid), &cid);
        mb.set_state(state);
    }

    /// Takes a finished frame's answer, if there is one.
    fn take_answer(&mut self) -> Option<Option<WorkerError>> {
        let s = self.mailbox.state().ok()?;
        let answered = matches!(s, MailboxState::TaskDone | MailboxState::ControlDone);
        if !answered {
            return None;
        }
        let served: u64 = self.mailbox.read(off!(done_generation));
        let mut err = read_worker_error(&self.mailbox);
        if served != self.generation && err.is_none() {
            err = Some(WorkerError {
                error: MailboxError::StaleGeneration,
                code_name: "STALE_GENERATION".into(),
                words: [served, self.generation, 0, 0],
                message: format!("the worker answered generation {served}, the pool posted {}", self.generation),
            });
        }
        Some(err)
    }
}

/// A pool of chip workers.
pub struct ChipPool {
    chips: Vec<Chip>,
    events: VecDeque<PoolEvent>,
    next_run_id: u64,
    next_free: usize,
}

impl ChipPool {
    /// Starts one worker per chip and waits until all are ready (or one fails, dies or misses the
    /// deadline: then every worker is stopped and the error names that chip).
    pub fn start(config: &PoolConfig) -> Result<ChipPool, PoolError> {
        if config.chips.is_empty() {
            return Err(PoolError::NoChips);
        }
        let exe = resolve_worker_exe(config.worker_exe.as_deref())?;
        let parent = std::process::id();
        let mut pool = ChipPool { chips: Vec::new(), events: VecDeque::new(), next_run_id: 1, next_free: 0 };
        for (i, spec) in config.chips.iter().enumerate() {
            let mailbox = MailboxMap::create(i as u32)
                .map_err(|e| PoolError::Startup { chip: i, message: format!("mailbox: {e}") })?;
            let mut cmd = Command::new(&exe);
            cmd.arg("worker")
                .arg("--mailbox")
                .arg(mailbox.path())
                .arg("--chip")
                .arg(i.to_string())
                .arg("--backend")
                .arg(&spec.backend)
                .arg("--device-memory")
                .arg(spec.device_memory.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            // SAFETY: the closure runs in the forked child before exec and calls only
            // async-signal-safe functions (prctl, getppid, _exit); it touches no parent state.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before the signal was armed.
                    if libc::getppid() as u32 != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    drop(mailbox);
                    return Err(PoolError::Startup {
                        chip: i,
                        message: format!("cannot start {}: {e}", exe.display()),
                    });
                }
            };
            pool.chips.push(Chip {
                mailbox,
                child: Some(child),
                generation: 0,
                busy: Busy::Idle,
                gone: None,
                control: None,
            });
        }
        if let Err(e) = pool.barrier(config.ready_deadline) {
            // Startup is aborted: nothing is worth waiting for.
            for chip in &mut pool.chips {
                chip.kill();
            }
            return Err(e);
        }
        Ok(pool)
    }

    /// The startup barrier: every worker `INIT_READY`, then every state `IDLE`.
    fn barrier(&mut self, deadline: Duration) -> Result<(), PoolError> {
        let until = Instant::now() + deadline;
        let mut ready = vec![false; self.chips.len()];
        let mut wait = Backoff::new(Duration::from_millis(1));
        while !ready.iter().all(|&r| r) {
            for (i, chip) in self.chips.iter_mut().enumerate() {
                if ready[i] {
                    continue;
                }
                match chip.mailbox.state() {
                    Ok(MailboxState::InitReady) => {
                        ready[i] = true;
                        continue;
                    }
                    Ok(MailboxState::InitFailed) => {
                        let why = read_worker_error(&chip.mailbox).map(|e| e.message).unwrap_or_default();
                        return Err(PoolError::Startup {
                            chip: i,
                            message: format!("the worker failed to start: {why}"),
                        });
                    }
                    _ => {}
                }
                if let Some(status) = chip.check_exit() {
                    // It may have reported its cause just before exiting.
                    if chip.mailbox.state() == Ok(MailboxState::InitFailed) {
                        let why = read_worker_error(&chip.mailbox).map(|e| e.message).unwrap_or_default();
                        return Err(PoolError::Startup {
                            chip: i,
                            message: format!("the worker failed to start: {why}"),
                        });
                    }
                    return Err(PoolError::Startup {
                        chip: i,
                        message: format!("the worker ended before it was ready ({status})"),
                    });
                }
            }
            if ready.iter().all(|&r| r) {
                break;
            }
            if Instant::now() >= until {
                let i = ready.iter().position(|&r| !r).unwrap_or(0);
                return Err(PoolError::Startup {
                    chip: i,
                    message: format!("the worker was not ready within {} ms", deadline.as_millis()),
                });
            }
            wait.snooze();
        }
        for chip in &mut self.chips {
            chip.mailbox.unlink();
            chip.mailbox.set_state(MailboxState::Idle);
        }
        Ok(())
    }

    /// Chips of the pool.
    pub fn chips(&self) -> usize {
        self.chips.len()
    }

    /// The process id of chip `chip`'s worker, while it runs.
    pub fn worker_pid(&self, chip: usize) -> Option<u32> {
        self.chips.get(chip)?.child.as_ref().map(Child::id)
    }

    /// Runs posted and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.chips.iter().filter(|c| matches!(c.busy, Busy::Run { .. })).count()
    }

    /// Registers `blob` as `cid` on every live chip (by content hash; a chip that already holds
    /// it does nothing). Runs in flight are waited for first; their events stay queued.
    pub fn prepare(&mut self, cid: u32, blob: &ChipCallable) -> Result<(), PoolError> {
        if blob.total_size() > MAILBOX_ARGS_CAPACITY {
            return Err(PoolError::Args(format!(
                "blob of {} bytes exceeds the {MAILBOX_ARGS_CAPACITY}-byte arguments region",
                blob.total_size()
            )));
        }
        self.control_all(|mb| {
            mb.write_args(0, blob.as_bytes());
            mb.write(off!(content_hash), &blob.content_hash());
            mb.write(off!(blob_bytes), &blob.total_size());
            (MailboxCommand::Prepare, cid)
        })
    }

    /// Unregisters `cid` on every live chip.
    pub fn unregister(&mut self, cid: u32) -> Result<(), PoolError> {
        self.control_all(|_| (MailboxCommand::Unregister, cid))
    }

    /// Asks every live chip to answer an empty control frame.
    pub fn ping(&mut self) -> Result<(), PoolError> {
        self.control_all(|_| (MailboxCommand::Ping, 0))
    }

    fn control_all(&mut self, mut fill: impl FnMut(&MailboxMap) -> (MailboxCommand, u32)) -> Result<(), PoolError> {
        for i in 0..self.chips.len() {
            self.wait_free(i, None);
        }
        if self.chips.iter().all(|c| c.gone.is_some()) {
            return Err(PoolError::NoLiveChips);
        }
        for chip in self.chips.iter_mut().filter(|c| c.gone.is_none()) {
            let (command, cid) = fill(&chip.mailbox);
            chip.control = None;
            chip.busy = Busy::Control;
            chip.post(MailboxState::ControlRequest, command, 0, cid);
        }
        let mut first_err = None;
        for i in 0..self.chips.len() {
            self.wait_free(i, None);
            let chip = &mut self.chips[i];
            match chip.control.take() {
                Some(Err(error)) => {
                    first_err.get_or_insert(PoolError::Refused { chip: i, error });
                }
                Some(Ok(_)) => {}
                None => {
                    if let Some(status) = &chip.gone {
                        first_err.get_or_insert(PoolError::ChipDead { chip: i, status: status.clone() });
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Posts a run to a free chip (waiting for one when all are busy; their results stay queued
    /// for [`next_event`](Self::next_event)); returns `(chip, run id)`.
    pub fn submit(&mut self, run: &PoolRun) -> Result<(usize, u64), PoolError> {
        let frame = encode_args(&run.args)?;
        let mut wait = Backoff::new(Duration::from_micros(200));
        loop {
            let n = self.chips.len();
            let free = (0..n)
                .map(|k| (self.next_free + k) % n)
                .find(|&i| self.chips[i].gone.is_none() && matches!(self.chips[i].busy, Busy::Idle));
            if let Some(i) = free {
                self.next_free = (i + 1) % n;
                return Ok((i, self.post_run(i, run, &frame)));
            }
            if self.chips.iter().all(|c| c.gone.is_some()) {
                return Err(PoolError::NoLiveChips);
            }
            if self.poll() {
                wait.reset();
            } else {
                wait.snooze();
            }
        }
    }

    /// Posts a run to chip `chip`, waiting until it is free; returns the run id.
    pub fn submit_to(&mut self, chip: usize, run: &PoolRun) -> Result<u64, PoolError> {
        let frame = encode_args(&run.args)?;
        if chip >= self.chips.len() {
            return Err(PoolError::NoSuchChip { chip, chips: self.chips.len() });
        }
        self.wait_free(chip, None);
        if let Some(status) = &self.chips[chip].gone {
            return Err(PoolError::ChipDead { chip, status: status.clone() });
        }
        Ok(self.post_run(chip, run, &frame))
    }

    fn post_run(&mut self, i: usize, run: &PoolRun, frame: &EncodedArgs) -> u64 {
        let run_id = self.next_run_id;
        self.next_run_id += 1;
        let chip = &mut self.chips[i];
        let mb = &chip.mailbox;
        for (offset, data) in &frame.data {
            mb.write_args(*offset, data);
        }
        let mut descs = [MailboxArg::new_zeroed(); MAILBOX_MAX_ARGS];
        descs[..frame.descs.len()].copy_from_slice(&frame.descs);
        mb.write(off!(args), &descs);
        mb.write(off!(arg_count), &(frame.descs.len() as u32));
        mb.write(off!(config), &encode_config(&run.config));
        chip.busy = Busy::Run { run_id, outputs: frame.outputs.clone() };
        chip.post(MailboxState::TaskReady, MailboxCommand::Run, run_id, run.cid);
        run_id
    }

    /// Waits until chip `i` is not busy (or gone), polling every chip meanwhile.
    fn wait_free(&mut self, i: usize, until: Option<Instant>) {
        let mut wait = Backoff::new(Duration::from_micros(200));
        while self.chips[i].gone.is_none() && !matches!(self.chips[i].busy, Busy::Idle) {
            if until.is_some_and(|u| Instant::now() >= u) {
                return;
            }
            if self.poll() {
                wait.reset();
            } else {
                wait.snooze();
            }
        }
    }

    /// One look at every chip: answers become events or control results, dead workers become
    /// `WorkerLost`. Returns true when anything changed.
    fn poll(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.chips.len() {
            let chip = &mut self.chips[i];
            if chip.gone.is_some() {
                continue;
            }
            if !matches!(chip.busy, Busy::Idle) {
                if let Some(err) = chip.take_answer() {
                    let busy = std::mem::replace(&mut chip.busy, Busy::Idle);
                    match busy {
                        Busy::Run { run_id, outputs } => {
                            let result = match err {
                                Some(e) => Err(e),
                                None => Ok(read_report(&chip.mailbox, &outputs)),
                            };
                            self.events.push_back(PoolEvent::Finished { chip: i, run_id, result });
                        }
                        Busy::Control => {
                            let hit: u32 = chip.mailbox.read(off!(cache_hit));
                            chip.control = Some(err.map_or(Ok(hit == 1), Err));
                        }
                        Busy::Idle => {}
                    }
                    chip.mailbox.set_state(MailboxState::Idle);
                    changed = true;
                    continue;
                }
            }
            if let Some(status) = chip.check_exit() {
                let run_id = match std::mem::replace(&mut chip.busy, Busy::Idle) {
                    Busy::Run { run_id, .. } => Some(run_id),
                    _ => None,
                };
                self.events.push_back(PoolEvent::WorkerLost { chip: i, run_id, status });
                changed = true;
            }
        }
        changed
    }

    /// The next event: a queued one, or the next run to finish or worker to die within `timeout`.
    /// `None` when nothing is queued or in flight, or nothing happened within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<PoolEvent> {
        let until = Instant::now() + timeout;
        let mut wait = Backoff::new(Duration::from_micros(200));
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.in_flight() == 0 {
                // A worker that died while idle is still news.
                self.poll();
                return self.events.pop_front();
            }
            if !self.poll() {
                if Instant::now() >= until {
                    return None;
                }
                wait.snooze();
            }
        }
    }

    /// Stops every worker: sets each shutdown word, lets runs in flight finish (their events are in
    /// the report), waits until `deadline` and kills what has not exited by then.
    pub fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let until = Instant::now() + deadline;
        let before: Vec<bool> = self.chips.iter_mut().map(|c| c.check_exit().is_some()).collect();
        for chip in self.chips.iter().filter(|c| c.gone.is_none()) {
            chip.mailbox.request_shutdown();
        }
        let mut wait = Backoff::new(Duration::from_millis(1));
        while self.chips.iter().any(|c| c.gone.is_none()) && Instant::now() < until {
            if self.poll() {
                wait.reset();
            } else {
                wait.snooze();
            }
        }
        let chips = self
            .chips
            .iter_mut()
            .zip(before)
            .map(|(chip, was_gone)| {
                if was_gone {
                    ChipExit::AlreadyGone(chip.gone.clone().unwrap_or_default())
                } else if let Some(g) = &chip.gone {
                    ChipExit::Stopped(g.clone())
                } else {
                    chip.kill();
                    ChipExit::Killed
                }
            })
            .collect();
        // Deaths at shutdown are expected: only runs lost with them are news.
        let events =
            self.events.drain(..).filter(|e| !matches!(e, PoolEvent::WorkerLost { run_id: None, .. })).collect();
        ShutdownReport { chips, events }
    }
}

impl Drop for ChipPool {
    /// Stops every worker within two seconds, then kills and reaps the rest; the mailbox files go
    /// with their mappings.
    fn drop(&mut self) {
        let until = Instant::now() + Duration::from_secs(2);
        for chip in self.chips.iter_mut() {
            if chip.check_exit().is_none() {
                chip.mailbox.request_shutdown();
                // A worker waiting for the barrier or for an acknowledgement goes on to shut down.
                if matches!(
                    chip.mailbox.state(),
                    Ok(MailboxState::InitReady | MailboxState::TaskDone | MailboxState::ControlDone)
                ) {
                    chip.mailbox.set_state(MailboxState::Idle);
                }
            }
        }
        let mut wait = Backoff::new(Duration::from_millis(1));
        while Instant::now() < until && self.chips.iter_mut().any(|c| c.check_exit().is_none()) {
            for chip in self.chips.iter_mut() {
                if matches!(
                    chip.mailbox.state(),
                    Ok(MailboxState::InitReady | MailboxState::TaskDone | MailboxState::ControlDone)
                ) {
                    chip.mailbox.set_state(MailboxState::Idle);
                }
            }
            wait.snooze();
        }
        for chip in self.chips.iter_mut() {
            chip.kill();
            chip.mailbox.unlink();
        }
    }
}

/// A run's arguments as mailbox descriptors and the bytes to copy in.
struct EncodedArgs {
    descs: Vec<MailboxArg>,
    data: Vec<(u64, Vec<u8>)>,
    outputs: Vec<Option<(u64, u64)>>,
}

fn encode_args(args: &[RunArg]) -> Result<EncodedArgs, PoolError> {
    if args.len() > MAILBOX_MAX_ARGS {
        return Err(PoolError::Args(format!("{} arguments; a mailbox frame holds {MAILBOX_MAX_ARGS}", args.len())));
    }
    let mut cursor = 0u64;
    let mut e = EncodedArgs { descs: Vec::new(), data: Vec::new(), outputs: Vec::new() };
    for (i, a) in args.iter().enumerate() {
        let (kind, dtype, bytes, data) = match a {
            RunArg::Input { data, dtype } => (MailboxArgKind::Input, *dtype, data.len() as u64, Some(data)),
            RunArg::Output { bytes, dtype } => (MailboxArgKind::Output, *dtype, *bytes, None),
            RunArg::InOut { data, dtype } => (MailboxArgKind::InOut, *dtype, data.len() as u64, Some(data)),
            RunArg::Scalar(v) => {
                e.descs.push(MailboxArg {
                    kind: MailboxArgKind::Scalar as u32,
                    dtype: 0,
                    offset: 0,
                    bytes: 0,
                    scalar: *v,
                });
                e.outputs.push(None);
                continue;
            }
        };
        let offset = cursor;
        let end = offset.checked_add(bytes).filter(|&end| end <= MAILBOX_ARGS_CAPACITY).ok_or_else(|| {
            PoolError::Args(format!(
                "argument {i}: {bytes} bytes at offset {offset} exceed the {MAILBOX_ARGS_CAPACITY}-byte arguments region"
            ))
        })?;
        cursor = end.next_multiple_of(MAILBOX_ARG_ALIGN);
        e.descs.push(MailboxArg { kind: kind as u32, dtype: dtype as u32, offset, bytes, scalar: 0 });
        if let Some(d) = data {
            e.data.push((offset, d.clone()));
        }
        e.outputs.push((kind != MailboxArgKind::Input).then_some((offset, bytes)));
    }
    Ok(e)
}

fn encode_config(c: &CallableRunConfig) -> MailboxRunConfig {
    let (mode, threads, clusters) = match c.mode {
        RunMode::Threaded { threads, clusters } => (MailboxRunMode::Threaded, threads, clusters),
        RunMode::Deterministic { noop_cores: false } => (MailboxRunMode::Deterministic, 0, 0),
        RunMode::Deterministic { noop_cores: true } => (MailboxRunMode::DeterministicNoop, 0, 0),
    };
    MailboxRunConfig {
        sizing: c.sizing,
        mode: mode as u32,
        threads,
        clusters,
        _pad: [0; 4],
        orch_budget_ns: c.budgets.orch_ns,
        sched_budget_ns: c.budgets.sched_ns,
    }
}

fn read_report(mb: &MailboxMap, outputs: &[Option<(u64, u64)>]) -> RunReport {
    let ns = |v: u64| Duration::from_nanos(v);
    let hit: u32 = mb.read(off!(cache_hit));
    RunReport {
        outputs: outputs.iter().map(|o| o.map(|(offset, bytes)| mb.read_args(offset, bytes))).collect(),
        tasks_submitted: mb.read(off!(tasks_submitted)),
        tasks_completed: mb.read(off!(tasks_completed)),
        bind_time: ns(mb.read(off!(bind_ns))),
        bind_cache_hit: hit == 1,
        run_time: ns(mb.read(off!(run_ns))),
        // Workers run untraced: the mailbox carries no trace records.
        trace: None,
    }
}
