//! A library with the stand-in runtime's C interface minus `rtStreamAbort`: loading the onboard
//! backend from it must fail and name the missing function. Every function returns 0.
#![allow(non_snake_case, missing_docs, clippy::missing_safety_doc)]
use std::ffi::c_void;

macro_rules! export {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(#[no_mangle] pub extern "C" fn $name($($arg: $ty),*) -> i32 { $(let _ = $arg;)* 0 })*
    };
}

export! {
    rtSetDevice(d: i32);
    rtDeviceReset(d: i32);
    rtMemcpy(dst: *mut c_void, max: u64, src: *const c_void, cnt: u64, kind: u32);
    rtMalloc(p: *mut *mut c_void, size: u64, ty: u32, module: u16);
    rtFree(p: *mut c_void);
    rtMemset(p: *mut c_void, max: u64, val: u32, cnt: u64);
    rtStreamCreate(s: *mut *mut c_void, prio: i32);
    rtStreamSynchronize(s: *mut c_void);
    rtStreamSynchronizeWithTimeout(s: *mut c_void, t: i32);
    rtStreamDestroy(s: *mut c_void);
    rtRegisterAllKernel(b: *const c_void, h: *mut *mut c_void);
    rtAicpuKernelLaunchExWithArgs(t: u32, op: *const u8, n: u32, a: *const c_void, sm: *mut c_void, s: *mut c_void, f: u32);
    rtKernelLaunchWithHandleV2(h: *mut c_void, k: u64, n: u32, a: *mut c_void, sm: *mut c_void, s: *mut c_void, c: *const c_void);
}
