//! The real aarch64 firmware on `qemu-system-aarch64 -machine virt`, driven through the shared
//! RAM file as `pto_abi::emu` describes: boot to `ready`, the `.pto_abi` record matching this
//! host's ABI, shutdown with qemu exiting 0; and the vector example graph, built by this x86-64
//! host's runner, run by the firmware (47.0 in every element).
//!
//! The harness here is deliberately small (a bump allocator over the device heap, one launch at a
//! time per stream); the full emulated backend lives in the host crate. Without qemu or the
//! firmware ELF each test prints one SKIP line, and fails instead when `CI=true`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pto_abi::emu::{
    EmuAbiRecord, EmuControlBlock, EmuFaultRecord, EmuLaunchSlot, EmuLaunchStatus, EmuLogHeader, EmuNameEntry,
    EmuNameKind, EmuPanicRecord, EmuProgram, EMU_ABI_SECTION, EMU_ABORT_REQUESTED, EMU_GUEST_RAM_BASE,
    EMU_LAUNCH_SLOTS, EMU_LOG_MAGIC, EMU_READY, EMU_RECORD_VALID, EMU_SHUTDOWN_REQUESTED,
};
use pto_abi::task::DType;
use pto_abi::task::TensorDirection::{self, NoDep};
use pto_abi::DevAddr;
use pto_device::examples::fatal::{self, ScenarioArg, FATAL_SCENARIOS};
use pto_device::orch::OrchestrationFn;
use pto_host::examples::{
    define_vector_symbols, vector_args, vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_EXPECTED,
    VECTOR_MUL, VECTOR_ORCHESTRATION, VECTOR_RESULT_ARG,
};
use pto_host::sim::SimBackend;
use pto_host::{
    ArenaSizingKey, BackendError, BackendOp, Budgets, CallableRunConfig, CallableRunError, ChipCallable, CodeError,
    CodeKind, CodeRef, CoreCallable, DeviceBackend, DeviceProgram, DeviceRunner, KernelFn, KernelHandle, LoadedCode,
    Orchestration, RunArg, RunCode, RunError, RunMode, StreamId,
};
use zerocopy::FromBytes;

const RAM_BYTES: u64 = 256 << 20;

/// Prints one SKIP line, or fails under `CI=true`.
fn skip(what: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {what}");
    }
    println!("SKIP: {what}");
}

fn firmware_elf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PTO_FIRMWARE") {
        return Some(PathBuf::from(p));
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/aarch64-unknown-none");
    ["release", "debug"].iter().map(|p| target.join(p).join("pto-firmware")).find(|p| p.is_file())
}

/// The firmware ELF and qemu, or a SKIP.
fn prerequisites() -> Option<PathBuf> {
    let qemu = Command::new("qemu-system-aarch64").arg("--version").stdout(Stdio::null()).status();
    if !matches!(qemu, Ok(s) if s.success()) {
        skip("qemu-system-aarch64 not found: install it (Debian: apt-get install qemu-system-arm)");
        return None;
    }
    match firmware_elf() {
        Some(p) => Some(p),
        None => {
            skip("the firmware ELF is not built: run `cargo fw-build` (or set PTO_FIRMWARE)");
            None
        }
    }
}

/// The bytes of section `name` of an ELF64 little-endian file.
fn elf_section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = u64_at(0x28)? as usize;
    let (entsize, count, strndx) = (u16_at(0x3a)? as usize, u16_at(0x3c)? as usize, u16_at(0x3e)? as usize);
    let header = |i: usize| shoff + i * entsize;
    let strtab = u64_at(header(strndx) + 0x18)? as usize;
    (0..count).find_map(|i| {
        let h = header(i);
        let name_at = strtab + u32_at(h)? as usize;
        let end = name_at + elf.get(name_at..)?.iter().position(|&b| b == 0)?;
        if elf.get(name_at..end)? != name.as_bytes() {
            return None;
        }
        let (off, size) = (u64_at(h + 0x18)? as usize, u64_at(h + 0x20)? as usize);
        elf.get(off..off + size)
    })
}

