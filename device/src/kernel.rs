//! What a compute kernel receives on the simulated device, and sound ways to reach its tensors.
//!
//! On the simulated device a device address is a real pointer into the device's memory pool, so a
//! kernel reads and writes its tensors through the addresses in [`KernelInvocation::args`]
//! (tensor addresses first, then scalars, in the task's argument order). A task runs as
//! `block_num` blocks, possibly at the same time on different cores, and other tasks that read the
//! same inputs may run beside it. So a kernel never turns a tensor address into a `&mut` over the
//! whole tensor: two blocks (or two readers) would each hold a `&mut` to the same memory, which is
//! undefined behaviour even when their writes never overlap. Instead:
//!
//! - [`KernelInvocation::input`]: an INPUT tensor as `&[T]`. Sound because the runtime starts a
//!   task only after every earlier writer of its inputs completed and starts no later writer of
//!   them before the task completed, so nobody writes an input while the task runs.
//! - [`KernelInvocation::output_share`]: this block's share of an OUTPUT (or INOUT) tensor as
//!   `&mut [T]`. The accessor computes the share itself ([`KernelInvocation::block_range`]: blocks
//!   `0..block_num` partition `0..len`), so the shares of two blocks never overlap. The lanes of
//!   a mixed task run the same block at the same time, so a tensor two lanes write is reached
//!   through [`KernelInvocation::tensor`] instead.
//! - [`KernelInvocation::tensor`]: a [`DeviceSlice`] for every other pattern (blocks writing
//!   scattered words, shared counters): bounds-checked raw reads and writes that create no
//!   reference, and atomic access to `u32`/`u64` words.
//!
//! Element types are [`bytemuck::Pod`]: any bit pattern is a valid value, so reading device memory
//! can never produce an invalid `T`. A bad argument index, a null or misaligned address or a
//! length overflow panics with a message saying which; the simulated device turns a kernel panic
//! into a kernel fault of the task.

use core::marker::PhantomData;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64};

use bytemuck::Pod;

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

impl<'a> KernelInvocation<'a> {
    /// Argument word `i` (a scalar, or a tensor's device address).
    ///
    /// # Panics
    /// When the task has no argument `i`.
    pub fn arg(&self, i: usize) -> u64 {
        match self.args.get(i) {
            Some(v) => *v,
            None => panic!("kernel argument {i} requested, the task has {}", self.args.len()),
        }
    }

    /// Argument `i` as an `f32` passed by its bit pattern (`f32::to_bits` in the low 32 bits).
    pub fn arg_f32(&self, i: usize) -> f32 {
        f32::from_bits(self.arg(i) as u32)
    }

    /// This block's share `[lo, hi)` of `len` elements: `block_idx · len / block_num` up to
    /// `(block_idx + 1) · len / block_num`. The shares of blocks `0..block_num` partition `0..len`.
    ///
    /// # Panics
    /// When `block_idx >= block_num` (a block count of 0 counts as 1).
    pub fn block_range(&self, len: usize) -> Range<usize> {
        let blocks = self.block_num.max(1) as u128;
        let idx = self.block_idx as u128;
        assert!(idx < blocks, "block {idx} of a task with {blocks} blocks");
        let n = len as u128;
        // Both bounds are at most `len`, so they fit a usize.
        (idx * n / blocks) as usize..((idx + 1) * n / blocks) as usize
    }

    /// The start of tensor argument `i` as a pointer to `T`, checked non-null and aligned, with
    /// `len` elements not overflowing the address space.
    fn tensor_ptr<T>(&self, i: usize, len: usize) -> *mut T {
        let addr = self.arg(i);
        assert!(addr != 0, "kernel argument {i} is a null tensor address");
        assert!(
            addr % core::mem::align_of::<T>() as u64 == 0,
            "kernel argument {i} ({addr:#x}) is not aligned for {}",
            core::any::type_name::<T>()
        );
        let bytes = (len as u64).checked_mul(core::mem::size_of::<T>() as u64);
        assert!(
            bytes.and_then(|b| addr.checked_add(b)).is_some_and(|end| end <= isize::MAX as u64),
            "kernel argument {i} ({addr:#x}): {len} elements overflow the address space"
        );
        addr as usize as *mut T
    }

