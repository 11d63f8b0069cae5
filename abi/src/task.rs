//! Per-task structures in shared memory: descriptor, payload, slot state, tensor descriptor,
//! dep-list node, and the enums that travel inside them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::addr::DevAddr;
use crate::consts::{INLINE_FANIN, LANE_COUNT, MAX_SCALAR_ARGS, MAX_TENSOR_ARGS, MAX_TENSOR_DIMS};

/// A task id: `(ring << 32) | local index`; the local index grows monotonically per ring.
pub const fn make_task_id(ring: u32, local: u32) -> u64 {
    ((ring as u64) << 32) | local as u64
}

/// The ring of a task id.
pub const fn task_id_ring(id: u64) -> u32 {
    (id >> 32) as u32
}

/// The per-ring local index of a task id.
pub const fn task_id_local(id: u64) -> u32 {
    id as u32
}

/// A task id that names no task.
pub const NO_TASK: u64 = u64::MAX;
/// A kernel id that marks a lane as inactive.
pub const INACTIVE_KERNEL: i32 = -1;

crate::abi_enum! {
    /// How a task uses one tensor argument.
    pub enum TensorDirection {
        /// Read only; depends on the tensor's creator and earlier overlapping writers.
        Input = 0,
        /// Runtime-allocated output in the task's packed heap block.
        Output = 1,
        /// Read and written; depends like `Input`, then registers as a writer.
        InOut = 2,
        /// Writes an existing buffer; registers as a writer.
        OutputExisting = 3,
        /// Passed through without dependency tracking.
        NoDep = 4,
    }
}

crate::abi_enum! {
    /// A compute lane of a cluster.
    pub enum Lane {
        /// The cube core.
        Aic = 0,
        /// The first vector core.
        Aiv0 = 1,
        /// The second vector core.
        Aiv1 = 2,
    }
}

crate::abi_enum! {
    /// Lifecycle of a task slot (`SlotState::task_state`).
    pub enum TaskState {
        /// Submitted, not yet completed.
        Pending = 0,
        /// Every lane and block has finished.
        Completed = 1,
        /// Completed, released by every consumer and by its scope; the slot may be reused.
        Consumed = 2,
    }
}

/// `SlotState::flags`: the task has been routed to a ready queue (exactly once).
pub const SLOT_FLAG_READY_CLAIMED: u32 = 1 << 0;
/// `SlotState::fanout_count` bit held while the task's scope is open.
pub const FANOUT_SCOPE_REF: u32 = 1 << 31;

crate::abi_enum! {
    /// Element type of a tensor (`TensorDesc::dtype`).
    pub enum DType {
        /// 32-bit IEEE float.
        F32 = 0,
        /// 16-bit IEEE float.
        F16 = 1,
        /// bfloat16.
        Bf16 = 2,
        /// 32-bit signed integer.
        I32 = 3,
        /// 8-bit signed integer.
        I8 = 4,
        /// Raw bytes.
        U8 = 5,
    }
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> u64 {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }

    /// `log2` of [`DType::size`] (every element size is a power of two).
    pub const fn size_log2(self) -> u32 {
        self.size().trailing_zeros()
    }
}

/// One dimension of a tensor view.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TensorDim {
    /// Extent, in elements.
    pub extent: u32,
    /// Stride, in elements.
    pub stride: u32,
}

/// One tensor argument of a task: a byte range of a device buffer plus its view shape.
///
/// Everything a one-dimensional view uses (the addresses, creator, dtype, dimension count,
/// direction and first dimension) lies in the first cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TensorDesc {
    /// Base address of the whole buffer (the tensor-map key).
    pub buffer: DevAddr,
    /// Size of the whole buffer in bytes.
    pub buffer_bytes: u64,
    /// Start of the view, in bytes from `buffer`.
    pub view_offset: u64,
    /// Bytes spanned by the view (the range used for overlap checks).
    pub view_bytes: u64,
    /// Task that created the buffer (runtime-allocated outputs), or [`NO_TASK`].
    pub creator_task: u64,
    /// A [`DType`] value.
    pub dtype: u32,
    /// Number of used entries in `dims`.
    pub ndims: u32,
    /// A [`TensorDirection`] value.
    pub direction: u32,
    /// Extent and stride of each dimension, outermost first.
    pub dims: [TensorDim; MAX_TENSOR_DIMS],
    /// Explicit padding to 128 bytes.
    pub _pad: [u8; 36],
}