/// The checked `.pto_abi` record and the name table of the firmware at `path`.
fn read_pto_abi(path: &Path) -> (EmuAbiRecord, Vec<EmuNameEntry>) {
    let elf = std::fs::read(path).expect("read the firmware ELF");
    let section = elf_section(&elf, EMU_ABI_SECTION).expect("the firmware ELF has a .pto_abi section");
    let (record, _) = EmuAbiRecord::read_from_prefix(section).expect(".pto_abi holds a whole record");
    record.check().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let names = (0..record.name_count as usize)
        .map(|i| {
            let at = record.names_offset as usize + i * record.name_entry_size as usize;
            EmuNameEntry::read_from_prefix(&section[at..]).expect("a whole name entry").0
        })
        .collect();
    (record, names)
}

/// The shared RAM file, mapped.
struct SharedRam {
    path: PathBuf,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access below goes through atomics or
// bounds-checked copies, and the mapping lives until drop.
unsafe impl Send for SharedRam {}
// SAFETY: as above.
unsafe impl Sync for SharedRam {}

impl SharedRam {
    fn create(len: u64) -> SharedRam {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = PathBuf::from(format!(
            "/dev/shm/pto-fw-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options().read(true).write(true).create_new(true).open(&path).expect("create the RAM file");
        file.set_len(len).expect("size the RAM file");
        use std::os::fd::AsRawFd;
        // SAFETY: maps `len` bytes of a file we own, shared, readable and writable.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of the RAM file failed");
        SharedRam { path, base: NonNull::new(p as *mut u8).unwrap(), len: len as usize }
    }

    /// The host pointer of guest address `addr` for `len` bytes, if inside RAM.
    fn at(&self, addr: u64, len: u64) -> Option<*mut u8> {
        let off = addr.checked_sub(EMU_GUEST_RAM_BASE)?;
        (off.checked_add(len)? <= self.len as u64).then(|| {
            // SAFETY: in bounds of the mapping (checked above).
            unsafe { self.base.as_ptr().add(off as usize) }
        })
    }

    fn u64_at(&self, addr: u64) -> &AtomicU64 {
        let p = self.at(addr, 8).expect("a shared word inside RAM");
        // SAFETY: an aligned word of the live mapping (every protocol word is 8-aligned).
        unsafe { AtomicU64::from_ptr(p as *mut u64) }
    }

    fn u32_at(&self, addr: u64) -> &AtomicU32 {
        let p = self.at(addr, 4).expect("a shared word inside RAM");
        // SAFETY: an aligned word of the live mapping.
        unsafe { AtomicU32::from_ptr(p as *mut u32) }
    }
}

impl Drop for SharedRam {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `create`.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
        let _ = std::fs::remove_file(&self.path);
    }
}

macro_rules! field {
    ($base:expr, $t:ty, $($f:tt)+) => {
        $base + std::mem::offset_of!($t, $($f)+) as u64
    };
}

/// A running qemu with the firmware, killed on drop.
struct Machine {
    ram: Arc<SharedRam>,
    record: EmuAbiRecord,
    qemu: Mutex<Child>,
}

impl Machine {
    fn start(elf: &Path, vcpus: u32) -> (Machine, Duration) {
        let (record, _) = read_pto_abi(elf);
        let ram = Arc::new(SharedRam::create(RAM_BYTES));
        let mb = RAM_BYTES >> 20;
        let started = Instant::now();
        let qemu = Command::new("qemu-system-aarch64")
            .args(["-machine", "virt,memory-backend=mem", "-cpu", "cortex-a72", "-nographic", "-monitor", "none"])
            .args(["-smp", &vcpus.to_string(), "-m", &format!("{mb}M")])
            .arg("-object")
            .arg(format!("memory-backend-file,id=mem,size={mb}M,mem-path={},share=on", ram.path.display()))
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qemu-system-aarch64");
        let m = Machine { ram, record, qemu: Mutex::new(qemu) };
        m.wait_until("firmware ready", Duration::from_secs(30), || {
            m.ram.u32_at(field!(m.cb(), EmuControlBlock, ready)).load(Ordering::Acquire) == EMU_READY
        });
        (m, started.elapsed())
    }

    fn cb(&self) -> u64 {
        self.record.control_block.get()
    }

    fn slot(&self, i: usize) -> u64 {
        field!(self.cb(), EmuControlBlock, launches) + (i * std::mem::size_of::<EmuLaunchSlot>()) as u64
    }

