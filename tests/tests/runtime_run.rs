//! `DeviceRunner::run` on the simulated device: the vector example in the threaded and the
//! deterministic mode, a cached second bind, and the runner staying usable after failures.

use std::sync::Arc;

use pto_abi::sizing::ArenaSizingKey;
use pto_device::runtime::Budgets;
use pto_host::examples::{vector_args, vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, RunMode, RunRequest};

fn sim() -> Arc<SimBackend> {
    Arc::new(SimBackend::with_capacity(2 << 30).expect("sim pool"))
}

fn small() -> ArenaSizingKey {
    ArenaSizingKey::uniform(64, 1 << 20, 256)
}

#[test]
fn vector_example_is_47_everywhere_in_both_modes_and_the_second_bind_is_cached() {
    let sim = sim();
    let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    let args = vector_args();
    for (i, mode) in [
        RunMode::Threaded { threads: 3, clusters: 2 },
        RunMode::Deterministic { noop_cores: false },
        RunMode::Threaded { threads: 2, clusters: 1 },
        RunMode::Threaded { threads: 4, clusters: 5 },
    ]
    .into_iter()
    .enumerate()
    {
        let req = RunRequest {
            orchestration: vector_orchestration,
            kernels: &VECTOR_KERNELS,
            args: &args,
            sizing: small(),
            mode,
            budgets: Budgets::DEFAULT,
        };
        let report = runner.run(&req).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let f = report.output_f32(VECTOR_RESULT_ARG);
        assert_eq!(f.len(), 16_384);
        assert!(f.iter().all(|x| *x == VECTOR_EXPECTED), "{mode:?}: f[0] = {}", f[0]);
        assert_eq!((report.tasks_submitted, report.tasks_completed), (5, 5));
        assert_eq!(report.bind_cache_hit, i > 0, "run {i}");
        assert_eq!(report.outputs.iter().filter(|o| o.is_some()).count(), 1);
    }
    assert_eq!(runner.bind_stats().misses, 1);
    assert_eq!(runner.allocator().live_allocations(), 4, "only the static regions and the launch block stay allocated");
}