/// The fixed part of a task in SM: identity, kernels per lane, packed output block.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TaskDescriptor {
    /// `(ring << 32) | local index`.
    pub task_id: u64,
    /// Kernel (func) id per lane [AIC, AIV0, AIV1]; [`INACTIVE_KERNEL`] for an unused lane.
    pub kernel_ids: [i32; LANE_COUNT],
    /// SPMD block count (1 for a plain task).
    pub block_num: u32,
    /// Bit `l` set when lane `l` is active; 0 for a dependency-only task.
    pub lane_mask: u32,
    /// Reserved flag bits.
    pub flags: u32,
    /// Start of the task's packed output block in the ring heap.
    pub packed_buffer_base: DevAddr,
    /// End (exclusive) of the packed output block.
    pub packed_buffer_end: DevAddr,
    /// Monotonic ring-heap position just past this task's block; the heap tail follows it when the
    /// task is consumed.
    pub heap_end_pos: u64,
    /// Serial number of the scope the task was submitted in (manual-scope locality checks).
    pub scope_serial: u32,
    /// Explicit padding to one cache line.
    pub _pad: [u8; 4],
}

/// Arguments and fanin edges of a task in SM.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct TaskPayload {
    /// Used entries of `tensors`.
    pub tensor_count: u32,
    /// Used entries of `scalars`.
    pub scalar_count: u32,
    /// Number of fanin edges (inline plus spilled).
    pub fanin_count: u32,
    /// Edges beyond [`INLINE_FANIN`], stored in the ring's dep-list pool.
    pub fanin_spill_count: u32,
    /// Dep-list pool index of the first spilled edge (0 = none).
    pub fanin_spill_head: u32,
    /// Explicit padding to the fanin ids' alignment.
    pub _pad0: [u8; 4],
    /// Producer task ids this task waits for. The first five share the counts' cache line, so a
    /// task with few producers writes (at submit) and reads (at completion) one header line.
    pub fanin: [u64; INLINE_FANIN],
    /// Explicit padding: the tensor descriptors start on a cache line.
    pub _pad1: [u8; 40],
    /// Tensor arguments.
    pub tensors: [TensorDesc; MAX_TENSOR_ARGS],
    /// Scalar arguments, raw 64-bit words.
    pub scalars: [u64; MAX_SCALAR_ARGS],
}

/// Per-slot mutable state in SM, one cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SlotState {
    /// Id of the task occupying the slot (written when the slot is prepared).
    pub task_id: u64,
    /// Spin lock guarding the fanout list and the lifetime counters (0 free, 1 held).
    pub fanout_lock: u32,
    /// Consumers retaining this task; bit 31 = [`FANOUT_SCOPE_REF`].
    pub fanout_count: u32,
    /// Encoded dep-list node of the first consumer (0 = empty; see the device's dep pool).
    pub fanout_head: u32,
    /// A [`TaskState`] value.
    pub task_state: u32,
    /// Producers to wait for, plus one guard held by the wiring code.
    pub fanin_count: u32,
    /// Producers (and the guard) observed complete so far.
    pub fanin_refcount: u32,
    /// Consumers that released this task so far.
    pub fanout_refcount: u32,
    /// Active lanes, as in the descriptor.
    pub lane_mask: u32,
    /// `SLOT_FLAG_*` bits.
    pub flags: u32,
    /// Low 32 bits of the ring's dep-pool head after this task's submit (reclaimed behind the
    /// watermark).
    pub dep_pool_mark: u32,
    /// FINs expected: `block_num × active lanes`.
    pub subtask_total: u32,
    /// FINs received so far.
    pub subtask_done: u32,
    /// Blocks handed to cores so far (SPMD tasks); touched only by the scheduler holding the task.
    pub next_block: u32,
    /// Head of this task's tensor-map entry chain (0 = none).
    pub tensormap_chain: u32,
}

/// A node of a ring's dep-list pool; entry 0 is the null sentinel.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct DepListEntry {
    /// The consumer (or spilled producer) task id.
    pub task_id: u64,
    /// Index of the next node (0 = end).
    pub next: u32,
    /// Explicit padding.
    pub _pad: [u8; 4],
}
