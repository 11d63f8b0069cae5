//! A stand-in for the CANN runtime library (`libruntime.so`) for tests of the onboard backend, on
//! machines without the chip.
//!
//! Built as a shared library, it exports the functions of the vendored header subset
//! (`host/src/backend/onboard/cann_rt_subset.h`) with the same C signatures (the argument structs
//! are the generated bindings' own types) and implements them on this project's simulated device:
//!
//! * its device memory is a simulated device's pool (an address space of its own that host code
//!   reaches only through `rtMemcpy`/`rtMemset`); every copy checks its kind against where source
//!   and destination lie, `cnt <= destMax`, and that `destMax` does not exceed the destination's
//!   real capacity;
//! * the current device is per thread, as in the vendor runtime: a call on a thread that has not
//!   called `rtSetDevice` fails with `ACL_ERROR_RT_CONTEXT_NULL`;
//! * `rtRegisterAllKernel` recognises the simulated device's AICore program by its bytes (magic
//!   `RT_DEV_BINARY_MAGIC_ELF`); `rtKernelLaunchWithHandleV2` insists on batch mode and a one-word
//!   argument block (the `KernelArgs` address); `rtAicpuKernelLaunchExWithArgs` reads the AICPU
//!   program from the device copy the block names, recognises the simulated device's AICPU program
//!   by its bytes, and runs the entry the block names;
//! * before a launch runs, the device resolves the run's code the way hardware fetches it: each
//!   func-table address of the launch descriptor holds a callable child's kernel binary (its
//!   `CoreCallableHeader` precedes it), the orchestration address lies in a chip callable whose
//!   header names the orchestration; names resolve in the vector example's tables;
//! * launches really run the device code (boot, orchestrator, scheduler, AICore cores) on the
//!   simulated device's threads; a failed launch makes the stream's synchronize return
//!   `ACL_ERROR_RT_AICORE_EXCEPTION` or `ACL_ERROR_RT_AICPU_EXCEPTION`, a bounded wait that runs out
//!   `ACL_ERROR_RT_STREAM_SYNC_TIMEOUT`.
//!
//! For tests it keeps a call log ([`pto_standin_log`]) and fails the N-th call of a chosen function
//! with a chosen code ([`pto_standin_fail`], or `PTO_STANDIN_FAIL=func:nth:code[,…]` read at the
//! first call).

#![allow(non_snake_case)]

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_void, CStr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use pto_abi::callable::{
    ChipCallableHeader, CoreCallableHeader, CHIP_CALLABLE_MAGIC, CORE_CALLABLE_MAGIC, CORE_CODE_OFFSET,
};
use pto_abi::launch::{KernelArgs, LaunchDescriptor};
use pto_abi::DevAddr;
use pto_host::examples::define_vector_symbols;
use pto_host::onboard::sys::{
    self, rtAicpuArgsEx_t, rtArgsEx_t, rtDevBinary_t, rtSmDesc_t, rtStream_t, rtTaskCfgInfo_t,
};
use pto_host::onboard::{
    field_name, AicpuLaunchArgs, AICPU_EXEC_ENTRY, AICPU_INIT_ENTRY, AICPU_SO_NAME, SIM_AICORE_PROGRAM,
    SIM_AICPU_PROGRAM,
};
use pto_host::sim::{CodeGuard, SimBackend, SimKernelTable, SimProgram, SIM_AICPU_ENTRY, SIM_BOOT_ENTRY};
use pto_host::{BackendError, DeviceBackend, KernelHandle, StreamId};
use zerocopy::{FromBytes, IntoBytes};

const OK: i32 = 0;
const PARAM_INVALID: i32 = sys::ACL_ERROR_RT_PARAM_INVALID as i32;

/// Size of the simulated device's pool (address space; pages are committed when touched).
const POOL_BYTES: u64 = 4 << 30;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LaunchKind {
    None,
    Aicore,
    Aicpu,
}

struct StreamRec {
    sim: StreamId,
    /// Code the stream's queued launches resolve; released when the stream is collected.
    code: Vec<CodeGuard>,
    last: LaunchKind,
}

struct Fault {
    func: String,
    at: u64,
    code: i32,
}

