//! Every fatal-code scenario (scope, heap-ring and flow-control deadlock, dep-pool and tensor-map
//! overflow, invalid arguments, explicit fatal, a hung kernel past a short scheduler budget) gives
//! the same code, ring, detail and stall class on the emulated device as on the simulated device,
//! and the next run on the same runner (same resident image) succeeds on both. The scenarios are
//! device code (`pto_device::examples::fatal`) the firmware compiles in by name.

mod emu_support;

use std::sync::Arc;

use pto_abi::task::{DType, TensorDirection};
use pto_device::examples::fatal::{self, FatalScenario, ScenarioArg, FATAL_SCENARIOS};
use pto_device::orch::OrchestrationFn;
use pto_host::examples::{
    define_vector_symbols, vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_RESULT_ARG,
};
use pto_host::sim::SimBackend;
use pto_host::{
    Budgets, CallableRunConfig, CallableRunError, ChipCallable, CoreCallable, DeviceBackend, DeviceFailure,
    DeviceRunner, KernelFn, Orchestration, RunArg, RunError, RunMode,
};

fn args(arg: ScenarioArg) -> Vec<RunArg> {
    match arg {
        ScenarioArg::None => Vec::new(),
        ScenarioArg::InputBytes(len) => vec![RunArg::Input { data: vec![0; len as usize], dtype: DType::U8 }],
    }
}

fn blob(sc: &FatalScenario) -> ChipCallable {
    let signature: &[TensorDirection] = match sc.arg {
        ScenarioArg::None => &[],
        ScenarioArg::InputBytes(_) => &[TensorDirection::Input],
    };
    ChipCallable::build(
        signature,
        &Orchestration { name: sc.name.into(), config_name: "default".into(), bytes: Vec::new() },
        &[CoreCallable::sim(fatal::SLEEP as u32, fatal::SLEEP_MS, &[])],
    )
    .unwrap()
}

/// Runs every scenario on `runner`, each followed by the vector example on 256 elements;
/// returns each scenario's failure.
fn run_all(runner: &mut DeviceRunner, device: &str) -> Vec<DeviceFailure> {
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let mut vargs = vector_args();
    vargs[0] = RunArg::input_f32(&[2.0; 256]);
    vargs[1] = RunArg::input_f32(&[3.0; 256]);
    vargs[2] = RunArg::output_f32(256);
    vargs[3] = RunArg::Scalar(256);
    let mut out = Vec::new();
    for (i, sc) in FATAL_SCENARIOS.iter().enumerate() {
        let cid = i as u32 + 1;
        runner.register_callable(cid, &blob(sc)).unwrap_or_else(|e| panic!("{device} {}: {e}", sc.name));
        let mode = if sc.deterministic {
            RunMode::Deterministic { noop_cores: false }
        } else {
            RunMode::Threaded { threads: 3, clusters: 2 }
        };
        let config = CallableRunConfig { sizing: sc.sizing, mode, budgets: sc.budgets };
        match runner.run_callable(cid, &args(sc.arg), &config) {
            Err(CallableRunError::Run(RunError::Device(f))) => out.push(*f),
            other => panic!("{device} {}: expected {:?}, got {other:?}", sc.name, sc.code),
        }
        let config = CallableRunConfig {
            sizing: sc.sizing,
            mode: RunMode::Threaded { threads: 3, clusters: 2 },
            budgets: Budgets::DEFAULT,
        };
        let report = runner
            .run_callable(0, &vargs, &config)
            .unwrap_or_else(|e| panic!("{device}: the run after {}: {e}", sc.name));
        assert!(report.bind_cache_hit, "{device} {}: the failed run's resident image is reused", sc.name);
        assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&x| x == VECTOR_EXPECTED), "{device} {}", sc.name);
    }
    out
}

#[test]
fn every_fatal_code_agrees_between_the_emulated_and_the_simulated_device() {
    let Some(emu) = emu_support::emu() else { return };
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).unwrap());
    {
        let mut symbols = sim.symbols();
        define_vector_symbols(&mut symbols).unwrap();
        symbols.kernels.define(fatal::SLEEP_MS, fatal::sleep_ms as KernelFn).unwrap();
        for sc in FATAL_SCENARIOS {
            symbols.orchestrations.define(sc.name, sc.orchestration as OrchestrationFn).unwrap();
        }
    }
    let on_sim = run_all(&mut DeviceRunner::new(sim as Arc<dyn DeviceBackend>), "sim");
    let on_emu = run_all(&mut DeviceRunner::new(emu.backend.clone() as Arc<dyn DeviceBackend>), "emu");
    for ((sc, s), e) in FATAL_SCENARIOS.iter().zip(&on_sim).zip(&on_emu) {
        assert_eq!(s.code, sc.code as u32, "sim {}: {s}", sc.name);
        if let Some(d) = sc.detail {
            assert_eq!(s.detail, d, "sim {}: {s}", sc.name);
        }
        assert_eq!(
            (e.code, e.name, e.ring, e.detail, e.stall),
            (s.code, s.name, s.ring, s.detail, s.stall),
            "{}: emu said `{e}`, sim said `{s}`",
            sc.name
        );
    }
    // The firmware logs each error it hit; none of its lines was lost.
    let log = emu.backend.take_device_log();
    assert_eq!((log.dropped_frames, log.lost_lines), (0, 0), "{log:?}");
}
