//! What a compute kernel receives on the simulated device.
//!
//! On the simulated device a device address is a real pointer into the device's memory pool, so a
//! kernel reads and writes its tensors through the addresses in `args` (unsafely: the runtime
//! guarantees that a task's outputs are not touched by any other running task).

/// One invocation of a kernel for one block of one task.
#[derive(Clone, Copy, Debug)]
pub struct KernelInvocation<'a> {
    /// Argument words: tensor device addresses first, then scalars, in the task's argument order.
    pub args: &'a [u64],
    /// This block's index in `0..block_num`.
    pub block_idx: u32,
    /// The task's block count.
    pub block_num: u32,
}

/// A compute kernel of the simulated device.
pub type SimKernelFn = fn(&KernelInvocation<'_>);