struct State {
    sim: Arc<SimBackend>,
    /// Live allocations: base → size.
    allocs: BTreeMap<u64, u64>,
    streams: HashMap<usize, StreamRec>,
    next_stream: usize,
    /// Registered AICore binaries: handle − 1 → simulated-device kernel.
    binaries: Vec<KernelHandle>,
    boot: KernelHandle,
    aicpu: KernelHandle,
    log: Vec<String>,
    /// `rtSetDevice` calls not yet matched by an `rtDeviceReset`.
    device_sets: u64,
    calls: HashMap<String, u64>,
    faults: Vec<Fault>,
}

static STATE: OnceLock<Result<Mutex<State>, String>> = OnceLock::new();

thread_local! {
    static CURRENT_DEVICE: Cell<Option<i32>> = const { Cell::new(None) };
}

fn init() -> Result<Mutex<State>, String> {
    let sim = SimBackend::with_capacity(POOL_BYTES).map_err(|e| e.to_string())?;
    define_vector_symbols(&mut sim.symbols()).map_err(|e| e.to_string())?;
    let boot = sim.register_kernel_binary(SIM_BOOT_ENTRY.as_bytes()).map_err(|e| e.to_string())?;
    let aicpu = sim.register_kernel_binary(SIM_AICPU_ENTRY.as_bytes()).map_err(|e| e.to_string())?;
    let mut s = State {
        sim: Arc::new(sim),
        allocs: BTreeMap::new(),
        streams: HashMap::new(),
        next_stream: 1,
        binaries: Vec::new(),
        boot,
        aicpu,
        log: Vec::new(),
        device_sets: 0,
        calls: HashMap::new(),
        faults: Vec::new(),
    };
    if let Ok(spec) = std::env::var("PTO_STANDIN_FAIL") {
        for item in spec.split(',').filter(|i| !i.is_empty()) {
            let parts: Vec<&str> = item.split(':').collect();
            match parts[..] {
                [func, nth, code] => match (nth.parse::<u64>(), code.parse::<i32>()) {
                    (Ok(nth), Ok(code)) => s.arm(func, nth, code),
                    _ => return Err(format!("PTO_STANDIN_FAIL item {item:?}: nth and code must be integers")),
                },
                _ => return Err(format!("PTO_STANDIN_FAIL item {item:?}: expected func:nth:code")),
            }
        }
    }
    Ok(Mutex::new(s))
}

/// The state, or `None` when it could not be set up (every call then fails).
fn state() -> Option<MutexGuard<'static, State>> {
    match STATE.get_or_init(init) {
        Ok(m) => Some(m.lock().unwrap_or_else(|e| e.into_inner())),
        Err(e) => {
            eprintln!("cann-standin: cannot start: {e}");
            None
        }
    }
}

impl State {
    fn arm(&mut self, func: &str, nth: u64, code: i32) {
        let at = self.calls.get(func).copied().unwrap_or(0) + nth.max(1);
        self.faults.push(Fault { func: func.to_owned(), at, code });
    }

    /// Counts a call of `func`, logs it, and returns an armed fault's code for it.
    fn enter(&mut self, func: &str, detail: String) -> Result<(), i32> {
        let n = self.calls.entry(func.to_owned()).or_insert(0);
        *n += 1;
        let n = *n;
        if let Some(i) = self.faults.iter().position(|f| f.func == func && f.at == n) {
            let code = self.faults.swap_remove(i).code;
            self.log.push(format!("{func} {detail} -> {code} (injected)"));
            return Err(code);
        }
        self.log.push(format!("{func} {detail}"));
        Ok(())
    }

    /// The live allocation holding `[addr, addr + len)`: bytes from `addr` to its end.
    fn capacity(&self, addr: u64, len: u64) -> Option<u64> {
        let (&base, &size) = self.allocs.range(..=addr).next_back()?;
        let end = addr.checked_add(len)?;
        (end <= base + size).then_some(base + size - addr)
    }

    fn read<T: FromBytes + IntoBytes>(&self, addr: u64) -> Option<T> {
        let mut v = T::new_zeroed();
        self.capacity(addr, std::mem::size_of::<T>() as u64)?;
        self.sim.copy_from_device(DevAddr(addr), v.as_mut_bytes()).ok()?;
        Some(v)
    }

    fn read_bytes(&self, addr: u64, len: u64) -> Option<Vec<u8>> {
        self.capacity(addr, len)?;
        let mut v = vec![0u8; usize::try_from(len).ok()?];
        self.sim.copy_from_device(DevAddr(addr), &mut v).ok()?;
        Some(v)
    }

