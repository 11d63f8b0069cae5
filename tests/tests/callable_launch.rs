//! Kernel launches: lazy once-per-runner binary registration, AICore before AICPU, `KernelArgs`
//! as a device copy; and N launches of one registered cid upload once and register AICore once.

mod callable_support;

use callable_support::MemBackend;
use pto_abi::launch::{KernelArgs, LaunchDescriptor};
use pto_abi::DevAddr;
use pto_device::kernel::{KernelInvocation, SimKernelFn};
use pto_host::backend::{BackendError, BackendOp, DeviceBackend};
use pto_host::callable::example::{
    vector_example_callable, VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL, VECTOR_ORCHESTRATION,
};
use pto_host::callable::{CallableRegistry, KernelLauncher, LaunchShape, LaunchStep, Symbols};
use zerocopy::{FromZeros, IntoBytes};

const AICORE: &[u8] = b"aicore-binary";
const AICPU: &[u8] = b"aicpu-binary";

fn kernel_args(tag: u64) -> KernelArgs {
    let mut args = KernelArgs::new_zeroed();
    args.runtime_desc = DevAddr(0x1000 + tag);
    args.register_table = DevAddr(0x2000 + tag);
    args.core_count = 72;
    args.block_dim = 24;
    args
}

const SHAPES: (LaunchShape, LaunchShape) = (LaunchShape { block_dim: 24 }, LaunchShape { block_dim: 4 });

#[test]
fn aicore_is_launched_before_aicpu_with_a_device_copy_of_kernel_args() {
    let backend = MemBackend::new();
    let stream = backend.stream_create().unwrap();
    let mut launcher = KernelLauncher::new(AICORE.to_vec(), AICPU.to_vec());
    let args = kernel_args(1);
    let addr = launcher.launch(&backend, stream, &args, SHAPES.0, SHAPES.1).unwrap();
    let launches = backend.launches();
    assert_eq!(launches.len(), 2);
    assert_eq!(launches[0].binary, AICORE);
    assert_eq!(launches[0].block_dim, 24);
    assert_eq!(launches[1].binary, AICPU);
    assert_eq!(launches[1].block_dim, 4);
    for l in &launches {
        assert_eq!(l.args, addr);
        assert_eq!(l.args_bytes, args.as_bytes(), "the kernel sees the KernelArgs copy");
    }
    assert_eq!(launcher.kernel_args_addr(), Some(addr));
}

#[test]
fn binaries_register_once_per_runner_and_args_are_rewritten_in_place() {
    let backend = MemBackend::new();
    let stream = backend.stream_create().unwrap();
    let mut launcher = KernelLauncher::new(AICORE.to_vec(), AICPU.to_vec());
    for tag in 0..5 {
        launcher.launch(&backend, stream, &kernel_args(tag), SHAPES.0, SHAPES.1).unwrap();
    }
    let c = launcher.counters();
    assert_eq!((c.aicore_registrations, c.aicpu_registrations), (1, 1));
    assert_eq!((c.aicore_launches, c.aicpu_launches), (5, 5));
    assert_eq!(backend.calls().registrations, 2);
    assert_eq!(backend.calls().mallocs, 1, "one KernelArgs copy for the runner's lifetime");
    let launches = backend.launches();
    assert_eq!(launches[8].args_bytes, kernel_args(4).as_bytes());
    assert_ne!(launches[0].args_bytes, launches[8].args_bytes);
    assert!(launches.iter().step_by(2).all(|l| l.binary == AICORE && l.kernel == launches[0].kernel));

    launcher.release(&backend).unwrap();
    assert_eq!(backend.live_allocations(), 0);
}

#[test]
fn a_failed_registration_is_not_cached_and_nothing_is_launched() {
    let backend = MemBackend::new();
    let stream = backend.stream_create().unwrap();
    let mut launcher = KernelLauncher::new(AICORE.to_vec(), AICPU.to_vec());
    backend.fail_register_in(1);
    let err = launcher.launch(&backend, stream, &kernel_args(0), SHAPES.0, SHAPES.1).unwrap_err();
    assert_eq!(err.step, LaunchStep::RegisterAicore);
    assert_eq!(err.source, BackendError::InjectedFault { op: BackendOp::RegisterKernel, nth: 1 });
    assert!(backend.launches().is_empty(), "the AICPU is never launched without its AICore");
    assert_eq!(launcher.aicore_handle(), None);

    launcher.launch(&backend, stream, &kernel_args(0), SHAPES.0, SHAPES.1).unwrap();
    assert_eq!(launcher.counters().aicore_registrations, 1);
    assert_eq!(backend.launches().len(), 2);
}

fn k(_: &KernelInvocation<'_>) {}

#[test]
fn n_launches_of_one_cid_upload_once_and_register_aicore_once() {
    let backend = MemBackend::new();
    let stream = backend.stream_create().unwrap();
    let mut symbols: Symbols<fn()> = Symbols::default();
    for name in [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL] {
        symbols.kernels.define(name, k as SimKernelFn).unwrap();
    }
    symbols.orchestrations.define(VECTOR_ORCHESTRATION, || {}).unwrap();
    let mut registry = CallableRegistry::new();
    let mut launcher = KernelLauncher::new(AICORE.to_vec(), AICPU.to_vec());
    registry.register_callable(&backend, &symbols, 0, &vector_example_callable().unwrap()).unwrap();

    let mut desc = LaunchDescriptor::new_zeroed();
    for run in 0..10 {
        let art = registry.artifacts(0).unwrap();
        art.replay_into(&mut desc).unwrap();
        assert_eq!(desc.func_count, 3);
        launcher.launch(&backend, stream, &kernel_args(run), SHAPES.0, SHAPES.1).unwrap();
    }
    assert_eq!(registry.counters().uploads, 1);
    assert_eq!(registry.counters().orchestration_registrations, 1);
    assert_eq!(launcher.counters().aicore_registrations, 1);
    assert_eq!(launcher.counters().aicore_launches, 10);
}
