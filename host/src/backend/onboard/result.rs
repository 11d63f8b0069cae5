//! The `result` layer: every vendor call returns a `Result`, and a failing `rtError_t` becomes an
//! [`RtError`] carrying the call, the code, its name and its meaning as the public CANN headers
//! (`rt_error_codes.h`) document them, never a bare number.
//!
//! Each function here is one thin, safe-to-call wrapper over one `sys` function: it checks what
//! the vendor cannot (lengths that do not fit its integer types) and turns the status into a
//! `Result`. Pointer validity is the caller's business: the functions taking device pointers are
//! `unsafe`.

use std::ffi::{c_void, CStr};
use std::fmt;

use super::sys;

/// A documented runtime error code: its number, its name in `rt_error_codes.h`, its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtCode {
    /// The `rtError_t` value.
    pub code: i32,
    /// The macro name in the public header.
    pub name: &'static str,
    /// What the header says it means.
    pub meaning: &'static str,
}

macro_rules! rt_codes {
    ($($name:ident => $meaning:literal,)*) => {
        /// Every code this backend names, as the public headers document them.
        pub const RT_CODES: &[RtCode] = &[
            $(RtCode { code: sys::$name as i32, name: stringify!($name), meaning: $meaning },)*
        ];
    };
}

rt_codes! {
    ACL_ERROR_RT_PARAM_INVALID => "invalid value (a parameter is invalid)",
    ACL_ERROR_RT_INVALID_DEVICEID => "invalid device id",
    ACL_ERROR_RT_CONTEXT_NULL => "no current context (the device was not set on this thread)",
    ACL_ERROR_RT_STREAM_CONTEXT => "the stream is not in the current context",
    ACL_ERROR_RT_ADDR_UNALIGNED => "memory address unaligned",
    ACL_ERROR_RT_INVALID_MEMORY_TYPE => "invalid memory type",
    ACL_ERROR_RT_INVALID_HANDLE => "invalid handle",
    ACL_ERROR_RT_WAIT_TIMEOUT => "wait timeout",
    ACL_ERROR_RT_TASK_TIMEOUT => "task timeout",
    ACL_ERROR_RT_DEVICE_TASK_ABORT => "device task aborting",
    ACL_ERROR_RT_STREAM_ABORT => "stream aborting",
    ACL_ERROR_RT_FEATURE_NOT_SUPPORT => "feature not supported",
    ACL_ERROR_RT_MEMORY_ALLOCATION => "memory allocation failure (out of device memory)",
    ACL_ERROR_RT_MEMORY_FREE => "memory free failure",
    ACL_ERROR_RT_NO_DEVICE => "no device",
    ACL_ERROR_RT_RESOURCE_ALLOC_FAIL => "resource allocation failure",
    ACL_ERROR_RT_NO_STREAM_RESOURCE => "no stream resource",
    ACL_ERROR_RT_DEVICE_OOM => "device out of memory",
    ACL_ERROR_RT_INTERNAL_ERROR => "runtime internal error",
    ACL_ERROR_RT_STREAM_NOT_COMPLETE => "stream not complete",
    ACL_ERROR_RT_AICORE_TIMEOUT => "AICore timeout",
    ACL_ERROR_RT_AICORE_EXCEPTION => "AICore exception",
    ACL_ERROR_RT_AICPU_TIMEOUT => "AICPU timeout",
    ACL_ERROR_RT_AICPU_EXCEPTION => "AICPU exception",
    ACL_ERROR_RT_KERNEL_LOOKUP => "kernel lookup error",
    ACL_ERROR_RT_STREAM_SYNC_TIMEOUT => "stream synchronize timeout",
    ACL_ERROR_RT_DRV_INTERNAL_ERROR => "driver internal error",
}

/// The documented description of `code`, if the headers name it.
pub fn describe(code: i32) -> Option<&'static RtCode> {
    RT_CODES.iter().find(|c| c.code == code)
}

