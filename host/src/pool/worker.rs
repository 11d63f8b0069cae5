//! The worker side: one process that owns one device's [`DeviceRunner`] and serves the mailbox.
//!
//! [`run_worker`] maps the mailbox, checks its identity, starts the backend and reports
//! `INIT_READY` or `INIT_FAILED`, then [`Worker::serve`] loops until shutdown: one loop for every
//! backend, with [`Worker::on_task_done_success`] called after each successful RUN (a backend that
//! must flush buffers to the host after a run does it there).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pto_abi::mailbox::{
    MailboxArg, MailboxArgKind, MailboxCommand, MailboxError, MailboxRunConfig, MailboxRunMode, MailboxState,
    MAILBOX_ARGS_CAPACITY, MAILBOX_ARGS_OFFSET, MAILBOX_CODE_NAME_BYTES, MAILBOX_ERROR_BYTES, MAILBOX_MAGIC,
    MAILBOX_MAX_ARGS, MAILBOX_PROTOCOL_VERSION, MAILBOX_TOTAL_SIZE,
};
use pto_abi::task::DType;
use pto_abi::ABI_FINGERPRINT;
use pto_device::runtime::Budgets;

use super::shm::{off, Backoff, MailboxMap};
use crate::backend::sim::SimBackend;
use crate::backend::DeviceBackend;
use crate::callable::ChipCallable;
use crate::examples::define_vector_symbols;
use crate::runner::{CallableRunConfig, CallableRunError, DeviceRunner, RunArg, RunError, RunMode, RunReport};

/// Exit code of a worker that stopped on a shutdown request.
pub const EXIT_SHUTDOWN: i32 = 0;
/// Exit code of a worker that reported `INIT_FAILED`.
pub const EXIT_INIT_FAILED: i32 = 3;
/// Exit code of a worker that found the mailbox unusable (cannot map it, or a state value the
/// protocol does not allow).
pub const EXIT_PROTOCOL: i32 = 4;

/// What a worker is started with.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The mailbox file the parent created.
    pub mailbox: PathBuf,
    /// The device index.
    pub chip: u32,
    /// The backend's name (`sim`).
    pub backend: String,
    /// Device memory of the simulated device, bytes.
    pub device_memory: u64,
}

/// One served frame's failure: the error word, the code name, the words, the message.
struct Refusal {
    error: MailboxError,
    code_name: String,
    words: [u64; 4],
    message: String,
}

impl Refusal {
    fn new(error: MailboxError, message: impl Into<String>) -> Refusal {
        Refusal { error, code_name: error.name().into(), words: [0; 4], message: message.into() }
    }
}

fn write_refusal(mb: &MailboxMap, r: &Refusal) {
    mb.write(off!(error), &(r.error as u32));
    mb.write(off!(error_words), &r.words);
    mb.write_text(off!(code_name), MAILBOX_CODE_NAME_BYTES, &r.code_name);
    let n = mb.write_text(off!(error_message), MAILBOX_ERROR_BYTES, &r.message);
    mb.write(off!(error_len), &(n as u32));
}

fn clear_response(mb: &MailboxMap) {
    mb.write(off!(error), &0u32);
    mb.write(off!(error_len), &0u32);
    mb.write(off!(error_words), &[0u64; 4]);
    mb.write_text(off!(code_name), MAILBOX_CODE_NAME_BYTES, "");
    mb.write(off!(tasks_submitted), &0u64);
    mb.write(off!(tasks_completed), &0u64);
    mb.write(off!(bind_ns), &0u64);
    mb.write(off!(run_ns), &0u64);
    mb.write(off!(cache_hit), &0u32);
}

/// The state a worker keeps between frames.
pub struct Worker {
    runner: DeviceRunner,
    prepared: HashMap<u32, u64>,
    last_generation: u64,
    /// Called after every successful RUN, before `TASK_DONE` is published.
    pub on_task_done_success: Box<dyn FnMut(&RunReport)>,
}