    /// Resolves the code of the launch whose `KernelArgs` lie at `args` the way the device fetches
    /// it, and loads it into the simulated device's code space.
    fn resolve_code(&self, args: u64) -> Result<Option<CodeGuard>, String> {
        let ka: KernelArgs = self.read(args).ok_or(format!("KernelArgs at {args:#x} are not in device memory"))?;
        let desc: LaunchDescriptor = self
            .read(ka.runtime_desc.get())
            .ok_or(format!("launch descriptor at {} is not in device memory", ka.runtime_desc))?;
        if desc.orchestration.is_null() {
            return Ok(None);
        }
        let symbols = self.sim.symbols();
        let mut kernels = SimKernelTable::new();
        let count = (desc.func_count as usize).min(desc.func_table.len());
        for &addr in desc.func_table[..count].iter().filter(|a| !a.is_null()) {
            let header: CoreCallableHeader = addr
                .get()
                .checked_sub(CORE_CODE_OFFSET)
                .and_then(|h| self.read(h))
                .ok_or(format!("no kernel header precedes code address {addr}"))?;
            if header.magic != CORE_CALLABLE_MAGIC {
                return Err(format!("code address {addr}: no kernel header (magic {:#x})", header.magic));
            }
            let bytes = self.read_bytes(addr.get(), header.binary_size).ok_or(format!("kernel binary at {addr}"))?;
            let name = pto_host::sim::sim_kernel_name(&bytes).map_err(|e| format!("kernel at {addr}: {e}"))?;
            let f = symbols.kernels.get(name).ok_or(format!("kernel {name:?} at {addr} is unknown"))?;
            kernels.insert(addr, f);
        }
        let orch = desc.orchestration.get();
        let (&base, _) = self.allocs.range(..=orch).next_back().ok_or(format!("orchestration at {orch:#x}"))?;
        let chip: ChipCallableHeader = self.read(base).ok_or(format!("no callable at {base:#x}"))?;
        if chip.magic != CHIP_CALLABLE_MAGIC || base + chip.orchestration_offset != orch {
            return Err(format!("orchestration address {orch:#x} is not the orchestration of a callable"));
        }
        let name = field_name(&chip.orchestration_name).ok_or("orchestration name is not NUL-terminated UTF-8")?;
        let f = symbols.orchestrations.get(name).ok_or(format!("orchestration {name:?} is unknown"))?;
        drop(symbols);
        let program = SimProgram { orchestration: (desc.orchestration, f), kernels: &kernels };
        self.sim.code().load(&program).map(Some).map_err(|e| e.to_string())
    }

    fn launch(&mut self, stm: rtStream_t, kind: LaunchKind, kernel: KernelHandle, blocks: u32, args: u64) -> i32 {
        let Some(sim_stream) = self.streams.get(&(stm as usize)).map(|s| s.sim) else {
            return sys::ACL_ERROR_RT_STREAM_CONTEXT as i32;
        };
        let code = match self.resolve_code(args) {
            Ok(c) => c,
            Err(e) => {
                self.log.push(format!("  code: {e}"));
                return sys::ACL_ERROR_RT_KERNEL_LOOKUP as i32;
            }
        };
        if let Err(e) = self.sim.launch_kernel(kernel, sim_stream, blocks, DevAddr(args)) {
            self.log.push(format!("  launch: {e}"));
            return PARAM_INVALID;
        }
        let rec = self.streams.get_mut(&(stm as usize)).expect("checked above");
        rec.code.extend(code);
        rec.last = kind;
        OK
    }

    fn sync_result(&mut self, stm: rtStream_t, r: Result<(), BackendError>) -> i32 {
        let Some(rec) = self.streams.get_mut(&(stm as usize)) else { return sys::ACL_ERROR_RT_STREAM_CONTEXT as i32 };
        match r {
            Ok(()) => {
                rec.code.clear();
                OK
            }
            Err(BackendError::Timeout { .. }) => sys::ACL_ERROR_RT_STREAM_SYNC_TIMEOUT as i32,
            Err(e) => {
                rec.code.clear();
                self.log.push(format!("  launch failed: {e}"));
                match rec.last {
                    LaunchKind::Aicore => sys::ACL_ERROR_RT_AICORE_EXCEPTION as i32,
                    _ => sys::ACL_ERROR_RT_AICPU_EXCEPTION as i32,
                }
            }
        }
    }
}

