//! What an orchestration hands to `submit`: tensors, arguments with their direction, kernels per
//! lane, SPMD block count, scalars and explicit dependencies; and what it gets back.

use core::mem::MaybeUninit;

use pto_abi::consts::LANE_COUNT;
use pto_abi::launch::{OrchArg, ORCH_ARG_SCALAR, ORCH_ARG_TENSOR};
use pto_abi::task::{DType, Lane, TaskPayload, INACTIVE_KERNEL, NO_TASK};
use pto_abi::DevAddr;

use super::error::{InvalidArgs, OrchError};

/// A submitted task: `(ring << 32) | local index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

impl TaskId {
    /// Names no task.
    pub const NONE: TaskId = TaskId(NO_TASK);
}

/// A view of a device buffer: the bytes `[offset, offset + bytes)` of the buffer at `buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Base address of the whole buffer (the tensor-map key).
    pub buffer: DevAddr,
    /// Bytes of the whole buffer.
    pub buffer_bytes: u64,
    /// Start of the view in bytes from `buffer`.
    pub offset: u64,
    /// Bytes of the view.
    pub bytes: u64,
    /// The task that allocated the buffer (runtime-allocated outputs), or [`TaskId::NONE`].
    pub creator: TaskId,
    /// Element type.
    pub dtype: DType,
}

impl Tensor {
    /// A whole existing buffer (not created by a task).
    pub const fn external(buffer: DevAddr, bytes: u64, dtype: DType) -> Tensor {
        Tensor { buffer, buffer_bytes: bytes, offset: 0, bytes, creator: TaskId::NONE, dtype }
    }

    /// The sub-view `[offset, offset + bytes)` of this view; `None` when it leaves the view.
    pub fn slice(&self, offset: u64, bytes: u64) -> Option<Tensor> {
        let end = offset.checked_add(bytes)?;
        if end > self.bytes {
            return None;
        }
        Some(Tensor { offset: self.offset + offset, bytes, ..*self })
    }

    /// Device address of the first byte of the view.
    pub fn addr(&self) -> u64 {
        self.buffer.0.wrapping_add(self.offset)
    }

    /// Number of elements of the view.
    #[inline]
    pub fn elements(&self) -> u64 {
        self.bytes >> self.dtype.size_log2()
    }
}

/// A runtime-allocated output: the runtime places it in the task's packed heap block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// Bytes of the output.
    pub bytes: u64,
    /// Element type.
    pub dtype: DType,
}

/// One tensor argument of a task, with its direction, which decides its dependencies: reading
/// depends on the tensor's creator and, for `Input` and `InOut`, on earlier writers of
/// overlapping bytes; `InOut` and `OutputExisting` register as new writers; write-after-read
/// needs an explicit dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Read: depends on the creator and on earlier overlapping writers.
    Input(Tensor),
    /// Runtime-allocated output in the task's heap block; returned by `submit`.
    Output(OutputSpec),
    /// Read and written: depends like `Input`, then registers as the newest writer.
    InOut(Tensor),
    /// Written, existing buffer: registers as the newest writer.
    OutputExisting(Tensor),
    /// Passed through: creator retention only, no tensor-map work.
    NoDep(Tensor),
}

/// Everything about one task to submit.
#[derive(Clone, Copy, Debug)]
pub struct TaskSpec<'a> {
    /// Kernel id per lane [AIC, AIV0, AIV1]; [`INACTIVE_KERNEL`] for an unused lane. All inactive
    /// makes a dependency-only task.
    pub kernels: [i32; LANE_COUNT],
    /// SPMD block count (1 for a plain task).
    pub block_num: u32,
    /// Tensor arguments.
    pub args: &'a [Arg],
    /// Scalar arguments.
    pub scalars: &'a [u64],
    /// Tasks to wait for in addition to the automatic dependencies.
    pub deps: &'a [TaskId],
}

