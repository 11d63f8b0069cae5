//! The runner is backend-neutral: built from an `Arc<dyn DeviceBackend>` that is not the simulated
//! device's own type (a wrapper forwarding every call), it runs the vector example, asks the
//! backend for its programs and code, and a backend that cannot run host functions refuses a
//! plain request with the backend's own error.

mod callable_support;

use std::sync::Arc;

use callable_support::{Call, Recording};
use pto_abi::sizing::ArenaSizingKey;
use pto_device::runtime::Budgets;
use pto_host::examples::{
    define_vector_symbols, vector_args, vector_example_callable, vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS,
    VECTOR_RESULT_ARG,
};
use pto_host::sim::{SimBackend, SIM_AICORE_ENTRY, SIM_AICPU_ENTRY};
use pto_host::{
    BackendError, CallableRunConfig, CallableRunError, CodeError, CodeRef, DeviceBackend, DeviceProgram, DeviceRunner,
    KernelHandle, LoadedCode, RunCode, RunError, RunMode, RunRequest, StreamId,
};

const SIZING: ArenaSizingKey = ArenaSizingKey::uniform(64, 1 << 20, 256);
const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };

fn device() -> (Arc<SimBackend>, Arc<Recording>) {
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
    define_vector_symbols(&mut sim.symbols()).unwrap();
    let rec = Arc::new(Recording::new(sim.clone()));
    (sim, rec)
}

#[test]
fn a_runner_on_a_dyn_backend_runs_the_vector_example_by_request_and_by_callable() {
    let (sim, rec) = device();
    let backend: Arc<dyn DeviceBackend> = rec.clone();
    let mut runner = DeviceRunner::new(backend);
    let args = vector_args();

    let req = RunRequest {
        orchestration: vector_orchestration,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: SIZING,
        mode: THREADED,
        budgets: Budgets::DEFAULT,
    };
    let report = runner.run(&req).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED));

    runner.register_callable(3, &vector_example_callable().unwrap()).unwrap();
    let config = CallableRunConfig { sizing: SIZING, mode: THREADED, budgets: Budgets::DEFAULT };
    let report = runner.run_callable(3, &args, &config).unwrap();
    assert_eq!((report.tasks_submitted, report.tasks_completed), (5, 5));
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED));

    // The programs were asked of the backend, once each for the runner's lifetime.
    let registered: Vec<Vec<u8>> = rec
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Register(binary, _) => Some(binary),
            _ => None,
        })
        .collect();
    assert_eq!(registered, [SIM_AICORE_ENTRY.as_bytes(), SIM_AICPU_ENTRY.as_bytes()]);
    assert_eq!(sim.code().loaded_counts(), (0, 0), "no run's code stays loaded");
    runner.finalize().unwrap();
    assert_eq!(sim.live_allocations(), 0);
}

/// A device that runs only its own firmware: it carries the vector example's names, refuses host
/// functions, and otherwise forwards to the simulated device.
struct FirmwareOnly(Recording);

impl DeviceBackend for FirmwareOnly {
    fn name(&self) -> &'static str {
        "firmware-only"
    }
    fn malloc(&self, size: u64) -> Result<pto_abi::DevAddr, BackendError> {
        self.0.malloc(size)
    }
    fn free(&self, addr: pto_abi::DevAddr) -> Result<(), BackendError> {
        self.0.free(addr)
    }
    fn copy_to_device(&self, dst: pto_abi::DevAddr, src: &[u8]) -> Result<(), BackendError> {
        self.0.copy_to_device(dst, src)
    }
    fn copy_from_device(&self, src: pto_abi::DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        self.0.copy_from_device(src, dst)
    }
    fn memset(&self, dst: pto_abi::DevAddr, value: u8, len: u64) -> Result<(), BackendError> {
        self.0.memset(dst, value, len)
    }
    fn stream_create(&self) -> Result<StreamId, BackendError> {
        self.0.stream_create()
    }
    fn stream_synchronize(&self, stream: StreamId) -> Result<(), BackendError> {
        self.0.stream_synchronize(stream)
    }
    fn stream_synchronize_timeout(&self, stream: StreamId, timeout: std::time::Duration) -> Result<(), BackendError> {
        self.0.stream_synchronize_timeout(stream, timeout)
    }
    fn stream_abort(&self, stream: StreamId) -> Result<(), BackendError> {
        self.0.stream_abort(stream)
    }
    fn register_kernel_binary(&self, binary: &[u8]) -> Result<KernelHandle, BackendError> {
        self.0.register_kernel_binary(binary)
    }
    fn register_program(&self, program: DeviceProgram) -> Result<KernelHandle, BackendError> {
        self.0.register_program(program)
    }
    fn check_code(&self, code: &RunCode<'_>) -> Result<(), CodeError> {
        let host = matches!(code.orchestration, CodeRef::Host(_))
            || code.kernels.iter().any(|(_, k)| matches!(k, CodeRef::Host(_)));
        if host {
            return Err(CodeError::Unsupported { backend: self.name(), what: "host functions".into() });
        }
        self.0.check_code(code)
    }
    fn launch_kernel(
        &self,
        kernel: KernelHandle,
        stream: StreamId,
        block_dim: u32,
        args: pto_abi::DevAddr,
    ) -> Result<(), BackendError> {
        self.0.launch_kernel(kernel, stream, block_dim, args)
    }
    fn load_code(&self, code: &RunCode<'_>) -> Result<LoadedCode, CodeError> {
        self.check_code(code)?;
        self.0.load_code(code)
    }
}

#[test]
fn a_backend_that_refuses_host_functions_still_runs_registered_callables() {
    let (sim, _) = device();
    let mut runner = DeviceRunner::new(Arc::new(FirmwareOnly(Recording::new(sim.clone()))) as Arc<dyn DeviceBackend>);
    let args = vector_args();
    let req = RunRequest {
        orchestration: vector_orchestration,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: SIZING,
        mode: THREADED,
        budgets: Budgets::DEFAULT,
    };
    let err = runner.run(&req).unwrap_err();
    assert!(matches!(&err, RunError::Code(CodeError::Unsupported { backend: "firmware-only", .. })), "{err}");
    assert_eq!(sim.counters().launches, 0, "nothing was launched");
    assert_eq!(runner.allocator().live_allocations(), 3, "the staged tensors were freed: only the static regions stay");

    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let config = CallableRunConfig { sizing: SIZING, mode: THREADED, budgets: Budgets::DEFAULT };
    let report = runner.run_callable(0, &args, &config).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&f| f == VECTOR_EXPECTED));
    assert!(matches!(runner.run_callable(1, &args, &config), Err(CallableRunError::NotRegistered { cid: 1 })));
}