fn make_backend(opts: &WorkerOptions) -> Result<Arc<dyn DeviceBackend>, String> {
    match opts.backend.as_str() {
        "sim" => {
            let sim = SimBackend::with_capacity(opts.device_memory).map_err(|e| format!("simulated device: {e}"))?;
            // The simulated device resolves the built-in examples' names in its name tables.
            define_vector_symbols(&mut sim.symbols()).map_err(|e| format!("simulated device names: {e}"))?;
            Ok(Arc::new(sim))
        }
        other => Err(format!("unknown backend {other:?} (this worker knows: sim)")),
    }
}

fn check_identity(mb: &MailboxMap, chip: u32) -> Result<(), String> {
    let magic: u64 = mb.read(off!(magic));
    let fp: u64 = mb.read(off!(abi_fingerprint));
    let version: u32 = mb.read(off!(protocol_version));
    let mchip: u32 = mb.read(off!(chip));
    let total: u64 = mb.read(off!(total_size));
    let args_off: u64 = mb.read(off!(args_offset));
    let cap: u64 = mb.read(off!(args_capacity));
    if magic != MAILBOX_MAGIC {
        return Err(format!("mailbox magic {magic:#018x}, expected {MAILBOX_MAGIC:#018x}"));
    }
    if fp != ABI_FINGERPRINT {
        return Err(format!("parent ABI fingerprint {fp:#018x}, worker {ABI_FINGERPRINT:#018x}"));
    }
    if version != MAILBOX_PROTOCOL_VERSION {
        return Err(format!("parent protocol version {version}, worker {MAILBOX_PROTOCOL_VERSION}"));
    }
    if mchip != chip {
        return Err(format!("mailbox is for chip {mchip}, worker started for chip {chip}"));
    }
    if (total, args_off, cap) != (MAILBOX_TOTAL_SIZE, MAILBOX_ARGS_OFFSET, MAILBOX_ARGS_CAPACITY) {
        return Err(format!("mailbox geometry {total}/{args_off}/{cap} is not this worker's"));
    }
    Ok(())
}

/// The worker process's body: returns its exit code.
pub fn run_worker(opts: &WorkerOptions) -> i32 {
    let mut mb = match MailboxMap::open(&opts.mailbox) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pto worker (chip {}): {e}", opts.chip);
            return EXIT_PROTOCOL;
        }
    };
    // Both sides have it mapped now: the name is no longer needed.
    mb.unlink();
    let started = check_identity(&mb, opts.chip).and_then(|()| make_backend(opts));
    let backend = match started {
        Ok(b) => b,
        Err(message) => {
            write_refusal(&mb, &Refusal::new(MailboxError::InitFailed, message));
            mb.set_state(MailboxState::InitFailed);
            return EXIT_INIT_FAILED;
        }
    };
    let mut worker = Worker::new(DeviceRunner::new(backend));
    clear_response(&mb);
    mb.set_state(MailboxState::InitReady);
    let code = worker.serve(&mb);
    // The runner's memory goes back to its device before the process ends.
    let _ = worker.runner.finalize();
    code
}

impl Worker {
    /// A worker over `runner`, nothing prepared, no success hook.
    pub fn new(runner: DeviceRunner) -> Worker {
        Worker { runner, prepared: HashMap::new(), last_generation: 0, on_task_done_success: Box::new(|_| {}) }
    }

