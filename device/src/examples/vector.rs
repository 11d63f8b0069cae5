//! The vector example (the README's main job): f = (a+b+1)·(a+b+2) + (a+b) over 16,384 f32 with
//! a = 2 and b = 3, five tasks in two nested scopes, three kernels (add, add-scalar, mul); every
//! element of f is 47. Device code: the orchestration and the simulated kernels.

use crate::kernel::{KernelInvocation, SimKernelFn};
use crate::orch::{Arg, OrchArgs, OrchError, Orchestrator, OutputSpec, TaskSpec};
use pto_abi::runtime::ScopeKind;
use pto_abi::task::DType;

/// Elements of each vector.
pub const VECTOR_LEN: usize = 16_384;
/// The value every element of f must hold.
pub const VECTOR_EXPECTED: f32 = 47.0;
/// Func id of `add`.
pub const ADD: i32 = 0;
/// Func id of `add_scalar`.
pub const ADD_SCALAR: i32 = 1;
/// Func id of `mul`.
pub const MUL: i32 = 2;

/// This block's share `[lo, hi)` of `n` elements.
fn block_range(inv: &KernelInvocation<'_>, n: usize) -> (usize, usize) {
    let b = inv.block_num.max(1) as usize;
    let i = inv.block_idx as usize;
    (i * n / b, (i + 1) * n / b)
}

/// # Safety
/// `addr` is a tensor of at least `n` f32s that the running block may access.
unsafe fn f32s<'a>(addr: u64, n: usize) -> &'a mut [f32] {
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut f32, n) }
}

/// `out = a + b`; args `[a, b, out, n]`.
pub fn add(inv: &KernelInvocation<'_>) {
    let n = inv.args[3] as usize;
    let (lo, hi) = block_range(inv, n);
    // SAFETY: the runtime passes three tensors of n f32s; outputs are this task's alone.
    let (a, b, o) = unsafe { (f32s(inv.args[0], n), f32s(inv.args[1], n), f32s(inv.args[2], n)) };
    for i in lo..hi {
        o[i] = a[i] + b[i];
    }
}

/// `out = a + s`; args `[a, out, n, s as f32 bits]`.
pub fn add_scalar(inv: &KernelInvocation<'_>) {
    let n = inv.args[2] as usize;
    let s = f32::from_bits(inv.args[3] as u32);
    let (lo, hi) = block_range(inv, n);
    // SAFETY: as in `add`.
    let (a, o) = unsafe { (f32s(inv.args[0], n), f32s(inv.args[1], n)) };
    for i in lo..hi {
        o[i] = a[i] + s;
    }
}

/// `out = a · b`; args `[a, b, out, n]`.
pub fn mul(inv: &KernelInvocation<'_>) {
    let n = inv.args[3] as usize;
    let (lo, hi) = block_range(inv, n);
    // SAFETY: as in `add`.
    let (a, b, o) = unsafe { (f32s(inv.args[0], n), f32s(inv.args[1], n), f32s(inv.args[2], n)) };
    for i in lo..hi {
        o[i] = a[i] * b[i];
    }
}

/// The example's kernels by func id.
pub const VECTOR_KERNELS: [SimKernelFn; 3] = [add, add_scalar, mul];

/// The orchestration; run arguments `[a, b, f, n]`.
pub fn vector_orchestration(o: &mut Orchestrator<'_, '_>, args: &OrchArgs<'_>) -> Result<(), OrchError> {
    let (a, b, f) = (args.tensor(0)?, args.tensor(1)?, args.tensor(2)?);
    let n = args.scalar(3)?;
    let out = OutputSpec { bytes: n * 4, dtype: DType::F32 };
    o.scope(ScopeKind::Auto, |o| {
        let c =
            o.submit(&TaskSpec::aiv(ADD, &[Arg::Input(a), Arg::Input(b), Arg::Output(out)]).scalars(&[n]))?.output(0);
        let g = o.scope(ScopeKind::Auto, |o| {
            let one = 1.0f32.to_bits() as u64;
            let two = 2.0f32.to_bits() as u64;
            let d = o.submit(&TaskSpec::aiv(ADD_SCALAR, &[Arg::Input(c), Arg::Output(out)]).scalars(&[n, one]))?;
            let e = o.submit(&TaskSpec::aiv(ADD_SCALAR, &[Arg::Input(c), Arg::Output(out)]).scalars(&[n, two]))?;
            let args = [Arg::Input(d.output(0)), Arg::Input(e.output(0)), Arg::Output(out)];
            Ok(o.submit(&TaskSpec::aiv(MUL, &args).scalars(&[n]))?.output(0))
        })?;
        o.submit(&TaskSpec::aiv(ADD, &[Arg::Input(g), Arg::Input(c), Arg::OutputExisting(f)]).scalars(&[n]))?;
        Ok(())
    })
}
