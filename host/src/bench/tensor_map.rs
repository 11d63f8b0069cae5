//! The tensor map alone: per task, 2 lookups (the writers of the two previous tasks' buffers) and
//! 1 insert (its own buffer), with the chains of the tasks that left the in-flight window
//! reclaimed every [`CLEANUP_EVERY`] tasks; map sized for a task window of [`WINDOW`].
//!
//! Baseline: the same entry traffic on an array indexed by task (no hashing, chains, overlap
//! classification or cleanup).

use std::hint::black_box;

use pto_abi::consts::TENSORMAP_ENTRIES_PER_TASK;
use pto_abi::runtime::TensorMapEntry;
use pto_device::hostmem::HostRegion;
use pto_device::tensormap::TensorMap;

use super::report::Line;

/// The task window the map is sized for (entries and buckets as the layout engine gives them).
pub const WINDOW: u64 = 65_536;
/// Tasks in flight of the two figures.
pub const IN_FLIGHT: [u64; 2] = [1_024, 16_384];
/// Reclaim period, in tasks.
pub const CLEANUP_EVERY: u64 = 64;
/// Bytes between consecutive buffers (each task writes its own 1 KiB buffer).
const BUFFER_STRIDE: u64 = 1024;
const BUFFER_BASE: u64 = 0x7f00_0000_0000;

/// A tensor map in host memory driven like the orchestrator drives it.
pub struct TensorMapBench {
    _buckets: HostRegion,
    _entries: HostRegion,
    map: TensorMap,
    chains: Vec<u32>,
    in_flight: u64,
    /// Buffers cycle with this period (twice the tasks in flight: a reused address's old entry
    /// was always reclaimed).
    buffers: u64,
    next: u64,
    cleaned: u64,
    /// Sum of the producers found (keeps the lookups observable).
    pub found: u64,
    /// Lookups that found the expected producer.
    pub hits: u64,
}

impl TensorMapBench {
    /// A map for [`WINDOW`] with `in_flight` tasks in flight (1..=WINDOW - CLEANUP_EVERY).
    pub fn new(in_flight: u64) -> Result<Self, String> {
        if in_flight == 0 || in_flight + CLEANUP_EVERY > WINDOW {
            return Err(format!("tasks in flight {in_flight}: must be 1..={}", WINDOW - CLEANUP_EVERY));
        }
        let capacity = WINDOW * TENSORMAP_ENTRIES_PER_TASK;
        let bucket_count = WINDOW;
        let buckets = HostRegion::new(bucket_count * 4);
        let entries = HostRegion::new((capacity + 1) * std::mem::size_of::<TensorMapEntry>() as u64);
        // SAFETY: both regions have the sizes given, are zeroed, and live as long as the map.
        let mut map =
            unsafe { TensorMap::from_raw(buckets.ptr().cast(), bucket_count, entries.ptr().cast(), capacity) };
        map.init();
        Ok(TensorMapBench {
            _buckets: buckets,
            _entries: entries,
            map,
            chains: vec![0; WINDOW as usize],
            in_flight,
            buffers: 2 * in_flight.max(2),
            next: 0,
            cleaned: 0,
            found: 0,
            hits: 0,
        })
    }

    fn buffer(&self, task: u64) -> u64 {
        BUFFER_BASE + (task % self.buffers) * BUFFER_STRIDE
    }

    /// One task: two lookups, one insert, and the periodic cleanup.
    #[inline]
    pub fn step(&mut self) {
        let i = self.next;
        for back in 1..=2u64 {
            if i >= back {
                let want = i - back;
                let (mut found, mut hit) = (0u64, false);
                self.map.lookup(self.buffer(want), 0, BUFFER_STRIDE, |p| {
                    found = found.wrapping_add(p);
                    hit |= p == want;
                });
                self.found = self.found.wrapping_add(found);
                self.hits += hit as u64;
            }
        }
        let slot = (i % WINDOW) as usize;
        self.chains[slot] = 0;
        let buffer = self.buffer(i);
        self.map.insert(buffer, 0, BUFFER_STRIDE, i, &mut self.chains[slot]).expect("the map holds a whole window");
        if i % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            while self.cleaned + self.in_flight <= i {
                let s = (self.cleaned % WINDOW) as usize;
                self.map.release_chain(self.chains[s]);
                self.chains[s] = 0;
                self.cleaned += 1;
            }
        }
        self.next += 1;
    }

    /// Runs `tasks` steps; returns nanoseconds per task.
    pub fn run(&mut self, tasks: u64) -> f64 {
        super::ns_per_item(tasks, || {
            for _ in 0..tasks {
                self.step();
            }
        })
    }

    /// Entries in use.
    pub fn used(&self) -> u32 {
        self.map.used()
    }

    /// Tasks stepped so far.
    pub fn tasks(&self) -> u64 {
        self.next
    }
}

