//! Bind and boot costs on the simulated device, each reported against a baseline measured in the
//! same run:
//!
//! * cold bind (build + seal + upload of the default-sizing image) vs a plain `memcpy` of
//!   `arena_size` bytes, and the image checksum the first boot after an upload verifies;
//! * hit bind (resident image, no device write) vs a `HashMap<u64, u64>` lookup;
//! * boot of a resident image (validate + wire + rebind + O(1) reset) at window 4 vs window 16384.
//!
//! Run: `cargo bench -p pto-host --bench bind -- --warm-up-time 1 --measurement-time 2`.
//! The ratios are printed at the end from criterion's estimates of this run.

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use pto_abi::launch::LaunchDescriptor;
use pto_abi::sizing::ArenaSizingKey;
use pto_host::sim::SimBackend;
use pto_host::{DeviceBackend, DeviceRunner, LaunchParams};
use support::{print_ratios, Ratio};

fn new_runner() -> DeviceRunner {
    let sim = Arc::new(SimBackend::new().expect("reserve the simulated device pool"));
    DeviceRunner::new(sim as Arc<dyn DeviceBackend>)
}

fn cold_bind_vs_memcpy(c: &mut Criterion) {
    let sizing = ArenaSizingKey::default();
    let mut runner = new_runner();
    let arena_size = runner.bind(&sizing).unwrap().image_size as usize;
    let src = vec![1u8; arena_size];
    let mut dst = vec![0u8; arena_size];
    let mut g = c.benchmark_group("cold_bind");
    g.sample_size(20);
    g.bench_function("memcpy_arena_size", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.bench_function("bind_build_upload", |b| {
        b.iter(|| {
            runner.forget_images();
            black_box(runner.bind(black_box(&sizing)).unwrap());
        })
    });
    // What the first boot after an upload adds: one checksum pass over the image.
    g.bench_function("image_checksum", |b| b.iter(|| black_box(pto_abi::image::image_checksum(black_box(&src)))));
    g.finish();
}

fn hit_bind(c: &mut Criterion) {
    let sizing = ArenaSizingKey::default();
    let mut runner = new_runner();
    runner.bind(&sizing).unwrap();
    let map: HashMap<u64, u64> = (0..64).map(|i| (i, i * 3)).collect();
    let mut g = c.benchmark_group("hit_bind");
    g.bench_function("hashmap_lookup", |b| b.iter(|| black_box(map.get(&black_box(17)))));
    g.bench_function("bind_hit", |b| b.iter(|| black_box(runner.bind(black_box(&sizing)).unwrap())));
    g.finish();
}

fn boot(c: &mut Criterion) {
    let mut g = c.benchmark_group("boot");
    for window in [4u64, 16384] {
        let sizing = ArenaSizingKey { task_window_sizes: [window; 4], ..ArenaSizingKey::default() };
        let mut runner = new_runner();
        let bound = runner.bind(&sizing).unwrap();
        let block = runner.prepare_launch(&bound, &LaunchParams::default()).unwrap();
        let desc = pto_device::boot::dev_ptr::<LaunchDescriptor>(block.descriptor());
        // SAFETY: the descriptor and regions live in this runner's sim pool; nothing else runs.
        unsafe { pto_device::boot::boot(desc) }.unwrap(); // first boot: checksum, full slot clear
                                                          // The later launches reuse the resident image: no checksum.
        let block = runner.prepare_launch(&bound, &LaunchParams::default()).unwrap();
        let desc = pto_device::boot::dev_ptr::<LaunchDescriptor>(block.descriptor());
        g.bench_function(format!("window_{window}"), |b| {
            // SAFETY: as above.
            b.iter(|| black_box(unsafe { pto_device::boot::boot(black_box(desc)) }.unwrap().epoch()))
        });
    }
    g.finish();
}

fn report() {
    print_ratios(&[
        Ratio {
            figure: ("cold_bind", "bind_build_upload"),
            base: ("cold_bind", "memcpy_arena_size"),
            label: "cold bind / memcpy of arena_size (aim <= 3x)",
        },
        Ratio {
            figure: ("cold_bind", "image_checksum"),
            base: ("cold_bind", "memcpy_arena_size"),
            label: "image checksum (first boot after an upload) / memcpy of arena_size",
        },
        Ratio {
            figure: ("hit_bind", "bind_hit"),
            base: ("hit_bind", "hashmap_lookup"),
            label: "hit bind / HashMap lookup",
        },
        Ratio {
            figure: ("boot", "window_16384"),
            base: ("boot", "window_4"),
            label: "boot at window 16384 / window 4 (must be <= 2x)",
        },
    ]);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    cold_bind_vs_memcpy(&mut c);
    hit_bind(&mut c);
    boot(&mut c);
    c.final_summary();
    report();
}