/// Runs `f` on the state after the per-thread device check; logs the call as `func detail`.
fn call(func: &str, detail: String, f: impl FnOnce(&mut State) -> i32) -> i32 {
    let Some(mut s) = state() else { return sys::ACL_ERROR_RT_INTERNAL_ERROR as i32 };
    if let Err(code) = s.enter(func, detail) {
        return code;
    }
    if func != "rtSetDevice" && CURRENT_DEVICE.with(Cell::get).is_none() {
        s.log.push("  no device set on this thread".into());
        return sys::ACL_ERROR_RT_CONTEXT_NULL as i32;
    }
    let code = f(&mut s);
    if code != OK {
        s.log.push(format!("  -> {code}"));
    }
    code
}

fn stream_of(s: &State, stm: rtStream_t) -> Option<StreamId> {
    s.streams.get(&(stm as usize)).map(|r| r.sim)
}

/// `rtSetDevice`: device 0 is the only device.
#[no_mangle]
pub extern "C" fn rtSetDevice(devId: i32) -> i32 {
    call("rtSetDevice", format!("dev={devId}"), |s| {
        if devId != 0 {
            return sys::ACL_ERROR_RT_INVALID_DEVICEID as i32;
        }
        CURRENT_DEVICE.with(|c| c.set(Some(devId)));
        s.device_sets += 1;
        OK
    })
}

/// `rtDeviceReset`.
#[no_mangle]
pub extern "C" fn rtDeviceReset(devId: i32) -> i32 {
    call("rtDeviceReset", format!("dev={devId}"), |s| {
        CURRENT_DEVICE.with(|c| c.set(None));
        s.device_sets = s.device_sets.saturating_sub(1);
        if s.device_sets == 0 {
            // The last reset releases everything the process held on the device.
            let bases: Vec<u64> = std::mem::take(&mut s.allocs).into_keys().collect();
            for &b in &bases {
                let _ = s.sim.free(DevAddr(b));
            }
            s.streams.clear();
            s.log.push(format!("  device released: {} allocation(s) reclaimed", bases.len()));
        }
        OK
    })
}

/// `rtMalloc`: HBM only.
///
/// # Safety
/// `devPtr` must be valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn rtMalloc(devPtr: *mut *mut c_void, size: u64, type_: u32, moduleId: u16) -> i32 {
    call("rtMalloc", format!("size={size} type={type_} module={moduleId}"), |s| {
        if devPtr.is_null() || size == 0 {
            return PARAM_INVALID;
        }
        if type_ != sys::RT_MEMORY_HBM {
            return sys::ACL_ERROR_RT_INVALID_MEMORY_TYPE as i32;
        }
        match s.sim.malloc(size) {
            Ok(a) => {
                s.allocs.insert(a.get(), size);
                s.log.push(format!("  -> {a}"));
                // SAFETY: the caller's contract.
                unsafe { *devPtr = a.get() as usize as *mut c_void };
                OK
            }
            Err(_) => sys::ACL_ERROR_RT_MEMORY_ALLOCATION as i32,
        }
    })
}

/// `rtFree`.
#[no_mangle]
pub extern "C" fn rtFree(devPtr: *mut c_void) -> i32 {
    let addr = devPtr as u64;
    call("rtFree", format!("ptr={addr:#x}"), |s| {
        if s.allocs.remove(&addr).is_none() || s.sim.free(DevAddr(addr)).is_err() {
            return sys::ACL_ERROR_RT_MEMORY_FREE as i32;
        }
        OK
    })
}

