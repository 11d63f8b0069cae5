//! A firmware fault comes back as a `DeviceFault` in words: a kernel that reads an unmapped
//! address makes the emulated device report the exception (vector, ESR decoded, ELR, FAR, vCPU);
//! a kernel that panics reports its message and file:line. The faulted device is lost (every
//! later launch is refused with the same words), and a run on a fresh device works. Each test
//! needs a device of its own: a faulted one never runs again.

mod emu_support;

use std::sync::Arc;

use pto_abi::task::TensorDirection::NoDep;
use pto_host::emu::{EmuBackend, EmuConfig};
use pto_host::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_RESULT_ARG};
use pto_host::{
    ArenaSizingKey, Budgets, CallableRunConfig, ChipCallable, CoreCallable, DeviceBackend, DeviceRunner, Orchestration,
    RunArg, RunMode,
};

fn config() -> CallableRunConfig {
    CallableRunConfig {
        sizing: ArenaSizingKey::uniform(64, 1 << 20, 256),
        mode: RunMode::Threaded { threads: 2, clusters: 1 },
        budgets: Budgets::DEFAULT,
    }
}

/// A one-task callable whose kernel is the firmware probe `kernel`, given `word`.
fn probe(kernel: &str) -> ChipCallable {
    ChipCallable::build(
        &[NoDep],
        &Orchestration { name: "pto_probe_one_task".into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(0, kernel, &[])],
    )
    .unwrap()
}

/// Runs `kernel` with `word` on a fresh device; returns the error in words and the device.
fn fault_with(kernel: &str, word: u64) -> Option<(String, Arc<EmuBackend>)> {
    if let Some(what) = emu_support::missing() {
        emu_support::skip(&what);
        return None;
    }
    let emu = Arc::new(EmuBackend::start(&EmuConfig::default()).expect("start the emulated device"));
    let mut runner = DeviceRunner::new(emu.clone() as Arc<dyn DeviceBackend>);
    runner.register_callable(0, &probe(kernel)).unwrap();
    let e = runner.run_callable(0, &[RunArg::Scalar(word)], &config()).expect_err("the probe faults");
    let text = e.to_string();
    assert!(emu.lost().is_some(), "the device is lost after: {text}");
    // Every later launch is refused with the same words.
    let again = runner.run_callable(0, &[RunArg::Scalar(word)], &config()).expect_err("a lost device runs nothing");
    assert!(again.to_string().contains("lost"), "{again}");
    Some((text, emu))
}

/// The vector example on a fresh device.
fn fresh_device_works() {
    let emu = Arc::new(EmuBackend::start(&EmuConfig::default()).expect("start a fresh device"));
    let mut runner = DeviceRunner::new(emu as Arc<dyn DeviceBackend>);
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let report = runner.run_callable(0, &vector_args(), &config()).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&x| x == VECTOR_EXPECTED));
}

#[test]
fn an_unmapped_read_is_a_device_fault_naming_the_exception() {
    let Some((text, _emu)) = fault_with("pto_probe_read", 0x2_0000_0000) else { return };
    for w in [
        "device fault",
        "vCPU ",
        "synchronous exception from the current EL",
        "data abort at the current EL",
        "translation fault",
        "on a read",
        "ESR 0x",
        "ELR 0x",
        "FAR 0x200000000",
        "while running launch",
    ] {
        assert!(text.contains(w), "`{w}` missing in: {text}");
    }
    fresh_device_works();
}

#[test]
fn a_kernel_panic_is_a_device_fault_with_its_message_and_location() {
    let Some((text, _emu)) = fault_with("pto_probe_panic", 0xabc) else { return };
    for w in ["device fault", "panicked at", "probes.rs:", "probe kernel panics on purpose (argument 0xabc)"] {
        assert!(text.contains(w), "`{w}` missing in: {text}");
    }
    fresh_device_works();
}
