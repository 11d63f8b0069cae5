//! Run traces on the emulated device: the aarch64 firmware writes the same records as the
//! simulated device (one record layout), the cores stamp kernel start and end on the virtual
//! counter every vCPU shares, and the vector example's trace holds its 5 blocks in order, its 6
//! dependency edges, scheduler phases and scope stats, in the threaded and deterministic modes.

mod emu_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use pto_abi::trace::VIRTUAL_CORE;
use pto_host::examples::{vector_args, vector_example_callable, VECTOR_EXPECTED, VECTOR_RESULT_ARG};
use pto_host::{ArenaSizingKey, Budgets, CallableRunConfig, DeviceBackend, DeviceRunner, RunMode, TraceConfig};

/// The vector example's data edges by submit index (c=0 d=1 e=2 g=3 f=4): c→d, c→e, d→g, e→g,
/// g→f, c→f. Six, not the four the text counts: f reads both g and c.
const VECTOR_EDGES: [(usize, usize); 6] = [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (0, 4)];

#[test]
fn the_vector_example_traces_on_the_emulated_device_in_both_modes() {
    let Some(emu) = emu_support::emu() else { return };
    let mut runner = DeviceRunner::new(emu.backend.clone() as Arc<dyn DeviceBackend>);
    runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
    runner.set_trace(TraceConfig::level(4).unwrap());
    for mode in [RunMode::Threaded { threads: 3, clusters: 2 }, RunMode::Deterministic { noop_cores: false }] {
        let config =
            CallableRunConfig { sizing: ArenaSizingKey::uniform(64, 1 << 20, 256), mode, budgets: Budgets::DEFAULT };
        let report = runner
            .run_callable(0, &vector_args(), &config)
            .unwrap_or_else(|e| panic!("{mode:?}: {e}\n{:?}", emu.backend.take_device_log()));
        assert!(report.output_f32(VECTOR_RESULT_ARG).iter().all(|&x| x == VECTOR_EXPECTED), "{mode:?}");
        let t = report.trace.as_deref().unwrap_or_else(|| panic!("{mode:?}: no trace"));
        assert_eq!(t.total_dropped(), 0, "{mode:?}");
        assert_eq!((t.blocks.len(), t.submits.len()), (5, 5), "{mode:?}: {:?}", t.blocks);
        for b in &t.blocks {
            assert!(
                b.dispatch_ns <= b.start_ns && b.start_ns <= b.end_ns && b.end_ns <= b.finish_ns,
                "{mode:?}: {b:?}"
            );
            assert!(b.start_ns > 0, "{mode:?}: {b:?}");
            assert_eq!(b.core == VIRTUAL_CORE, matches!(mode, RunMode::Deterministic { .. }), "{mode:?}: {b:?}");
        }
        let index = |id: u64| t.submits.iter().position(|s| s.task_id == id).unwrap();
        let edges: BTreeSet<_> = t.edges.iter().map(|e| (index(e.producer), index(e.consumer))).collect();
        assert_eq!(t.edges.len(), 6, "{mode:?}");
        assert_eq!(edges, VECTOR_EDGES.into(), "{mode:?}");
        assert!(!t.phases.is_empty(), "{mode:?}");
        assert_eq!(t.scopes.iter().map(|s| s.tasks).collect::<Vec<_>>(), [3, 2, 0], "{mode:?}");
    }
    runner.finalize().unwrap();
}