    /// Tensor argument `i`, an INPUT of this task, as `len` elements of `T`.
    ///
    /// # Safety
    /// Argument `i` is the device address of at least `len` `T`s that stay allocated while the
    /// kernel runs and that no one writes while the task runs: an INPUT of the task, which the
    /// runtime orders after every earlier writer and before every later one. Not for a tensor any
    /// block of this task writes (INOUT, OUTPUT): use [`output_share`](Self::output_share) or
    /// [`tensor`](Self::tensor) there.
    pub unsafe fn input<T: Pod>(&self, i: usize, len: usize) -> &[T] {
        let ptr = self.tensor_ptr::<T>(i, len);
        // SAFETY: non-null, aligned and in range (checked); the caller guarantees `len` live
        // elements that nobody writes for the lifetime of the invocation borrow. `T: Pod` makes
        // every bit pattern a valid `T`.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }

    /// This block's share ([`block_range`](Self::block_range)`(len)`) of tensor argument `i`, an
    /// OUTPUT or INOUT of `len` elements of `T`, as `&mut [T]`; index 0 is element
    /// `block_range(len).start` of the tensor.
    ///
    /// # Safety
    /// Argument `i` is the device address of at least `len` `T`s that stay allocated while the
    /// kernel runs; the task's blocks are the only code touching it while the task runs (an
    /// OUTPUT or INOUT of this task, which the runtime orders after every earlier reader and
    /// writer), every block of the task touches it only through its own share, and no other lane
    /// of a mixed task writes it (the lanes of one block run at the same time). The returned
    /// slice is the only access to its elements while it lives: do not call this twice for the
    /// same argument, nor read or write the share through [`input`](Self::input) or
    /// [`tensor`](Self::tensor), while it is in use.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn output_share<T: Pod>(&self, i: usize, len: usize) -> &mut [T] {
        let range = self.block_range(len);
        let base = self.tensor_ptr::<T>(i, len);
        // SAFETY: `range` lies inside `0..len` (block_range), which is in bounds (checked); the
        // shares of two blocks are disjoint, and the caller guarantees no other access to this
        // share while the slice lives.
        unsafe { core::slice::from_raw_parts_mut(base.add(range.start), range.len()) }
    }

    /// Tensor argument `i` as `len` elements of `T` reached only through raw reads and writes.
    ///
    /// # Safety
    /// Argument `i` is the device address of at least `len` `T`s that stay allocated while the
    /// kernel runs. Reads and writes through the slice must not race with another thread's
    /// write of the same element (use [`DeviceSlice::atomic_u32`] / [`DeviceSlice::atomic_u64`]
    /// for words several blocks update).
    pub unsafe fn tensor<T: Pod>(&self, i: usize, len: usize) -> DeviceSlice<'_, T> {
        DeviceSlice { ptr: self.tensor_ptr::<T>(i, len), len, _memory: PhantomData }
    }
}

/// `len` elements of device memory reached through raw, bounds-checked reads and writes: no
/// reference to the memory is ever created, so blocks that touch disjoint elements of one tensor
/// at the same time stay sound.
#[derive(Clone, Copy, Debug)]
pub struct DeviceSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _memory: PhantomData<&'a [T]>,
}

impl<T: Pod> DeviceSlice<'_, T> {
    /// Elements in the slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the slice has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, i: usize) -> *mut T {
        assert!(i < self.len, "device slice index {i} out of range for length {}", self.len);
        // SAFETY: `i < len`, and the slice's creator guaranteed `len` elements.
        unsafe { self.ptr.add(i) }
    }

    /// Reads element `i` (a volatile read: the memory is shared with other cores).
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn read(&self, i: usize) -> T {
        let p = self.at(i);
        // SAFETY: in bounds and aligned; no other thread writes element `i` concurrently (the
        // contract of `KernelInvocation::tensor`); every bit pattern is a valid `T`.
        unsafe { p.read_volatile() }
    }

    /// Writes element `i` (a volatile write).
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn write(&self, i: usize, value: T) {
        let p = self.at(i);
        // SAFETY: in bounds and aligned; no other thread reads or writes element `i`
        // concurrently (the contract of `KernelInvocation::tensor`).
        unsafe { p.write_volatile(value) }
    }
}

