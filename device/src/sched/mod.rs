//! Schedulers: take ready tasks from the queues, run them on cores, complete them on FIN.
//!
//! The deterministic single-thread scheduler ([`deterministic`]) drives virtual cores itself; the
//! lifecycle steps it shares with the threaded schedulers live in [`crate::runtime`].

pub mod deterministic;
pub mod threaded;

#[cfg(test)]
mod tests;

use pto_abi::consts::MAX_KERNEL_ARGS;
use pto_abi::task::TaskPayload;

/// Fills `out` with a task's kernel argument words: each tensor's view address, then each scalar;
/// returns how many.
#[inline]
pub fn kernel_args(p: &TaskPayload, out: &mut [u64; MAX_KERNEL_ARGS]) -> usize {
    // Counts were validated at submit: nt <= 32, ns <= 16.
    let nt = (p.tensor_count as usize).min(p.tensors.len());
    let ns = (p.scalar_count as usize).min(p.scalars.len()).min(MAX_KERNEL_ARGS - nt);
    for (o, t) in out.iter_mut().zip(&p.tensors[..nt]) {
        *o = t.buffer.0.wrapping_add(t.view_offset);
    }
    out[nt..nt + ns].copy_from_slice(&p.scalars[..ns]);
    nt + ns
}