/// `rtMemcpy`: host↔device and device→device.
///
/// # Safety
/// Host pointers must be valid for `cnt` bytes in their direction.
#[no_mangle]
pub unsafe extern "C" fn rtMemcpy(dst: *mut c_void, destMax: u64, src: *const c_void, cnt: u64, kind: u32) -> i32 {
    let names = ["H2H", "H2D", "D2H", "D2D"];
    let k = names.get(kind as usize).copied().unwrap_or("?");
    let (d, sr) = (dst as u64, src as u64);
    call("rtMemcpy", format!("kind={k} dst={d:#x} destMax={destMax} src={sr:#x} cnt={cnt}"), |s| {
        if cnt > destMax || dst.is_null() || src.is_null() {
            return PARAM_INVALID;
        }
        let Ok(len) = usize::try_from(cnt) else { return PARAM_INVALID };
        let device = |a: u64| s.sim.is_device_address(DevAddr(a));
        match kind {
            sys::RT_MEMCPY_HOST_TO_DEVICE => {
                if device(sr) || s.capacity(d, cnt).is_none_or(|cap| destMax > cap) {
                    return PARAM_INVALID;
                }
                // SAFETY: the caller's contract: `src` holds `cnt` host bytes.
                let bytes = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), len) };
                if s.sim.copy_to_device(DevAddr(d), bytes).is_err() {
                    return PARAM_INVALID;
                }
            }
            sys::RT_MEMCPY_DEVICE_TO_HOST => {
                if device(d) || s.capacity(sr, cnt).is_none() {
                    return PARAM_INVALID;
                }
                // SAFETY: the caller's contract: `dst` has room for `destMax >= cnt` host bytes.
                let out = unsafe { std::slice::from_raw_parts_mut(dst.cast::<u8>(), len) };
                if s.sim.copy_from_device(DevAddr(sr), out).is_err() {
                    return PARAM_INVALID;
                }
            }
            sys::RT_MEMCPY_DEVICE_TO_DEVICE => {
                if s.capacity(sr, cnt).is_none() || s.capacity(d, cnt).is_none_or(|cap| destMax > cap) {
                    return PARAM_INVALID;
                }
                let mut tmp = vec![0u8; len];
                if s.sim.copy_from_device(DevAddr(sr), &mut tmp).is_err()
                    || s.sim.copy_to_device(DevAddr(d), &tmp).is_err()
                {
                    return PARAM_INVALID;
                }
            }
            _ => return PARAM_INVALID,
        }
        OK
    })
}

/// `rtMemset`.
#[no_mangle]
pub extern "C" fn rtMemset(devPtr: *mut c_void, destMax: u64, val: u32, cnt: u64) -> i32 {
    let d = devPtr as u64;
    call("rtMemset", format!("dst={d:#x} destMax={destMax} val={val} cnt={cnt}"), |s| {
        let Ok(value) = u8::try_from(val) else { return PARAM_INVALID };
        if cnt > destMax || s.capacity(d, cnt).is_none_or(|cap| destMax > cap) {
            return PARAM_INVALID;
        }
        match s.sim.memset(DevAddr(d), value, cnt) {
            Ok(()) => OK,
            Err(_) => PARAM_INVALID,
        }
    })
}

/// `rtStreamCreate`.
///
/// # Safety
/// `stm` must be valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn rtStreamCreate(stm: *mut rtStream_t, priority: i32) -> i32 {
    call("rtStreamCreate", format!("priority={priority}"), |s| {
        if stm.is_null() {
            return PARAM_INVALID;
        }
        let Ok(sim) = s.sim.stream_create() else { return sys::ACL_ERROR_RT_NO_STREAM_RESOURCE as i32 };
        let id = s.next_stream;
        s.next_stream += 1;
        s.streams.insert(id, StreamRec { sim, code: Vec::new(), last: LaunchKind::None });
        s.log.push(format!("  -> stream {id}"));
        // SAFETY: the caller's contract.
        unsafe { *stm = id as *mut c_void };
        OK
    })
}

/// `rtStreamSynchronize`.
#[no_mangle]
pub extern "C" fn rtStreamSynchronize(stm: rtStream_t) -> i32 {
    call("rtStreamSynchronize", format!("stream={}", stm as usize), |s| {
        let Some(id) = stream_of(s, stm) else { return sys::ACL_ERROR_RT_STREAM_CONTEXT as i32 };
        let sim = s.sim.clone();
        // The wait runs under the state lock: the host thread is the only caller meanwhile.
        let r = sim.stream_synchronize(id);
        s.sync_result(stm, r)
    })
}

/// `rtStreamSynchronizeWithTimeout`: `timeout` in milliseconds (−1: unbounded).
#[no_mangle]
pub extern "C" fn rtStreamSynchronizeWithTimeout(stm: rtStream_t, timeout: i32) -> i32 {
    call("rtStreamSynchronizeWithTimeout", format!("stream={} timeout_ms={timeout}", stm as usize), |s| {
        let Some(id) = stream_of(s, stm) else { return sys::ACL_ERROR_RT_STREAM_CONTEXT as i32 };
        let sim = s.sim.clone();
        let r = match timeout {
            -1 => sim.stream_synchronize(id),
            t if t > 0 => sim.stream_synchronize_timeout(id, Duration::from_millis(t as u64)),
            _ => return PARAM_INVALID,
        };
        s.sync_result(stm, r)
    })
}