impl<'a> DeviceSlice<'a, u32> {
    /// Element `i` as an atomic, for words several blocks update at the same time.
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn atomic_u32(&self, i: usize) -> &'a AtomicU32 {
        let p = self.at(i);
        // SAFETY: in bounds and 4-aligned (checked by `tensor`); the memory lives for 'a and is
        // only accessed atomically by whoever else updates this word.
        unsafe { AtomicU32::from_ptr(p) }
    }
}

impl<'a> DeviceSlice<'a, u64> {
    /// Element `i` as an atomic, for words several blocks update at the same time.
    ///
    /// # Panics
    /// When `i >= len`.
    pub fn atomic_u64(&self, i: usize) -> &'a AtomicU64 {
        let p = self.at(i);
        // SAFETY: in bounds and 8-aligned (checked by `tensor`); the memory lives for 'a and is
        // only accessed atomically by whoever else updates this word.
        unsafe { AtomicU64::from_ptr(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(args: &[u64], block_idx: u32, block_num: u32) -> KernelInvocation<'_> {
        KernelInvocation { args, block_idx, block_num }
    }

    #[test]
    fn block_ranges_partition_the_tensor() {
        for blocks in 1..=7u32 {
            for len in [0usize, 1, 5, 16, 1000] {
                let mut next = 0;
                for b in 0..blocks {
                    let r = inv(&[], b, blocks).block_range(len);
                    assert_eq!(r.start, next, "blocks {blocks} len {len}");
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
        assert_eq!(inv(&[], 0, 0).block_range(10), 0..10, "a block count of 0 counts as 1");
    }

    #[test]
    fn blocks_write_their_own_shares_and_read_inputs() {
        let input: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let mut out = vec![0f32; 10];
        let args = [input.as_ptr() as u64, out.as_mut_ptr() as u64, 10];
        for b in 0..3 {
            let k = inv(&args, b, 3);
            let n = k.arg(2) as usize;
            // SAFETY: `input` is read-only for the whole loop; each block takes its own share of
            // `out` and drops it before the next block runs.
            let (a, o) = unsafe { (k.input::<f32>(0, n), k.output_share::<f32>(1, n)) };
            let lo = k.block_range(n).start;
            for (j, x) in o.iter_mut().enumerate() {
                *x = a[lo + j] * 2.0;
            }
        }
        assert_eq!(out, input.iter().map(|x| x * 2.0).collect::<Vec<_>>());
    }

    #[test]
    fn device_slices_read_write_and_count_atomically() {
        let mut words = vec![0u32; 4];
        let args = [words.as_mut_ptr() as u64];
        let k = inv(&args, 0, 1);
        // SAFETY: `words` outlives the slice and nothing else touches it.
        let s = unsafe { k.tensor::<u32>(0, 4) };
        s.write(1, 7);
        s.atomic_u32(2).fetch_add(5, core::sync::atomic::Ordering::Relaxed);
        assert_eq!((s.read(1), s.read(2), s.len()), (7, 5, 4));
        assert_eq!(words, [0, 7, 5, 0]);
    }

    #[test]
    #[should_panic(expected = "kernel argument 3 requested, the task has 1")]
    fn a_missing_argument_is_named() {
        inv(&[1], 0, 1).arg(3);
    }

    #[test]
    #[should_panic(expected = "is not aligned for u32")]
    fn a_misaligned_tensor_is_refused() {
        let words = [0u32; 2];
        let args = [words.as_ptr() as u64 + 1];
        // SAFETY: the accessor panics before it creates a slice.
        let _ = unsafe { inv(&args, 0, 1).input::<u32>(0, 1) };
    }

    #[test]
    #[should_panic(expected = "device slice index 4 out of range for length 4")]
    fn device_slice_indices_are_checked() {
        let words = [0u32; 4];
        let args = [words.as_ptr() as u64];
        let k = inv(&args, 0, 1);
        // SAFETY: `words` outlives the slice.
        let s = unsafe { k.tensor::<u32>(0, 4) };
        s.read(4);
    }
}
