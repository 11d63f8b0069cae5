//! A small in-memory `DeviceBackend` for the callable tests: allocations are `Vec<u8>`s at fake
//! device addresses, every call is counted, launches are recorded in order, and the N-th malloc or
//! copy can be made to fail.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use pto_host::abi::DevAddr;
use pto_host::backend::{BackendError, BackendOp, DeviceBackend, KernelHandle, StreamId};

/// One recorded kernel launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub kernel: KernelHandle,
    pub binary: Vec<u8>,
    pub block_dim: u32,
    pub args: DevAddr,
    /// The bytes at `args` when the launch was queued.
    pub args_bytes: Vec<u8>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub mallocs: u64,
    pub frees: u64,
    pub copies_to_device: u64,
    pub registrations: u64,
}

#[derive(Default)]
struct State {
    next: u64,
    allocs: BTreeMap<u64, Vec<u8>>,
    calls: Calls,
    fail_malloc: Option<u64>,
    fail_copy: Option<u64>,
    fail_register: Option<u64>,
    binaries: Vec<Vec<u8>>,
    launches: Vec<Launch>,
}

impl State {
    fn range(&mut self, op: BackendOp, addr: DevAddr, len: u64) -> Result<&mut [u8], BackendError> {
        let invalid = BackendError::InvalidRange { op, addr, len };
        let (&base, buf) = self.allocs.range_mut(..=addr.get()).next_back().ok_or(invalid.clone())?;
        let start = (addr.get() - base) as usize;
        let end = start.checked_add(len as usize).ok_or(invalid.clone())?;
        buf.get_mut(start..end).ok_or(invalid)
    }
}

#[derive(Default)]
pub struct MemBackend {
    state: Mutex<State>,
}

impl MemBackend {
    pub fn new() -> Self {
        MemBackend { state: Mutex::new(State { next: 0x10_0000_0000, ..State::default() }) }
    }
    pub fn calls(&self) -> Calls {
        self.state.lock().unwrap().calls
    }
    pub fn live_allocations(&self) -> usize {
        self.state.lock().unwrap().allocs.len()
    }
    /// The `nth` (1-based, counted from now) malloc fails.
    pub fn fail_malloc_in(&self, nth: u64) {
        let mut s = self.state.lock().unwrap();
        s.fail_malloc = Some(s.calls.mallocs + nth);
    }
    /// The `nth` (1-based, counted from now) copy to the device fails.
    pub fn fail_copy_in(&self, nth: u64) {
        let mut s = self.state.lock().unwrap();
        s.fail_copy = Some(s.calls.copies_to_device + nth);
    }
    /// The `nth` (1-based, counted from now) kernel registration fails.
    pub fn fail_register_in(&self, nth: u64) {
        let mut s = self.state.lock().unwrap();
        s.fail_register = Some(s.calls.registrations + nth);
    }
    pub fn read(&self, addr: DevAddr, len: u64) -> Vec<u8> {
        let mut buf = vec![0; len as usize];
        self.copy_from_device(addr, &mut buf).unwrap();
        buf
    }
    pub fn launches(&self) -> Vec<Launch> {
        self.state.lock().unwrap().launches.clone()
    }
}

impl DeviceBackend for MemBackend {
    fn name(&self) -> &'static str {
        "mem-test"
    }
    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError> {
        let mut s = self.state.lock().unwrap();
        s.calls.mallocs += 1;
        if s.fail_malloc == Some(s.calls.mallocs) {
            return Err(BackendError::InjectedFault { op: BackendOp::Malloc, nth: s.calls.mallocs });
        }
        let base = s.next;
        s.next += size.div_ceil(1024).max(1) * 1024 + 1024;
        s.allocs.insert(base, vec![0; size as usize]);
        Ok(DevAddr(base))
    }
    fn free(&self, addr: DevAddr) -> Result<(), BackendError> {
        let mut s = self.state.lock().unwrap();
        s.calls.frees += 1;
        s.allocs.remove(&addr.get()).map(|_| ()).ok_or(BackendError::InvalidRange { op: BackendOp::Free, addr, len: 0 })
    }
    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        let mut s = self.state.lock().unwrap();
        s.calls.copies_to_device += 1;
        if s.fail_copy == Some(s.calls.copies_to_device) {
            return Err(BackendError::InjectedFault { op: BackendOp::CopyToDevice, nth: s.calls.copies_to_device });
        }
        s.range(BackendOp::CopyToDevice, dst, src.len() as u64)?.copy_from_slice(src);
        Ok(())
    }
    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        let mut s = self.state.lock().unwrap();
        dst.copy_from_slice(s.range(BackendOp::CopyFromDevice, src, dst.len() as u64)?);
        Ok(())
    }
    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        let mut s = self.state.lock().unwrap();
        s.range(BackendOp::Memset, dst, len)?.fill(value);
        Ok(())
    }
    fn stream_create(&self) -> Result<StreamId, BackendError> {
        Ok(StreamId(0))
    }
    fn stream_synchronize(&self, _stream: StreamId) -> Result<(), BackendError> {
        Ok(())
    }
    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        let mut s = self.state.lock().unwrap();
        s.calls.registrations += 1;
        if s.fail_register == Some(s.calls.registrations) {
            return Err(BackendError::InjectedFault { op: BackendOp::RegisterKernel, nth: s.calls.registrations });
        }
        s.binaries.push(binary.to_vec());
        Ok(KernelHandle(s.binaries.len() as u32 - 1))
    }
    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        _stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError> {
        let mut s = self.state.lock().unwrap();
        let binary = s.binaries.get(kernel.0 as usize).cloned().ok_or(BackendError::InvalidArgument {
            op: BackendOp::Launch,
            detail: format!("unknown kernel handle {}", kernel.0),
        })?;
        let args_bytes = s.range(BackendOp::Launch, args, 96)?.to_vec();
        s.launches.push(Launch { kernel, binary, block_dim, args, args_bytes });
        Ok(())
    }
}
