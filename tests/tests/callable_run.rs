//! Running registered callables on the simulated device: the vector example by cid (47.0
//! everywhere, twice, the second bind cached, one upload), the signature check before anything
//! runs, and a func-id table that never keeps an entry of an earlier callable.

use std::sync::Arc;

use pto_abi::launch::LaunchDescriptor;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::task::DType;
use pto_abi::task::TensorDirection::{InOut, Input, NoDep, Output, OutputExisting};
use pto_abi::DevAddr;
use pto_device::orch::{Arg, OrchArgs, OrchError, OrchestrationFn, Orchestrator, TaskSpec};
use pto_device::runtime::Budgets;
use pto_host::examples::{
    define_vector_symbols, vector_args, vector_example_callable, VECTOR_ADD, VECTOR_EXPECTED, VECTOR_LEN,
    VECTOR_RESULT_ARG,
};
use pto_host::sim::SimBackend;
use pto_host::{
    BindError, CallableRunConfig, CallableRunError, ChipCallable, CoreCallable, DeviceBackend, DeviceIo, DeviceRunner,
    Orchestration, RunArg, RunMode,
};

fn setup() -> (Arc<SimBackend>, DeviceRunner) {
    let sim = Arc::new(SimBackend::with_capacity(2 << 30).expect("sim pool"));
    define_vector_symbols(&mut sim.symbols()).unwrap();
    let runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
    (sim, runner)
}

fn config(mode: RunMode) -> CallableRunConfig {
    CallableRunConfig { sizing: ArenaSizingKey::uniform(64, 1 << 20, 256), mode, budgets: Budgets::DEFAULT }
}

const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 2 };

#[test]
fn the_vector_example_runs_by_cid_twice_with_one_upload_and_a_cached_second_bind() {
    let (_sim, mut runner) = setup();
    let art = runner.register_callable(7, &vector_example_callable().unwrap()).unwrap();
    let args = vector_args();
    for (i, mode) in [THREADED, RunMode::Deterministic { noop_cores: false }].into_iter().enumerate() {
        let report = runner.run_callable(7, &args, &config(mode)).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let f = report.output_f32(VECTOR_RESULT_ARG);
        assert_eq!(f.len(), VECTOR_LEN);
        assert!(f.iter().all(|x| *x == VECTOR_EXPECTED), "{mode:?}: f[0] = {}", f[0]);
        assert_eq!((report.tasks_submitted, report.tasks_completed), (5, 5));
        assert_eq!(report.bind_cache_hit, i == 1, "run {i}");

        // The launch descriptor carried the blob's device code addresses, nothing else.
        let block = runner.launch_block().unwrap();
        let desc: LaunchDescriptor = runner.backend().read_obj(block.descriptor()).unwrap();
        assert_eq!(desc.func_count, 3);
        assert_eq!(&desc.func_table[..3], &art.func_table().unwrap()[..]);
        assert!(desc.func_table[3..].iter().all(|a| a.is_null()));
        assert_eq!(desc.orchestration, art.orchestration_addr);
    }
    let c = runner.callable_counters();
    assert_eq!((c.uploads, c.orchestration_registrations, c.dedup_hits), (1, 1, 0));
    assert_eq!(runner.bind_stats().misses, 1);
}

#[test]
fn arguments_are_checked_against_the_signature_before_anything_runs() {
    let (_sim, mut runner) = setup();
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let mut args = vector_args();
    args.pop();
    let err = runner.run_callable(0, &args, &config(THREADED)).unwrap_err();
    assert_eq!(err, CallableRunError::Bind(BindError::ArgCount { cid: 0, expected: 4, got: 3 }));

    let mut args = vector_args();
    args[2] = RunArg::InOut { data: vec![0; VECTOR_LEN * 4], dtype: DType::F32 };
    let err = runner.run_callable(0, &args, &config(THREADED)).unwrap_err();
    assert_eq!(
        err,
        CallableRunError::Bind(BindError::Direction { cid: 0, index: 2, expected: OutputExisting, got: InOut })
    );
    assert!(err.to_string().contains("argument 2"), "{err}");

    assert_eq!(
        runner.run_callable(5, &vector_args(), &config(THREADED)).unwrap_err(),
        CallableRunError::NotRegistered { cid: 5 }
    );
    assert_eq!(runner.bind_stats().misses, 0, "nothing was bound, staged or launched");
}

/// `f = a + b` with the add kernel at func id 9.
fn single_add(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let (a, b, f, n) = (args.tensor(0)?, args.tensor(1)?, args.tensor(2)?, args.scalar(3)?);
    o.submit(&TaskSpec::aiv(9, &[Arg::Input(a), Arg::Input(b), Arg::OutputExisting(f)]).scalars(&[n]))?;
    Ok(())
}

#[test]
fn a_later_callable_never_sees_func_table_entries_of_an_earlier_one() {
    let (sim, mut runner) = setup();
    sim.symbols().orchestrations.define("single_add", single_add as OrchestrationFn).unwrap();
    let single = ChipCallable::build(
        &[Input, Input, OutputExisting, NoDep],
        &Orchestration::named("single_add"),
        &[CoreCallable::sim(9, VECTOR_ADD, &[Input, Input, Output])],
    )
    .unwrap();
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    let art = runner.register_callable(1, &single).unwrap();

    runner.run_callable(0, &vector_args(), &config(THREADED)).unwrap();
    let report = runner.run_callable(1, &vector_args(), &config(THREADED)).unwrap();
    assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|x| *x == 5.0));
    let desc: LaunchDescriptor = runner.backend().read_obj(runner.launch_block().unwrap().descriptor()).unwrap();
    assert_eq!(desc.func_count, 10);
    for (id, addr) in desc.func_table.iter().enumerate() {
        let expected = if id == 9 { art.children[0].code_addr } else { DevAddr::NULL };
        assert_eq!(*addr, expected, "func id {id}");
    }

    // Unregistering frees the device copy; the runner stays usable.
    runner.unregister_callable(0).unwrap();
    assert!(matches!(
        runner.run_callable(0, &vector_args(), &config(THREADED)),
        Err(CallableRunError::NotRegistered { cid: 0 })
    ));
    runner.run_callable(1, &vector_args(), &config(THREADED)).unwrap();
}
