//! Kernel launches on the simulated device: lazy once-per-runner binary registration, AICore
//! launched before AICPU, both kernels reading the device copy of `KernelArgs`.

mod callable_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callable_support::{sim, tracker, Call, Recording};
use pto_abi::launch::KernelArgs;
use pto_abi::DevAddr;
use pto_host::sim::{SimBackend, SimLaunch};
use pto_host::{
    BackendError, BackendOp, DeviceBackend, KernelLauncher, LaunchError, LaunchShape, LaunchStep, TrackingAllocator,
};
use zerocopy::{FromZeros, IntoBytes};

/// What one block of a test entry saw: entry, block index, the `KernelArgs` it read.
type Seen = (&'static str, u32, KernelArgs);

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

fn record(entry: &'static str, launch: &SimLaunch) -> Result<(), String> {
    let ptr = launch.args.get() as usize as *const KernelArgs;
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(format!("bad kernel args address {}", launch.args));
    }
    // SAFETY: on the simulated device a device address is the real address inside the pool, and
    // the test uploaded a KernelArgs there before launching.
    let args = unsafe { ptr.read() };
    SEEN.lock().unwrap().push((entry, launch.block_idx, args));
    Ok(())
}

fn aicore_entry(launch: &SimLaunch) -> Result<(), String> {
    record("aicore", launch)
}

fn aicpu_entry(launch: &SimLaunch) -> Result<(), String> {
    record("aicpu", launch)
}

/// Blocks that saw `tag` in `KernelArgs::flags`, sorted.
fn seen(tag: u64) -> Vec<(&'static str, u32, u64)> {
    let mut v: Vec<_> =
        SEEN.lock().unwrap().iter().filter(|s| s.2.flags == tag).map(|s| (s.0, s.1, s.2.runtime_desc.get())).collect();
    v.sort();
    v
}

fn device() -> (Arc<SimBackend>, Arc<Recording>, TrackingAllocator) {
    let sim = sim();
    sim.register_entry("test_aicore", aicore_entry);
    sim.register_entry("test_aicpu", aicpu_entry);
    let rec = Arc::new(Recording::with_programs(sim.clone(), "test_aicore", "test_aicpu"));
    let mem = TrackingAllocator::new(rec.clone() as Arc<dyn DeviceBackend>);
    (sim, rec, mem)
}

fn launcher() -> KernelLauncher {
    KernelLauncher::new()
}

/// One run's launch: the AICore kernel, then the AICPU kernel, both with the `KernelArgs` at `args`.
fn launch(l: &mut KernelLauncher, backend: &dyn DeviceBackend, args: DevAddr) -> Result<(), LaunchError> {
    l.launch_aicore_kernel(backend, AICORE, args)?;
    l.launch_aicpu_kernel(backend, AICPU, args)
}

/// Waits for both kernels of a launch.
fn synchronize(l: &mut KernelLauncher, backend: &dyn DeviceBackend) {
    l.wait_aicpu(backend).unwrap();
    l.wait_aicore(backend, Duration::from_secs(60), Duration::from_secs(1)).unwrap();
}

/// Writes `KernelArgs` tagged `tag` into the device copy at `addr`.
fn stage(backend: &dyn DeviceBackend, addr: DevAddr, tag: u64) {
    let mut args = KernelArgs::new_zeroed();
    args.runtime_desc = DevAddr(0x1000 + tag);
    args.flags = tag;
    backend.copy_to_device(addr, args.as_bytes()).unwrap();
}

const AICORE: LaunchShape = LaunchShape { block_dim: 3 };
const AICPU: LaunchShape = LaunchShape { block_dim: 2 };