/// `rtStreamAbort`.
#[no_mangle]
pub extern "C" fn rtStreamAbort(stm: rtStream_t) -> i32 {
    call("rtStreamAbort", format!("stream={}", stm as usize), |s| {
        let Some(id) = stream_of(s, stm) else { return sys::ACL_ERROR_RT_STREAM_CONTEXT as i32 };
        match s.sim.stream_abort(id) {
            Ok(()) => OK,
            Err(_) => PARAM_INVALID,
        }
    })
}

/// `rtStreamDestroy`.
#[no_mangle]
pub extern "C" fn rtStreamDestroy(stm: rtStream_t) -> i32 {
    call("rtStreamDestroy", format!("stream={}", stm as usize), |s| match s.streams.remove(&(stm as usize)) {
        Some(_) => OK,
        None => sys::ACL_ERROR_RT_STREAM_CONTEXT as i32,
    })
}

/// `rtRegisterAllKernel`: the simulated device's AICore program, recognised by its bytes.
///
/// # Safety
/// `bin` must point to a binary description whose `data` holds `length` bytes; `hdl` must be
/// valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn rtRegisterAllKernel(bin: *const rtDevBinary_t, hdl: *mut *mut c_void) -> i32 {
    // SAFETY: the caller's contract.
    let Some(b) = (unsafe { bin.as_ref() }) else { return PARAM_INVALID };
    call("rtRegisterAllKernel", format!("magic={:#x} length={}", b.magic, b.length), |s| {
        if hdl.is_null() || b.data.is_null() || b.magic != sys::RT_DEV_BINARY_MAGIC_ELF {
            return PARAM_INVALID;
        }
        let Ok(len) = usize::try_from(b.length) else { return PARAM_INVALID };
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(b.data.cast::<u8>(), len) };
        if bytes != SIM_AICORE_PROGRAM {
            s.log.push("  not the simulated device's AICore program".into());
            return sys::ACL_ERROR_RT_KERNEL_LOOKUP as i32;
        }
        let Ok(k) = s.sim.register_kernel_binary(bytes) else { return sys::ACL_ERROR_RT_KERNEL_LOOKUP as i32 };
        s.binaries.push(k);
        // SAFETY: the caller's contract.
        unsafe { *hdl = s.binaries.len() as *mut c_void };
        OK
    })
}

/// `rtKernelLaunchWithHandleV2`: batch mode, a one-word argument block (the `KernelArgs` address).
///
/// # Safety
/// `argsInfo` and `cfgInfo` must point to live structs; `argsInfo.args` must hold `argsSize` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtKernelLaunchWithHandleV2(
    hdl: *mut c_void,
    tilingKey: u64,
    numBlocks: u32,
    argsInfo: *mut rtArgsEx_t,
    smDesc: *mut rtSmDesc_t,
    stm: rtStream_t,
    cfgInfo: *const rtTaskCfgInfo_t,
) -> i32 {
    // SAFETY: the caller's contract.
    let (info, cfg) = unsafe { (argsInfo.as_ref(), cfgInfo.as_ref()) };
    let (Some(info), Some(cfg)) = (info, cfg) else { return PARAM_INVALID };
    let detail = format!(
        "handle={} blocks={numBlocks} argsSize={} schemMode={} stream={}",
        hdl as usize, info.argsSize, cfg.schemMode, stm as usize
    );
    call("rtKernelLaunchWithHandleV2", detail, |s| {
        let kernel = match (hdl as usize).checked_sub(1).and_then(|i| s.binaries.get(i)) {
            Some(&k) => k,
            None => return sys::ACL_ERROR_RT_INVALID_HANDLE as i32,
        };
        if tilingKey != 0 || !smDesc.is_null() || info.argsSize != 8 || info.args.is_null() || numBlocks == 0 {
            return PARAM_INVALID;
        }
        if u32::from(cfg.schemMode) != sys::RT_SCHEM_MODE_BATCH {
            s.log.push("  the AICore program launches in batch mode only".into());
            return PARAM_INVALID;
        }
        // SAFETY: the caller's contract: `args` holds 8 bytes.
        let word = unsafe { std::ptr::read_unaligned(info.args.cast::<u64>()) };
        s.launch(stm, LaunchKind::Aicore, kernel, numBlocks, word)
    })
}

