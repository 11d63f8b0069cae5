//! `EmuBackend`: the emulated device, an aarch64 `virt` machine under qemu running the real
//! `aarch64-unknown-none` firmware build, whose guest RAM the host reaches only through a shared
//! mapping.
//!
//! One qemu per backend: [`EmuBackend::start`] reads the firmware ELF and refuses it unless its
//! `.pto_abi` record was built from this host's ABI (fingerprint and version compared before
//! qemu starts), creates a unique guest-RAM file in `/dev/shm`, starts qemu on it and waits for
//! the firmware's ready word. The file's name is removed as soon as the firmware is ready (qemu
//! and the host keep their mappings), and in any case on drop; qemu is killed with the host
//! process (`PR_SET_PDEATHSIG`) and on drop, after a shutdown request it gets a moment to obey.
//!
//! Device addresses are guest physical addresses. `malloc` allocates from the device heap the
//! record names (1024-byte aligned blocks, as on the simulated device); copies are bounds-checked
//! against one live allocation; words the firmware writes are read with Acquire atomics.
//!
//! A launch writes a launch slot of the control block and rings the doorbell (Release); launches
//! on one stream start in order (the next is posted once the previous one finished), launches on
//! different streams run concurrently. Waiting polls the slots with Acquire, spinning briefly and
//! then sleeping with a growing pause (the guest's vCPUs need the host's cores). A fault or panic
//! record, or qemu exiting, makes the device lost: every unfinished and later launch ends with
//! [`BackendError::DeviceFault`] naming what happened in words.
//!
//! The firmware's defmt log ring is drained whenever the host polls and at the end of every
//! wait; [`EmuBackend::take_device_log`] returns the decoded lines and the frames the device
//! dropped.

pub mod elf;
pub mod fault;
pub mod firmware;
pub mod heap;
pub mod log;
pub mod qemu;
pub mod ram;

use std::collections::VecDeque;
use std::mem::offset_of;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pto_abi::emu::{
    EmuControlBlock, EmuFaultRecord, EmuLaunchSlot, EmuLaunchStatus, EmuLogHeader, EmuNameKind, EmuPanicRecord,
    EmuProgram, EMU_ABORT_REQUESTED, EMU_CONTROL_MAGIC, EMU_GUEST_RAM_BASE, EMU_LAUNCH_SLOTS, EMU_LOG_DATA_OFFSET,
    EMU_LOG_MAGIC, EMU_NO_BLOCK, EMU_READY, EMU_RECORD_VALID, EMU_SHUTDOWN_REQUESTED,
};
use pto_abi::DevAddr;
use zerocopy::{FromZeros, IntoBytes};

use super::{
    BackendError, BackendOp, CodeError, CodeKind, CodeRef, DeviceBackend, DeviceProgram, KernelHandle, LoadedCode,
    RunCode, StreamId,
};
pub use firmware::{Firmware, FirmwareError, FirmwareReport};
use heap::{GuestHeap, HeapError};
use log::LogDecoder;
pub use log::LogLine;
use qemu::{Qemu, QemuCommand};
use ram::GuestRam;

/// Default vCPUs: the control core, four AICPU threads, one AICore vCPU.
pub const DEFAULT_VCPUS: u32 = 6;
/// Default guest RAM (qemu `-m`).
pub const DEFAULT_RAM_BYTES: u64 = 256 << 20;
/// Default wait for the firmware's ready word after qemu started.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long dropping a backend waits for qemu to obey the shutdown request before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Decoded log lines the backend keeps until they are taken (older ones are counted, not kept).
const LOG_KEEP: usize = 1 << 16;

/// How to start an emulated device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmuConfig {
    /// The firmware ELF.
    pub firmware: PathBuf,
    /// The qemu binary.
    pub qemu: PathBuf,
    /// vCPUs (qemu `-smp`): the control core, then AICPU vCPUs, then AICore vCPUs.
    pub vcpus: u32,
    /// Guest RAM bytes (qemu `-m`, the shared file's size): a positive multiple of 1 MiB.
    pub ram_bytes: u64,
    /// How long to wait for the firmware to become ready.
    pub ready_timeout: Duration,
}