#[test]
fn aicore_is_launched_before_aicpu_and_both_read_the_device_copy_of_kernel_args() {
    let (_sim, rec, mut mem) = device();
    let args = mem.alloc(size_of::<KernelArgs>() as u64).unwrap();
    stage(rec.as_ref(), args, 0xa1);
    let mut l = launcher();
    launch(&mut l, rec.as_ref(), args).unwrap();
    synchronize(&mut l, rec.as_ref());

    let calls = rec.calls();
    let [Call::Register(b0, h0), Call::Launch { kernel: k0, stream: s0, block_dim: 3, args: a0 }, Call::Register(b1, h1), Call::Launch { kernel: k1, stream: s1, block_dim: 2, args: a1 }] =
        &calls[..]
    else {
        panic!("unexpected call sequence {calls:?}")
    };
    assert_eq!((b0.as_slice(), b1.as_slice()), (&b"test_aicore"[..], &b"test_aicpu"[..]));
    assert_eq!((k0, k1), (h0, h1));
    assert_eq!((*a0, *a1), (args, args), "both kernels get the device address of the KernelArgs copy");
    assert_ne!(s0, s1, "the AICore kernel runs on its own stream");
    assert_eq!(
        seen(0xa1),
        vec![
            ("aicore", 0, 0x10a1),
            ("aicore", 1, 0x10a1),
            ("aicore", 2, 0x10a1),
            ("aicpu", 0, 0x10a1),
            ("aicpu", 1, 0x10a1)
        ]
    );
}

#[test]
fn binaries_register_once_per_runner() {
    let (_sim, rec, mut mem) = device();
    let args = mem.alloc(size_of::<KernelArgs>() as u64).unwrap();
    let mut l = launcher();
    for tag in 0xb0..0xb5 {
        stage(rec.as_ref(), args, tag);
        launch(&mut l, rec.as_ref(), args).unwrap();
        synchronize(&mut l, rec.as_ref());
        assert_eq!(seen(tag).len(), 5, "every block of both kernels saw this run's args");
    }
    let c = l.counters();
    assert_eq!((c.aicore_registrations, c.aicpu_registrations), (1, 1));
    assert_eq!((c.aicore_launches, c.aicpu_launches), (5, 5));
    let registers = rec.calls().iter().filter(|c| matches!(c, Call::Register(..))).count();
    assert_eq!(registers, 2);
    assert!(l.aicore_handle().is_some());
}

#[test]
fn a_failed_registration_is_not_cached_and_nothing_is_launched() {
    let (sim, rec, mut mem) = device();
    let args = mem.alloc(size_of::<KernelArgs>() as u64).unwrap();
    stage(rec.as_ref(), args, 0xc0);
    let mut l = launcher();
    sim.fail_nth(BackendOp::RegisterKernel, 1);
    let err = launch(&mut l, rec.as_ref(), args).unwrap_err();
    assert_eq!(
        err,
        LaunchError::Step {
            step: LaunchStep::RegisterAicore,
            source: BackendError::InjectedFault { op: BackendOp::RegisterKernel, nth: 1 }
        }
    );
    assert!(rec.calls().is_empty(), "the AICPU is never launched without its AICore");
    assert_eq!(l.aicore_handle(), None);

    launch(&mut l, rec.as_ref(), args).unwrap();
    synchronize(&mut l, rec.as_ref());
    assert_eq!(l.counters().aicore_registrations, 1);
    assert_eq!(seen(0xc0).len(), 5);
}

#[test]
fn an_unknown_binary_is_reported_by_name() {
    let sim = sim();
    let rec = Recording::with_programs(sim.clone(), "no_such_aicore", "test_aicpu");
    let mut mem = tracker(&sim);
    let args = mem.alloc(size_of::<KernelArgs>() as u64).unwrap();
    let mut l = KernelLauncher::new();
    let err = launch(&mut l, &rec, args).unwrap_err();
    assert!(matches!(err, LaunchError::Step { step: LaunchStep::RegisterAicore, .. }), "{err}");
    assert!(err.to_string().contains("no_such_aicore"), "{err}");
    assert_eq!(sim.counters().launches, 0);
}
