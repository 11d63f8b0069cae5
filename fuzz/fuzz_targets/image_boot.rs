//! Image boot and run on the simulated device: the fuzz input patches a valid resident image
//! (8-byte records: offset, flags, value), then the vector example runs on it. The run must give
//! the right result or fail with a specific boot or runtime code: never hang (every device wait
//! has a budget), never succeed with work missing. The first record's flag bit 2 re-seals the
//! patched image's checksum, so the patches reach the boot's checks past the checksum; bit 3 makes
//! the next boot verify the image as after an upload (otherwise it reuses the resident image).
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use pto_abi::image::seal_image;
use pto_abi::sizing::ArenaSizingKey;
use pto_device::runtime::Budgets;
use pto_host::examples::{vector_orchestration, VECTOR_EXPECTED, VECTOR_KERNELS, VECTOR_RESULT_ARG};
use pto_host::sim::SimBackend;
use pto_host::DeviceBackend;
use pto_host::{DeviceRunner, RunnerError};
use pto_host::{RunArg, RunError, RunMode, RunRequest};

const N: usize = 16;

struct Fixture {
    sim: Arc<SimBackend>,
    runner: DeviceRunner,
    sizing: ArenaSizingKey,
    pristine: Vec<u8>,
}

fn fixture() -> &'static Mutex<Fixture> {
    static F: OnceLock<Mutex<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let sim = Arc::new(SimBackend::with_capacity(256 << 20).expect("sim pool"));
        let mut runner = DeviceRunner::new(sim.clone() as Arc<dyn DeviceBackend>);
        let sizing = ArenaSizingKey { heap_sizes: [16 << 10; 4], ..ArenaSizingKey::smallest() };
        let bound = runner.bind(&sizing).expect("bind");
        let mut pristine = vec![0u8; bound.image_size as usize];
        sim.copy_from_device(bound.regions.arena.base, &mut pristine).expect("read the image");
        Mutex::new(Fixture { sim, runner, sizing, pristine })
    })
}

fn run(f: &mut Fixture, image: &[u8], verify: bool) -> Result<bool, String> {
    let bound = f.runner.bind(&f.sizing).map_err(|e| e.to_string())?;
    f.sim.copy_to_device(bound.regions.arena.base, image).map_err(|e| e.to_string())?;
    if verify && !f.runner.reverify_resident_image() {
        return Err("the bound image is not resident".into());
    }
    let args =
        [RunArg::input_f32(&[2.0; N]), RunArg::input_f32(&[3.0; N]), RunArg::output_f32(N), RunArg::Scalar(N as u64)];
    let req = RunRequest {
        orchestration: vector_orchestration,
        kernels: &VECTOR_KERNELS,
        args: &args,
        sizing: f.sizing,
        mode: RunMode::Deterministic { noop_cores: false },
        budgets: Budgets { orch_ns: 20_000_000, sched_ns: 200_000_000 },
    };
    match f.runner.run(&req) {
        Ok(r) => {
            let out = r.output_f32(VECTOR_RESULT_ARG);
            if r.tasks_completed != 5 || out.iter().any(|x| *x != VECTOR_EXPECTED) {
                return Err(format!("a run succeeded with {} tasks completed and {out:?}", r.tasks_completed));
            }
            Ok(true)
        }
        Err(RunError::Runner(RunnerError::Boot(_)) | RunError::Device(_)) => Ok(false),
        Err(e) => Err(format!("a run failed without a specific code: {e}")),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut f = fixture().lock().unwrap_or_else(|p| p.into_inner());
    let mut image = f.pristine.clone();
    let flags = data.get(3).copied().unwrap_or(0);
    for rec in data.chunks_exact(8).take(16) {
        let at = u32::from_le_bytes([rec[0], rec[1], rec[2], 0]) as usize % image.len();
        let word = rec[3] & 1 != 0;
        let value = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]) as u64;
        let value = if rec[3] & 2 != 0 { value | (value << 32) } else { value };
        if word {
            let at = (at & !7).min(image.len() - 8);
            image[at..at + 8].copy_from_slice(&value.to_le_bytes());
        } else {
            image[at] = value as u8;
        }
    }
    if flags & 4 != 0 {
        assert!(seal_image(&mut image), "the image is long enough to hold its header");
    }
    if let Err(e) = run(&mut f, &image, flags & 8 != 0) {
        panic!("{e}");
    }
    let pristine = f.pristine.clone();
    assert_eq!(run(&mut f, &pristine, true), Ok(true), "the restored image runs correctly");
});