/// A failed vendor runtime call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtError {
    /// The C function that failed (`rtMalloc` …).
    pub call: &'static str,
    /// The `rtError_t` it returned (or [`RtError::LOCAL`] for a check made before calling).
    pub code: i32,
    /// The name of the code in the public header, when it names it.
    pub name: Option<&'static str>,
    /// What the code means (the header's words, or what the local check found).
    pub meaning: String,
}

impl RtError {
    /// The code of an error found by this layer before the call (the vendor was not called).
    pub const LOCAL: i32 = -1;

    /// The error `call` returned `code`.
    pub fn from_code(call: &'static str, code: i32) -> Self {
        match describe(code) {
            Some(c) => RtError { call, code, name: Some(c.name), meaning: c.meaning.to_string() },
            None => {
                RtError { call, code, name: None, meaning: "a code the public runtime headers do not document".into() }
            }
        }
    }

    /// An argument this layer refused before calling `call`.
    pub fn local(call: &'static str, meaning: impl Into<String>) -> Self {
        RtError { call, code: Self::LOCAL, name: None, meaning: meaning.into() }
    }

    /// True when the code is `code`.
    pub fn is(&self, code: u32) -> bool {
        self.code == code as i32
    }
}

impl fmt::Display for RtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.name) {
            (Self::LOCAL, _) => write!(f, "{}: not called: {}", self.call, self.meaning),
            (code, Some(name)) => write!(f, "{} failed with {code} ({name}: {})", self.call, self.meaning),
            (code, None) => write!(f, "{} failed with {code} ({})", self.call, self.meaning),
        }
    }
}

impl std::error::Error for RtError {}

/// The result of one vendor call.
pub type RtResult<T> = Result<T, RtError>;

fn check(call: &'static str, code: sys::rtError_t) -> RtResult<()> {
    if code == sys::RT_ERROR_NONE as sys::rtError_t {
        Ok(())
    } else {
        Err(RtError::from_code(call, code))
    }
}

/// `rtSetDevice`: makes `device` the calling thread's device.
pub fn set_device(rt: &sys::CannRuntime, device: i32) -> RtResult<()> {
    // SAFETY: plain integer argument.
    check("rtSetDevice", unsafe { rt.rtSetDevice(device) })
}

/// `rtDeviceReset`: releases what this process holds on `device`.
pub fn device_reset(rt: &sys::CannRuntime, device: i32) -> RtResult<()> {
    // SAFETY: plain integer argument.
    check("rtDeviceReset", unsafe { rt.rtDeviceReset(device) })
}

/// `rtMalloc(&p, size, RT_MEMORY_HBM, 0)`: `size` bytes of HBM.
pub fn malloc_hbm(rt: &sys::CannRuntime, size: u64) -> RtResult<u64> {
    let mut p: *mut c_void = std::ptr::null_mut();
    // SAFETY: `p` is a valid out-pointer for the call's duration.
    check("rtMalloc", unsafe { rt.rtMalloc(&mut p, size, sys::RT_MEMORY_HBM, 0) })?;
    if p.is_null() {
        return Err(RtError::local("rtMalloc", "returned success with a null pointer"));
    }
    Ok(p as u64)
}

/// `rtFree`.
///
/// # Safety
/// `dev` must be a live allocation of this runtime that no queued work still uses.
pub unsafe fn free(rt: &sys::CannRuntime, dev: u64) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtFree", unsafe { rt.rtFree(dev as usize as *mut c_void) })
}

/// `rtMemcpy(dst, dst_capacity, src, len, HOST_TO_DEVICE)`.
///
/// # Safety
/// `dst` must be device memory with at least `dst_capacity` bytes up to the end of its allocation.
pub unsafe fn memcpy_h2d(rt: &sys::CannRuntime, dst: u64, dst_capacity: u64, src: &[u8]) -> RtResult<()> {
    let kind = sys::RT_MEMCPY_HOST_TO_DEVICE;
    // SAFETY: `src` is a live host slice of `src.len()` bytes; `dst` per the caller's contract.
    check("rtMemcpy", unsafe {
        rt.rtMemcpy(dst as usize as *mut c_void, dst_capacity, src.as_ptr().cast(), src.len() as u64, kind)
    })
}

