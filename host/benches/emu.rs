//! Figures of the emulated device (qemu running the aarch64 firmware), each beside a baseline
//! measured in the same run:
//!
//! * qemu start → firmware ready vs starting and reaping `qemu-system-aarch64 --version`;
//! * cold bind of the default sizing on the emulated device vs a copy of the same bytes into its
//!   guest-RAM mapping;
//! * launch → done of a boot-only launch (the smallest launch: an empty graph's boot, no task) on
//!   the emulated device vs the simulated device;
//! * the vector example's time per task on the emulated device vs the simulated device (threaded,
//!   3 AICPU threads, 2 clusters).
//!
//! Run: `cargo fw-build && cargo bench -p pto-host --bench emu`. Without qemu or the firmware ELF
//! it prints one SKIP line.

mod support;

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pto_host::emu::{qemu, EmuBackend, EmuConfig};
use pto_host::examples::{define_vector_symbols, vector_args, vector_example_callable};
use pto_host::sim::SimBackend;
use pto_host::{ArenaSizingKey, Budgets, CallableRunConfig, DeviceBackend, DeviceRunner, LaunchParams, RunMode};
use support::{print_ratios, Ratio};

/// Guest RAM for the default sizing (1 GiB heap, 326 MB SM, 24 MB arena) and the firmware.
const BIG_RAM: u64 = 1536 << 20;

fn small_sizing() -> ArenaSizingKey {
    ArenaSizingKey::uniform(1024, 1 << 20, 1024)
}

fn start(ram_bytes: u64, vcpus: u32) -> Arc<EmuBackend> {
    let config = EmuConfig { ram_bytes, vcpus, ..EmuConfig::default() };
    Arc::new(EmuBackend::start(&config).expect("start the emulated device"))
}

fn qemu_start(c: &mut Criterion) {
    let binary = EmuConfig::default().qemu;
    let mut g = c.benchmark_group("emu_start");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(4));
    g.bench_function("qemu_version", |b| {
        b.iter(|| {
            let s = Command::new(&binary).arg("--version").stdout(Stdio::null()).status().unwrap();
            black_box(s);
        })
    });
    g.bench_function("start_to_ready", |b| {
        b.iter_custom(|n| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let emu = start(EmuConfig::default().ram_bytes, 3);
                total += emu.info().start_to_ready;
            }
            total
        })
    });
    g.finish();
}

fn cold_bind(c: &mut Criterion) {
    let emu = start(BIG_RAM, 3);
    let sizing = ArenaSizingKey::default();
    let mut runner = DeviceRunner::new(emu.clone() as Arc<dyn DeviceBackend>);
    let size = runner.bind(&sizing).unwrap().image_size;
    let dst = emu.malloc(size).unwrap();
    let src = vec![1u8; size as usize];
    let mut g = c.benchmark_group("emu_cold_bind");
    g.sample_size(10);
    g.bench_function("copy_into_mapping", |b| b.iter(|| emu.copy_to_device(dst, black_box(&src)).unwrap()));
    g.bench_function("bind_build_upload", |b| {
        b.iter(|| {
            runner.forget_images();
            black_box(runner.bind(black_box(&sizing)).unwrap());
        })
    });
    g.finish();
    emu.free(dst).unwrap();
}

fn boot_launch(c: &mut Criterion) {
    let mut g = c.benchmark_group("launch_to_done");
    g.sample_size(20);
    let emu = start(EmuConfig::default().ram_bytes, 3);
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).unwrap());
    for (name, backend) in [("sim", sim as Arc<dyn DeviceBackend>), ("emu", emu as Arc<dyn DeviceBackend>)] {
        let mut runner = DeviceRunner::new(backend);
        let bound = runner.bind(&small_sizing()).unwrap();
        let params = LaunchParams::default();
        runner.boot_resident(&bound, &params).unwrap();
        g.bench_function(format!("boot_launch_{name}"), |b| {
            b.iter(|| black_box(runner.boot_resident(&bound, &params).unwrap()))
        });
    }
    g.finish();
}

fn vector_per_task(c: &mut Criterion) {
    let mut g = c.benchmark_group("vector_per_task");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let emu = start(EmuConfig::default().ram_bytes, 5);
    let sim = Arc::new(SimBackend::with_capacity(1 << 30).unwrap());
    define_vector_symbols(&mut sim.symbols()).unwrap();
    let config = CallableRunConfig {
        sizing: small_sizing(),
        mode: RunMode::Threaded { threads: 3, clusters: 2 },
        budgets: Budgets::DEFAULT,
    };
    for (name, backend) in [("sim", sim as Arc<dyn DeviceBackend>), ("emu", emu as Arc<dyn DeviceBackend>)] {
        let mut runner = DeviceRunner::new(backend);
        runner.register_callable(0, &vector_example_callable().unwrap()).unwrap();
        let args = vector_args();
        runner.run_callable(0, &args, &config).unwrap();
        g.bench_function(format!("threaded_{name}"), |b| {
            b.iter_custom(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let r = runner.run_callable(0, &args, &config).unwrap();
                    total += r.per_task();
                }
                total
            })
        });
    }
    g.finish();
}

fn report() {
    print_ratios(&[
        Ratio {
            figure: ("emu_start", "start_to_ready"),
            base: ("emu_start", "qemu_version"),
            label: "qemu start -> firmware ready / qemu --version",
        },
        Ratio {
            figure: ("emu_cold_bind", "bind_build_upload"),
            base: ("emu_cold_bind", "copy_into_mapping"),
            label: "emu cold bind (default sizing) / copy of the image into the mapping",
        },
        Ratio {
            figure: ("launch_to_done", "boot_launch_emu"),
            base: ("launch_to_done", "boot_launch_sim"),
            label: "boot-only launch -> done: emu / sim",
        },
        Ratio {
            figure: ("vector_per_task", "threaded_emu"),
            base: ("vector_per_task", "threaded_sim"),
            label: "vector example time per task: emu / sim",
        },
    ]);
}

fn main() {
    let config = EmuConfig::default();
    if !qemu::binary_available(&config.qemu) || !config.firmware.is_file() {
        println!(
            "SKIP: the emulated-device figures need qemu-system-aarch64 (apt-get install qemu-system-arm) and the \
             firmware ELF `{}` (cargo fw-build)",
            config.firmware.display()
        );
        return;
    }
    let t = Instant::now();
    let mut c = Criterion::default().configure_from_args();
    qemu_start(&mut c);
    cold_bind(&mut c);
    boot_launch(&mut c);
    vector_per_task(&mut c);
    c.final_summary();
    report();
    println!("(all figures in {:.0} s)", t.elapsed().as_secs_f64());
}
