//! The vector example on the emulated device: the x86-64 host builds the image and uploads the
//! callable, the aarch64 firmware boots it, orchestrates and schedules on its vCPUs, and every
//! one of the 16,384 elements is 47.0, in several thread/cluster shapes and in the
//! deterministic mode; the second run of a shape binds from the image cache without writing the
//! arena again; a callable naming code the firmware lacks is refused before anything launches.

mod emu_support;

use std::sync::Arc;

use pto_host::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_LEN, VECTOR_RESULT_ARG};
use pto_host::{
    ArenaSizingKey, Budgets, CallableRunConfig, ChipCallable, CoreCallable, DeviceBackend, DeviceRunner, Orchestration,
    RunMode,
};

fn sizing() -> ArenaSizingKey {
    ArenaSizingKey::uniform(64, 1 << 20, 256)
}

#[test]
fn the_vector_example_is_47_in_every_element_in_every_shape() {
    let Some(emu) = emu_support::emu() else { return };
    let mut runner = DeviceRunner::new(emu.backend.clone() as Arc<dyn DeviceBackend>);
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let shapes = [
        RunMode::Threaded { threads: 2, clusters: 1 },
        RunMode::Threaded { threads: 3, clusters: 2 },
        RunMode::Threaded { threads: 4, clusters: 3 },
        RunMode::Deterministic { noop_cores: false },
    ];
    for (i, mode) in shapes.into_iter().enumerate() {
        let config = CallableRunConfig { sizing: sizing(), mode, budgets: Budgets::DEFAULT };
        for run in 0..2 {
            let writes_before = emu.backend.counters().bytes_to_device;
            let report = runner
                .run_callable(0, &vector_args(), &config)
                .unwrap_or_else(|e| panic!("{mode:?} run {run}: {e}\n{:?}", emu.backend.take_device_log()));
            let f = report.output_f32(VECTOR_RESULT_ARG);
            assert_eq!(f.len(), VECTOR_LEN, "{mode:?}");
            let wrong = f.iter().filter(|&&x| x != VECTOR_EXPECTED).count();
            assert_eq!(wrong, 0, "{mode:?} run {run}: {wrong} elements differ from {VECTOR_EXPECTED}");
            assert_eq!((report.tasks_submitted, report.tasks_completed), (5, 5), "{mode:?}");
            // The first run of the test binds cold; every later one (same sizing) from the cache,
            // writing only the run's tensors, records and launch block, never the arena image.
            assert_eq!(report.bind_cache_hit, i + run > 0, "{mode:?} run {run}");
            if report.bind_cache_hit {
                let written = emu.backend.counters().bytes_to_device - writes_before;
                assert!(written < 4 * (VECTOR_LEN as u64 * 4) + 64 * 1024, "{mode:?}: {written} bytes written");
            }
        }
    }
    let log = emu.backend.take_device_log();
    assert!(log.lines.iter().all(|l| !l.is_warning_or_error()), "{log:?}");
    assert_eq!(log.dropped_frames, 0);
    runner.finalize().unwrap();
}

#[test]
fn a_callable_naming_code_the_firmware_lacks_is_refused_before_launch() {
    let Some(emu) = emu_support::emu() else { return };
    let mut runner = DeviceRunner::new(emu.backend.clone() as Arc<dyn DeviceBackend>);
    let launches = emu.backend.counters().launches;
    use pto_abi::task::TensorDirection::{Input, Output};
    let blob = ChipCallable::build(
        &[Input, Output],
        &Orchestration { name: "no_such_orchestration".into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(0, "vector_add", &[Input, Input, Output])],
    )
    .unwrap();
    let e = runner.register_callable(1, &blob).unwrap_err().to_string();
    assert!(e.contains("no_such_orchestration") && e.contains("vector_example"), "{e}");
    let blob = ChipCallable::build(
        &[Input, Output],
        &Orchestration { name: "vector_example".into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(0, "no_such_kernel", &[Input, Output])],
    )
    .unwrap();
    let e = runner.register_callable(2, &blob).unwrap_err().to_string();
    for w in ["no_such_kernel", "vector_add", "vector_add_scalar", "vector_mul"] {
        assert!(e.contains(w), "`{e}` lacks {w}");
    }
    assert_eq!(emu.backend.counters().launches, launches, "nothing was launched");
}