impl Default for EmuConfig {
    fn default() -> Self {
        EmuConfig {
            firmware: Firmware::default_path(),
            qemu: QemuCommand::default_binary(),
            vcpus: DEFAULT_VCPUS,
            ram_bytes: DEFAULT_RAM_BYTES,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// Why an emulated device did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmuStartError {
    /// The firmware ELF was refused (before qemu started).
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// The vCPU count is outside what the firmware drives.
    #[error("vcpus = {vcpus}: firmware `{path}` runs with {min}..={max} vCPUs")]
    Vcpus {
        /// The firmware.
        path: PathBuf,
        /// Requested.
        vcpus: u32,
        /// Fewest.
        min: u32,
        /// Most.
        max: u32,
    },
    /// The guest RAM size is unusable.
    #[error("guest RAM of {0} bytes: must be a positive multiple of 1 MiB")]
    RamSize(u64),
    /// qemu is not installed.
    #[error("`{0}` was not found: install qemu-system-aarch64 (Debian: apt-get install qemu-system-arm) or name it in $PTO_QEMU")]
    QemuMissing(PathBuf),
    /// The shared guest-RAM file could not be made.
    #[error("cannot create the guest RAM file in /dev/shm: {0}")]
    Ram(String),
    /// qemu could not be started.
    #[error("cannot start `{command}`: {detail}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        detail: String,
    },
    /// qemu exited before the firmware became ready.
    #[error("qemu exited ({status}) before the firmware became ready; {output}; command: {command}")]
    Exited {
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
        /// The command line.
        command: String,
    },
    /// The firmware did not report ready in time.
    #[error("the firmware did not become ready within {waited:?}; {output}; command: {command}")]
    NotReady {
        /// How long the host waited.
        waited: Duration,
        /// What qemu printed.
        output: String,
        /// The command line.
        command: String,
    },
    /// The firmware reported ready with a control block or log ring this host cannot use.
    #[error("the firmware's {what} is unusable: {detail}")]
    BadDevice {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The firmware recorded a fault or panic while booting.
    #[error("the firmware failed while booting: {0}")]
    BootFault(String),
}

impl From<EmuStartError> for BackendError {
    fn from(e: EmuStartError) -> Self {
        BackendError::Unsupported(format!("emulated device: {e}"))
    }
}

/// What the firmware reported when it became ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmuDeviceInfo {
    /// vCPUs found.
    pub vcpus: u32,
    /// vCPUs running AICPU threads.
    pub aicpu_vcpus: u32,
    /// vCPUs serving AICore cores.
    pub aicore_vcpus: u32,
    /// Generic-timer ticks per second.
    pub cntfrq: u64,
    /// Host time from starting qemu to the firmware's ready word.
    pub start_to_ready: Duration,
    /// qemu's process id.
    pub qemu_pid: u32,
}

/// Counters of the calls an [`EmuBackend`] served, for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmuCounters {
    /// Successful allocations.
    pub mallocs: u64,
    /// Successful frees.
    pub frees: u64,
    /// Successful host → device copies.
    pub copies_to_device: u64,
    /// Bytes copied host → device.
    pub bytes_to_device: u64,
    /// Successful device → host copies.
    pub copies_from_device: u64,
    /// Bytes copied device → host.
    pub bytes_from_device: u64,
    /// Successful memsets.
    pub memsets: u64,
    /// Program registrations.
    pub registrations: u64,
    /// Launches queued.
    pub launches: u64,
    /// Launches the firmware finished.
    pub launches_done: u64,
}

impl EmuCounters {
    /// Host-initiated writes into device memory: copies to the device plus memsets.
    pub fn device_writes(&self) -> u64 {
        self.copies_to_device + self.memsets
    }
}

/// The decoded device log since the last [`EmuBackend::take_device_log`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceLog {
    /// Decoded lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Frames the firmware dropped because its ring was full.
    pub dropped_frames: u64,
    /// Frames (or ring bytes) that could not be decoded, and lines the host did not keep.
    pub lost_lines: u64,
}

/// One queued launch.
#[derive(Debug)]
struct Launch {
    /// Queue order across streams (posting follows it).
    order: u64,
    program: EmuProgram,
    block_dim: u32,
    args: DevAddr,
    /// Sequence number once posted.
    seq: Option<u64>,
    /// The stream was aborted while this launch was queued.
    aborted: bool,
}

#[derive(Debug, Default)]
struct Stream {
    /// Unfinished launches, oldest first; only the first can be posted.
    queue: VecDeque<Launch>,
    /// The first failure since the last synchronize.
    failed: Option<BackendError>,
}

#[derive(Debug)]
struct State {
    programs: Vec<EmuProgram>,
    streams: Vec<Stream>,
    /// Sequence number of the next launch posted.
    next_seq: u64,
    /// Sequence number of the launch occupying each slot.
    slot_busy: [Option<u64>; EMU_LAUNCH_SLOTS],
    next_order: u64,
    /// Why the device is lost, once it is.
    lost: Option<String>,
}