/// `rtAicpuKernelLaunchExWithArgs`: a KFC kernel of the AICPU program the block names.
///
/// # Safety
/// `opName` must be a NUL-terminated string and `argsInfo` point to a live struct whose `args`
/// hold `argsSize` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtAicpuKernelLaunchExWithArgs(
    kernelType: u32,
    opName: *const c_char,
    numBlocks: u32,
    argsInfo: *const rtAicpuArgsEx_t,
    smDesc: *mut rtSmDesc_t,
    stm: rtStream_t,
    flags: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(info) = (unsafe { argsInfo.as_ref() }) else { return PARAM_INVALID };
    // SAFETY: the caller's contract.
    let op = if opName.is_null() { "" } else { unsafe { CStr::from_ptr(opName) }.to_str().unwrap_or("") };
    let block: Option<AicpuLaunchArgs> = (info.argsSize as usize == std::mem::size_of::<AicpuLaunchArgs>()
        && !info.args.is_null())
    .then(|| {
        // SAFETY: the caller's contract: `args` holds `argsSize` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(info.args.cast::<u8>(), info.argsSize as usize) };
        AicpuLaunchArgs::read_from_bytes(bytes).ok()
    })
    .flatten();
    let entry = block.as_ref().and_then(|b| field_name(&b.kernel_name)).unwrap_or("?").to_owned();
    let detail = format!(
        "type={kernelType} op={op} blocks={numBlocks} argsSize={} kernel={entry} stream={}",
        info.argsSize, stm as usize
    );
    call("rtAicpuKernelLaunchExWithArgs", detail, |s| {
        let Some(b) = block else { return PARAM_INVALID };
        if kernelType != sys::KERNEL_TYPE_AICPU_KFC || !smDesc.is_null() || flags != 0 || numBlocks == 0 {
            return PARAM_INVALID;
        }
        let so = field_name(&b.so_name);
        let names_ok = info.soNameAddrOffset as usize == std::mem::offset_of!(AicpuLaunchArgs, so_name)
            && info.kernelNameAddrOffset as usize == std::mem::offset_of!(AicpuLaunchArgs, kernel_name);
        if !names_ok || so != Some(AICPU_SO_NAME) {
            return PARAM_INVALID;
        }
        if s.read_bytes(b.so_addr, b.so_len).as_deref() != Some(SIM_AICPU_PROGRAM) {
            s.log.push("  the block does not name a device copy of the simulated device's AICPU program".into());
            return sys::ACL_ERROR_RT_KERNEL_LOOKUP as i32;
        }
        let kernel = match field_name(&b.kernel_name) {
            Some(AICPU_INIT_ENTRY) => s.boot,
            Some(AICPU_EXEC_ENTRY) => s.aicpu,
            _ => return sys::ACL_ERROR_RT_KERNEL_LOOKUP as i32,
        };
        s.launch(stm, LaunchKind::Aicpu, kernel, numBlocks, b.kernel_args)
    })
}

/// Test hook: copies the call log (one call per line, details indented below it) into `buf`
/// (at most `cap` bytes) and returns its full length.
///
/// # Safety
/// `buf` must be valid for `cap` bytes of writes (or null with `cap` 0).
#[no_mangle]
pub unsafe extern "C" fn pto_standin_log(buf: *mut u8, cap: usize) -> usize {
    let Some(s) = state() else { return 0 };
    let text = s.log.join("\n");
    let n = text.len().min(cap);
    if n > 0 {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n) };
    }
    text.len()
}

/// Test hook: forgets the call log.
#[no_mangle]
pub extern "C" fn pto_standin_clear_log() {
    if let Some(mut s) = state() {
        s.log.clear();
    }
}

/// Test hook: the `nth` call of `func` from now (1 = the next) fails with `code`.
///
/// # Safety
/// `func` must be a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn pto_standin_fail(func: *const c_char, nth: u64, code: i32) {
    // SAFETY: the caller's contract.
    let Ok(name) = unsafe { CStr::from_ptr(func) }.to_str() else { return };
    if let Some(mut s) = state() {
        s.arm(name, nth, code);
    }
}

/// Test hook: disarms every fault not yet fired.
#[no_mangle]
pub extern "C" fn pto_standin_clear_faults() {
    if let Some(mut s) = state() {
        s.faults.clear();
    }
}

/// Test hook: live allocations of the stand-in's device memory.
#[no_mangle]
pub extern "C" fn pto_standin_live_allocations() -> u64 {
    state().map_or(0, |s| s.allocs.len() as u64)
}