/// `rtMemcpy(dst, dst.len(), src, dst.len(), DEVICE_TO_HOST)`.
///
/// # Safety
/// `src` must be device memory holding at least `dst.len()` bytes of one allocation.
pub unsafe fn memcpy_d2h(rt: &sys::CannRuntime, dst: &mut [u8], src: u64) -> RtResult<()> {
    let kind = sys::RT_MEMCPY_DEVICE_TO_HOST;
    let len = dst.len() as u64;
    // SAFETY: `dst` is a live host slice whose real capacity is `len`; `src` per the contract.
    check("rtMemcpy", unsafe { rt.rtMemcpy(dst.as_mut_ptr().cast(), len, src as usize as *const c_void, len, kind) })
}

/// `rtMemset(dst, dst_capacity, value, len)`.
///
/// # Safety
/// `dst` must be device memory with at least `dst_capacity` bytes up to the end of its allocation.
pub unsafe fn memset(rt: &sys::CannRuntime, dst: u64, dst_capacity: u64, value: u8, len: u64) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtMemset", unsafe { rt.rtMemset(dst as usize as *mut c_void, dst_capacity, u32::from(value), len) })
}

/// `rtStreamCreate(&s, 0)`.
pub fn stream_create(rt: &sys::CannRuntime) -> RtResult<sys::rtStream_t> {
    let mut s: sys::rtStream_t = std::ptr::null_mut();
    // SAFETY: `s` is a valid out-pointer for the call's duration.
    check("rtStreamCreate", unsafe { rt.rtStreamCreate(&mut s, 0) })?;
    Ok(s)
}

/// `rtStreamSynchronize`.
///
/// # Safety
/// `s` must be a live stream of this runtime.
pub unsafe fn stream_synchronize(rt: &sys::CannRuntime, s: sys::rtStream_t) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtStreamSynchronize", unsafe { rt.rtStreamSynchronize(s) })
}

/// `rtStreamSynchronizeWithTimeout(s, timeout_ms)`.
///
/// # Safety
/// `s` must be a live stream of this runtime.
pub unsafe fn stream_synchronize_timeout(rt: &sys::CannRuntime, s: sys::rtStream_t, timeout_ms: i32) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtStreamSynchronizeWithTimeout", unsafe { rt.rtStreamSynchronizeWithTimeout(s, timeout_ms) })
}

/// `rtStreamAbort`.
///
/// # Safety
/// `s` must be a live stream of this runtime.
pub unsafe fn stream_abort(rt: &sys::CannRuntime, s: sys::rtStream_t) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtStreamAbort", unsafe { rt.rtStreamAbort(s) })
}

/// `rtStreamDestroy`.
///
/// # Safety
/// `s` must be a live stream of this runtime; it is dead afterwards.
pub unsafe fn stream_destroy(rt: &sys::CannRuntime, s: sys::rtStream_t) -> RtResult<()> {
    // SAFETY: the caller's contract.
    check("rtStreamDestroy", unsafe { rt.rtStreamDestroy(s) })
}

/// `rtRegisterAllKernel` of `binary` with `magic`; returns the binary handle.
pub fn register_all_kernel(rt: &sys::CannRuntime, magic: u32, binary: &[u8]) -> RtResult<*mut c_void> {
    if binary.is_empty() {
        return Err(RtError::local("rtRegisterAllKernel", "the binary is empty"));
    }
    let bin = sys::rtDevBinary_t { magic, version: 0, data: binary.as_ptr().cast(), length: binary.len() as u64 };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: `bin` describes a live host buffer; `handle` is a valid out-pointer.
    check("rtRegisterAllKernel", unsafe { rt.rtRegisterAllKernel(&bin, &mut handle) })?;
    Ok(handle)
}

