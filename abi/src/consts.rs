//! Compile-time capacities and alignments shared by host and device.
//!
//! Every value here shapes an ABI struct or the arena layout, so every one is an input of the
//! ABI fingerprint (see [`crate::fingerprint`]).

/// Number of task rings (scope depth d uses ring `min(d, RING_COUNT - 1)`).
pub const RING_COUNT: usize = 4;
/// Alignment of every device region base (a DMA requirement of the hardware).
pub const REGION_BASE_ALIGN: u64 = 1024;
/// Alignment of every sub-region inside the arena and the SM; one cache line.
pub const CACHE_LINE: u64 = 64;
/// Alignment of every runtime-allocated output inside a ring heap.
pub const HEAP_OUTPUT_ALIGN: u64 = 1024;

/// Compute lanes of one cluster: one cube core (AIC) and two vector cores (AIV0, AIV1).
pub const LANE_COUNT: usize = 3;
/// Most tensor arguments of one task.
pub const MAX_TENSOR_ARGS: usize = 32;
/// Most scalar arguments of one task.
pub const MAX_SCALAR_ARGS: usize = 16;
/// Fanin edges stored inline in a task payload; more spill to the dep-list pool.
pub const INLINE_FANIN: usize = 64;
/// Most dimensions of a tensor view.
pub const MAX_TENSOR_DIMS: usize = 5;
/// Most AICPU threads of one run (the highest index is the orchestrator).
pub const MAX_AICPU_THREADS: usize = 4;
/// Most AICore clusters the runtime drives.
pub const MAX_CLUSTERS: usize = 24;
/// Most AICore cores (clusters × lanes).
pub const MAX_CORES: usize = MAX_CLUSTERS * LANE_COUNT;
/// Deepest scope nesting.
pub const MAX_SCOPE_DEPTH: usize = 32;
/// Entries of the launch descriptor's func-id table.
pub const MAX_FUNC_IDS: usize = 1024;
/// Argument words of one AICore kernel payload (tensors + scalars).
pub const MAX_KERNEL_ARGS: usize = MAX_TENSOR_ARGS + MAX_SCALAR_ARGS;
/// Number of ready queues: AIC, AIV, MIX, dependency-only.
pub const READY_QUEUE_COUNT: usize = 4;
/// Tensor-map entries reserved per task of the total task window.
pub const TENSORMAP_ENTRIES_PER_TASK: u64 = 2;
/// Smallest tensor-map entry pool and bucket count, so tiny windows still work.
pub const TENSORMAP_MIN_ENTRIES: u64 = 64;