    /// The main loop: serves frames until shutdown; returns the exit code.
    pub fn serve(&mut self, mb: &MailboxMap) -> i32 {
        let mut wait = Backoff::new(Duration::from_micros(200));
        loop {
            // The shutdown word first: a frame posted before it was set is then seen below.
            let stop = mb.shutdown_requested();
            match mb.state() {
                Ok(s @ (MailboxState::TaskReady | MailboxState::ControlRequest)) => {
                    self.serve_frame(mb, s);
                    mb.set_state(if s == MailboxState::TaskReady {
                        MailboxState::TaskDone
                    } else {
                        MailboxState::ControlDone
                    });
                    wait.reset();
                }
                Ok(MailboxState::Idle) if stop => {
                    mb.set_state(MailboxState::Shutdown);
                    return EXIT_SHUTDOWN;
                }
                // The parent owns the next transition of these states.
                Ok(
                    MailboxState::Idle | MailboxState::InitReady | MailboxState::TaskDone | MailboxState::ControlDone,
                ) => {
                    wait.snooze();
                }
                Ok(s @ (MailboxState::Starting | MailboxState::InitFailed | MailboxState::Shutdown)) => {
                    eprintln!("pto worker: mailbox state {s:?} is not one the parent may set");
                    return EXIT_PROTOCOL;
                }
                Err(v) => {
                    eprintln!("pto worker: mailbox state word holds {v}, which is no state");
                    return EXIT_PROTOCOL;
                }
            }
        }
    }

    fn serve_frame(&mut self, mb: &MailboxMap, state: MailboxState) {
        let generation: u64 = mb.read(off!(generation));
        let run_id: u64 = mb.read(off!(run_id));
        clear_response(mb);
        mb.write(off!(done_generation), &generation);
        mb.write(off!(done_run_id), &run_id);
        if let Err(r) = self.check_and_serve(mb, state, generation) {
            write_refusal(mb, &r);
        }
    }

    fn check_and_serve(&mut self, mb: &MailboxMap, state: MailboxState, generation: u64) -> Result<(), Refusal> {
        let version: u32 = mb.read(off!(frame_version));
        if version != MAILBOX_PROTOCOL_VERSION {
            return Err(Refusal::new(
                MailboxError::BadProtocol,
                format!("frame protocol version {version}; this worker speaks {MAILBOX_PROTOCOL_VERSION}"),
            ));
        }
        if generation <= self.last_generation {
            return Err(Refusal::new(
                MailboxError::StaleGeneration,
                format!("frame generation {generation}; the last one served was {}", self.last_generation),
            ));
        }
        self.last_generation = generation;
        let raw: u32 = mb.read(off!(command));
        let cid: u32 = mb.read(off!(cid));
        match (state, MailboxCommand::try_from(raw)) {
            (MailboxState::TaskReady, Ok(MailboxCommand::Run)) => self.run(mb, cid),
            (MailboxState::ControlRequest, Ok(MailboxCommand::Prepare)) => self.prepare(mb, cid),
            (MailboxState::ControlRequest, Ok(MailboxCommand::Unregister)) => self.unregister(cid),
            (MailboxState::ControlRequest, Ok(MailboxCommand::Ping)) => Ok(()),
            (s, Ok(c)) => Err(Refusal::new(MailboxError::BadCommand, format!("{c:?} cannot be posted with {s:?}"))),
            (_, Err(v)) => Err(Refusal::new(MailboxError::BadCommand, format!("command {v} is unknown"))),
        }
    }

    fn prepare(&mut self, mb: &MailboxMap, cid: u32) -> Result<(), Refusal> {
        let hash: u64 = mb.read(off!(content_hash));
        let bytes: u64 = mb.read(off!(blob_bytes));
        if let Some(&have) = self.prepared.get(&cid) {
            if have == hash {
                mb.write(off!(cache_hit), &1u32);
                return Ok(());
            }
            return Err(Refusal::new(
                MailboxError::CidInUse,
                format!("callable id {cid} holds blob {have:#018x}, not {hash:#018x}; unregister it first"),
            ));
        }
        if bytes > MAILBOX_ARGS_CAPACITY {
            return Err(Refusal::new(
                MailboxError::BadArgs,
                format!("blob of {bytes} bytes exceeds the arguments region ({MAILBOX_ARGS_CAPACITY} bytes)"),
            ));
        }
        let blob = ChipCallable::from_bytes(mb.read_args(0, bytes))
            .map_err(|e| Refusal::new(MailboxError::PrepareFailed, format!("callable id {cid}: {e}")))?;
        if blob.content_hash() != hash {
            return Err(Refusal::new(
                MailboxError::HashMismatch,
                format!("callable id {cid}: blob hashes to {:#018x}, the frame says {hash:#018x}", blob.content_hash()),
            ));
        }
        self.runner
            .register_callable(cid, &blob)
            .map_err(|e| Refusal::new(MailboxError::PrepareFailed, format!("callable id {cid}: {e}")))?;
        self.prepared.insert(cid, hash);
        Ok(())
    }