impl<'a> TaskSpec<'a> {
    const NONE: [i32; LANE_COUNT] = [INACTIVE_KERNEL; LANE_COUNT];

    /// A task running `kernel` on one lane.
    pub const fn on(lane: Lane, kernel: i32, args: &'a [Arg]) -> Self {
        let mut kernels = Self::NONE;
        kernels[lane as usize] = kernel;
        TaskSpec { kernels, block_num: 1, args, scalars: &[], deps: &[] }
    }

    /// A vector-core task.
    pub const fn aiv(kernel: i32, args: &'a [Arg]) -> Self {
        Self::on(Lane::Aiv0, kernel, args)
    }

    /// A cube-core task.
    pub const fn aic(kernel: i32, args: &'a [Arg]) -> Self {
        Self::on(Lane::Aic, kernel, args)
    }

    /// A mixed task: one kernel per lane (inactive lanes [`INACTIVE_KERNEL`]).
    pub const fn mix(kernels: [i32; LANE_COUNT], args: &'a [Arg]) -> Self {
        TaskSpec { kernels, block_num: 1, args, scalars: &[], deps: &[] }
    }

    /// A dependency-only task (no kernel; completes as soon as it is ready).
    pub const fn dep_only(args: &'a [Arg]) -> Self {
        TaskSpec { kernels: Self::NONE, block_num: 1, args, scalars: &[], deps: &[] }
    }

    /// With `block_num` SPMD blocks.
    pub const fn blocks(mut self, block_num: u32) -> Self {
        self.block_num = block_num;
        self
    }

    /// With scalar arguments.
    pub const fn scalars(mut self, scalars: &'a [u64]) -> Self {
        self.scalars = scalars;
        self
    }

    /// With explicit dependencies.
    pub const fn deps(mut self, deps: &'a [TaskId]) -> Self {
        self.deps = deps;
        self
    }

    /// Bit `l` set when lane `l` has a kernel.
    #[inline]
    pub fn lane_mask(&self) -> u32 {
        let mut m = 0;
        for (l, k) in self.kernels.iter().enumerate() {
            m |= u32::from(*k != INACTIVE_KERNEL) << l;
        }
        m
    }
}

/// Outputs kept inline in [`Submitted`]; further ones are read back from the task's payload.
pub const INLINE_OUTPUTS: usize = 2;

/// What `submit` returns: the task id and its runtime-allocated outputs in argument order.
///
/// Small on purpose (it is returned by value on every submit): the first `INLINE_OUTPUTS`
/// outputs are stored inline, the others are rebuilt from the task's payload in SM, which stays
/// valid while the task's scope is open.
#[derive(Clone, Copy)]
pub struct Submitted {
    /// The new task.
    pub task: TaskId,
    /// Entries below `count` (at most `INLINE_OUTPUTS`) are initialised; left uninitialised
    /// otherwise so a submit without outputs writes nothing here.
    inline: [MaybeUninit<InlineOutput>; INLINE_OUTPUTS],
    count: u32,
    /// Bit `i` set when argument `i` is an [`Arg::Output`].
    output_args: u32,
    payload: *const TaskPayload,
}

impl Submitted {
    pub(crate) fn new(task: TaskId, payload: *const TaskPayload) -> Self {
        Submitted { task, inline: [MaybeUninit::uninit(); INLINE_OUTPUTS], count: 0, output_args: 0, payload }
    }

    /// Records output `t` of argument `arg`: a whole runtime-allocated buffer created by this
    /// task.
    #[inline(always)]
    pub(crate) fn push_output(&mut self, arg: usize, t: Tensor) {
        debug_assert!(t.offset == 0 && t.bytes == t.buffer_bytes && t.creator == self.task);
        if (self.count as usize) < INLINE_OUTPUTS {
            let o = InlineOutput { buffer: t.buffer, bytes: t.bytes, dtype: t.dtype };
            self.inline[self.count as usize] = MaybeUninit::new(o);
        }
        self.count += 1;
        self.output_args |= 1 << arg;
    }

