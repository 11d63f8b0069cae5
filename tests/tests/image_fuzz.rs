//! Device memory is untrusted: bytes and words patched anywhere in a resident image never hang
//! the device, never make it read outside its regions, and never let a run "succeed" with work
//! missing. Every run after a patch either gives the right results or fails with a specific boot
//! or runtime error code.
//!
//! A patched image reaches the device three ways, chosen by case number: most cases as fresh bytes
//! with the checksum as built (the first boot after an upload verifies it, so they are refused as
//! a checksum mismatch); some as fresh bytes with the checksum re-sealed over the patch (so the
//! boot's deeper validation is fuzzed on a verifying boot); some as a rewrite of the resident image
//! that the next boot reuses without hashing it.
//!
//! The property test runs `PTO_FUZZ_CASES` cases (default 10,000) at the smallest sizing; a longer
//! run is `PTO_FUZZ_CASES=200000 cargo test -p pto-tests --test image_fuzz --release`.

use std::cell::RefCell;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use pto_abi::layout::RuntimeArenaLayout;
use pto_abi::sizing::ArenaSizingKey;
use pto_abi::DevAddr;
use pto_device::runtime::Budgets;
use pto_host::examples::{vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
use pto_host::sim::SimBackend;
use pto_host::DeviceBackend;
use pto_host::{DeviceRunner, RunnerError};
use pto_host::{RunArg, RunError, RunMode, RunRequest};

/// Elements of the vector example in these runs.
const N: usize = 16;
const DETERMINISTIC: RunMode = RunMode::Deterministic { noop_cores: false };
const THREADED: RunMode = RunMode::Threaded { threads: 3, clusters: 1 };
/// How long one case may take before the test calls it a hang (far above any budget below).
const CASE_DEADLINE: Duration = Duration::from_secs(60);

fn budgets() -> Budgets {
    Budgets { orch_ns: 20_000_000, sched_ns: 200_000_000 }
}

fn vector_args() -> Vec<RunArg> {
    vec![RunArg::input_f32(&[2.0; N]), RunArg::input_f32(&[3.0; N]), RunArg::output_f32(N), RunArg::Scalar(N as u64)]
}

/// A runner with the vector example's image resident at the smallest sizing, and that image as
/// the host uploaded it.
struct Fixture {
    sim: Arc<SimBackend>,
    runner: DeviceRunner,
    sizing: ArenaSizingKey,
    layout: RuntimeArenaLayout,
    pristine: Vec<u8>,
}

/// How a run ended.
#[derive(Debug)]
enum Outcome {
    /// Every task completed and the result is right.
    Correct,
    /// Boot or the run failed with a specific code (the failure in words).
    Code(#[allow(dead_code)] String),
}

impl Fixture {
    fn new() -> Fixture {
        let sim = Arc::new(SimBackend::with_capacity(256 << 20).expect("sim pool"));
        let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
        // The smallest sizing, with ring heaps large enough for the example's 1024-aligned outputs.
        let sizing = ArenaSizingKey { heap_sizes: [16 << 10; 4], ..ArenaSizingKey::smallest() };
        let bound = runner.bind(&sizing).expect("bind");
        let mut pristine = vec![0u8; bound.image_size as usize];
        sim.copy_from_device(bound.regions.arena.base, &mut pristine).expect("read the image");
        let mut f = Fixture { sim, runner, sizing, layout: bound.layout, pristine };
        let first = f.run(DETERMINISTIC);
        assert!(matches!(first, Ok(Outcome::Correct)), "the unpatched image runs: {first:?}");
        f
    }

    /// Writes `image` over the resident image (the runner keeps it as a cache hit); with `fresh`
    /// the next boot verifies its checksum, as after an upload.
    fn place(&mut self, image: &[u8], fresh: bool) -> DevAddr {
        let bound = self.runner.bind(&self.sizing).expect("bind");
        self.sim.copy_to_device(bound.regions.arena.base, image).expect("write the image");
        if fresh {
            assert!(self.runner.reverify_resident_image());
        }
        bound.regions.arena.base
    }

    /// Runs the vector example on the resident image.
    fn run(&mut self, mode: RunMode) -> Result<Outcome, String> {
        let args = vector_args();
        let req = RunRequest {
            orchestration: vector_orchestration,
            kernels: &VECTOR_KERNELS,
            args: &args,
            sizing: self.sizing,
            mode,
            budgets: budgets(),
        };
        match self.runner.run(&req) {
            Ok(report) => {
                let f = report.output_f32(VECTOR_RESULT_ARG);
                if report.tasks_submitted != 5 || report.tasks_completed != 5 {
                    return Err(format!(
                        "a run succeeded with {} of {} tasks completed (5 expected)",
                        report.tasks_completed, report.tasks_submitted
                    ));
                }
                if f.len() != N || f.iter().any(|x| *x != VECTOR_EXPECTED) {
                    return Err(format!("a run succeeded with a wrong result: {f:?}"));
                }
                Ok(Outcome::Correct)
            }
            Err(RunError::Runner(RunnerError::Boot(b))) => Ok(Outcome::Code(format!("boot: {b}"))),
            Err(RunError::Device(d)) => Ok(Outcome::Code(format!("device: {d}"))),
            Err(e) => Err(format!("the run failed without a specific code: {e}")),
        }
    }
}

/// One patch of the image: `len` bytes (1 or 8) of `value` at `offset`.
#[derive(Clone, Copy, Debug)]
struct Patch {
    offset: usize,
    len: usize,
    value: u64,
}

fn apply(image: &mut [u8], patches: &[Patch]) {
    for p in patches {
        let at = p.offset.min(image.len() - p.len);
        image[at..at + p.len].copy_from_slice(&p.value.to_le_bytes()[..p.len]);
    }
}

/// Patches anywhere in the image: a byte or an aligned word, at a uniform offset or at an offset
/// inside a chosen arena region (so the small structures get hit as often as the large ones).
fn patches(layout: RuntimeArenaLayout, image_len: usize) -> impl Strategy<Value = Vec<Patch>> {
    let regions: Vec<(u64, u64)> =
        layout.offsets.regions().iter().map(|r| (r.region.offset, r.region.size.max(1))).collect();
    let value = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(1u64),
        0u64..64,
        any::<u64>(),
        (0u64..8).prop_map(|k| 1u64 << (k * 8 + 7)),
    ];
    let offset = prop_oneof![
        0usize..image_len,
        (0..regions.len(), any::<u64>()).prop_map(move |(r, x)| {
            let (off, size) = regions[r];
            // The start of a region, or anywhere in it.
            (off + if x % 4 == 0 { (x >> 2) % 64.min(size) } else { x % size }) as usize
        }),
    ];
    let patch = (offset, any::<bool>(), value).prop_map(move |(offset, word, value)| {
        if word {
            Patch { offset: offset & !7, len: 8, value }
        } else {
            Patch { offset, len: 1, value: value & 0xFF }
        }
    });
    prop::collection::vec(patch, 1..=8)
}

fn cases() -> u32 {
    std::env::var("PTO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Runs `body` on its own thread; every `tick` it sends must arrive within [`CASE_DEADLINE`] of
/// the previous one, or the test fails as hung, naming the last case.
fn with_watchdog(body: impl FnOnce(mpsc::Sender<String>) + Send + 'static) {
    let (tx, rx) = mpsc::channel::<String>();
    let worker = std::thread::spawn(move || body(tx));
    let mut last = String::from("(before the first case)");
    loop {
        match rx.recv_timeout(CASE_DEADLINE) {
            Ok(case) => last = case,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("a case did not finish within {CASE_DEADLINE:?}: {last}"),
        }
    }
    if let Err(p) = worker.join() {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn patched_images_boot_within_a_deadline_and_run_correctly_or_fail_with_a_code() {
    with_watchdog(|tick| {
        let fixture = RefCell::new(Fixture::new());
        let (layout, len) = {
            let f = fixture.borrow();
            (f.layout, f.pristine.len())
        };
        // (correct, checksum refusals, other codes)
        let counts = RefCell::new((0u64, 0u64, 0u64));
        let mut runner = TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() });
        let case = RefCell::new(0u64);
        let result = runner.run(&patches(layout, len), |ps| {
            let mut f = fixture.borrow_mut();
            let n = {
                let mut c = case.borrow_mut();
                *c += 1;
                *c
            };
            let mode = if n % 64 == 0 { THREADED } else { DETERMINISTIC };
            let _ = tick.send(format!("case {n} ({mode:?}): {ps:?}"));
            let mut image = f.pristine.clone();
            apply(&mut image, &ps);
            // 5 of 8 cases: fresh, checksum as built; 2 of 8: fresh, re-sealed; 1 of 8: reused.
            let (fresh, reseal) = match n % 8 {
                0..=4 => (true, false),
                5 | 6 => (true, true),
                _ => (false, false),
            };
            if reseal {
                // Over the bytes the (maybe patched) header says the image has, as boot hashes.
                let at = std::mem::offset_of!(pto_abi::image::ImageHeader, image_size);
                let stated = u64::from_le_bytes(image[at..at + 8].try_into().unwrap());
                let end = usize::try_from(stated).map_or(image.len(), |s| s.min(image.len()));
                pto_abi::image::seal_image(&mut image[..end]);
            }
            f.place(&image, fresh);
            let outcome = f.run(mode).map_err(|e| TestCaseError::fail(format!("{e}; patches {ps:?}")))?;
            match outcome {
                Outcome::Correct => counts.borrow_mut().0 += 1,
                Outcome::Code(c) if c.contains("BOOT_IMAGE_CHECKSUM_MISMATCH") => {
                    if reseal || !fresh {
                        return Err(TestCaseError::fail(format!("a checksum refusal without a stale checksum: {c}")));
                    }
                    counts.borrow_mut().1 += 1
                }
                Outcome::Code(_) => counts.borrow_mut().2 += 1,
            }
            // The resident image reruns correctly once the host puts the good bytes back.
            let pristine = f.pristine.clone();
            f.place(&pristine, fresh);
            match f.run(DETERMINISTIC) {
                Ok(Outcome::Correct) => Ok(()),
                other => Err(TestCaseError::fail(format!("the restored image gave {other:?} after patches {ps:?}"))),
            }
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        let (correct, checksum, coded) = *counts.borrow();
        println!(
            "{correct} patched runs correct, {checksum} refused by the image checksum, {coded} failed with another \
             specific code"
        );
        assert!(correct > 0 && coded > 0, "the patches exercise both outcomes past the checksum");
        assert!(checksum > correct + coded, "most patches are refused by the checksum");
    });
}

/// The four corruptions that used to hang boot, hang the orchestrator, index out of bounds or drop
/// every task: after each, the next run (both modes) is correct, because boot regenerates what it
/// relies on from the layout.
#[test]
fn the_known_corruptions_are_regenerated_at_boot() {
    with_watchdog(|tick| {
        let mut f = Fixture::new();
        let o = f.layout.offsets;
        let cells = |q: usize| o.ready_queues[q].offset as usize + 192;
        let enq = |q: usize| o.ready_queues[q].offset as usize + 64;
        let deq = |q: usize| o.ready_queues[q].offset as usize + 128;
        let cases: [(&str, Vec<Patch>); 5] = [
            ("AIV queue first cell sequence", vec![Patch { offset: cells(1), len: 1, value: 0x5A }]),
            ("AIV enqueue cursor", vec![Patch { offset: enq(1), len: 8, value: 3 }]),
            ("every enqueue cursor", (0..4).map(|q| Patch { offset: enq(q), len: 8, value: 1 << 40 }).collect()),
            (
                "tensor-map bucket heads",
                vec![Patch { offset: o.tensor_map_buckets.offset as usize, len: 8, value: u64::MAX }],
            ),
            ("dequeue beyond enqueue", (0..4).map(|q| Patch { offset: deq(q), len: 8, value: 7 }).collect()),
        ];
        for (name, ps) in cases {
            for mode in [DETERMINISTIC, THREADED] {
                let _ = tick.send(format!("{name} ({mode:?})"));
                let mut image = f.pristine.clone();
                apply(&mut image, &ps);
                f.place(&image, false);
                match f.run(mode) {
                    Ok(Outcome::Correct) => {}
                    other => panic!("{name} ({mode:?}): {other:?}"),
                }
            }
        }
    });
}