/// `rtKernelLaunchWithHandleV2(handle, 0, blocks, {args}, NULL, s, {schemMode = BATCH})`: the
/// runtime copies `args` to the device and the kernel receives that copy.
///
/// # Safety
/// `handle` must come from [`register_all_kernel`] and `s` be a live stream of this runtime.
pub unsafe fn launch_with_handle_batch(
    rt: &sys::CannRuntime,
    handle: *mut c_void,
    blocks: u32,
    args: &mut [u8],
    s: sys::rtStream_t,
) -> RtResult<()> {
    let args_size = u32::try_from(args.len())
        .map_err(|_| RtError::local("rtKernelLaunchWithHandleV2", "the argument block exceeds 4 GiB"))?;
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut info: sys::rtArgsEx_t = unsafe { std::mem::zeroed() };
    info.args = args.as_mut_ptr().cast();
    info.argsSize = args_size;
    // SAFETY: as above.
    let mut cfg: sys::rtTaskCfgInfo_t = unsafe { std::mem::zeroed() };
    cfg.schemMode = sys::RT_SCHEM_MODE_BATCH as u8;
    let smdesc = std::ptr::null_mut();
    // SAFETY: `info` and `cfg` outlive the call (the runtime copies the arguments before it
    // returns); handle and stream per the caller's contract.
    check("rtKernelLaunchWithHandleV2", unsafe {
        rt.rtKernelLaunchWithHandleV2(handle, 0, blocks, &mut info, smdesc, s, &cfg)
    })
}

/// `rtAicpuKernelLaunchExWithArgs(KERNEL_TYPE_AICPU_KFC, op_name, blocks, {args, offsets}, NULL,
/// s, 0)`: the runtime copies `args` to the device; the AICPU runtime finds the shared object and
/// the kernel by the NUL-terminated names at `so_name_offset` and `kernel_name_offset` in `args`.
///
/// # Safety
/// `s` must be a live stream of this runtime.
pub unsafe fn aicpu_launch_kfc(
    rt: &sys::CannRuntime,
    op_name: &CStr,
    blocks: u32,
    args: &mut [u8],
    so_name_offset: u32,
    kernel_name_offset: u32,
    s: sys::rtStream_t,
) -> RtResult<()> {
    let call = "rtAicpuKernelLaunchExWithArgs";
    let args_size = u32::try_from(args.len()).map_err(|_| RtError::local(call, "the argument block exceeds 4 GiB"))?;
    if so_name_offset >= args_size || kernel_name_offset >= args_size {
        return Err(RtError::local(call, "a name offset lies outside the argument block"));
    }
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: sys::rtAicpuArgsEx_t = unsafe { std::mem::zeroed() };
    info.args = args.as_mut_ptr().cast();
    info.argsSize = args_size;
    info.soNameAddrOffset = so_name_offset;
    info.kernelNameAddrOffset = kernel_name_offset;
    let kind = sys::KERNEL_TYPE_AICPU_KFC;
    // SAFETY: `info` and `op_name` outlive the call (the runtime copies the block before it
    // returns); the stream per the caller's contract.
    check(call, unsafe {
        rt.rtAicpuKernelLaunchExWithArgs(kind, op_name.as_ptr(), blocks, &info, std::ptr::null_mut(), s, 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_carry_their_name_and_meaning() {
        let e = RtError::from_code("rtMalloc", 207001);
        assert_eq!(e.name, Some("ACL_ERROR_RT_MEMORY_ALLOCATION"));
        assert_eq!(e.to_string(), "rtMalloc failed with 207001 (ACL_ERROR_RT_MEMORY_ALLOCATION: memory allocation failure (out of device memory))");
        assert_eq!(RtError::from_code("rtMemcpy", 107000).name, Some("ACL_ERROR_RT_PARAM_INVALID"));
        assert_eq!(RtError::from_code("x", 507046).name, Some("ACL_ERROR_RT_STREAM_SYNC_TIMEOUT"));
        let unknown = RtError::from_code("rtFree", 123);
        assert_eq!(unknown.to_string(), "rtFree failed with 123 (a code the public runtime headers do not document)");
        let mut codes: Vec<i32> = RT_CODES.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RT_CODES.len(), "each code is named once");
    }
}