    fn unregister(&mut self, cid: u32) -> Result<(), Refusal> {
        if self.prepared.remove(&cid).is_none() {
            return Err(Refusal::new(MailboxError::NotPrepared, format!("callable id {cid} was never prepared")));
        }
        self.runner
            .unregister_callable(cid)
            .map_err(|e| Refusal::new(MailboxError::UnregisterFailed, format!("callable id {cid}: {e}")))
    }

    fn run(&mut self, mb: &MailboxMap, cid: u32) -> Result<(), Refusal> {
        if !self.prepared.contains_key(&cid) {
            return Err(Refusal::new(MailboxError::NotPrepared, format!("callable id {cid} was never prepared")));
        }
        let args = read_run_args(mb)?;
        let config = read_run_config(mb)?;
        let report = self.runner.run_callable(cid, &args.run_args, &config).map_err(run_refusal)?;
        for (i, &(offset, bytes)) in args.outputs.iter().enumerate() {
            if bytes == u64::MAX {
                continue;
            }
            match report.outputs.get(i).and_then(|o| o.as_deref()) {
                Some(data) if data.len() as u64 == bytes => mb.write_args(offset, data),
                other => {
                    return Err(Refusal::new(
                        MailboxError::RunFailed,
                        format!(
                            "argument {i}: the run read back {} bytes, the frame expects {bytes}",
                            other.map_or(0, <[u8]>::len)
                        ),
                    ))
                }
            }
        }
        mb.write(off!(tasks_submitted), &report.tasks_submitted);
        mb.write(off!(tasks_completed), &report.tasks_completed);
        mb.write(off!(bind_ns), &(report.bind_time.as_nanos() as u64));
        mb.write(off!(run_ns), &(report.run_time.as_nanos() as u64));
        mb.write(off!(cache_hit), &u32::from(report.bind_cache_hit));
        (self.on_task_done_success)(&report);
        Ok(())
    }
}

/// A RUN frame's arguments: the runner's, and per argument where its output goes back
/// (`(offset, u64::MAX)` for arguments without one).
struct FrameArgs {
    run_args: Vec<RunArg>,
    outputs: Vec<(u64, u64)>,
}

