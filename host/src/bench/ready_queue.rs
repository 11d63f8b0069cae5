//! The ready queue alone, with the runtime's default capacity: a push+pop pair on one thread (the
//! MPMC path, and the exclusive path of the deterministic mode), pushes and pops in batches of 32
//! on one thread, and one producer and one consumer thread.
//!
//! Baselines: the two compare-and-swaps an MPMC pair cannot avoid (one per cursor) with the
//! pair's cell writes and nothing else, a plain (non-atomic) ring buffer doing the same pushes and
//! pops on one thread, and a single-producer single-consumer ring (one atomic cursor per side, each side reading the
//! other's only when the ring looks full or empty, no compare-and-swap) between two threads that
//! wait the same way.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use pto_abi::runtime::{ReadyQueueCell, ReadyQueueHeader};
use pto_abi::sizing::ArenaSizingKey;
use pto_device::hostmem::HostRegion;
use pto_device::queue::ReadyQueue;

use super::report::Line;
use super::Sampled;

/// Items per batch of the batched figure.
pub const BATCH: usize = 32;

/// Spins this many times on an empty or full queue, then yields (the machine is shared).
const SPINS_BEFORE_YIELD: u32 = 64;

fn wait(spins: &mut u32) {
    *spins += 1;
    if *spins % SPINS_BEFORE_YIELD == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// The ready-queue capacity of the default sizing.
pub fn default_capacity() -> u64 {
    pto_abi::reserve_layout(&ArenaSizingKey::default()).map(|l| l.offsets.ready_queue_capacity).unwrap_or(1 << 16)
}

/// A ready queue in host memory.
pub struct QueueBench {
    _region: HostRegion,
    /// The queue.
    pub queue: ReadyQueue,
}

impl QueueBench {
    /// An empty queue of `capacity` cells (a power of two, at least 2).
    pub fn new(capacity: u64) -> Self {
        let bytes =
            std::mem::size_of::<ReadyQueueHeader>() as u64 + capacity * std::mem::size_of::<ReadyQueueCell>() as u64;
        let region = HostRegion::new(bytes);
        // SAFETY: the region is 1024-aligned, large enough, and outlives the queue.
        let queue = unsafe { ReadyQueue::from_raw(region.ptr(), capacity) };
        // SAFETY: the queue was just created; no other thread uses it yet.
        unsafe { queue.init() };
        QueueBench { _region: region, queue }
    }

    /// `items` push+pop pairs; Err if an item comes back wrong.
    pub fn pairs(&self, items: u64) -> Result<f64, String> {
        let mut bad = 0u64;
        let ns = super::ns_per_item(items, || {
            for i in 0..items {
                if self.queue.push(i).is_err() || self.queue.pop() != Some(i) {
                    bad += 1;
                }
            }
        });
        check(bad, "push+pop pair")?;
        Ok(ns)
    }

    /// `items` push+pop pairs through the single-thread path the deterministic mode uses
    /// (`push_exclusive` / `pop_exclusive`: no read-modify-write instructions).
    pub fn exclusive_pairs(&self, items: u64) -> Result<f64, String> {
        let mut bad = 0u64;
        let ns = super::ns_per_item(items, || {
            for i in 0..items {
                if self.queue.push_exclusive(i).is_err() || self.queue.pop_exclusive() != Some(i) {
                    bad += 1;
                }
            }
        });
        check(bad, "exclusive push+pop pair")?;
        Ok(ns)
    }

    /// Pushes and pops `items` (rounded up to whole batches) in batches of [`BATCH`].
    pub fn batches(&self, items: u64) -> Result<f64, String> {
        let rounds = items.div_ceil(BATCH as u64);
        let mut out = [0u64; BATCH];
        let mut bad = 0u64;
        let ns = super::ns_per_item(rounds * BATCH as u64, || {
            for r in 0..rounds {
                let first = r * BATCH as u64;
                let tasks: [u64; BATCH] = std::array::from_fn(|k| first + k as u64);
                let pushed = self.queue.push_batch(&tasks);
                let popped = self.queue.pop_batch(&mut out);
                if pushed != BATCH || popped != BATCH || out[BATCH - 1] != first + BATCH as u64 - 1 {
                    bad += 1;
                }
            }
        });
        check(bad, "batch of 32")?;
        Ok(ns)
    }

    /// One producer thread pushes `items` one by one, this thread pops them.
    pub fn two_threads(&self, items: u64) -> Result<f64, String> {
        let q = self.queue;
        let (sum, ns) = producer_consumer(
            items,
            move |v| {
                let mut spins = 0;
                while q.push(v).is_err() {
                    wait(&mut spins);
                }
            },
            move || {
                let mut spins = 0;
                loop {
                    if let Some(v) = q.pop() {
                        return v;
                    }
                    wait(&mut spins);
                }
            },
        );
        check((sum != items * (items.saturating_sub(1)) / 2) as u64, "producer/consumer")?;
        Ok(ns)
    }
}

fn check(bad: u64, what: &str) -> Result<(), String> {
    if bad == 0 {
        Ok(())
    } else {
        Err(format!("ready queue {what}: {bad} rounds returned wrong items"))
    }
}

/// Runs `push(0..items)` on a new thread and `pop()` `items` times on this one; returns the sum
/// of the popped values and the nanoseconds per item from the start barrier to the last pop.
fn producer_consumer(items: u64, mut push: impl FnMut(u64) + Send, mut pop: impl FnMut() -> u64) -> (u64, f64) {
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        let start = &start;
        s.spawn(move || {
            start.wait();
            for i in 0..items {
                push(i);
            }
        });
        start.wait();
        let t = Instant::now();
        let mut sum = 0u64;
        for _ in 0..items {
            sum = sum.wrapping_add(pop());
        }
        (sum, t.elapsed().as_nanos() as f64 / items.max(1) as f64)
    })
}

