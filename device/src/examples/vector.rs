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

/// `out = a + b`; args `[a, b, out, n]`.
pub fn add(inv: &KernelInvocation<'_>) {
    let n = inv.arg(3) as usize;
    let lo = inv.block_range(n).start;
    // SAFETY: the orchestration passes a and b as INPUTs and out as an OUTPUT, each of n f32s;
    // this block touches only its own share of out.
    let (a, b, o) = unsafe { (inv.input::<f32>(0, n), inv.input::<f32>(1, n), inv.output_share::<f32>(2, n)) };
    for (k, o) in o.iter_mut().enumerate() {
        *o = a[lo + k] + b[lo + k];
    }
}

/// `out = a + s`; args `[a, out, n, s as f32 bits]`.
pub fn add_scalar(inv: &KernelInvocation<'_>) {
    let n = inv.arg(2) as usize;
    let s = inv.arg_f32(3);
    let lo = inv.block_range(n).start;
    // SAFETY: as in `add`: a is an INPUT, out an OUTPUT, each of n f32s.
    let (a, o) = unsafe { (inv.input::<f32>(0, n), inv.output_share::<f32>(1, n)) };
    for (k, o) in o.iter_mut().enumerate() {
        *o = a[lo + k] + s;
    }
}

/// `out = a · b`; args `[a, b, out, n]`.
pub fn mul(inv: &KernelInvocation<'_>) {
    let n = inv.arg(3) as usize;
    let lo = inv.block_range(n).start;
    // SAFETY: as in `add`.
    let (a, b, o) = unsafe { (inv.input::<f32>(0, n), inv.input::<f32>(1, n), inv.output_share::<f32>(2, n)) };
    for (k, o) in o.iter_mut().enumerate() {
        *o = a[lo + k] * b[lo + k];
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
