//! Random task graphs run in the deterministic mode on a runtime in host memory must leave the
//! external buffers exactly as a sequential reference executor does, across window sizes
//! (including tiny windows of 4 and 16) and repeated runs on one runtime. Each round of ready
//! tasks runs in a seeded random order, so a missing dependency shows as a wrong buffer; the
//! scheduler's release batch is drawn small or large, so releases are applied both on nearly every
//! completion (full batches) and only at the end of each pass.

mod runtime_support;

use proptest::prelude::*;
use pto_abi::sizing::ArenaSizingKey;
use pto_device::hostmem::HostRegion;
use pto_device::platform::HostPlatform;
use pto_device::runtime::{Budgets, FuncTable, Runtime};
use pto_device::sched::deterministic::{run_with, DeterministicScheduler, VirtualCores};
use pto_device::testkit::HostRuntime;
use runtime_support::*;

fn run_dag(host: &HostRuntime, dag: &Dag, shuffle: u64, release_limit: usize) -> Vec<Vec<u32>> {
    let regions: Vec<HostRegion> =
        (0..dag.ext_buffers).map(|_| HostRegion::new((dag.ext_chunks * CHUNK * 4) as u64)).collect();
    for (b, r) in regions.iter().enumerate() {
        let init = initial_ext(dag, b);
        // SAFETY: the region holds ext_chunks * CHUNK u32s.
        unsafe { std::ptr::copy_nonoverlapping(init.as_ptr(), r.ptr().cast::<u32>(), init.len()) };
    }
    let addrs: Vec<u64> = regions.iter().map(|r| r.addr().0).collect();
    let args = run_args(dag, &addrs);
    let (table, kernels) = dag_kernels();
    // SAFETY: no thread of an earlier run still uses the runtime.
    unsafe { host.reset() };
    // SAFETY: the table outlives the run.
    let funcs = unsafe { FuncTable::from_raw(table.as_ptr(), table.len() as u32) };
    let mut rt = Runtime::new(host.view(), &HostPlatform, funcs, Budgets::DEFAULT);
    let sched = DeterministicScheduler::new(VirtualCores::RunKernels(&kernels))
        .with_shuffle(shuffle)
        .with_release_limit(release_limit);
    let out = // SAFETY: this thread is the only user of the runtime.
    unsafe { run_with(&mut rt, dag_orchestration, &args, sched) };
    assert_eq!(out.error, None);
    assert_eq!(out.tasks_submitted as usize, dag.task_count);
    assert_eq!(out.tasks_completed as usize, dag.task_count);
    regions
        .iter()
        .map(|r| {
            let mut v = vec![0u32; dag.ext_chunks * CHUNK];
            // SAFETY: as above.
            unsafe { std::ptr::copy_nonoverlapping(r.ptr().cast::<u32>(), v.as_mut_ptr(), v.len()) };
            v
        })
        .collect()
}

fn limits(window: usize, tasks: usize) -> Limits {
    Limits { tasks, window, max_depth: 5, ext_buffers: 3, ext_chunks: 8, max_blocks: 4 }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_graphs_match_the_reference(seed in any::<u64>(), window_log in 2u32..7, release_limit in 1usize..=64) {
        let window = 1usize << window_log;
        let host = HostRuntime::new(&ArenaSizingKey::uniform(window as u64, 1 << 20, 4096)).unwrap();
        let dag = generate(seed, limits(window, 150));
        prop_assert_eq!(run_dag(&host, &dag, seed ^ 0x5555, release_limit), reference(&dag));
    }
}

#[test]
fn thousands_of_tasks_through_windows_of_4_and_16() {
    for window in [4u64, 16] {
        let host = HostRuntime::new(&ArenaSizingKey::uniform(window, 64 << 10, 64)).unwrap();
        for seed in 0..3 {
            let dag = generate(seed, limits(window as usize, 2500));
            // Release batches of 1, 3 and 64 producers: full batches flush on most completions.
            let limit = [1, 3, 64][seed as usize];
            assert_eq!(run_dag(&host, &dag, seed + 17, limit), reference(&dag), "window {window} seed {seed}");
        }
    }
}

mod threaded {
    use std::sync::Arc;

    use proptest::prelude::*;
    use pto_abi::sizing::ArenaSizingKey;
    use pto_abi::task::DType;
    use pto_device::kernel::SimKernelFn;
    use pto_device::runtime::Budgets;
    use pto_host::sim::SimBackend;
    use pto_host::DeviceBackend;
    use pto_host::DeviceRunner;
    use pto_host::{RunArg, RunMode, RunRequest};

    use super::runtime_support::*;

    const KERNELS: [SimKernelFn; 2] = [dag_kernel, nop_kernel];

    fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    /// Runs `dag` through `DeviceRunner::run` in the threaded mode; returns the external buffers.
    pub fn run_threaded(
        runner: &mut DeviceRunner,
        dag: &Dag,
        sizing: ArenaSizingKey,
        threads: u32,
        clusters: u32,
    ) -> Vec<Vec<u32>> {
        let mut args: Vec<RunArg> = (0..dag.ext_buffers)
            .map(|b| RunArg::InOut {
                data: initial_ext(dag, b).iter().flat_map(|v| v.to_le_bytes()).collect(),
                dtype: DType::I32,
            })
            .collect();
        args.push(RunArg::Scalar(dag as *const Dag as u64));
        let req = RunRequest {
            orchestration: dag_orchestration,
            kernels: &KERNELS,
            args: &args,
            sizing,
            mode: RunMode::Threaded { threads, clusters },
            budgets: Budgets::DEFAULT,
        };
        let report = runner.run(&req).unwrap_or_else(|e| panic!("threaded run: {e}"));
        assert_eq!(report.tasks_completed as usize, dag.task_count);
        (0..dag.ext_buffers).map(|b| u32s(report.outputs[b].as_ref().unwrap())).collect()
    }

    fn setup() -> DeviceRunner {
        let sim = Arc::new(SimBackend::with_capacity(1 << 30).expect("sim pool"));
        DeviceRunner::new(sim as Arc<dyn DeviceBackend>)
    }

    fn limits(window: usize, tasks: usize) -> Limits {
        Limits { tasks, window, max_depth: 5, ext_buffers: 3, ext_chunks: 8, max_blocks: 5 }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn random_graphs_match_the_reference_on_threads(
            seed in any::<u64>(),
            window_log in 2u32..7,
            threads in 2u32..5,
            clusters in 1u32..4,
        ) {
            let mut runner = setup();
            let window = 1usize << window_log;
            let dag = generate(seed, limits(window, 120));
            let sizing = ArenaSizingKey::uniform(window as u64, 1 << 20, 4096);
            prop_assert_eq!(run_threaded(&mut runner, &dag, sizing, threads, clusters), reference(&dag));
        }
    }

    #[test]
    fn thousands_of_tasks_through_windows_of_4_and_16_on_threads() {
        let mut runner = setup();
        for window in [4u64, 16] {
            let dag = generate(window + 100, limits(window as usize, 2000));
            let sizing = ArenaSizingKey::uniform(window, 64 << 10, 256);
            assert_eq!(run_threaded(&mut runner, &dag, sizing, 3, 2), reference(&dag), "window {window}");
        }
    }
}