    /// Polls `done` (sleeping between polls) until it holds; panics on the deadline, on qemu's exit
    /// and on a fault or panic record.
    fn wait_until(&self, what: &str, budget: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + budget;
        let mut polls = 0u32;
        loop {
            if done() {
                return;
            }
            polls += 1;
            if polls < 20_000 {
                std::hint::spin_loop();
                continue;
            }
            self.check_alive(what);
            assert!(Instant::now() < deadline, "{what}: not within {budget:?}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn check_alive(&self, what: &str) {
        if let Err(e) = self.health() {
            panic!("{what}: {e}");
        }
    }

    /// Err when a fault or panic record is valid or qemu has exited, saying what happened.
    fn health(&self) -> Result<(), String> {
        let fault = field!(self.cb(), EmuControlBlock, fault);
        if self.ram.u32_at(fault).load(Ordering::Acquire) == EMU_RECORD_VALID {
            let r = |f: u64| self.ram.u64_at(f).load(Ordering::Relaxed);
            return Err(format!(
                "firmware fault on vCPU {}: vector {} ESR {:#x} ELR {:#x} FAR {:#x}",
                self.ram.u32_at(field!(fault, EmuFaultRecord, core)).load(Ordering::Relaxed),
                self.ram.u32_at(field!(fault, EmuFaultRecord, vector)).load(Ordering::Relaxed),
                r(field!(fault, EmuFaultRecord, esr)),
                r(field!(fault, EmuFaultRecord, elr)),
                r(field!(fault, EmuFaultRecord, far)),
            ));
        }
        let panic_at = field!(self.cb(), EmuControlBlock, panic);
        if self.ram.u32_at(panic_at).load(Ordering::Acquire) == EMU_RECORD_VALID {
            let msg = self.ram.at(field!(panic_at, EmuPanicRecord, message), 256).unwrap();
            // SAFETY: 256 bytes inside the mapping.
            let text = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(msg, 256) });
            return Err(format!("firmware panic: {}", text.trim_end_matches('\0')));
        }
        if let Ok(Some(status)) = self.qemu.lock().unwrap().try_wait() {
            return Err(format!("qemu exited with {status}"));
        }
        Ok(())
    }