/// The baseline: the same entry traffic without hashing, chains or cleanup: an array of 64-byte
/// entries indexed by task, each task reading the entries of the two tasks before it and writing
/// its own.
pub struct TaskArray {
    table: Vec<TensorMapEntry>,
    next: u64,
    /// Keeps the reads observable.
    pub found: u64,
}

impl TaskArray {
    /// An array of [`WINDOW`] entries.
    pub fn new() -> Self {
        let zero: TensorMapEntry = zerocopy::FromZeros::new_zeroed();
        TaskArray { table: vec![zero; WINDOW as usize], next: 0, found: 0 }
    }

    /// Runs `tasks` steps of 2 entry reads + 1 entry write; returns nanoseconds per task.
    pub fn run(&mut self, tasks: u64) -> f64 {
        let mask = WINDOW - 1;
        let buffer = |t: u64| BUFFER_BASE + t * BUFFER_STRIDE;
        super::ns_per_item(tasks, || {
            for _ in 0..tasks {
                let i = self.next;
                for back in 1..=i.min(2) {
                    let want = i - back;
                    let e = &self.table[(want & mask) as usize];
                    if e.buffer.0 == buffer(want) && e.range_start < BUFFER_STRIDE && e.range_end > 0 {
                        self.found = self.found.wrapping_add(e.producer_task);
                    }
                }
                let e = &mut self.table[(i & mask) as usize];
                e.buffer = pto_abi::DevAddr(buffer(i));
                e.range_start = 0;
                e.range_end = BUFFER_STRIDE;
                e.producer_task = i;
                e.live = 1;
                black_box(&mut *e);
                self.next += 1;
            }
        })
    }
}

impl Default for TaskArray {
    fn default() -> Self {
        Self::new()
    }
}

/// Measures the figure for `in_flight` tasks in flight over `tasks` timed tasks (after a warm-up
/// that fills the window), median of `reps`.
pub fn measure(in_flight: u64, tasks: u64, reps: u32) -> Result<Line, String> {
    let mut bench = TensorMapBench::new(in_flight)?;
    let mut base = TaskArray::new();
    let warm = 2 * in_flight + CLEANUP_EVERY;
    bench.run(warm);
    base.run(warm);
    let (ns, baseline_ns) = super::interleaved(reps, || base.run(tasks), || Ok(bench.run(tasks)))?;
    let expected_hits = 2 * bench.tasks() - 3;
    if bench.hits != expected_hits {
        return Err(format!("tensor map: {} of {expected_hits} lookups found their producer", bench.hits));
    }
    black_box((bench.found, base.found));
    Ok(Line {
        name: format!("{in_flight} in flight"),
        items: tasks,
        ns,
        baseline: "per-task entry array, 2 reads + 1 write",
        baseline_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lookup_finds_its_producer_and_cleanup_keeps_the_map_bounded() {
        let mut b = TensorMapBench::new(100).unwrap();
        b.run(1000);
        assert_eq!(b.hits, 2 * 1000 - 3, "task 0 looks up nothing, task 1 one buffer");
        // At most in_flight + CLEANUP_EVERY entries stay live.
        assert!(b.used() as u64 <= 100 + CLEANUP_EVERY, "{} entries", b.used());
        assert!(b.used() as u64 >= 100);
        assert!(TensorMapBench::new(0).is_err());
        assert!(TensorMapBench::new(WINDOW).is_err());
    }

    #[test]
    fn the_baseline_reads_back_what_it_wrote() {
        let mut t = TaskArray::new();
        t.run(10);
        // Task 9 read tasks 8 and 7 (producer ids summed over all reads of tasks 1..9).
        let expected: u64 = (1..10u64).map(|i| (i - 1) + i.saturating_sub(2)).sum();
        assert_eq!(t.found, expected);
    }
}
