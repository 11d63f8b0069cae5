//! Helpers shared by the callable tests: a simulated device with a tracking allocator, the vector
//! example's names in its name tables, and a backend wrapper that records registrations and
//! launches.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pto_abi::DevAddr;
use pto_device::kernel::KernelInvocation;
use pto_device::orch::{OrchArgs, OrchError, OrchestrationFn, Orchestrator};
use pto_host::examples::{VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION};
use pto_host::sim::{SimBackend, Symbols};
use pto_host::{
    BackendError, CodeError, DeviceBackend, DeviceProgram, KernelFn, KernelHandle, LoadedCode, RunCode, StreamId,
    TrackingAllocator,
};

/// A simulated device with a 256 MiB pool.
pub fn sim() -> Arc<SimBackend> {
    Arc::new(SimBackend::with_capacity(256 << 20).expect("reserve the simulated device pool"))
}

/// A tracking allocator on `sim` (what a runner allocates through).
pub fn tracker(sim: &Arc<SimBackend>) -> TrackingAllocator {
    TrackingAllocator::new(sim.clone() as Arc<dyn DeviceBackend>)
}

/// The orchestration these tests register under the vector example's name (never run).
pub fn orch_vector(_: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
    Ok(())
}
// The three test kernels never run. Tests tell kernels apart by address, so each has a body of its
// own (identical functions may be merged) and is `inline(never)` (an optimised build may otherwise
// give a small function a local copy, with its own address, in every codegen unit).
/// Stands in for the vector example's `add`.
#[inline(never)]
pub fn k_add(_: &KernelInvocation<'_>) {
    std::hint::black_box(1u32);
}
/// Stands in for the vector example's `add_scalar`.
#[inline(never)]
pub fn k_add_scalar(_: &KernelInvocation<'_>) {
    std::hint::black_box(2u32);
}
/// Stands in for the vector example's `mul`.
#[inline(never)]
pub fn k_mul(_: &KernelInvocation<'_>) {
    std::hint::black_box(3u32);
}

/// A simulated device whose name tables hold the vector example's names, bound to test kernels.
pub fn sim_with_vector_symbols() -> Arc<SimBackend> {
    let sim = sim();
    define_test_symbols(&mut sim.symbols());
    sim
}

/// Defines the vector example's names in `s`, bound to test kernels that do nothing.
pub fn define_test_symbols(s: &mut Symbols) {
    s.kernels.define(VECTOR_ADD, k_add as KernelFn).unwrap();
    s.kernels.define(VECTOR_ADD_SCALAR, k_add_scalar as KernelFn).unwrap();
    s.kernels.define(VECTOR_MUL, k_mul as KernelFn).unwrap();
    s.orchestrations.define(VECTOR_ORCHESTRATION, orch_vector as OrchestrationFn).unwrap();
}

/// Reads `len` bytes of device memory.
pub fn read(backend: &dyn DeviceBackend, addr: DevAddr, len: u64) -> Vec<u8> {
    let mut buf = vec![0; len as usize];
    backend.copy_from_device(addr, &mut buf).expect("read device memory");
    buf
}

/// A backend call the [`Recording`] wrapper saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `register_kernel_binary(binary)` → handle.
    Register(Vec<u8>, KernelHandle),
    /// `launch_kernel`.
    Launch { kernel: KernelHandle, stream: StreamId, block_dim: u32, args: DevAddr },
}

/// Forwards to a [`SimBackend`] and records registrations and launches in call order; its
/// AICore and AICPU programs are the sim entries it was given.
pub struct Recording {
    pub inner: Arc<SimBackend>,
    pub calls: Mutex<Vec<Call>>,
    /// Entry names of the AICore and AICPU programs.
    pub programs: (&'static str, &'static str),
}

impl Recording {
    /// A recording backend whose programs are the sim's built-in entries.
    pub fn new(inner: Arc<SimBackend>) -> Self {
        Self::with_programs(inner, pto_host::sim::SIM_AICORE_ENTRY, pto_host::sim::SIM_AICPU_ENTRY)
    }
    /// A recording backend launching the entries `aicore` and `aicpu` as its programs.
    pub fn with_programs(inner: Arc<SimBackend>, aicore: &'static str, aicpu: &'static str) -> Self {
        Recording { inner, calls: Mutex::new(Vec::new()), programs: (aicore, aicpu) }
    }
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl DeviceBackend for Recording {
    fn name(&self) -> &'static str {
        "recording-sim"
    }
    fn malloc(&self, size: u64) -> Result<DevAddr, BackendError> {
        self.inner.malloc(size)
    }
    fn free(&self, addr: DevAddr) -> Result<(), BackendError> {
        self.inner.free(addr)
    }
    fn copy_to_device(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        self.inner.copy_to_device(dst, src)
    }
    fn copy_from_device(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        self.inner.copy_from_device(src, dst)
    }
    fn memset(&self, dst: DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        self.inner.memset(dst, value, len)
    }
    fn stream_create(&self) -> Result<StreamId, BackendError> {
        self.inner.stream_create()
    }
    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError> {
        self.inner.stream_synchronize(stream)
    }
    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: Duration) -> Result<(), BackendError> {
        self.inner.stream_synchronize_timeout(stream, timeout)
    }
    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError> {
        self.inner.stream_abort(stream)
    }
    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        let handle = self.inner.register_kernel_binary(binary)?;
        self.calls.lock().unwrap().push(Call::Register(binary.to_vec(), handle));
        Ok(handle)
    }
    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError> {
        match program {
            DeviceProgram::Aicore => self.register_kernel_binary(self.programs.0.as_bytes()),
            DeviceProgram::Aicpu => self.register_kernel_binary(self.programs.1.as_bytes()),
            DeviceProgram::Boot => self.register_kernel_binary(pto_host::sim::SIM_BOOT_ENTRY.as_bytes()),
        }
    }
    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError> {
        self.inner.check_code(code)
    }
    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError> {
        self.inner.load_code(code)
    }
    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: DevAddr,
    ) -> Result<(), BackendError> {
        self.inner.launch_kernel(kernel, stream, block_dim, args)?;
        self.calls.lock().unwrap().push(Call::Launch { kernel, stream, block_dim, args });
        Ok(())
    }
}
