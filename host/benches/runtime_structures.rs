//! Micro-benchmarks of the runtime's structures, each beside its baseline (same code as
//! `pto bench`, see `pto_host::bench`); one criterion iteration = one task or one queue item:
//!
//! * tensor map: 2 lookups + 1 insert + cleanup every 64 tasks, window 65,536, with 1,024 and
//!   16,384 tasks in flight (C++: 44 and 65 ns) vs a per-task entry array;
//! * ready queue: push+pop pair, batches of 32, one producer and one consumer thread
//!   (C++: 10.2, 2.0 and 45 ns) vs a plain ring and an SPSC ring.
//!
//! Run: `cargo bench -p pto-host --bench runtime_structures -- --warm-up-time 1 --measurement-time 2`.
//! The whole-cycle graph figures are long runs, measured by `pto bench`.

use std::time::Duration;

use criterion::Criterion;
use pto_host::bench::ready_queue::{default_capacity, CasFloor, PlainRing, QueueBench, SpscRing};
use pto_host::bench::tensor_map::{TaskArray, TensorMapBench, IN_FLIGHT};

fn total(ns_per_item: f64, iters: u64) -> Duration {
    Duration::from_nanos((ns_per_item * iters as f64) as u64)
}

fn tensor_map(c: &mut Criterion) {
    let mut g = c.benchmark_group("tensor_map");
    for in_flight in IN_FLIGHT {
        let mut map = TensorMapBench::new(in_flight).expect("valid in-flight count");
        map.run(2 * in_flight + 64);
        g.bench_function(format!("{in_flight}_in_flight"), |b| b.iter_custom(|n| total(map.run(n), n)));
    }
    let mut base = TaskArray::new();
    g.bench_function("baseline_task_array", |b| b.iter_custom(|n| total(base.run(n), n)));
    g.finish();
}

fn ready_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("ready_queue");
    let cap = default_capacity();
    let q = QueueBench::new(cap);
    let mut plain = PlainRing::new(cap);
    let floor = CasFloor::new(cap);
    let spsc = SpscRing::new(cap);
    g.bench_function("pair_one_thread", |b| b.iter_custom(|n| total(q.pairs(n).expect("items intact"), n)));
    g.bench_function("baseline_two_cas_pair", |b| b.iter_custom(|n| total(floor.pairs(n).expect("items intact"), n)));
    g.bench_function("pair_exclusive", |b| b.iter_custom(|n| total(q.exclusive_pairs(n).expect("items intact"), n)));
    g.bench_function("baseline_plain_pair", |b| b.iter_custom(|n| total(plain.pairs(n), n)));
    g.bench_function("batch_32_one_thread", |b| b.iter_custom(|n| total(q.batches(n).expect("items intact"), n)));
    g.bench_function("baseline_plain_batch_32", |b| b.iter_custom(|n| total(plain.batches(n), n)));
    g.sample_size(20);
    g.bench_function("producer_consumer_two_threads", |b| {
        b.iter_custom(|n| total(q.two_threads(n.max(1000)).expect("items intact"), n))
    });
    g.bench_function("baseline_spsc_two_threads", |b| {
        b.iter_custom(|n| total(spsc.two_threads(n.max(1000)).expect("items intact"), n))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    tensor_map(&mut c);
    ready_queue(&mut c);
    c.final_summary();
}