struct LogState {
    decoder: Option<LogDecoder>,
    lines: VecDeque<LogLine>,
    dropped_seen: u64,
    dropped_new: u64,
    lost_lines: u64,
    read: u64,
}

/// The emulated device.
pub struct EmuBackend {
    // Declared first: dropped (killed and reaped) before the mapping goes.
    qemu: Qemu,
    ram: GuestRam,
    firmware: Firmware,
    info: EmuDeviceInfo,
    heap: Mutex<GuestHeap>,
    state: Mutex<State>,
    log: Mutex<LogState>,
    counters: Mutex<EmuCounters>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is one step: a panic leaves consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One poll of a wait: spin first, then yield, then sleep longer and longer (at most 1 ms).
fn backoff(poll: u32) {
    match poll {
        0..32 => {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
        32..48 => std::thread::yield_now(),
        _ => std::thread::sleep(Duration::from_micros(20u64 << ((poll - 48) / 32).min(5))),
    }
}

/// Field addresses inside the control block.
fn cb_field(cb: DevAddr, offset: usize) -> DevAddr {
    DevAddr(cb.get() + offset as u64)
}

fn slot_addr(cb: DevAddr, slot: usize) -> DevAddr {
    cb_field(cb, offset_of!(EmuControlBlock, launches) + slot * size_of::<EmuLaunchSlot>())
}

impl EmuBackend {
    /// Starts an emulated device with the default configuration.
    pub fn new() -> Result<EmuBackend, EmuStartError> {
        Self::start(&EmuConfig::default())
    }

    /// Checks the firmware, starts qemu on a fresh guest-RAM file and waits for the firmware.
    pub fn start(config: &EmuConfig) -> Result<EmuBackend, EmuStartError> {
        let firmware = Firmware::read(&config.firmware)?;
        Self::start_with(config, firmware)
    }

    /// As [`EmuBackend::start`], with the firmware already read.
    pub fn start_with(config: &EmuConfig, firmware: Firmware) -> Result<EmuBackend, EmuStartError> {
        if config.ram_bytes == 0 || config.ram_bytes % (1 << 20) != 0 {
            return Err(EmuStartError::RamSize(config.ram_bytes));
        }
        firmware.check(config.ram_bytes)?;
        let r = *firmware.record();
        if config.vcpus < r.min_vcpus || config.vcpus > r.max_vcpus {
            return Err(EmuStartError::Vcpus {
                path: firmware.path().to_owned(),
                vcpus: config.vcpus,
                min: r.min_vcpus,
                max: r.max_vcpus,
            });
        }
        if !qemu::binary_available(&config.qemu) {
            return Err(EmuStartError::QemuMissing(config.qemu.clone()));
        }
        let decoder = LogDecoder::from_elf(firmware.elf().bytes())
            .map_err(|detail| EmuStartError::BadDevice { what: "defmt table", detail })?;
        let ram =
            GuestRam::create(EMU_GUEST_RAM_BASE, config.ram_bytes).map_err(|e| EmuStartError::Ram(e.to_string()))?;
        let cmd = QemuCommand {
            binary: config.qemu.clone(),
            vcpus: config.vcpus,
            ram_bytes: config.ram_bytes,
            mem_path: ram.path().to_owned(),
            firmware: firmware.path().to_owned(),
        };
        let t0 = Instant::now();
        let qemu =
            Qemu::spawn(&cmd).map_err(|e| EmuStartError::Spawn { command: cmd.display(), detail: e.to_string() })?;
        let cb = r.control_block;
        let ready = ram.atomic_u32(cb_field(cb, offset_of!(EmuControlBlock, ready))).map_err(|_| {
            EmuStartError::BadDevice { what: "control block", detail: format!("{cb} is outside guest RAM") }
        })?;
        let mut poll = 0u32;
        while ready.load(Ordering::Acquire) != EMU_READY {
            if let Some(status) = qemu.exited() {
                return Err(EmuStartError::Exited {
                    status: status.to_string(),
                    output: qemu.output_summary(),
                    command: qemu.command().to_owned(),
                });
            }
            if let Some(f) = Self::read_fault(&ram, &firmware, cb) {
                return Err(EmuStartError::BootFault(f));
            }
            if t0.elapsed() >= config.ready_timeout {
                return Err(EmuStartError::NotReady {
                    waited: config.ready_timeout,
                    output: qemu.output_summary(),
                    command: qemu.command().to_owned(),
                });
            }
            backoff(poll.max(48));
            poll = poll.saturating_add(1);
        }
        let start_to_ready = t0.elapsed();
        // qemu holds the file mapped now: its name is no longer needed.
        ram.unlink();
        let mut block = EmuControlBlock::new_zeroed();
        ram.read(cb, &mut block.as_mut_bytes()[..64]).map_err(|_| EmuStartError::BadDevice {
            what: "control block",
            detail: format!("{cb} is outside guest RAM"),
        })?;
        if block.magic != EMU_CONTROL_MAGIC {
            return Err(EmuStartError::BadDevice {
                what: "control block",
                detail: format!("magic {:#018x}, expected {EMU_CONTROL_MAGIC:#018x}", block.magic),
            });
        }
        if block.vcpu_count != config.vcpus || block.aicpu_vcpus == 0 || block.aicore_vcpus == 0 {
            return Err(EmuStartError::BadDevice {
                what: "control block",
                detail: format!(
                    "the firmware found {} vCPUs ({} AICPU, {} AICore); qemu was started with {}",
                    block.vcpu_count, block.aicpu_vcpus, block.aicore_vcpus, config.vcpus
                ),
            });
        }
        let mut log_header = EmuLogHeader::new_zeroed();
        let _ = ram.read(r.log_ring, log_header.as_mut_bytes());
        let data_room = r.log_ring_size - EMU_LOG_DATA_OFFSET;
        if log_header.magic != EMU_LOG_MAGIC || log_header.capacity == 0 || log_header.capacity > data_room {
            return Err(EmuStartError::BadDevice {
                what: "log ring",
                detail: format!(
                    "magic {:#018x} (expected {EMU_LOG_MAGIC:#018x}), capacity {} (at most {data_room})",
                    log_header.magic, log_header.capacity
                ),
            });
        }
        let info = EmuDeviceInfo {
            vcpus: block.vcpu_count,
            aicpu_vcpus: block.aicpu_vcpus,
            aicore_vcpus: block.aicore_vcpus,
            cntfrq: block.cntfrq,
            start_to_ready,
            qemu_pid: qemu.pid(),
        };
        let heap = GuestHeap::new(r.heap_base.get(), firmware.heap_end(config.ram_bytes) - r.heap_base.get());
        let backend = EmuBackend {
            qemu,
            ram,
            heap: Mutex::new(heap),
            info,
            state: Mutex::new(State {
                programs: Vec::new(),
                streams: Vec::new(),
                next_seq: 1,
                slot_busy: [None; EMU_LAUNCH_SLOTS],
                next_order: 0,
                lost: None,
            }),
            log: Mutex::new(LogState {
                decoder,
                lines: VecDeque::new(),
                dropped_seen: 0,
                dropped_new: 0,
                lost_lines: 0,
                read: log_header.read,
            }),
            counters: Mutex::new(EmuCounters::default()),
            firmware,
        };
        backend.drain_log();
        Ok(backend)
    }

    /// The firmware this device runs.
    pub fn firmware(&self) -> &Firmware {
        &self.firmware
    }

    /// What the firmware reported at start-up.
    pub fn info(&self) -> EmuDeviceInfo {
        self.info
    }

    /// The guest-RAM file (its name is removed once the firmware is ready).
    pub fn ram_path(&self) -> &std::path::Path {
        self.ram.path()
    }

    /// Bytes of guest RAM (qemu `-m`).
    pub fn ram_bytes(&self) -> u64 {
        self.ram.len()
    }

    /// Counters so far.
    pub fn counters(&self) -> EmuCounters {
        *lock(&self.counters)
    }

    /// Bytes of live device allocations.
    pub fn committed_bytes(&self) -> u64 {
        lock(&self.heap).committed()
    }

    /// Highest committed byte count so far.
    pub fn peak_bytes(&self) -> u64 {
        lock(&self.heap).peak()
    }

    /// Why the device is lost (a fault, a panic, qemu gone), once it is.
    pub fn lost(&self) -> Option<String> {
        let mut st = lock(&self.state);
        self.pump(&mut st);
        st.lost.clone()
    }

    /// True when `[addr, addr + len)` lies inside guest RAM.
    pub fn is_device_address(&self, addr: DevAddr, len: u64) -> bool {
        self.ram.contains(addr, len)
    }

    /// Drains the log ring and returns the lines decoded since the last call.
    pub fn take_device_log(&self) -> DeviceLog {
        self.drain_log();
        let mut log = lock(&self.log);
        let lost_lines = std::mem::take(&mut log.lost_lines) + log.decoder.as_ref().map_or(0, |d| d.malformed());
        DeviceLog {
            lines: log.lines.drain(..).collect(),
            dropped_frames: std::mem::take(&mut log.dropped_new),
            lost_lines,
        }
    }

    /// The fault or panic record in words, once one is valid.
    fn read_fault(ram: &GuestRam, firmware: &Firmware, cb: DevAddr) -> Option<String> {
        let fault_at = cb_field(cb, offset_of!(EmuControlBlock, fault));
        let panic_at = cb_field(cb, offset_of!(EmuControlBlock, panic));
        let valid = |at: DevAddr| ram.atomic_u32(at).is_ok_and(|w| w.load(Ordering::Acquire) == EMU_RECORD_VALID);
        if valid(fault_at) {
            let mut f = EmuFaultRecord::new_zeroed();
            ram.read(fault_at, f.as_mut_bytes()).ok()?;
            return Some(fault::describe_fault(&f, Some(firmware.elf())));
        }
        if valid(panic_at) {
            let mut p = EmuPanicRecord::new_zeroed();
            ram.read(panic_at, p.as_mut_bytes()).ok()?;
            return Some(fault::describe_panic(&p));
        }
        None
    }

    /// Notices a lost device, collects finished launches and posts the launches now allowed to
    /// start.
    fn pump(&self, st: &mut State) {
        let cb = self.firmware.record().control_block;
        if st.lost.is_none() {
            if let Some(f) = Self::read_fault(&self.ram, &self.firmware, cb) {
                st.lost = Some(f);
            } else if let Some(status) = self.qemu.exited() {
                st.lost = Some(format!("qemu exited ({status}); {}", self.qemu.output_summary()));
            }
        }
        let mut done = 0;
        for s in &mut st.streams {
            let Some(front) = s.queue.front() else { continue };
            let lost = || st.lost.as_ref().map(|why| Err(format!("the emulated device is lost: {why}")));
            let outcome = match front.seq.and_then(|seq| self.launch_outcome(seq)).or_else(lost) {
                Some(o) => o,
                None => continue,
            };
            let l = s.queue.pop_front().expect("front exists");
            if let Some(seq) = l.seq {
                let slot = ((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize;
                if st.slot_busy[slot] == Some(seq) {
                    st.slot_busy[slot] = None;
                }
                done += 1;
            }
            if let Err(detail) = outcome {
                if s.failed.is_none() {
                    s.failed = Some(BackendError::DeviceFault { op: BackendOp::Launch, detail });
                }
                // The launches queued behind a failed one never run.
                s.queue.clear();
            }
        }
        if done > 0 {
            lock(&self.counters).launches_done += done;
        }
        if st.lost.is_some() {
            return;
        }
        // Post every stream's first launch that is not yet posted, in queue order.
        let mut ready: Vec<(u64, usize)> = st
            .streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.queue.front().filter(|l| l.seq.is_none()).map(|l| (l.order, i)))
            .collect();
        ready.sort_unstable();
        for (_, i) in ready {
            let n = st.next_seq;
            let slot = ((n - 1) % EMU_LAUNCH_SLOTS as u64) as usize;
            if st.slot_busy[slot].is_some() {
                break;
            }
            let l = st.streams[i].queue.front_mut().expect("front exists");
            if self.post(n, slot, l).is_err() {
                st.lost = Some(format!("the launch slot {slot} of the control block at {cb} is outside guest RAM"));
                return;
            }
            l.seq = Some(n);
            st.slot_busy[slot] = Some(n);
            st.next_seq += 1;
        }
    }

    /// Writes launch `n` into `slot` and rings the doorbell.
    fn post(&self, n: u64, slot: usize, l: &Launch) -> Result<(), ram::OutOfRam> {
        let cb = self.firmware.record().control_block;
        let at = slot_addr(cb, slot);
        let field = |off: usize| DevAddr(at.get() + off as u64);
        self.ram.write(field(offset_of!(EmuLaunchSlot, program)), &(l.program as u32).to_le_bytes())?;
        self.ram.write(field(offset_of!(EmuLaunchSlot, block_dim)), &l.block_dim.to_le_bytes())?;
        self.ram.write(field(offset_of!(EmuLaunchSlot, kernel_args)), &l.args.get().to_le_bytes())?;
        self.ram.atomic_u32(field(offset_of!(EmuLaunchSlot, abort)))?.store(0, Ordering::Relaxed);
        self.ram.atomic_u64(field(offset_of!(EmuLaunchSlot, seq)))?.store(n, Ordering::Release);
        self.ram.atomic_u64(cb_field(cb, offset_of!(EmuControlBlock, doorbell)))?.store(n, Ordering::Release);
        if l.aborted {
            self.ram.atomic_u32(field(offset_of!(EmuLaunchSlot, abort)))?.store(EMU_ABORT_REQUESTED, Ordering::Release);
        }
        Ok(())
    }

    /// The outcome of posted launch `seq` once the firmware finished it: `Ok`, or the failure in
    /// words.
    fn launch_outcome(&self, seq: u64) -> Option<Result<(), String>> {
        let at = slot_addr(self.firmware.record().control_block, ((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
        let done = self.ram.atomic_u64(DevAddr(at.get() + offset_of!(EmuLaunchSlot, done_seq) as u64)).ok()?;
        if done.load(Ordering::Acquire) != seq {
            return None;
        }
        let mut s = EmuLaunchSlot::new_zeroed();
        if self.ram.read(at, s.as_mut_bytes()).is_err() {
            return Some(Err(format!("launch {seq}: its slot is outside guest RAM")));
        }
        let block = match s.failed_block {
            EMU_NO_BLOCK => String::new(),
            b => format!("block {b}: "),
        };
        Some(match EmuLaunchStatus::try_from(s.status) {
            Ok(EmuLaunchStatus::Ok) => Ok(()),
            Ok(EmuLaunchStatus::BootNotReady) => Err(format!("{block}the runtime never became ready")),
            Ok(EmuLaunchStatus::RuntimeView) => Err(format!("{block}cannot view the booted runtime")),
            Ok(EmuLaunchStatus::NoCores) => Err(format!("{block}cannot open the channels of its cores")),
            Ok(EmuLaunchStatus::UnknownOrchestration) => Err(format!(
                "{block}orchestration address {} holds no orchestration the firmware carries (it carries {})",
                DevAddr(s.detail),
                list(&self.firmware.names_of(EmuNameKind::Orchestration)),
            )),
            Ok(status) => Err(format!(
                "{block}launch {seq} ended with {} ({}); detail {:#x}",
                status.name(),
                status.description(),
                s.detail
            )),
            Err(v) => Err(format!("{block}launch {seq} ended with unknown status {v} (detail {:#x})", s.detail)),
        })
    }

    /// Copies the bytes the firmware appended to its log ring and decodes them.
    fn drain_log(&self) {
        let r = self.firmware.record();
        let header = r.log_ring;
        let word = |off: usize| self.ram.atomic_u64(DevAddr(header.get() + off as u64));
        let (Ok(write), Ok(read_word), Ok(dropped), Ok(capacity)) = (
            word(offset_of!(EmuLogHeader, write)),
            word(offset_of!(EmuLogHeader, read)),
            word(offset_of!(EmuLogHeader, dropped_frames)),
            word(offset_of!(EmuLogHeader, capacity)),
        ) else {
            return;
        };
        let mut log = lock(&self.log);
        let w = write.load(Ordering::Acquire);
        let cap = capacity.load(Ordering::Relaxed).min(r.log_ring_size - EMU_LOG_DATA_OFFSET);
        let d = dropped.load(Ordering::Relaxed);
        if d > log.dropped_seen {
            log.dropped_new += d - log.dropped_seen;
            log.dropped_seen = d;
        }
        if w == log.read || cap == 0 {
            return;
        }
        let pending = w.wrapping_sub(log.read);
        let mut bytes = Vec::new();
        if pending > cap {
            // The firmware never writes past what the host read: the ring is corrupt.
            log.lost_lines += 1;
            if let Some(dec) = log.decoder.as_mut() {
                dec.resync();
            }
        } else {
            bytes.resize(pending as usize, 0);
            let data = header.get() + EMU_LOG_DATA_OFFSET;
            let start = log.read % cap;
            let first = (cap - start).min(pending) as usize;
            let ok = self.ram.read(DevAddr(data + start), &mut bytes[..first]).is_ok()
                && self.ram.read(DevAddr(data), &mut bytes[first..]).is_ok();
            if !ok {
                bytes.clear();
            }
        }
        log.read = w;
        read_word.store(w, Ordering::Release);
        let lines = match log.decoder.as_mut() {
            Some(dec) => dec.feed(&bytes),
            None => {
                log.lost_lines += u64::from(!bytes.is_empty());
                Vec::new()
            }
        };
        for l in lines {
            if log.lines.len() == LOG_KEEP {
                log.lines.pop_front();
                log.lost_lines += 1;
            }
            log.lines.push_back(l);
        }
    }

    /// Waits for the launches of `stream`, at most `timeout` when given.
    fn wait(&self, stream: StreamId, timeout: Option<Duration>) -> Result<(), BackendError> {
        let t0 = Instant::now();
        let mut poll = 0u32;
        loop {
            {
                let mut st = lock(&self.state);
                self.pump(&mut st);
                let s = stream_mut(&mut st, BackendOp::Stream, stream)?;
                if s.queue.is_empty() {
                    let r = s.failed.take();
                    drop(st);
                    self.drain_log();
                    return r.map_or(Ok(()), Err);
                }
            }
            if poll % 64 == 63 {
                self.drain_log();
            }
            if let Some(t) = timeout {
                if t0.elapsed() >= t {
                    self.drain_log();
                    return Err(BackendError::Timeout { op: BackendOp::Stream, waited: t });
                }
            }
            backoff(poll);
            poll = poll.saturating_add(1);
        }
    }

    /// Checks that the firmware carries every piece of `code` (by the names the callable gives
    /// them: the firmware resolves a code address through the callable header in device memory).
    fn resolve(&self, code: &RunCode<'_>, placed: bool) -> Result<(DevAddr, Vec<DevAddr>), CodeError> {
        let one = |kind: CodeKind, emu_kind: EmuNameKind, name: &str, addr: DevAddr| {
            if !self.firmware.carries(emu_kind, name) {
                return Err(CodeError::Unresolved {
                    kind,
                    name: name.to_owned(),
                    backend: "emu",
                    available: self.firmware.names_of(emu_kind),
                });
            }
            if placed && addr.is_null() {
                return Err(CodeError::Null);
            }
            Ok(addr)
        };
        let orchestration = match code.orchestration {
            CodeRef::Host(_) => return Err(unsupported_host_code(CodeKind::Orchestration)),
            CodeRef::Callable { name, addr, .. } => {
                one(CodeKind::Orchestration, EmuNameKind::Orchestration, name, addr)?
            }
        };
        let mut kernels = Vec::with_capacity(code.kernels.len());
        for (_, k) in &code.kernels {
            kernels.push(match *k {
                CodeRef::Host(_) => return Err(unsupported_host_code(CodeKind::Kernel)),
                CodeRef::Callable { name, addr, .. } => one(CodeKind::Kernel, EmuNameKind::Kernel, name, addr)?,
            });
        }
        Ok((orchestration, kernels))
    }

    fn checked(&self, op: BackendOp, addr: DevAddr, len: u64) -> Result<(), BackendError> {
        if lock(&self.heap).contains(addr, len) {
            Ok(())
        } else {
            Err(BackendError::InvalidRange { op, addr, len })
        }
    }
}

fn unsupported_host_code(kind: CodeKind) -> CodeError {
    CodeError::Unsupported {
        backend: "emu",
        what: format!(
            "a {kind} given as a host function: its code is compiled into the firmware and named by a callable"
        ),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn stream_mut(st: &mut State, op: BackendOp, stream: StreamId) -> Result<&mut Stream, BackendError> {
    st.streams
        .get_mut(stream.0 as usize)
        .ok_or_else(|| BackendError::InvalidArgument { op, detail: format!("unknown stream {}", stream.0) })
}

impl Drop for EmuBackend {
    /// Asks the firmware to power off, gives qemu a moment to exit, then kills it (the field
    /// drops reap it and unmap and remove the guest-RAM file).
    fn drop(&mut self) {
        let cb = self.firmware.record().control_block;
        if let Ok(w) = self.ram.atomic_u32(cb_field(cb, offset_of!(EmuControlBlock, shutdown))) {
            w.store(EMU_SHUTDOWN_REQUESTED, Ordering::Release);
        }
        let t0 = Instant::now();
        while self.qemu.exited().is_none() && t0.elapsed() < SHUTDOWN_GRACE {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.qemu.kill();
    }
}

impl DeviceBackend for EmuBackend {
    fn name(&self) -> &'static str {
        "emu"
    }

    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError> {
        let mut heap = lock(&self.heap);
        match heap.allocate(size) {
            Ok(a) => {
                drop(heap);
                lock(&self.counters).mallocs += 1;
                Ok(a)
            }
            Err(HeapError::ZeroSize) => {
                Err(BackendError::InvalidArgument { op: BackendOp::Malloc, detail: "size 0".into() })
            }
            Err(HeapError::Exhausted { largest }) => {
                Err(BackendError::OutOfMemory { requested: size, available: largest })
            }
        }
    }

    fn free(&self, addr: DevAddr) -> Result<(), BackendError> {
        lock(&self.heap).release(addr).ok_or(BackendError::InvalidRange { op: BackendOp::Free, addr, len: 0 })?;
        lock(&self.counters).frees += 1;
        Ok(())
    }

    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        let op = BackendOp::CopyToDevice;
        self.checked(op, dst, src.len() as u64)?;
        self.ram.write(dst, src).map_err(|e| BackendError::InvalidRange { op, addr: e.addr, len: e.len })?;
        let mut c = lock(&self.counters);
        c.copies_to_device += 1;
        c.bytes_to_device += src.len() as u64;
        Ok(())
    }

    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        let op = BackendOp::CopyFromDevice;
        self.checked(op, src, dst.len() as u64)?;
        self.ram.read(src, dst).map_err(|e| BackendError::InvalidRange { op, addr: e.addr, len: e.len })?;
        let mut c = lock(&self.counters);
        c.copies_from_device += 1;
        c.bytes_from_device += dst.len() as u64;
        Ok(())
    }

    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        let op = BackendOp::Memset;
        self.checked(op, dst, len)?;
        self.ram.fill(dst, value, len).map_err(|e| BackendError::InvalidRange { op, addr: e.addr, len: e.len })?;
        lock(&self.counters).memsets += 1;
        Ok(())
    }

    fn stream_create(&self) -> Result<StreamId, BackendError> {
        let mut st = lock(&self.state);
        st.streams.push(Stream::default());
        Ok(StreamId(st.streams.len() as u32 - 1))
    }

    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError> {
        self.wait(stream, None)
    }

    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: Duration) -> Result<(), BackendError> {
        self.wait(stream, Some(timeout))
    }

    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError> {
        let mut st = lock(&self.state);
        self.pump(&mut st);
        let cb = self.firmware.record().control_block;
        let s = stream_mut(&mut st, BackendOp::Stream, stream)?;
        for l in &mut s.queue {
            l.aborted = true;
            if let Some(seq) = l.seq {
                let at = slot_addr(cb, ((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
                if let Ok(w) = self.ram.atomic_u32(DevAddr(at.get() + offset_of!(EmuLaunchSlot, abort) as u64)) {
                    w.store(EMU_ABORT_REQUESTED, Ordering::Release);
                }
            }
        }
        Ok(())
    }

    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        let program = EmuProgram::from_binary_name(binary).ok_or_else(|| BackendError::InvalidArgument {
            op: BackendOp::RegisterKernel,
            detail: format!(
                "the emulated device's firmware has no program named {:?}; it has {}",
                String::from_utf8_lossy(binary),
                EmuProgram::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let mut st = lock(&self.state);
        st.programs.push(program);
        let h = KernelHandle(st.programs.len() as u32 - 1);
        drop(st);
        lock(&self.counters).registrations += 1;
        Ok(h)
    }

    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError> {
        let p = match program {
            DeviceProgram::Boot => EmuProgram::AicpuBoot,
            DeviceProgram::Aicpu => EmuProgram::AicpuMain,
            DeviceProgram::Aicore => EmuProgram::AicoreMain,
        };
        self.register_kernel_binary(p.name().as_bytes())
    }

    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError> {
        self.resolve(code, false).map(|_| ())
    }

    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError> {
        // The code is compiled into the firmware: nothing to load, the callable's device copy
        // (which the firmware reads the names from) is what must stay alive, and the runner
        // keeps it.
        let (orchestration, kernels) = self.resolve(code, true)?;
        Ok(LoadedCode { orchestration, kernels, keep: None })
    }

    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError> {
        let invalid = |detail: String| BackendError::InvalidArgument { op: BackendOp::Launch, detail };
        let mut st = lock(&self.state);
        let program = *st
            .programs
            .get(kernel.0 as usize)
            .ok_or_else(|| invalid(format!("unknown kernel handle {}", kernel.0)))?;
        if block_dim == 0 {
            return Err(invalid("block_dim 0".into()));
        }
        if let Some(why) = &st.lost {
            let detail = format!("the emulated device is lost: {why}");
            return Err(BackendError::DeviceFault { op: BackendOp::Launch, detail });
        }
        let order = st.next_order;
        st.next_order += 1;
        stream_mut(&mut st, BackendOp::Launch, stream)?.queue.push_back(Launch {
            order,
            program,
            block_dim,
            args,
            seq: None,
            aborted: false,
        });
        self.pump(&mut st);
        drop(st);
        lock(&self.counters).launches += 1;
        Ok(())
    }
}