    /// Number of runtime-allocated outputs.
    pub fn output_count(&self) -> usize {
        self.count as usize
    }

    /// Output `i` (in argument order), or `None` past the last one.
    pub fn get(&self, i: usize) -> Option<Tensor> {
        if i >= self.count as usize {
            return None;
        }
        if i < INLINE_OUTPUTS {
            // SAFETY: `i < count` and `i < INLINE_OUTPUTS`: `push_output` initialised entry `i`.
            let o = unsafe { self.inline[i].assume_init() };
            return Some(Tensor {
                buffer: o.buffer,
                buffer_bytes: o.bytes,
                offset: 0,
                bytes: o.bytes,
                creator: self.task,
                dtype: o.dtype,
            });
        }
        let mut mask = self.output_args;
        for _ in 0..i {
            mask &= mask - 1;
        }
        let arg = mask.trailing_zeros() as usize;
        // SAFETY: the payload of this task, written at submit; its tensor descriptors stay intact
        // while the task is live (its scope open), which is when outputs may be used.
        let d = unsafe { &(*self.payload).tensors[arg] };
        Some(Tensor {
            buffer: d.buffer,
            buffer_bytes: d.buffer_bytes,
            offset: d.view_offset,
            bytes: d.view_bytes,
            creator: TaskId(d.creator_task),
            dtype: DType::try_from(d.dtype).unwrap_or(DType::U8),
        })
    }

    /// Output `i` (panics past the last output: a programming error of the caller).
    #[inline]
    pub fn output(&self, i: usize) -> Tensor {
        match self.get(i) {
            Some(t) => t,
            None => panic!("task has {} outputs, asked for output {i}", self.count),
        }
    }
}

/// A runtime-allocated output as [`Submitted`] keeps it: the rest of its [`Tensor`] follows
/// (the whole buffer, created by the submitted task).
#[derive(Clone, Copy)]
struct InlineOutput {
    buffer: DevAddr,
    bytes: u64,
    dtype: DType,
}

impl core::fmt::Debug for Submitted {
    /// Shows the task, the output count and the inline outputs (never reads the payload).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inline = (self.count as usize).min(INLINE_OUTPUTS);
        let mut shown: [Option<Tensor>; INLINE_OUTPUTS] = [None; INLINE_OUTPUTS];
        for (i, s) in shown.iter_mut().enumerate().take(inline) {
            *s = self.get(i);
        }
        f.debug_struct("Submitted")
            .field("task", &self.task)
            .field("outputs", &self.count)
            .field("inline", &&shown[..inline])
            .finish()
    }
}

/// The arguments of a run as the orchestration receives them.
#[derive(Clone, Copy, Debug)]
pub struct OrchArgs<'a> {
    args: &'a [OrchArg],
}

impl<'a> OrchArgs<'a> {
    /// Wraps the run's argument records.
    pub const fn new(args: &'a [OrchArg]) -> Self {
        OrchArgs { args }
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// True when the run has no arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` as a whole external tensor.
    pub fn tensor(&self, i: usize) -> Result<Tensor, OrchError> {
        let bad = OrchError::invalid(InvalidArgs::BadRunArgument, i as u32);
        let a = self.args.get(i).ok_or(bad)?;
        if a.kind != ORCH_ARG_TENSOR || a.value == 0 {
            return Err(bad);
        }
        let dtype = DType::try_from(a.dtype).map_err(|_| bad)?;
        Ok(Tensor::external(DevAddr(a.value), a.bytes, dtype))
    }

    /// Argument `i` as a scalar word.
    pub fn scalar(&self, i: usize) -> Result<u64, OrchError> {
        match self.args.get(i) {
            Some(a) if a.kind == ORCH_ARG_SCALAR => Ok(a.value),
            _ => Err(OrchError::invalid(InvalidArgs::BadRunArgument, i as u32)),
        }
    }
}