fn read_run_args(mb: &MailboxMap) -> Result<FrameArgs, Refusal> {
    let count: u32 = mb.read(off!(arg_count));
    if count as usize > MAILBOX_MAX_ARGS {
        return Err(Refusal::new(
            MailboxError::BadArgs,
            format!("arg_count {count} exceeds the frame's {MAILBOX_MAX_ARGS} descriptors"),
        ));
    }
    let descs: [MailboxArg; MAILBOX_MAX_ARGS] = mb.read(off!(args));
    let mut run_args = Vec::with_capacity(count as usize);
    let mut outputs = Vec::with_capacity(count as usize);
    for (i, d) in descs[..count as usize].iter().enumerate() {
        let kind = MailboxArgKind::try_from(d.kind)
            .map_err(|v| Refusal::new(MailboxError::BadArgs, format!("argument {i}: kind {v} is unknown")))?;
        if kind == MailboxArgKind::Scalar {
            run_args.push(RunArg::Scalar(d.scalar));
            outputs.push((0, u64::MAX));
            continue;
        }
        let dtype = DType::try_from(d.dtype)
            .map_err(|v| Refusal::new(MailboxError::BadArgs, format!("argument {i}: dtype {v} is unknown")))?;
        let in_region = d.offset.checked_add(d.bytes).is_some_and(|end| end <= MAILBOX_ARGS_CAPACITY);
        if !in_region || d.offset % pto_abi::mailbox::MAILBOX_ARG_ALIGN != 0 {
            return Err(Refusal::new(
                MailboxError::BadArgs,
                format!(
                    "argument {i}: {} bytes at offset {} do not lie {}-aligned inside the {MAILBOX_ARGS_CAPACITY}-byte \
                     arguments region",
                    d.bytes,
                    d.offset,
                    pto_abi::mailbox::MAILBOX_ARG_ALIGN
                ),
            ));
        }
        let (arg, back) = match kind {
            MailboxArgKind::Input => (RunArg::Input { data: mb.read_args(d.offset, d.bytes), dtype }, u64::MAX),
            MailboxArgKind::Output => (RunArg::Output { bytes: d.bytes, dtype }, d.bytes),
            MailboxArgKind::InOut => (RunArg::InOut { data: mb.read_args(d.offset, d.bytes), dtype }, d.bytes),
            MailboxArgKind::Scalar => unreachable!("handled above"),
        };
        run_args.push(arg);
        outputs.push((d.offset, back));
    }
    Ok(FrameArgs { run_args, outputs })
}

fn read_run_config(mb: &MailboxMap) -> Result<CallableRunConfig, Refusal> {
    let c: MailboxRunConfig = mb.read(off!(config));
    let mode = match MailboxRunMode::try_from(c.mode) {
        Ok(MailboxRunMode::Threaded) => RunMode::Threaded { threads: c.threads, clusters: c.clusters },
        Ok(MailboxRunMode::Deterministic) => RunMode::Deterministic { noop_cores: false },
        Ok(MailboxRunMode::DeterministicNoop) => RunMode::Deterministic { noop_cores: true },
        Err(v) => return Err(Refusal::new(MailboxError::BadArgs, format!("run mode {v} is unknown"))),
    };
    Ok(CallableRunConfig {
        sizing: c.sizing,
        mode,
        budgets: Budgets { orch_ns: c.orch_budget_ns, sched_ns: c.sched_budget_ns },
    })
}

fn run_refusal(e: CallableRunError) -> Refusal {
    let message = e.to_string();
    let (code_name, words) = match &e {
        CallableRunError::NotRegistered { cid } => ("NOT_REGISTERED".to_string(), [u64::from(*cid), 0, 0, 0]),
        CallableRunError::Bind(_) => ("BIND".to_string(), [0; 4]),
        CallableRunError::Run(r) => run_error_code(r),
    };
    Refusal { error: MailboxError::RunFailed, code_name, words, message }
}

/// A run error's code name and words (a device failure: code, detail, ring, stall class).
fn run_error_code(e: &RunError) -> (String, [u64; 4]) {
    match e {
        RunError::Device(f) => (
            f.name.to_string(),
            [u64::from(f.code), f.detail, f.ring.map_or(u64::MAX, u64::from), f.stall.map_or(u64::MAX, |s| s as u64)],
        ),
        RunError::KernelFaults { faults, first_task } => ("KERNEL_FAULTS".to_string(), [*faults, *first_task, 0, 0]),
        RunError::Abandoned { error, .. } => run_error_code(error),
        RunError::Request(_) => ("INVALID_REQUEST".to_string(), [0; 4]),
        RunError::Runner(_) => ("RUNNER".to_string(), [0; 4]),
        RunError::Code(_) => ("CODE".to_string(), [0; 4]),
        RunError::Launch(_) => ("LAUNCH".to_string(), [0; 4]),
        RunError::Stuck(_) => ("STUCK".to_string(), [0; 4]),
        RunError::Trace(_) => ("TRACE".to_string(), [0; 4]),
    }
}