/// The one-thread baseline: a plain ring buffer of the same capacity.
pub struct PlainRing {
    cells: Vec<u64>,
    head: u64,
    tail: u64,
}

impl PlainRing {
    /// An empty ring of `capacity` cells (a power of two, at least [`BATCH`]).
    pub fn new(capacity: u64) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= BATCH as u64);
        PlainRing { cells: vec![0; capacity as usize], head: 0, tail: 0 }
    }

    fn mask(&self) -> u64 {
        self.cells.len() as u64 - 1
    }

    /// `items` push+pop pairs.
    pub fn pairs(&mut self, items: u64) -> f64 {
        super::ns_per_item(items, || {
            for i in 0..items {
                let m = self.mask();
                self.cells[(self.head & m) as usize] = i;
                self.head += 1;
                black_box(self.cells[(self.tail & m) as usize]);
                self.tail += 1;
            }
        })
    }

    /// `items` (whole batches) copied in and out [`BATCH`] at a time.
    pub fn batches(&mut self, items: u64) -> f64 {
        let rounds = items.div_ceil(BATCH as u64);
        let mut out = [0u64; BATCH];
        super::ns_per_item(rounds * BATCH as u64, || {
            for r in 0..rounds {
                let tasks: [u64; BATCH] = std::array::from_fn(|k| r * BATCH as u64 + k as u64);
                // The capacity is a power of two of at least BATCH: a batch never wraps.
                let at = ((r * BATCH as u64) & self.mask()) as usize;
                self.cells[at..at + BATCH].copy_from_slice(&tasks);
                out.copy_from_slice(&self.cells[at..at + BATCH]);
                black_box(&mut out);
            }
        })
    }
}

/// A cursor alone on its cache line.
#[repr(align(64))]
struct LineCursor(AtomicU64);

/// The floor of the atomic pair: per push+pop, one compare-and-swap on the producer cursor and
/// one on the consumer cursor (each on its own line), the task and sequence writes of the cell,
/// and the task read; no sequence checks, no full or empty handling. An MPMC queue whose
/// producers and consumers each claim a cell with one compare-and-swap (as the ready queue and
/// the peer's do) cannot do a pair in less.
pub struct CasFloor {
    enqueue: LineCursor,
    dequeue: LineCursor,
    cells: Vec<[AtomicU64; 2]>,
}

impl CasFloor {
    /// Cursors at zero over `capacity` cells (a power of two).
    pub fn new(capacity: u64) -> Self {
        debug_assert!(capacity.is_power_of_two());
        CasFloor {
            enqueue: LineCursor(AtomicU64::new(0)),
            dequeue: LineCursor(AtomicU64::new(0)),
            cells: (0..capacity).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
        }
    }

    /// `items` push+pop pairs; Err if an item comes back wrong.
    pub fn pairs(&self, items: u64) -> Result<f64, String> {
        let mask = self.cells.len() as u64 - 1;
        let mut bad = 0u64;
        let ns = super::ns_per_item(items, || {
            for i in 0..items {
                let e = self.enqueue.0.load(Ordering::Relaxed);
                if self.enqueue.0.compare_exchange_weak(e, e + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    let [seq, task] = &self.cells[(e & mask) as usize];
                    task.store(i, Ordering::Relaxed);
                    seq.store(e + 1, Ordering::Release);
                }
                let d = self.dequeue.0.load(Ordering::Relaxed);
                if self.dequeue.0.compare_exchange_weak(d, d + 1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    let [seq, task] = &self.cells[(d & mask) as usize];
                    bad += u64::from(black_box(task.load(Ordering::Relaxed)) != i);
                    seq.store(d + mask + 1, Ordering::Release);
                } else {
                    bad += 1;
                }
            }
        });
        // A spurious failure of the first swap leaves a cell behind; the cursors must agree.
        bad += u64::from(self.enqueue.0.load(Ordering::Relaxed) != self.dequeue.0.load(Ordering::Relaxed));
        check(bad, "two compare-and-swap floor")?;
        Ok(ns)
    }
}

