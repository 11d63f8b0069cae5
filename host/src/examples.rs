//! The vector example, f = (a+b+1)·(a+b+2) + (a+b) over [`VECTOR_LEN`] f32: five tasks of three
//! kernels in two nested scopes. Its orchestration and kernels are device code
//! ([`pto_device::examples::vector`], re-exported here); this module adds the host side: the run
//! arguments, the chip callable naming that code, and the simulated device's names for it.
//!
//! Only names live in the blob; the simulated device resolves them in its name tables.

use pto_abi::task::TensorDirection::{Input, NoDep, Output, OutputExisting};
use pto_device::orch::OrchestrationFn;

pub use pto_device::examples::vector::*;

use crate::backend::sim::{SymbolError, Symbols};
use crate::backend::KernelFn;
use crate::callable::{BuildError, ChipCallable, CoreCallable, Orchestration};
use crate::runner::RunArg;

/// Orchestration name of the vector example.
pub const VECTOR_ORCHESTRATION: &str = "vector_example";
/// Kernel: `out = x + y`.
pub const VECTOR_ADD: &str = "vector_add";
/// Kernel: `out = x + scalar`.
pub const VECTOR_ADD_SCALAR: &str = "vector_add_scalar";
/// Kernel: `out = x * y`.
pub const VECTOR_MUL: &str = "vector_mul";

/// Func ids of the three kernels, in the order above (the ids the orchestration submits).
pub const VECTOR_FUNC_IDS: [u32; 3] = [ADD as u32, ADD_SCALAR as u32, MUL as u32];

/// The vector example blob: args `a`, `b` (inputs), `f` (an existing output buffer) and the
/// element count `n` (a scalar, `NoDep`).
pub fn vector_example_callable() -> Result<ChipCallable, BuildError> {
    let [add, add_scalar, mul] = VECTOR_FUNC_IDS;
    ChipCallable::build(
        &[Input, Input, OutputExisting, NoDep],
        &Orchestration { name: VECTOR_ORCHESTRATION.into(), config_name: "default".into(), bytes: Vec::new() },
        &[
            CoreCallable::sim(add, VECTOR_ADD, &[Input, Input, Output]),
            CoreCallable::sim(add_scalar, VECTOR_ADD_SCALAR, &[Input, Output]),
            CoreCallable::sim(mul, VECTOR_MUL, &[Input, Input, Output]),
        ],
    )
}

/// Defines the vector example's orchestration and kernels in the simulated device's name tables
/// under the names its blob uses.
pub fn define_vector_symbols(symbols: &mut Symbols) -> Result<(), SymbolError> {
    symbols.orchestrations.define(VECTOR_ORCHESTRATION, vector_orchestration as OrchestrationFn)?;
    symbols.kernels.define(VECTOR_ADD, add as KernelFn)?;
    symbols.kernels.define(VECTOR_ADD_SCALAR, add_scalar as KernelFn)?;
    symbols.kernels.define(VECTOR_MUL, mul as KernelFn)
}

/// The example's run arguments: a = 2, b = 3 (inputs), f (output), n.
pub fn vector_args() -> Vec<RunArg> {
    vec![
        RunArg::input_f32(&[2.0; VECTOR_LEN]),
        RunArg::input_f32(&[3.0; VECTOR_LEN]),
        RunArg::output_f32(VECTOR_LEN),
        RunArg::Scalar(VECTOR_LEN as u64),
    ]
}

/// Index of f among [`vector_args`].
pub const VECTOR_RESULT_ARG: usize = 2;

/// The kernel name of a vector-example func id (`func <id>` for an unknown id).
pub fn vector_kernel_name(func_id: u32) -> String {
    let names = [VECTOR_ADD, VECTOR_ADD_SCALAR, VECTOR_MUL];
    VECTOR_FUNC_IDS
        .iter()
        .position(|f| *f == func_id)
        .map_or_else(|| format!("func {func_id}"), |i| names[i].to_string())
}