    /// Posts launch `seq` (its slot must be free) and rings the doorbell.
    fn post(&self, seq: u64, program: EmuProgram, block_dim: u32, args: DevAddr) {
        let s = self.slot(((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
        let ram = &self.ram;
        ram.u32_at(field!(s, EmuLaunchSlot, program)).store(program as u32, Ordering::Relaxed);
        ram.u32_at(field!(s, EmuLaunchSlot, block_dim)).store(block_dim, Ordering::Relaxed);
        ram.u64_at(field!(s, EmuLaunchSlot, kernel_args)).store(args.get(), Ordering::Relaxed);
        ram.u32_at(field!(s, EmuLaunchSlot, abort)).store(0, Ordering::Relaxed);
        ram.u64_at(field!(s, EmuLaunchSlot, seq)).store(seq, Ordering::Release);
        ram.u64_at(field!(self.cb(), EmuControlBlock, doorbell)).store(seq, Ordering::Release);
    }

    /// True once launch `seq` is done.
    fn done(&self, seq: u64) -> bool {
        let s = self.slot(((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
        self.ram.u64_at(field!(s, EmuLaunchSlot, done_seq)).load(Ordering::Acquire) >= seq
    }

    /// Asks for shutdown and returns qemu's exit status.
    fn shutdown(self) -> std::process::ExitStatus {
        self.ram.u32_at(field!(self.cb(), EmuControlBlock, shutdown)).store(EMU_SHUTDOWN_REQUESTED, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut qemu = self.qemu.lock().unwrap();
        loop {
            if let Some(s) = qemu.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "qemu did not power off within 10 s of the shutdown request");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let mut q = self.qemu.lock().unwrap_or_else(|e| e.into_inner());
        if q.try_wait().ok().flatten().is_none() {
            let _ = q.kill();
            let _ = q.wait();
        }
    }
}

#[test]
fn the_firmware_boots_to_ready_with_this_hosts_abi_and_powers_off_on_request() {
    let Some(elf) = prerequisites() else { return };
    let (record, names) = read_pto_abi(&elf);
    assert_eq!(record.abi_fingerprint, pto_abi::ABI_FINGERPRINT);
    // Every name the vector example's callable uses is compiled into the firmware.
    let has = |kind: EmuNameKind, name: &str| {
        names.iter().any(|e| e.kind == kind as u32 && e.name_bytes() == name.as_bytes())
    };
    assert!(has(EmuNameKind::Orchestration, VECTOR_ORCHESTRATION));
    for k in [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL] {
        assert!(has(EmuNameKind::Kernel, k), "kernel {k} missing from the firmware's name table");
    }

    let (m, to_ready) = Machine::start(&elf, 4);
    let cb = m.cb();
    assert_eq!(m.ram.u32_at(field!(cb, EmuControlBlock, vcpu_count)).load(Ordering::Relaxed), 4);
    assert_eq!(m.ram.u32_at(field!(cb, EmuControlBlock, aicpu_vcpus)).load(Ordering::Relaxed), 2);
    assert_eq!(m.ram.u32_at(field!(cb, EmuControlBlock, aicore_vcpus)).load(Ordering::Relaxed), 1);
    let log = record.log_ring.get();
    assert_eq!(m.ram.u64_at(field!(log, EmuLogHeader, magic)).load(Ordering::Acquire), EMU_LOG_MAGIC);
    assert!(m.ram.u64_at(field!(log, EmuLogHeader, write)).load(Ordering::Acquire) > 0, "the ready line is logged");
    println!("qemu start -> firmware ready: {:.1} ms", to_ready.as_secs_f64() * 1e3);

    // Empty launches (no blocks): the control core completes each at once. The host spins here
    // only to measure the doorbell round trip.
    let rounds = 2000u64;
    let t = Instant::now();
    for seq in 1..=rounds {
        m.post(seq, EmuProgram::AicpuBoot, 0, DevAddr::NULL);
        m.wait_until("an empty launch", Duration::from_secs(10), || m.done(seq));
    }
    let per = t.elapsed() / rounds as u32;
    assert_eq!(m.ram.u64_at(field!(cb, EmuControlBlock, launches_taken)).load(Ordering::Acquire), rounds);
    println!("doorbell -> done of an empty launch: {:.2} us (mean of {rounds})", per.as_secs_f64() * 1e6);

    // A launch naming no program ends with UNKNOWN_PROGRAM, not a hang.
    let s = m.slot((rounds % EMU_LAUNCH_SLOTS as u64) as usize);
    m.ram.u32_at(field!(s, EmuLaunchSlot, program)).store(99, Ordering::Relaxed);
    m.ram.u64_at(field!(s, EmuLaunchSlot, seq)).store(rounds + 1, Ordering::Release);
    m.ram.u64_at(field!(cb, EmuControlBlock, doorbell)).store(rounds + 1, Ordering::Release);
    m.wait_until("a launch of an unknown program", Duration::from_secs(10), || m.done(rounds + 1));
    let status = m.ram.u32_at(field!(s, EmuLaunchSlot, status)).load(Ordering::Relaxed);
    assert_eq!(status, EmuLaunchStatus::UnknownProgram as u32);
    assert_eq!(m.ram.u64_at(field!(s, EmuLaunchSlot, detail)).load(Ordering::Relaxed), 99);

    let status = m.shutdown();
    assert!(status.success(), "qemu exit status after SYSTEM_OFF: {status}");
}

/// The harness's backend: a bump allocator over the device heap, copies on the mapping, launches
/// through the control block's slots (a stream = the launches posted on it), code resolved by the
/// firmware's name table.
struct Harness {
    m: Machine,
    names: Vec<EmuNameEntry>,
    heap: Mutex<(u64, u64)>,
    next_seq: Mutex<u64>,
    streams: Mutex<Vec<Vec<u64>>>,
    binaries: Mutex<Vec<EmuProgram>>,
}

impl Harness {
    fn new(m: Machine, names: Vec<EmuNameEntry>) -> Harness {
        let heap = (m.record.heap_base.get(), EMU_GUEST_RAM_BASE + RAM_BYTES);
        Harness {
            m,
            names,
            heap: Mutex::new(heap),
            next_seq: Mutex::new(1),
            streams: Mutex::new(Vec::new()),
            binaries: Mutex::new(Vec::new()),
        }
    }

    fn range(&self, op: BackendOp, addr: DevAddr, len: u64) -> Result<*mut u8, BackendError> {
        let inside = addr.get() >= self.m.record.heap_base.get();
        self.m.ram.at(addr.get(), len).filter(|_| inside).ok_or(BackendError::InvalidRange { op, addr, len })
    }

    fn status(&self, seq: u64) -> (u32, u32, u64) {
        let s = self.m.slot(((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
        (
            self.m.ram.u32_at(field!(s, EmuLaunchSlot, status)).load(Ordering::Relaxed),
            self.m.ram.u32_at(field!(s, EmuLaunchSlot, failed_block)).load(Ordering::Relaxed),
            self.m.ram.u64_at(field!(s, EmuLaunchSlot, detail)).load(Ordering::Relaxed),
        )
    }

    fn sync(&self, stream: StreamId, budget: Duration) -> Result<(), BackendError> {
        let seqs = self.streams.lock().unwrap()[stream.0 as usize].clone();
        let deadline = Instant::now() + budget;
        for seq in seqs {
            while !self.m.done(seq) {
                self.m.health().map_err(|detail| BackendError::DeviceFault { op: BackendOp::Stream, detail })?;
                if Instant::now() >= deadline {
                    return Err(BackendError::Timeout { op: BackendOp::Stream, waited: budget });
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let (status, block, detail) = self.status(seq);
            if status != EmuLaunchStatus::Ok as u32 {
                let name = EmuLaunchStatus::try_from(status).map(|s| s.name()).unwrap_or("unknown status");
                return Err(BackendError::DeviceFault {
                    op: BackendOp::Launch,
                    detail: format!("launch {seq}: {name} (block {block}, detail {detail:#x})"),
                });
            }
        }
        Ok(())
    }

    fn carries(&self, kind: EmuNameKind, name: &str) -> Result<(), CodeError> {
        if self.names.iter().any(|e| e.kind == kind as u32 && e.name_bytes() == name.as_bytes()) {
            return Ok(());
        }
        let mut available: Vec<String> = self
            .names
            .iter()
            .filter(|e| e.kind == kind as u32)
            .map(|e| String::from_utf8_lossy(e.name_bytes()).into_owned())
            .collect();
        available.sort();
        let kind = if kind == EmuNameKind::Kernel { CodeKind::Kernel } else { CodeKind::Orchestration };
        Err(CodeError::Unresolved { kind, name: name.into(), backend: "qemu-harness", available })
    }

    fn check<F>(&self, kind: EmuNameKind, code: &CodeRef<'_, F>) -> Result<DevAddr, CodeError> {
        match code {
            CodeRef::Callable { name, addr, .. } => self.carries(kind, name).map(|()| *addr),
            CodeRef::Host(_) => Err(CodeError::BadBinary {
                kind: if kind == EmuNameKind::Kernel { CodeKind::Kernel } else { CodeKind::Orchestration },
                name: "<host function>".into(),
                detail: "the firmware runs only code it carries, named by a callable".into(),
            }),
        }
    }
}

impl DeviceBackend for Harness {
    fn name(&self) -> &'static str {
        "qemu-harness"
    }

    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError> {
        let mut h = self.heap.lock().unwrap();
        let base = h.0.next_multiple_of(1024);
        if size == 0 || base + size > h.1 {
            return Err(BackendError::OutOfMemory { requested: size, available: h.1.saturating_sub(base) });
        }
        h.0 = base + size;
        Ok(DevAddr(base))
    }

    fn free(&self, _addr: DevAddr) -> Result<(), BackendError> {
        Ok(())
    }

    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        let p = self.range(BackendOp::CopyToDevice, dst, src.len() as u64)?;
        // SAFETY: `src.len()` bytes of the mapping (checked); no launch uses them now.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }

    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        let p = self.range(BackendOp::CopyFromDevice, src, dst.len() as u64)?;
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        let p = self.range(BackendOp::Memset, dst, len)?;
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(p, value, len as usize) };
        Ok(())
    }

    fn stream_create(&self) -> Result<StreamId, BackendError> {
        let mut s = self.streams.lock().unwrap();
        s.push(Vec::new());
        Ok(StreamId(s.len() as u32 - 1))
    }

    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError> {
        self.sync(stream, Duration::from_secs(120))
    }

    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: Duration) -> Result<(), BackendError> {
        self.sync(stream, timeout)
    }

    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError> {
        for &seq in &self.streams.lock().unwrap()[stream.0 as usize] {
            let s = self.m.slot(((seq - 1) % EMU_LAUNCH_SLOTS as u64) as usize);
            self.m.ram.u32_at(field!(s, EmuLaunchSlot, abort)).store(EMU_ABORT_REQUESTED, Ordering::Release);
        }
        Ok(())
    }

    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        let program = EmuProgram::from_binary_name(binary).ok_or_else(|| BackendError::InvalidArgument {
            op: BackendOp::RegisterKernel,
            detail: format!("no firmware program named {:?}", String::from_utf8_lossy(binary)),
        })?;
        let mut b = self.binaries.lock().unwrap();
        b.push(program);
        Ok(KernelHandle(b.len() as u32 - 1))
    }

    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError> {
        let name = match program {
            DeviceProgram::Boot => EmuProgram::AicpuBoot,
            DeviceProgram::Aicpu => EmuProgram::AicpuMain,
            DeviceProgram::Aicore => EmuProgram::AicoreMain,
        };
        self.register_kernel_binary(name.name().as_bytes())
    }

    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError> {
        self.check(EmuNameKind::Orchestration, &code.orchestration)?;
        for (_, k) in &code.kernels {
            self.check(EmuNameKind::Kernel, k)?;
        }
        Ok(())
    }

    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError> {
        let orchestration = self.check(EmuNameKind::Orchestration, &code.orchestration)?;
        let kernels = code.kernels.iter().map(|(_, k)| self.check(EmuNameKind::Kernel, k)).collect::<Result<_, _>>()?;
        Ok(LoadedCode { orchestration, kernels, keep: None })
    }

    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError> {
        let program = self.binaries.lock().unwrap()[kernel.0 as usize];
        let mut next = self.next_seq.lock().unwrap();
        let seq = *next;
        if seq > EMU_LAUNCH_SLOTS as u64 {
            let previous = seq - EMU_LAUNCH_SLOTS as u64;
            self.m.wait_until("a free launch slot", Duration::from_secs(120), || self.m.done(previous));
        }
        self.m.post(seq, program, block_dim, args);
        self.streams.lock().unwrap()[stream.0 as usize].push(seq);
        *next += 1;
        Ok(())
    }
}

/// A runner on a harness over a fresh machine with `vcpus` vCPUs.
fn runner_on_qemu(elf: &Path, vcpus: u32) -> (Arc<Harness>, DeviceRunner) {
    let (_, names) = read_pto_abi(elf);
    let (m, _) = Machine::start(elf, vcpus);
    let harness = Arc::new(Harness::new(m, names));
    let runner = DeviceRunner::new(harness.clone() as Arc<dyn DeviceBackend>);
    (harness, runner)
}

fn shut_down(harness: Arc<Harness>, runner: DeviceRunner) {
    drop(runner);
    let harness = Arc::try_unwrap(harness).ok().expect("the runner released the backend");
    assert!(harness.m.shutdown().success());
}

const SMALL: ArenaSizingKey = ArenaSizingKey::uniform(64, 1 << 20, 256);

fn config(sizing: ArenaSizingKey, mode: RunMode, budgets: Budgets) -> CallableRunConfig {
    CallableRunConfig { sizing, mode, budgets }
}

#[test]
fn the_vector_example_built_by_this_host_runs_on_the_aarch64_firmware() {
    let Some(elf) = prerequisites() else { return };
    let (harness, mut runner) = runner_on_qemu(&elf, 5);
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    // Threaded shapes (every run after the first binds from the image cache: the firmware
    // re-boots the resident image), then the deterministic single-thread mode.
    let modes = [
        RunMode::Threaded { threads: 3, clusters: 2 },
        RunMode::Threaded { threads: 2, clusters: 1 },
        RunMode::Threaded { threads: 3, clusters: 8 },
        RunMode::Deterministic { noop_cores: false },
    ];
    for (i, mode) in modes.into_iter().enumerate() {
        let report = runner
            .run_callable(0, &vector_args(), &config(SMALL, mode, Budgets::DEFAULT))
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(report.tasks_completed, 5, "{mode:?}");
        assert_eq!(report.bind_cache_hit, i > 0, "{mode:?}");
        let f = report.output_f32(VECTOR_RESULT_ARG);
        assert!(f.iter().all(|&x| x == VECTOR_EXPECTED), "every element of f is {VECTOR_EXPECTED}, {mode:?}");
        println!("vector example on the firmware, {mode:?}: run {:.1} ms", report.run_time.as_secs_f64() * 1e3);
    }
    shut_down(harness, runner);
}

/// Runs the firmware's one-task probe with `kernel` and `word` on a fresh machine; returns the
/// run's error and the machine.
fn run_probe(elf: &Path, kernel: &str, word: u64) -> (String, Arc<Harness>) {
    let (harness, mut runner) = runner_on_qemu(elf, 4);
    let blob = ChipCallable::build(
        &[NoDep],
        &Orchestration { name: "pto_probe_one_task".into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(0, kernel, &[])],
    )
    .unwrap();
    runner.register_callable(1, &blob).unwrap();
    let mode = RunMode::Threaded { threads: 2, clusters: 1 };
    let e = runner
        .run_callable(1, &[RunArg::Scalar(word)], &config(SMALL, mode, Budgets::DEFAULT))
        .expect_err("the probe must not succeed");
    (e.to_string(), harness)
}

#[test]
fn a_kernel_reading_an_unmapped_address_leaves_a_fault_record_naming_the_address() {
    let Some(elf) = prerequisites() else { return };
    let unmapped = 0x1_2345_6780u64;
    let (text, harness) = run_probe(&elf, "pto_probe_read", unmapped);
    assert!(text.contains("firmware fault") && text.contains(&format!("FAR {unmapped:#x}")), "{text}");
    let fault = field!(harness.m.cb(), EmuControlBlock, fault);
    let esr = harness.m.ram.u64_at(field!(fault, EmuFaultRecord, esr)).load(Ordering::Relaxed);
    assert_eq!(esr >> 26, 0x25, "ESR class: data abort at the current EL ({esr:#x})");
    assert!(harness.m.ram.u64_at(field!(fault, EmuFaultRecord, launch_seq)).load(Ordering::Relaxed) > 0);
}

#[test]
fn a_panicking_kernel_leaves_a_panic_record_with_message_and_location() {
    let Some(elf) = prerequisites() else { return };
    let (text, harness) = run_probe(&elf, "pto_probe_panic", 0xabc);
    assert!(text.contains("firmware panic") && text.contains("on purpose (argument 0xabc)"), "{text}");
    let p = field!(harness.m.cb(), EmuControlBlock, panic);
    assert!(harness.m.ram.u32_at(field!(p, EmuPanicRecord, line)).load(Ordering::Relaxed) > 0);
    let len = harness.m.ram.u32_at(field!(p, EmuPanicRecord, file_len)).load(Ordering::Relaxed) as u64;
    let at = harness.m.ram.at(field!(p, EmuPanicRecord, file), len).unwrap();
    // SAFETY: `len` (at most the field's size) bytes inside the mapping.
    let file = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(at, len as usize) }).into_owned();
    assert!(file.ends_with("probes.rs"), "{file}");
}

#[test]
fn a_callable_naming_code_the_firmware_lacks_is_refused_before_anything_is_uploaded() {
    let Some(elf) = prerequisites() else { return };
    let (harness, mut runner) = runner_on_qemu(&elf, 3);
    let blob = ChipCallable::build(
        &[NoDep],
        &Orchestration { name: "not_in_the_firmware".into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(0, "vector_add", &[])],
    )
    .unwrap();
    let e = runner.register_callable(0, &blob).expect_err("unknown orchestration").to_string();
    assert!(e.contains("not_in_the_firmware") && e.contains("vector_example"), "{e}");
    assert_eq!(runner.callable_counters().uploads, 0);
    shut_down(harness, runner);
}

/// The run arguments of a scenario.
fn scenario_args(arg: ScenarioArg) -> Vec<RunArg> {
    match arg {
        ScenarioArg::None => Vec::new(),
        ScenarioArg::InputBytes(len) => vec![RunArg::Input { data: vec![0; len as usize], dtype: DType::U8 }],
    }
}

fn scenario_blob(name: &str, arg: ScenarioArg) -> ChipCallable {
    let signature: &[TensorDirection] = match arg {
        ScenarioArg::None => &[],
        ScenarioArg::InputBytes(_) => &[TensorDirection::Input],
    };
    ChipCallable::build(
        signature,
        &Orchestration { name: name.into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(fatal::SLEEP as u32, fatal::SLEEP_MS, &[])],
    )
    .unwrap()
}

/// Every fatal scenario on `runner`: its code and detail, then a successful vector run on the same
/// resident image.
fn run_fatal_scenarios(runner: &mut DeviceRunner, device: &str) {
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let mut vargs = vector_args();
    vargs[0] = RunArg::input_f32(&[2.0; 256]);
    vargs[1] = RunArg::input_f32(&[3.0; 256]);
    vargs[2] = RunArg::output_f32(256);
    vargs[3] = RunArg::Scalar(256);
    for (i, sc) in FATAL_SCENARIOS.iter().enumerate() {
        let cid = i as u32 + 1;
        runner
            .register_callable(cid, &scenario_blob(sc.name, sc.arg))
            .unwrap_or_else(|e| panic!("{device} {}: {e}", sc.name));
        let mode = if sc.deterministic {
            RunMode::Deterministic { noop_cores: false }
        } else {
            RunMode::Threaded { threads: 3, clusters: 2 }
        };
        match runner.run_callable(cid, &scenario_args(sc.arg), &config(sc.sizing, mode, sc.budgets)) {
            Err(CallableRunError::Run(RunError::Device(f))) => {
                assert_eq!(f.code, sc.code as u32, "{device} {}: {f}", sc.name);
                if let Some(d) = sc.detail {
                    assert_eq!(f.detail, d, "{device} {}: {f}", sc.name);
                }
            }
            other => panic!("{device} {}: expected {:?}, got {other:?}", sc.name, sc.code),
        }
        let mode = RunMode::Threaded { threads: 3, clusters: 2 };
        let report = runner
            .run_callable(0, &vargs, &config(sc.sizing, mode, Budgets::DEFAULT))
            .unwrap_or_else(|e| panic!("{device}: the run after {}: {e}", sc.name));
        assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&x| x == VECTOR_EXPECTED));
    }
}

#[test]
fn every_fatal_scenario_gives_its_code_on_the_firmware_and_the_next_run_succeeds() {
    let Some(elf) = prerequisites() else { return };
    let (harness, mut runner) = runner_on_qemu(&elf, 5);
    run_fatal_scenarios(&mut runner, "firmware");
    shut_down(harness, runner);
}

/// The same scenario table on the simulated device gives the same codes and details: both devices
/// agree through it.
#[test]
fn every_fatal_scenario_gives_its_code_on_the_simulated_device() {
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    {
        let mut symbols = sim.symbols();
        define_vector_symbols(&mut symbols).unwrap();
        symbols.kernels.define(fatal::SLEEP_MS, fatal::sleep_ms as KernelFn).unwrap();
        for sc in FATAL_SCENARIOS {
            symbols.orchestrations.define(sc.name, sc.orchestration as OrchestrationFn).unwrap();
        }
    }
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    run_fatal_scenarios(&mut runner, "sim");
}

#[test]
fn a_kernel_overflowing_its_stack_faults_on_the_guard_page() {
    let Some(elf) = prerequisites() else { return };
    let (text, harness) = run_probe(&elf, "pto_probe_stack_overflow", 0);
    assert!(text.contains("firmware fault"), "{text}");
    let fault = field!(harness.m.cb(), EmuControlBlock, fault);
    let far = harness.m.ram.u64_at(field!(fault, EmuFaultRecord, far)).load(Ordering::Relaxed);
    let esr = harness.m.ram.u64_at(field!(fault, EmuFaultRecord, esr)).load(Ordering::Relaxed);
    assert_eq!(esr >> 26, 0x25, "ESR class: data abort at the current EL ({esr:#x})");
    // The fault address is a guard page below a stack, inside the firmware's image region (where
    // the stacks lie), not in the device heap.
    assert!(far >= harness.m.record.image_base && far < harness.m.record.image_limit, "FAR {far:#x}");
}