/// The two-thread baseline: a single-producer single-consumer ring.
pub struct SpscRing {
    cells: Vec<AtomicU64>,
    head: AtomicU64,
    tail: AtomicU64,
}

impl SpscRing {
    /// An empty ring of `capacity` cells (a power of two).
    pub fn new(capacity: u64) -> Self {
        SpscRing {
            cells: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
        }
    }

    /// Pushes unless full; `tail_seen` is the producer's last view of the consumer's cursor,
    /// refreshed only when the ring looks full (so the cursors' lines move only when needed).
    fn push(&self, v: u64, tail_seen: &mut u64) -> bool {
        let h = self.head.load(Ordering::Relaxed);
        let cap = self.cells.len() as u64;
        if h - *tail_seen == cap {
            *tail_seen = self.tail.load(Ordering::Acquire);
            if h - *tail_seen == cap {
                return false;
            }
        }
        self.cells[(h & (cap - 1)) as usize].store(v, Ordering::Relaxed);
        self.head.store(h + 1, Ordering::Release);
        true
    }

    /// Pops unless empty; `head_seen` is the consumer's last view of the producer's cursor.
    fn pop(&self, head_seen: &mut u64) -> Option<u64> {
        let t = self.tail.load(Ordering::Relaxed);
        if t == *head_seen {
            *head_seen = self.head.load(Ordering::Acquire);
            if t == *head_seen {
                return None;
            }
        }
        let v = self.cells[(t & (self.cells.len() as u64 - 1)) as usize].load(Ordering::Relaxed);
        self.tail.store(t + 1, Ordering::Release);
        Some(v)
    }

    /// One producer thread pushes `items`, this thread pops them; Err if any is lost.
    pub fn two_threads(&self, items: u64) -> Result<f64, String> {
        let (mut tail_seen, mut head_seen) = (self.tail.load(Ordering::Acquire), self.head.load(Ordering::Acquire));
        let (sum, ns) = producer_consumer(
            items,
            |v| {
                let mut spins = 0;
                while !self.push(v, &mut tail_seen) {
                    wait(&mut spins);
                }
            },
            || {
                let mut spins = 0;
                loop {
                    if let Some(v) = self.pop(&mut head_seen) {
                        return v;
                    }
                    wait(&mut spins);
                }
            },
        );
        check((sum != items * (items.saturating_sub(1)) / 2) as u64, "SPSC baseline")?;
        Ok(ns)
    }
}

/// Measures the three figures over `items` items each, median of `reps`.
pub fn measure_all(items: u64, reps: u32) -> Result<Vec<Line>, String> {
    let cap = default_capacity();
    let q = QueueBench::new(cap);
    let mut plain = PlainRing::new(cap);
    let floor = CasFloor::new(cap);
    let spsc = SpscRing::new(cap);
    let line = |name: &str, baseline: &'static str, (ns, baseline_ns): (Sampled, Sampled)| Line {
        name: name.to_string(),
        items,
        ns,
        baseline,
        baseline_ns,
    };
    // Warm the cells once around the ring.
    q.pairs(cap)?;
    plain.pairs(cap);
    floor.pairs(cap)?;
    let pair = super::interleaved_checked(reps, || floor.pairs(items), || q.pairs(items))?;
    let exclusive = super::interleaved(reps, || plain.pairs(items), || q.exclusive_pairs(items))?;
    let batch = super::interleaved(reps, || plain.batches(items), || q.batches(items))?;
    let two = super::interleaved_checked(reps, || spsc.two_threads(items), || q.two_threads(items))?;
    Ok(vec![
        line("push+pop pair, one thread", "its two compare-and-swaps alone", pair),
        line("pair, exclusive (deterministic)", "plain ring push+pop", exclusive),
        line("batch of 32, one thread", "plain ring, 32-item copies", batch),
        line("producer/consumer, two threads", "SPSC ring, two threads", two),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_moves_every_item_through_the_queue() {
        let q = QueueBench::new(64);
        q.pairs(200).unwrap();
        q.exclusive_pairs(200).unwrap();
        q.batches(200).unwrap();
        q.two_threads(5_000).unwrap();
        assert!(q.queue.is_empty());
        SpscRing::new(64).two_threads(5_000).unwrap();
        let floor = CasFloor::new(64);
        floor.pairs(300).unwrap();
        assert_eq!(floor.dequeue.0.load(Ordering::Relaxed), 300);
        let mut p = PlainRing::new(64);
        p.pairs(100);
        p.batches(100);
        assert_eq!((p.head, p.tail), (100, 100));
        // Four batches alternate between cells 0..32 and 32..64: the last two wrote 64..128.
        assert_eq!((p.cells[31], p.cells[63]), (95, 127));
    }
}
